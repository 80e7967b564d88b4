"""The technician's "bags needing a label printed" (issue 21): the bags of every lot never
labelled since the fill, or released under a label that still says quarantine; the same
bags ``service.reconciliation`` lists lot by lot, counted in one statement."""

from __future__ import annotations

import re
from typing import Any

from cellchain.chain import service as chain
from cellchain.chain.models import UnitStatus
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.labels import outstanding, service
from tests.support.labels import SETTINGS, print_units, release


def listed(desk: Any) -> dict[str, bool]:
    """The bags to print, by code: True for a quarantine label to replace."""
    rows = outstanding.labels_to_print(db.session)
    assert outstanding.count_labels_to_print(db.session) == len(rows)
    return {row.unit.code: row.replace for row in rows}


def replace_quarantine_labels(desk: Any) -> None:
    """What the lot's page offers after release: reprint the bags still labelled quarantine."""
    service.print_lot_labels(
        db.session,
        desk.lot,
        output_format="pdf",
        copies=1,
        reason=None,
        settings=SETTINGS,
        actor=desk.lab.tech,
        now=utcnow(),
        only_to_replace=True,
    )
    db.session.commit()


def reconciled(desk: Any) -> dict[str, bool]:
    """What the lot's reconciliation lists, in the same shape."""
    lot = service.reconciliation(db.session, desk.lot)
    return {
        **{unit.code: False for unit in lot.never_printed},
        **{unit.code: True for unit in lot.quarantine_labels_to_replace},
    }


def test_bags_never_labelled_then_released_under_a_quarantine_label_are_to_print(
    desk: Any, bags: list[Any]
) -> None:
    in_lab = [bag for bag in bags if bag.status == UnitStatus.QUARANTINE]
    assert listed(desk) == {bag.code: False for bag in in_lab} == reconciled(desk)
    print_units(in_lab[:3], desk.lab.tech)
    assert listed(desk) == {bag.code: False for bag in in_lab[3:]} == reconciled(desk)
    print_units(in_lab[3:], desk.lab.tech)
    assert listed(desk) == {} == reconciled(desk)

    release(desk)
    available = [bag for bag in bags if bag.status == UnitStatus.AVAILABLE]
    assert available and listed(desk) == {bag.code: True for bag in available} == reconciled(desk)
    replace_quarantine_labels(desk)
    assert listed(desk) == {} == reconciled(desk)


def test_the_page_and_the_queue_line_show_them(desk: Any, bags: list[Any], clients: Any) -> None:
    tech = clients.web(desk.lab.tech)
    count = len([bag for bag in bags if bag.status == UnitStatus.QUARANTINE])
    home = tech.get("/").get_data(as_text=True)
    line = re.search(
        r'data-queue="labels_to_print"[^>]*><span class="worklist-count">(\d+)</span> · '
        r'<a href="([^"]+)"',
        home,
    )
    assert line and int(line[1]) == count and line[2] == "/labels/outstanding#to-print"
    page = tech.get("/labels/outstanding").get_data(as_text=True)
    assert page.count("<tr data-unit=") == count
    assert f'href="/lots/{desk.lot.id}/labels"' in page and "Never labelled" in page


def test_a_bag_whose_status_changed_under_its_label_is_to_print_as_label_control_says(
    desk: Any, bags: list[Any]
) -> None:
    """Label control (``service.label_problems``) and the queue agree: a released bag recalled
    or blocked, or quarantined again, under its released label; a blocked bag never labelled
    (in the lot's reconciliation too); a gone bag never."""
    in_lab = [bag for bag in bags if bag.status == UnitStatus.QUARANTINE]
    print_units(in_lab, desk.lab.tech)
    release(desk)
    replace_quarantine_labels(desk)
    assert listed(desk) == {}
    blocked, held = in_lab[0], in_lab[1]
    chain.change_status(
        db.session, blocked, UnitStatus.BLOCKED, actor=desk.lab.qa, now=utcnow(), reason="recall"
    )
    chain.change_status(
        db.session, held, UnitStatus.QUARANTINE, actor=desk.lab.qa, now=utcnow(), reason="hold"
    )
    db.session.commit()
    assert len(service.label_problems(db.session, [blocked, held])) == 2
    assert listed(desk) == {blocked.code: True, held.code: True}
    rows = {row.unit.code: row for row in outstanding.labels_to_print(db.session)}
    assert rows[held.code].printed_as == UnitStatus.AVAILABLE.value


def test_a_blocked_bag_never_labelled_is_to_print_as_its_lot_reconciles_it(
    desk: Any, bags: list[Any]
) -> None:
    bag = next(bag for bag in bags if bag.status == UnitStatus.QUARANTINE)
    chain.change_status(
        db.session, bag, UnitStatus.BLOCKED, actor=desk.lab.qa, now=utcnow(), reason="lookback"
    )
    db.session.commit()
    assert bag.code in {
        unit.code for unit in service.reconciliation(db.session, desk.lot).never_printed
    }
    assert listed(desk)[bag.code] is False
