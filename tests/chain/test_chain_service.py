"""The chain-of-identity core without HTTP: deriving units, status changes, custody events,
resolving codes and the recursive trace queries."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.chain.models import (
    UNIT_TRANSITIONS,
    EventType,
    LineageEdge,
    LineageOperation,
    Unit,
    UnitEvent,
    UnitKind,
    UnitStatus,
)
from cellchain.core.identifiers import (
    InvalidIdentifier,
    make_unit_code,
    parse_identifier,
)
from cellchain.core.models import AuditEntry, IssuedIdentifier
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput, NotFound, StateConflict
from tests.support.chain import (
    Tree,
    build_tree,
    container_of,
    derive,
    other_check_character,
    set_status,
)
from tests.support.statements import counting_statements

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


# --- helpers --------------------------------------------------------------------------------


def row_counts(session) -> dict[str, int]:
    """Committed rows of everything a chain operation writes."""
    session.rollback()
    return {
        model.__name__: session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (Unit, LineageEdge, UnitEvent, AuditEntry, IssuedIdentifier)
    }


def audit_of(session, unit: Unit, action: str) -> list[AuditEntry]:
    return list(
        session.execute(
            select(AuditEntry)
            .where(
                AuditEntry.entity_type == "unit",
                AuditEntry.entity_id == str(unit.id),
                AuditEntry.action == action,
            )
            .order_by(AuditEntry.seq)
        ).scalars()
    )


def pairs(steps: list[chain.TraceStep]) -> list[tuple[int, int]]:
    return [(step.unit.id, step.distance) for step in steps]


# --- derive_units ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(UnitKind), ids=lambda k: k.value)
def test_derived_units_embed_the_din_with_a_valid_check_character(lab, kind):
    container = container_of(lab)
    din = parse_identifier(container.donation.din)

    children = derive(lab, [container], kind=kind, operation=LineageOperation.SAMPLE, count=3)

    assert len(children) == 3 and len({c.code for c in children}) == 3
    for child in children:
        code = parse_identifier(child.code)  # raises if the check character is wrong
        assert code.kind == "UNIT" and code.canonical == child.code
        assert code.din == din.body
        assert code.unit_kind_letter == kind.letter
        assert child.kind == kind.value
        assert child.status == UnitStatus.QUARANTINE.value
        assert child.donation_id == container.donation_id
        assert child.location == "BSC-1"
        assert child.created_by_id == lab.tech.id
    # numbers count every unit of the donation: the container is 0001, the children follow
    assert [parse_identifier(c.code).body[-4:] for c in children] == ["0002", "0003", "0004"]


def test_derived_units_record_lineage_events_audit_and_their_codes(lab):
    container = container_of(lab)

    vessels = derive(lab, [container], operation=LineageOperation.ISOLATE, count=2)

    edges = lab.session.execute(
        select(LineageEdge.parent_id, LineageEdge.child_id, LineageEdge.operation).order_by(
            LineageEdge.child_id
        )
    ).all()
    assert [tuple(e) for e in edges] == [(container.id, v.id, "isolate") for v in vessels]
    for vessel in vessels:
        assert chain.parents_of(lab.session, vessel) == [(container, "isolate")]
        assert [e.event_type for e in chain.history(lab.session, vessel)] == ["created"]
        [created] = audit_of(lab.session, vessel, "unit.created")
        changes = json.loads(created.changes)
        assert changes["operation"] == [None, "isolate"]
        assert changes["parents"] == [None, [container.code]]
        assert changes["code"] == [None, vessel.code]
        issued = lab.session.execute(
            select(IssuedIdentifier).where(IssuedIdentifier.code == vessel.code)
        ).scalar_one()
        assert (issued.kind, issued.entity_type, issued.entity_id) == (
            "UNIT",
            "unit",
            str(vessel.id),
        )
    assert chain.children_of(lab.session, container) == [(v, "isolate") for v in vessels]
    assert container.status == UnitStatus.QUARANTINE.value  # not consumed unless asked


def test_several_parents_of_one_donation_make_one_child_with_several_parents(lab):
    container = container_of(lab)
    v1, v2 = derive(lab, [container], count=2)

    [harvest] = derive(lab, [v1, v2], operation=LineageOperation.HARVEST)

    assert chain.parents_of(lab.session, harvest) == [(v1, "harvest"), (v2, "harvest")]
    assert chain.children_of(lab.session, v1) == [(harvest, "harvest")]
    assert chain.children_of(lab.session, v2) == [(harvest, "harvest")]
    assert harvest.donation_id == container.donation_id


def test_consume_parents_moves_the_parents_to_consumed(lab):
    container = container_of(lab)
    v1, v2 = derive(lab, [container], count=2)

    [harvest] = derive(lab, [v1, v2], operation=LineageOperation.HARVEST, consume=True)

    assert (v1.status, v2.status) == ("consumed", "consumed")
    assert harvest.status == "quarantine"
    last = chain.history(lab.session, v1)[-1]
    assert last.event_type == "status_changed"
    assert last.note == "quarantine → consumed: used up by harvest"
    [entry] = audit_of(lab.session, v1, "unit.status_changed")
    assert entry.reason == "used up by harvest"
    with pytest.raises(Conflict, match="consumed"):
        derive(lab, [v1], operation=LineageOperation.PASSAGE)


@pytest.mark.parametrize("count", [0, -1, chain.MAX_UNITS_PER_STEP + 1])
def test_count_out_of_bounds_is_refused(lab, count):
    container = container_of(lab)
    before = row_counts(lab.session)

    with pytest.raises(InvalidInput) as refused:
        derive(lab, [container], count=count)

    assert "count" in refused.value.errors
    assert str(count) in refused.value.detail
    assert row_counts(lab.session) == before


def test_the_largest_step_is_allowed(lab):
    container = container_of(lab)

    children = derive(
        lab,
        [container],
        kind=UnitKind.CRYOBAG,
        operation=LineageOperation.FILL,
        count=chain.MAX_UNITS_PER_STEP,
    )

    assert len({c.code for c in children}) == chain.MAX_UNITS_PER_STEP


def test_no_parents_is_refused(lab):
    with pytest.raises(InvalidInput, match="at least one parent"):
        derive(lab, [])


def test_the_same_parent_twice_is_refused(lab):
    container = container_of(lab)
    before = row_counts(lab.session)

    with pytest.raises(InvalidInput, match="same parent unit was given twice"):
        derive(lab, [container, container])

    assert row_counts(lab.session) == before


def test_parents_from_two_donations_are_never_pooled_and_nothing_is_written(lab):
    first = container_of(lab)
    second = container_of(lab)
    v1 = derive(lab, [first])[0]
    v2 = derive(lab, [second])[0]
    before = row_counts(lab.session)

    with pytest.raises(Conflict) as refused:
        derive(lab, [v1, v2], operation=LineageOperation.HARVEST)

    lab.session.rollback()
    assert refused.value.title == "Pooling across donations refused"
    assert refused.value.status == 409
    detail = refused.value.detail
    for unit in (v1, v2):
        assert unit.code in detail
        assert unit.donation.din in detail
    assert "2 donations" in detail
    assert row_counts(lab.session) == before
    assert chain.children_of(lab.session, v1) == [] and chain.children_of(lab.session, v2) == []


@pytest.mark.parametrize(
    "status",
    [s for s in UnitStatus if s not in (UnitStatus.QUARANTINE, UnitStatus.AVAILABLE)],
    ids=lambda s: s.value,
)
def test_only_quarantined_or_available_units_can_be_parents(lab, status):
    container = container_of(lab)
    set_status(lab.session, container, status)
    before = row_counts(lab.session)

    with pytest.raises(Conflict, match=f"is {status.value}"):
        derive(lab, [container])

    assert row_counts(lab.session) == before


def test_an_available_unit_can_be_a_parent(lab):
    container = container_of(lab)
    set_status(lab.session, container, UnitStatus.AVAILABLE)

    [child] = derive(lab, [container])

    assert chain.parents_of(lab.session, child) == [(container, "isolate")]


def test_a_blank_location_is_refused(lab):
    container = container_of(lab)
    before = row_counts(lab.session)

    with pytest.raises(InvalidInput) as refused:
        derive(lab, [container], location="   ")

    assert "location" in refused.value.errors
    assert row_counts(lab.session) == before


# --- change_status --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "target"),
    list(itertools.product(UnitStatus, UnitStatus)),
    ids=lambda s: s.value,
)
def test_status_changes_follow_the_transition_table(lab, start, target):
    container = container_of(lab)
    [unit] = derive(lab, [container])
    set_status(lab.session, unit, start)
    events_before = len(chain.history(lab.session, unit))

    if target == start:
        chain.change_status(lab.session, unit, target, actor=lab.tech, now=utcnow(), reason="x")
        lab.session.commit()
        assert unit.status == start.value
        assert len(chain.history(lab.session, unit)) == events_before  # a no-op writes nothing
    elif target in UNIT_TRANSITIONS[start]:
        chain.change_status(
            lab.session, unit, target, actor=lab.tech, now=utcnow(), reason="test step"
        )
        lab.session.commit()
        lab.session.expire_all()
        assert unit.status == target.value
        history = chain.history(lab.session, unit)
        assert len(history) == events_before + 1
        assert history[-1].event_type == "status_changed"
        assert history[-1].note == f"{start.value} → {target.value}: test step"
        assert history[-1].actor_id == lab.tech.id
        [entry] = audit_of(lab.session, unit, "unit.status_changed")
        assert json.loads(entry.changes) == {"status": [start.value, target.value]}
        assert entry.reason == "test step"
    else:
        with pytest.raises(StateConflict) as refused:
            chain.change_status(
                lab.session, unit, target, actor=lab.tech, now=utcnow(), reason="test step"
            )
        lab.session.rollback()
        assert (refused.value.current, refused.value.attempted) == (start, target)
        assert unit.code in refused.value.detail
        assert start.value in refused.value.detail and target.value in refused.value.detail
        assert unit.status == start.value
        assert len(chain.history(lab.session, unit)) == events_before
        assert audit_of(lab.session, unit, "unit.status_changed") == []


def test_a_refused_status_change_reads_in_plain_words(lab):
    container = container_of(lab)
    set_status(lab.session, container, UnitStatus.CONSUMED)

    with pytest.raises(StateConflict) as refused:
        chain.change_status(
            lab.session, container, UnitStatus.AVAILABLE, actor=lab.tech, now=utcnow(), reason="x"
        )

    assert refused.value.detail == (
        f"Unit {container.code} is 'consumed'; it cannot become 'available'."
    )


def test_final_states_have_no_way_out():
    finals = {s for s in UnitStatus if s.final}
    assert finals == {
        UnitStatus.INFUSED,
        UnitStatus.CONSUMED,
        UnitStatus.DISCARDED,
        UnitStatus.REJECTED,
        UnitStatus.BLOCKED,
    }


# --- record_custody -------------------------------------------------------------------------


def custody(lab, unit, event_type: EventType, *, now: dt.datetime | None = None, **fields):
    recorded = chain.record_custody(
        lab.session,
        unit,
        chain.CustodyInput(event_type=event_type, **fields),
        actor=lab.tech,
        now=now or utcnow(),
    )
    lab.session.commit()
    return recorded


@pytest.fixture
def vessel(lab) -> Unit:
    """A culture vessel made two hours ago in BSC-1."""
    container = container_of(lab)
    [unit] = derive(lab, [container], now=utcnow() - 2 * HOUR)
    return unit


def test_a_move_changes_the_location_and_records_where_from(lab, vessel):
    event = custody(lab, vessel, EventType.MOVED, location="  Incubator 3  ", note=" shelf 2 ")

    assert vessel.location == "Incubator 3"
    assert (event.event_type, event.location, event.from_location) == (
        "moved",
        "Incubator 3",
        "BSC-1",
    )
    assert event.note == "shelf 2" and event.actor_id == lab.tech.id
    assert event.at == event.recorded_at
    [entry] = audit_of(lab.session, vessel, "unit.moved")
    assert json.loads(entry.changes) == {
        "event": [None, "moved"],
        "location": ["BSC-1", "Incubator 3"],
    }


@pytest.mark.parametrize("location", [None, "", "   "])
def test_a_move_needs_a_location(lab, vessel, location):
    before = row_counts(lab.session)

    with pytest.raises(InvalidInput) as refused:
        custody(lab, vessel, EventType.MOVED, location=location)

    lab.session.rollback()
    assert refused.value.errors == {"location": ["Required."]}
    assert vessel.location == "BSC-1"
    assert row_counts(lab.session) == before


def test_a_hand_off_needs_a_counterparty_and_keeps_the_location(lab, vessel):
    with pytest.raises(InvalidInput) as refused:
        custody(lab, vessel, EventType.HANDED_OFF, counterparty="  ")
    lab.session.rollback()
    assert refused.value.errors == {"counterparty": ["Required."]}

    event = custody(lab, vessel, EventType.HANDED_OFF, counterparty="courier: J. Doe")

    assert (event.counterparty, event.location, event.from_location) == (
        "courier: J. Doe",
        "BSC-1",
        None,
    )
    assert vessel.location == "BSC-1"
    [entry] = audit_of(lab.session, vessel, "unit.handed_off")
    assert json.loads(entry.changes)["counterparty"] == [None, "courier: J. Doe"]


def test_a_receipt_with_temperature_changes_the_location(lab, vessel):
    event = custody(lab, vessel, EventType.RECEIVED, location="QC lab", temperature_c=-150.5)

    assert vessel.location == "QC lab"
    assert (event.location, event.from_location, event.temperature_c) == ("QC lab", None, -150.5)
    [entry] = audit_of(lab.session, vessel, "unit.received")
    assert json.loads(entry.changes)["temperature_c"] == [None, -150.5]


def test_a_receipt_needs_a_location(lab, vessel):
    with pytest.raises(InvalidInput) as refused:
        custody(lab, vessel, EventType.RECEIVED, temperature_c=4.0)
    assert "location" in refused.value.errors


def test_a_scan_changes_nothing_but_is_recorded(lab, vessel):
    event = custody(lab, vessel, EventType.SCANNED)

    assert vessel.location == "BSC-1" and vessel.status == "quarantine"
    assert (event.event_type, event.location, event.from_location) == ("scanned", "BSC-1", None)
    assert [e.event_type for e in chain.history(lab.session, vessel)] == ["created", "scanned"]


@pytest.mark.parametrize("event_type", [EventType.CREATED, EventType.STATUS_CHANGED])
def test_service_events_cannot_be_recorded_as_custody(lab, vessel, event_type):
    with pytest.raises(InvalidInput) as refused:
        custody(lab, vessel, event_type, location="anywhere")
    assert "event_type" in refused.value.errors


def test_an_event_in_the_future_is_refused(lab, vessel):
    now = utcnow()
    with pytest.raises(InvalidInput, match="future") as refused:
        custody(lab, vessel, EventType.SCANNED, at=now + MINUTE, now=now)
    assert "at" in refused.value.errors


def test_an_event_before_the_unit_existed_is_refused(lab, vessel):
    with pytest.raises(InvalidInput, match="cannot be earlier") as refused:
        custody(lab, vessel, EventType.SCANNED, at=vessel.created_at - dt.timedelta(seconds=1))
    lab.session.rollback()
    assert "at" in refused.value.errors

    event = custody(lab, vessel, EventType.SCANNED, at=vessel.created_at)
    assert event.at == vessel.created_at


@pytest.mark.parametrize("temperature", [-273.16, 100.01, -1000.0, float("inf"), float("nan")])
def test_an_impossible_temperature_is_refused(lab, vessel, temperature):
    with pytest.raises(InvalidInput) as refused:
        custody(lab, vessel, EventType.RECEIVED, location="QC lab", temperature_c=temperature)
    lab.session.rollback()
    assert "temperature_c" in refused.value.errors
    assert vessel.location == "BSC-1"


@pytest.mark.parametrize("temperature", [-273.15, -196.0, 0.0, 100.0])
def test_possible_temperatures_are_kept(lab, vessel, temperature):
    event = custody(lab, vessel, EventType.SCANNED, temperature_c=temperature)
    assert event.temperature_c == temperature


@pytest.mark.parametrize(
    "status",
    [UnitStatus.CONSUMED, UnitStatus.INFUSED, UnitStatus.DISCARDED],
    ids=lambda s: s.value,
)
def test_a_unit_that_is_gone_can_be_scanned_but_not_moved(lab, vessel, status):
    set_status(lab.session, vessel, status)

    for event_type, fields in (
        (EventType.MOVED, {"location": "Freezer 2"}),
        (EventType.RECEIVED, {"location": "Freezer 2"}),
        (EventType.HANDED_OFF, {"counterparty": "courier"}),
    ):
        with pytest.raises(Conflict, match="can be scanned but no longer moved"):
            custody(lab, vessel, event_type, **fields)
        lab.session.rollback()
    assert vessel.location == "BSC-1"

    event = custody(lab, vessel, EventType.SCANNED)
    assert event.event_type == "scanned"


def test_history_is_in_the_order_things_happened_not_recorded(lab, vessel):
    now = utcnow()
    moved = custody(lab, vessel, EventType.MOVED, location="Incubator 3", now=now)
    late_entry = custody(
        lab, vessel, EventType.SCANNED, at=now - HOUR, now=now + dt.timedelta(seconds=1)
    )
    handed = custody(lab, vessel, EventType.HANDED_OFF, counterparty="QC", now=now + 2 * MINUTE)

    history = chain.history(lab.session, vessel)

    assert [e.event_type for e in history] == ["created", "scanned", "moved", "handed_off"]
    assert [e.id for e in history[1:]] == [late_entry.id, moved.id, handed.id]
    assert late_entry.recorded_at > moved.recorded_at  # written up after the move …
    assert [e.at for e in history] == sorted(e.at for e in history)  # … shown before it


def test_events_of_a_donation_cover_every_unit(lab, vessel):
    custody(lab, vessel, EventType.SCANNED)
    events = chain.events_of_donation(lab.session, vessel.donation_id)
    assert {e.unit_id for e in events} == {vessel.id, *(u.id for u in vessel.donation.units)}
    assert [e.at for e in events] == sorted(e.at for e in events)


# --- resolve_unit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typing",
    [
        lambda code: code,
        lambda code: code.lower(),
        lambda code: parse_identifier(code).display,
        lambda code: parse_identifier(code).display.lower(),
        lambda code: f"  {code[:5]}-{code[5:7]}-{code[7:13]}-{code[13:].lower()}  ",
    ],
    ids=["canonical", "lower", "display", "display-lower", "spaced-hyphens"],
)
def test_a_unit_code_in_any_typed_form_resolves_to_the_unit(lab, vessel, typing):
    assert chain.resolve_unit(lab.session, typing(vessel.code)) is vessel


def test_a_din_is_not_a_unit(lab, vessel):
    din = vessel.donation.din

    with pytest.raises(InvalidIdentifier) as refused:
        chain.resolve_unit(lab.session, parse_identifier(din).display)

    assert "a donation's DIN, not a unit" in refused.value.detail
    assert din in refused.value.detail


def test_a_wrong_check_character_is_refused_as_check(lab, vessel):
    with pytest.raises(InvalidIdentifier) as refused:
        chain.resolve_unit(lab.session, other_check_character(vessel.code))

    assert refused.value.reason == "check"
    assert refused.value.position == 19


def test_a_unit_code_without_its_check_character_is_refused(lab, vessel):
    with pytest.raises(InvalidIdentifier) as refused:
        chain.resolve_unit(lab.session, vessel.code[:-1])
    assert refused.value.reason == "no_check"
    assert "needs its check character" in refused.value.detail


def test_a_well_formed_unit_code_never_issued_is_not_found(lab, vessel):
    din = parse_identifier(vessel.donation.din).body
    never = make_unit_code(din, "C", 9999).canonical

    with pytest.raises(NotFound, match="has not issued it"):
        chain.resolve_unit(lab.session, never)


def test_get_unit_of_an_unknown_id_is_not_found(lab):
    with pytest.raises(NotFound, match="no unit #999999"):
        chain.get_unit(lab.session, 999_999)


# --- trace_back / trace_forward -------------------------------------------------------------


@pytest.fixture
def tree(lab) -> Tree:
    tree = build_tree(lab)
    build_tree(lab)  # another donation's tree: a trace never strays into it
    return tree


def test_trace_back_from_a_bag_reaches_the_container_once(lab, tree):
    t = tree
    assert pairs(chain.trace_back(lab.session, t.b1)) == [
        (t.s1.id, 1),
        (t.harvest.id, 2),
        (t.v1.id, 3),
        (t.v2.id, 3),
        (t.container.id, 4),  # reached through both vessels, listed once
    ]
    assert pairs(chain.trace_back(lab.session, t.harvest)) == [
        (t.v1.id, 1),
        (t.v2.id, 1),
        (t.container.id, 2),
    ]
    assert pairs(chain.trace_back(lab.session, t.s3)) == [
        (t.harvest.id, 1),
        (t.v1.id, 2),
        (t.v2.id, 2),
        (t.container.id, 3),
    ]
    assert chain.trace_back(lab.session, t.container) == []


def test_trace_forward_from_the_container_reaches_every_descendant_once(lab, tree):
    t = tree
    assert pairs(chain.trace_forward(lab.session, t.container)) == [
        (t.v1.id, 1),
        (t.v2.id, 1),
        (t.harvest.id, 2),  # reached through both vessels, listed once
        (t.s1.id, 3),
        (t.s2.id, 3),
        (t.s3.id, 3),
        (t.b1.id, 4),
        (t.b2.id, 4),
    ]
    assert pairs(chain.trace_forward(lab.session, t.v2)) == [
        (t.harvest.id, 1),
        (t.s1.id, 2),
        (t.s2.id, 2),
        (t.s3.id, 2),
        (t.b1.id, 3),
        (t.b2.id, 3),
    ]
    assert pairs(chain.trace_forward(lab.session, t.s1)) == [(t.b1.id, 1), (t.b2.id, 1)]
    assert chain.trace_forward(lab.session, t.s2) == []
    assert chain.trace_forward(lab.session, t.b1) == []


def test_a_unit_reached_by_paths_of_different_length_gets_the_shortest(lab, tree):
    t = tree
    # a sample taken from vessel 1 and the harvest together: vessel 1 is then both a direct
    # parent (1 step) and a grandparent through the harvest (2 steps)
    [sample] = derive(
        lab, [t.v1, t.harvest], kind=UnitKind.SAMPLE_TUBE, operation=LineageOperation.SAMPLE
    )

    assert pairs(chain.trace_back(lab.session, sample)) == [
        (t.v1.id, 1),
        (t.harvest.id, 1),
        (t.container.id, 2),  # via vessel 1; 3 via the harvest
        (t.v2.id, 2),
    ]
    forward = dict(pairs(chain.trace_forward(lab.session, t.container)))
    assert forward[sample.id] == 2  # via vessel 1; 3 via vessel 2 and the harvest
    assert len(chain.trace_forward(lab.session, t.container)) == 9
    assert dict(pairs(chain.trace_forward(lab.session, t.v1)))[sample.id] == 1


def test_trace_steps_carry_loaded_units(lab, tree):
    [first] = chain.trace_back(lab.session, tree.b1)[:1]
    assert first.unit is tree.s1 and first.unit.code == tree.s1.code


def statements_of(lab, trace, unit: Unit) -> int:
    lab.session.commit()
    assert unit.code  # load the start unit: what is counted is the trace alone
    with counting_statements() as statements:
        steps = trace(lab.session, unit)
    assert steps  # a trace that found nothing would prove nothing
    return len(statements)


def test_one_trace_is_one_statement_whatever_the_size_of_the_tree(lab):
    small_container = container_of(lab)
    [small_vessel] = derive(lab, [small_container])
    big = build_tree(lab)
    more = derive(lab, [big.s2], kind=UnitKind.CRYOBAG, operation=LineageOperation.FILL, count=20)
    derive(lab, more[:5], kind=UnitKind.SAMPLE_TUBE, operation=LineageOperation.SAMPLE, count=3)

    small_back = statements_of(lab, chain.trace_back, small_vessel)
    big_back = statements_of(lab, chain.trace_back, big.b1)
    small_forward = statements_of(lab, chain.trace_forward, small_container)
    big_forward = statements_of(lab, chain.trace_forward, big.container)

    assert small_back == big_back == 1
    assert small_forward == big_forward == 1
    assert len(chain.trace_forward(lab.session, big.container)) == 8 + 20 + 3
