"""Label control (issue 16, item 3): a blocked unit's label says why it is blocked, read from
the records (a recall names its number; an ineligible donor keeps its marking; anything else
is plainly blocked), every print logs the marking it carried, and a label printed before a
status change is superseded by it."""

from __future__ import annotations

from typing import Any

from cellchain.chain import service as chain
from cellchain.chain.models import UnitStatus
from cellchain.core.types import utcnow
from cellchain.donors.models import InfectiousResult
from cellchain.extensions import db
from cellchain.labels import service
from cellchain.labels.content import BLOCKED, INELIGIBLE_DONOR, label_for, status_marking
from cellchain.traceability.models import RecallTarget
from tests.support.labels import SETTINGS, print_units
from tests.support.recalls import open_recall
from tests.support.ward import Ward


def printed_marking(unit: Any) -> str:
    return label_for(
        db.session, unit, templates=SETTINGS.templates, zone=SETTINGS.zone, isbt=SETTINGS.isbt
    ).content.texts["status"]


def test_a_bag_blocked_by_a_recall_prints_recalled_with_its_number_not_ineligible_donor(
    ward: Ward,
    released: Any,
    clients: Any,
) -> None:
    order = ward.prepared()
    bag = order.bags[0].unit
    assert service.label_state(db.session, bag).ok
    opened = open_recall(ward, RecallTarget.LOT, released.id)
    number = opened.recall.number
    db.session.refresh(bag)
    assert bag.status == UnitStatus.BLOCKED
    marking = f"RECALLED {number} — DO NOT USE"
    assert printed_marking(bag) == marking and "INELIGIBLE" not in printed_marking(bag)
    # the released label on it is superseded by the recall: the state names the marking due
    state = service.label_state(db.session, bag)
    assert not state.ok and state.marking == marking
    assert f"is blocked and needs its label marked “{marking}”" in state.problem
    assert "that label is superseded" in state.problem
    (record,) = print_units([bag], ward.lab.tech, reason="recalled: relabel").prints
    assert record.marking == marking and not record.quarantine
    service.record_applied(db.session, None, bag.code, actor=ward.lab.tech, now=utcnow(), unit=bag)
    db.session.commit()
    assert service.label_state(db.session, bag).ok
    # the page's preview and the API's print log say the same
    tech = clients.web(ward.lab.tech)
    page = tech.get(f"/units/{bag.id}/labels").get_data(as_text=True)
    assert marking in page and "INELIGIBLE DONOR" not in page
    log = clients.api(ward.lab.tech).get(f"/api/v1/units/{bag.id}/labels").get_json()
    assert log[0]["marking"] == marking


def test_an_ineligible_donor_keeps_its_marking_and_a_later_recall_adds_its_number(
    lab: Any,
    ward: Ward,
) -> None:
    donation = lab.receive(lab.register())
    lab.full_panel(donation, results={"HIV1-AB": InfectiousResult.REACTIVE})
    lab.determine(donation, eligible=False, reason="HIV-1 antibody reactive at screening")
    container = chain.units_of_donation(db.session, donation.id)[0]
    assert container.status == UnitStatus.BLOCKED
    assert status_marking(db.session, container) == INELIGIBLE_DONOR
    assert printed_marking(container) == INELIGIBLE_DONOR
    opened = open_recall(ward, RecallTarget.DONATION, donation.id)
    assert status_marking(db.session, container) == (
        f"RECALLED {opened.recall.number} — INELIGIBLE DONOR — DO NOT USE"
    )


def test_a_unit_blocked_for_no_recorded_recall_or_donor_reason_says_blocked(lab: Any) -> None:
    donation = lab.receive(lab.register())
    container = chain.units_of_donation(db.session, donation.id)[0]
    chain.change_status(
        db.session,
        container,
        UnitStatus.BLOCKED,
        actor=lab.qa,
        now=utcnow(),
        reason="container found open",
    )
    db.session.commit()
    assert status_marking(db.session, container) == BLOCKED == printed_marking(container)
