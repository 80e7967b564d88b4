"""Printing labels from the records, the print log, reprints, and the lot's reconciliation."""

from __future__ import annotations

import io
import zipfile
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cellchain.chain.models import UnitStatus
from cellchain.core.audit import AuditEntry
from cellchain.core.payload import read_scan
from cellchain.core.types import utcnow
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.labels import service
from cellchain.labels.content import CAUTION, QUARANTINE, IsbtSettings, NotLabellable, label_for
from cellchain.labels.isbt128 import parse_compound_message
from cellchain.labels.models import LabelEvent, LabelPrint
from cellchain.labels.templates import load_templates
from tests.support.labels import SETTINGS, print_units, release

zxingcpp = pytest.importorskip("zxingcpp")


def _label(unit: Any, settings: Any = SETTINGS) -> Any:
    return label_for(
        db.session, unit, templates=settings.templates, zone=settings.zone, isbt=settings.isbt
    )


def test_a_quarantined_bag_label_prints_everything_21_cfr_1271_370_asks_for(
    desk: Any, bags: list[Any]
) -> None:
    texts = _label(bags[0]).content.texts
    assert texts["identifier"].endswith("]")  # check character in a box
    assert texts["product"].startswith("UC-MSC v1 — ")
    assert texts["lot"] == f"Lot {desk.lot.lot_number}"
    # the fill's count is TOTAL cells, and the label says so (DOMAIN.md §7)
    assert texts["cells"] == "1.00 × 10⁸ total cells, 93 % viable at fill"
    assert texts["volume"] == "20 mL"
    assert texts["concentration"] == "5.00 × 10⁶ total cells/mL"
    assert texts["expiry"] == f"EXP {desk.lot.expires_at:%Y-%m-%d %H:%M} +00:00"
    assert texts["storage"] == "Store at ≤ −135 °C (liquid nitrogen vapour phase)"
    assert texts["caution"] == CAUTION
    assert texts["status"] == QUARANTINE
    assert texts["eligibility"] == ""  # eligible donor: no warning


def test_after_release_the_label_no_longer_says_quarantine(desk: Any, bags: list[Any]) -> None:
    release(desk)
    available = next(bag for bag in bags if bag.status == UnitStatus.AVAILABLE)
    label = _label(available)
    assert label.content.texts["status"] == "" and not label.quarantine


def test_a_pending_donor_eligibility_is_warned_on_the_donation_container(lab: Any) -> None:
    donation = lab.receive(lab.register())
    texts = _label(donation.units[0]).content.texts
    assert "eligibility determination not complete" in texts["eligibility"]
    assert texts["status"] == QUARANTINE
    assert texts["collected"].startswith("Collected ")


def test_a_unit_used_up_cannot_be_labelled(desk: Any) -> None:
    (tube,) = desk.sample()
    consumed = tube.taken_from
    assert consumed.status == UnitStatus.CONSUMED
    with pytest.raises(NotLabellable, match="consumed"):
        _label(consumed)
    assert _label(tube.unit).content.texts["test"].startswith("QC sample")


def test_printing_logs_who_what_when_which_template_and_audits_it(
    desk: Any, bags: list[Any]
) -> None:
    printed = print_units(bags[:2], desk.lab.tech, copies=3)
    assert printed.media_type == "application/pdf" and printed.data.startswith(b"%PDF")
    template = load_templates()["cryobag"]
    for record in printed.prints:
        assert record.label_type == "cryobag"
        assert record.template_version == template.version
        assert record.template_hash == template.content_hash
        assert record.copies == 3 and record.outstanding == 3
        assert record.quarantine and record.reason is None
        assert record.printed_by.username == desk.lab.tech.username
        assert read_scan(record.payload).canonical == record.unit.code
        assert record.lot_id == desk.lot.id
    actions = db.session.execute(
        select(AuditEntry.action).where(AuditEntry.entity_type == "label_print")
    ).scalars()
    assert list(actions) == ["label.printed", "label.printed"]


def test_a_reprint_needs_a_reason_and_records_it(desk: Any, bags: list[Any]) -> None:
    print_units(bags[:1], desk.lab.tech)
    with pytest.raises(InvalidInput, match="reprint needs a reason") as refused:
        print_units(bags[:2], desk.lab.tech)
    assert "reason" in refused.value.errors
    db.session.rollback()
    assert db.session.execute(select(LabelPrint)).scalars().all()[-1].unit_id == bags[0].id
    printed = print_units(bags[:2], desk.lab.tech, reason="label smudged")
    first, second = printed.prints
    assert first.reason == "label smudged" and first.reprint
    assert second.reason is None  # its first label


@pytest.mark.parametrize(
    ("fmt", "copies", "message"),
    [("tiff", 1, "PNG, PDF or ZPL"), ("pdf", 0, "1 to 50"), ("zpl", 51, "1 to 50")],
)
def test_bad_format_or_copies_are_refused_and_nothing_is_logged(
    desk: Any, bags: list[Any], fmt: str, copies: int, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        print_units(bags[:1], desk.lab.tech, fmt=fmt, copies=copies)
    db.session.rollback()
    assert db.session.execute(select(LabelPrint)).first() is None


def test_png_of_a_lot_is_a_zip_of_one_decodable_label_per_bag(desk: Any, bags: list[Any]) -> None:
    printed = service.print_lot_labels(
        db.session,
        desk.lot,
        output_format="png",
        copies=1,
        reason=None,
        settings=SETTINGS,
        actor=desk.lab.tech,
        now=utcnow(),
    )
    assert printed.media_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(printed.data)) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"{bag.code}.png" for bag in bags)
        image = Image.open(io.BytesIO(archive.read(names[0])))
    (decoded,) = zxingcpp.read_barcodes(image)
    assert read_scan(decoded.text).canonical == names[0].removesuffix(".png")


def test_zpl_of_a_lot_repeats_each_label_per_copy(desk: Any, bags: list[Any]) -> None:
    printed = print_units(bags[:2], desk.lab.tech, fmt="zpl", copies=2)
    zpl = printed.data.decode("ascii")
    assert zpl.count("^XA") == 4
    for bag in bags[:2]:
        assert zpl.count(f"^FDMA,CC1.{bag.code}^FS") == 2


def test_reconciliation_counts_issued_applied_destroyed_and_what_is_unaccounted(
    desk: Any, bags: list[Any]
) -> None:
    (first,) = print_units(bags[:1], desk.lab.tech, copies=2).prints
    service.record_applied(db.session, desk.lot, first.payload, actor=desk.lab.tech, now=utcnow())
    db.session.commit()
    service.destroy_labels(db.session, first, 1, "smudged", actor=desk.lab.tech, now=utcnow())
    db.session.commit()
    summary = service.reconciliation(db.session, desk.lot)
    assert (summary.issued, summary.applied, summary.destroyed, summary.outstanding) == (2, 1, 1, 0)
    assert len(summary.never_printed) == len(bags) - 1
    kinds = [
        event.kind
        for event in db.session.execute(select(LabelEvent).order_by(LabelEvent.id)).scalars()
    ]
    assert kinds == ["applied", "destroyed"]
    with pytest.raises(InvalidInput, match="already applied or destroyed"):
        service.record_applied(
            db.session, desk.lot, first.payload, actor=desk.lab.tech, now=utcnow()
        )


def test_applying_a_label_of_another_lot_or_destroying_too_many_is_refused(
    desk: Any, bags: list[Any], lab: Any
) -> None:
    (record,) = print_units(bags[:1], desk.lab.tech, copies=1).prints
    container = lab.eligible_donation().units[0]
    with pytest.raises(InvalidInput, match="not a unit of lot"):
        service.record_applied(db.session, desk.lot, container.code, actor=lab.tech, now=utcnow())
    with pytest.raises(InvalidInput, match="Only 1 label"):
        service.destroy_labels(db.session, record, 2, "spoiled", actor=lab.tech, now=utcnow())
    with pytest.raises(InvalidInput, match="reason is required"):
        service.destroy_labels(db.session, record, 1, "  ", actor=lab.tech, now=utcnow())


def test_the_database_never_counts_more_labels_than_were_printed(
    desk: Any, bags: list[Any]
) -> None:
    (record,) = print_units(bags[:1], desk.lab.tech, copies=1).prints
    record.applied, record.destroyed = 1, 1
    with pytest.raises(IntegrityError, match=r"(?i)check"):
        db.session.commit()
    db.session.rollback()


def test_quarantine_labels_are_listed_for_reprint_after_release_and_replaced(
    desk: Any, bags: list[Any]
) -> None:
    print_units(bags, desk.lab.tech)
    assert service.reconciliation(db.session, desk.lot).quarantine_labels_to_replace == []
    release(desk)
    to_replace = service.reconciliation(db.session, desk.lot).quarantine_labels_to_replace
    available = [bag for bag in bags if bag.status == UnitStatus.AVAILABLE]
    assert to_replace == available and available
    printed = service.print_lot_labels(
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
    assert {record.unit_id for record in printed.prints} == {bag.id for bag in available}
    assert all(
        not record.quarantine and record.reason == service.RELEASE_REPRINT_REASON
        for record in printed.prints
    )
    assert service.reconciliation(db.session, desk.lot).quarantine_labels_to_replace == []


def test_isbt_mode_adds_a_data_matrix_whose_din_check_matches(desk: Any, bags: list[Any]) -> None:
    settings = service.LabelSettings(
        templates=SETTINGS.templates,
        zone=ZoneInfo("Europe/Berlin"),
        isbt=IsbtSettings({"UC-MSC": "S1234V00"}),
    )
    label = _label(bags[0], settings)
    assert label.isbt
    (record,) = print_units(bags[:1], desk.lab.tech, fmt="png", settings=settings).prints
    assert record.isbt
    png = service.print_labels(
        db.session,
        bags[:1],
        output_format="png",
        copies=1,
        reason="check",
        settings=settings,
        actor=desk.lab.tech,
        now=utcnow(),
        name="x",
    ).data
    found = {r.format: r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))}
    message = parse_compound_message(found[zxingcpp.BarcodeFormat.DataMatrix])
    assert message.din == desk.lot.lot_number[:13] == bags[0].code[:13]
    assert message.product_code == "S1234V00"
    local = desk.lot.expires_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert message.expires_at == local.replace(tzinfo=None, second=0, microsecond=0)
    assert read_scan(found[zxingcpp.BarcodeFormat.QRCode]).canonical == bags[0].code


def test_without_configured_product_codes_there_is_no_data_matrix(bags: list[Any]) -> None:
    assert not _label(bags[0]).isbt


@pytest.mark.postgres_only
def test_two_people_scanning_the_one_printed_label_at_once_count_it_once(
    app: Any, desk: Any, bags: list[Any]
) -> None:
    from cellchain.errors import Conflict
    from cellchain.manufacturing.models import Lot
    from tests.conftest import at_once

    (record,) = print_units(bags[:1], desk.lab.tech, copies=1).prints
    lot_id, payload, tech_id, print_id = desk.lot.id, record.payload, desk.lab.tech.id, record.id

    def scanner() -> str:
        from cellchain.core.models import User

        try:
            service.record_applied(
                db.session,
                db.session.get(Lot, lot_id),
                payload,
                actor=db.session.get(User, tech_id),
                now=utcnow(),
            )
            db.session.commit()
            return "applied"
        except (Conflict, InvalidInput):
            db.session.rollback()
            return "refused"

    assert at_once(app, [scanner, scanner]) == ["applied", "refused"]
    db.session.expire_all()
    assert db.session.get(LabelPrint, print_id).applied == 1
    assert len(db.session.execute(select(LabelEvent)).scalars().all()) == 1
