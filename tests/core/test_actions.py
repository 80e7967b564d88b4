"""The allowed-actions helper: acts start where the transition table allows all their ends."""

from __future__ import annotations

import enum

import pytest

from cellchain.core import actions
from cellchain.errors import StateConflict


class Light(enum.StrEnum):
    RED = "red"
    AMBER = "amber"
    GREEN = "green"
    OFF = "off"


class Act(enum.StrEnum):
    GO = "go"
    STOP = "stop"
    REPAIR = "repair"


TABLE = {
    Light.RED: frozenset({Light.GREEN, Light.OFF}),
    Light.AMBER: frozenset({Light.RED, Light.OFF}),
    Light.GREEN: frozenset({Light.AMBER, Light.OFF}),
    Light.OFF: frozenset(),
}


def test_an_act_starts_only_where_every_end_it_may_have_is_allowed() -> None:
    assert actions.leading_to(TABLE, Light.GREEN) == {Light.RED}
    assert actions.leading_to(TABLE, Light.OFF) == {Light.RED, Light.AMBER, Light.GREEN}
    assert actions.leading_to(TABLE, Light.RED, Light.OFF) == {Light.AMBER}
    assert actions.leading_to(TABLE, Light.RED, Light.GREEN) == frozenset()


def test_the_acts_allowed_are_those_starting_from_the_status_stored_or_given() -> None:
    starts = {
        Act.GO: actions.leading_to(TABLE, Light.GREEN),
        Act.STOP: actions.leading_to(TABLE, Light.RED),
        Act.REPAIR: frozenset({Light.OFF}),
    }
    assert actions.allowed("red", starts) == {Act.GO}
    assert actions.allowed(Light.AMBER, starts) == {Act.STOP}
    assert actions.allowed("off", starts) == {Act.REPAIR}
    assert actions.allowed("green", starts) == frozenset()
    # a template asks with the act's text
    assert "go" in actions.allowed("red", starts)


def test_a_change_the_table_does_not_allow_is_refused_naming_both_statuses() -> None:
    actions.require_transition(TABLE, Light.RED, Light.GREEN, "Light 1")
    with pytest.raises(StateConflict) as refused:
        actions.require_transition(TABLE, Light.OFF, Light.RED, "Light 1")
    assert refused.value.detail == "Light 1 is 'off'; it cannot become 'red'."
    assert (refused.value.current, refused.value.attempted) == (Light.OFF, Light.RED)
