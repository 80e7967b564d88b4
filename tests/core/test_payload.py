"""The label payload (docs/labels.md): encode and read back, strictly; fuzzed payloads never
name another identifier, and against real units never resolve to a different unit."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellchain.chain import service as chain
from cellchain.chain.models import LineageOperation, UnitKind
from cellchain.core.identifiers import InvalidIdentifier, make_din, make_unit_code
from cellchain.core.payload import PAYLOAD_PREFIX, encode_payload, read_scan
from cellchain.core.types import utcnow
from cellchain.errors import DomainError, NotFound
from tests.support.identifiers import identifiers

#: What a keyboard-wedge scanner types faithfully (the format's promise).
WEDGE_SAFE = re.compile(r"^[A-Z0-9.*]+$")


@given(identifiers)
def test_every_identifier_round_trips_through_its_payload(identifier: Any) -> None:
    payload = encode_payload(identifier)
    assert payload.startswith(PAYLOAD_PREFIX)
    assert WEDGE_SAFE.match(payload), payload
    assert read_scan(payload) == identifier
    # The human-readable text typed by hand reads back to the same identifier.
    assert read_scan(identifier.display) == identifier
    assert read_scan(identifier.display.lower()) == identifier


@given(identifiers, st.data())
def test_a_changed_payload_is_refused_or_names_nothing_else(identifier: Any, data: Any) -> None:
    """One character replaced, dropped or inserted anywhere: refused, never read as another
    identifier (MOD 37-2 catches every single substitution)."""
    payload = encode_payload(identifier)
    index = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    char = data.draw(st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*.-"))
    edit = data.draw(st.sampled_from(["replace", "drop", "insert"]))
    if edit == "replace":
        changed = payload[:index] + char + payload[index + 1 :]
    elif edit == "drop":
        changed = payload[:index] + payload[index + 1 :]
    else:
        changed = payload[:index] + char + payload[index:]
    if changed == payload:
        return
    try:
        read = read_scan(changed)
    except InvalidIdentifier:
        return
    assert read == identifier, (payload, changed, read)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CC1.", "read only partly"),
        ("CC1.X999926000001C00", "X999926000001C00"),
        ("CC2.X999926000001C0018T", "this system reads 'CC1.'"),
        ("CC1.x999926000001c0018t", "not written as a label writes it"),
        ("CC1.X9999 26 000001 C0018 [T]", "not written as a label writes it"),
    ],
)
def test_bad_payloads_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier, match=re.escape(message)):
        read_scan(text)


def test_a_wrong_check_character_is_refused() -> None:
    code = make_unit_code(make_din("X9999", 26, 1).canonical, "C", 18)
    wrong = code.canonical[:-1] + ("A" if code.check != "A" else "B")
    with pytest.raises(InvalidIdentifier, match="check"):
        read_scan(PAYLOAD_PREFIX + wrong)


# --- against the units of a site ------------------------------------------------------------


def test_a_payload_of_another_facility_is_not_resolved(lab: Any) -> None:
    other = make_unit_code(make_din("B1234", 26, 1).canonical, "C", 1)
    with pytest.raises(NotFound, match="of facility B1234, but this site has not issued it"):
        chain.resolve_unit(lab.session, encode_payload(other))


@pytest.fixture
def units(lab: Any) -> list[Any]:
    """A donation's two containers and twelve vessels."""
    donation = lab.receive(lab.register())
    vessels = chain.derive_units(
        lab.session,
        parents=donation.units[:1],
        kind=UnitKind.CULTURE_VESSEL,
        operation=LineageOperation.ISOLATE,
        count=12,
        location="INC-1",
        actor=lab.tech,
        now=utcnow(),
    )
    lab.session.commit()
    return [*donation.units, *vessels]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_payloads_of_real_units_never_resolve_to_a_different_unit(
    lab: Any, units: list[Any], data: Any
) -> None:
    unit = data.draw(st.sampled_from(units))
    payload = encode_payload(read_scan(unit.code))
    changed = data.draw(
        st.one_of(
            st.builds(
                lambda i, c: payload[:i] + c + payload[i + 1 :],
                st.integers(0, len(payload) - 1),
                st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"),
            ),
            st.builds(lambda i: payload[:i], st.integers(0, len(payload) - 1)),
            st.builds(lambda i: payload[:i] + payload[i + 1 :], st.integers(0, len(payload) - 1)),
            st.just(payload),
        )
    )
    try:
        found = chain.resolve_unit(lab.session, changed)
    except DomainError:
        return
    assert found.id == unit.id, (payload, changed, found.code)
