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


def test_the_bags_to_print_page_is_paged_sorted_and_searched(
    desk: Any, bags: list[Any], clients: Any
) -> None:
    """A list that scales (issue 21): the bags to print a page at a time, by lot then bag,
    searched by unit code or lot number in the database."""
    tech = clients.web(desk.lab.tech)
    in_lab = sorted(bag.code for bag in bags if bag.status == UnitStatus.QUARANTINE)
    assert len(in_lab) >= 3

    first = tech.get("/labels/outstanding?page_size=2&sort=unit&direction=asc").get_data(
        as_text=True
    )
    second = tech.get("/labels/outstanding?page_size=2&sort=unit&direction=asc&page=2")
    shown = re.findall(r"<tr data-unit=\"\d+\"><td>([^<]+)</td>", first)
    assert shown == in_lab[:2]
    assert re.findall(r"<tr data-unit=\"\d+\"><td>([^<]+)</td>", second.get_data(as_text=True))[
        :1
    ] == [in_lab[2]]
    assert f'data-total="{len(in_lab)}"' in first

    found = tech.get(f"/labels/outstanding?q={in_lab[1]}").get_data(as_text=True)
    assert re.findall(r"<tr data-unit=\"\d+\"><td>([^<]+)</td>", found) == [in_lab[1]]
    by_lot = tech.get(f"/labels/outstanding?q={desk.lot.lot_number}").get_data(as_text=True)
    assert by_lot.count("<tr data-unit=") == len(in_lab)
    nothing = tech.get("/labels/outstanding?q=NO-SUCH-BAG").get_data(as_text=True)
    assert "No bag to label matches this search." in nothing


def test_the_labels_to_apply_beyond_the_first_are_in_the_print_log(
    desk: Any, bags: list[Any], clients: Any, monkeypatch: Any
) -> None:
    """The page shows the oldest labels to apply and links the rest: the print log filtered
    to the unit labels with copies unaccounted for lists exactly those the queue counts."""
    in_lab = [bag for bag in bags if bag.status == UnitStatus.QUARANTINE]
    print_units(in_lab[:3], desk.lab.tech)
    monkeypatch.setattr(outstanding, "LABELS_TO_APPLY_SHOWN", 2)
    tech = clients.web(desk.lab.tech)

    page = tech.get("/labels/outstanding").get_data(as_text=True)
    total = outstanding.count_outstanding_prints(db.session)
    assert total >= 3 and page.count("<tr data-print=") == 2
    link = re.search(r'<p id="all-to-apply"><a href="([^"]+)"', page)
    assert link and "open=yes" in link[1]
    log = clients.api(desk.lab.tech).get(link[1].replace("/labels/prints", "/api/v1/label-prints"))
    listed = {row["id"] for row in log.get_json()}
    assert listed == {p.id for p in outstanding.outstanding_prints(db.session)}
    assert len(listed) == total
