"""The scenes machinery (``tests.support.scenes``): values reloaded from a snapshot are the
values built, each test gets its own copy of them, and scenes are built ahead only in the
order pytest would build them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cellchain.core.models import User
from cellchain.extensions import db
from tests.support.scenes import freeze, plan_of, thaw


@dataclass
class Helper:
    user: User
    seen: list[str] = field(default_factory=list)


def test_thawed_values_share_what_was_shared_and_copy_what_tests_may_change(app, make_user):
    user = make_user("sam", "technician")
    helper = Helper(user)
    frozen = freeze({"helper": helper, "same": helper, "user": user, "app": app})
    db.session.expunge_all()

    first, second = thaw(frozen, app), thaw(frozen, app)
    first["helper"].seen.append("changed by one test")

    assert first["helper"] is first["same"]
    assert first["helper"].user is first["user"]
    assert first["user"].username == "sam" and first["user"] is not user
    assert first["app"] is app
    assert second["helper"].seen == []


def test_a_scene_cannot_hold_what_cannot_be_reloaded(app):
    with pytest.raises(TypeError, match="cannot hold"):
        freeze({"callback": lambda: None})


@pytest.fixture
def labels_first(desk: Any) -> str:
    """A fixture that writes before ``released`` samples a bag (as a label run would)."""
    return desk.lot.lot_number


def test_scenes_after_a_writing_fixture_are_left_to_the_test(request, labels_first, released):
    assert [scene.name for scene in plan_of(request)] == ["lab", "bench", "spec", "desk"]


def test_scenes_asked_for_first_are_all_built_ahead(request, released, make_user):
    assert [scene.name for scene in plan_of(request)] == [
        "lab",
        "bench",
        "spec",
        "desk",
        "released",
    ]
