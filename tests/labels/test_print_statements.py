"""Printing a lot's labels costs a fixed number of SQL statements, whatever the number of bags
(issue 20).

The records every label prints (cell records, QC samples, lots, donations, product
definitions, recalls naming blocked bags) are read for the whole batch at once, the print log
rows are inserted in one statement and their audit entries appended together. So a lot of 3
bags and a lot of 12 send the same statements, in every format, through the service and over
HTTP; a change that reads or writes once per label fails here. Counts, not times. The batch
still logs and audits every label, in the order of the bags.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from cellchain.core.audit import AuditEntry
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import User
from cellchain.core.payload import encode_payload, read_scan
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.labels import service
from cellchain.labels.models import LabelPrint
from cellchain.manufacturing.processing import processing
from tests.support.labels import SETTINGS
from tests.support.statements import counting_statements

zxingcpp = pytest.importorskip("zxingcpp")

#: a lot's print, committed, as a request makes it with the lot and the user in hand: the
#: lot's bags; their cell records, QC samples, lots, donations and product definitions; the
#: labels printed before; the print log INSERT; the audit chain (head, entries, head); at the
#: commit, the record trail (the rows, the head, its entry, the head, the rows' audit_seq)
PRINT_STATEMENTS = 16


def _lot(bench: Any, bags: int) -> Any:
    donation = bench.lab.eligible_donation()
    step = bench.isolate(donation, vessels=2)
    step = bench.passage(bench.outputs(step), harvested=3.0e7, seed=[5.0e6] * 4, fmt="CS5")
    return bench.fill(bench.outputs(step), harvested=1.1e9, bags=bags, volume_ml=10.0)


def _print_lot(lot_id: int, actor_id: int, fmt: str) -> tuple[list[str], service.PrintedFile]:
    """The statements one print of the lot sends, from a fresh session with the lot and the
    user loaded (as a request has them), through the commit."""
    db.session.remove()
    lot = processing.get_lot(db.session, lot_id)
    actor = db.session.get(User, actor_id)
    assert actor is not None
    with counting_statements() as statements:
        printed = service.print_lot_labels(
            db.session,
            lot,
            output_format=fmt,
            copies=1,
            reason="reprint for the count",  # a reprint when the lot was printed before
            settings=SETTINGS,
            actor=actor,
            now=utcnow(),
        )
        db.session.commit()
    return statements, printed


@pytest.mark.parametrize("fmt", ["png", "pdf", "zpl"])
def test_a_lot_of_3_bags_and_one_of_12_print_with_the_same_statements(bench: Any, fmt: str) -> None:
    small, big, tech = _lot(bench, 3).id, _lot(bench, 12).id, bench.lab.tech.id

    small_statements, small_print = _print_lot(small, tech, fmt)
    big_statements, big_print = _print_lot(big, tech, fmt)
    # again: now a reprint of every bag
    again_statements, _ = _print_lot(big, tech, fmt)

    assert len(small_print.prints) == 3 and len(big_print.prints) == 12
    assert len(small_statements) == len(big_statements), "\n\n".join(big_statements)
    assert len(again_statements) == len(big_statements), "\n\n".join(again_statements)
    assert len(big_statements) <= PRINT_STATEMENTS, "\n\n".join(big_statements)


def test_the_statements_of_a_lot_print_over_http_do_not_grow_with_its_bags(
    bench: Any, clients: Any
) -> None:
    small, big = _lot(bench, 3).id, _lot(bench, 12).id
    api = clients.api(bench.lab.tech)
    api.get(f"/api/v1/lots/{small}/labels")  # records the token's first use

    def statements(lot_id: int) -> list[str]:
        db.session.remove()
        with counting_statements() as sent:
            response = api.post(f"/api/v1/lots/{lot_id}/labels", json={"format": "png"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return sent

    small_statements = statements(small)
    big_statements = statements(big)
    assert len(small_statements) == len(big_statements), "\n\n".join(big_statements)


def test_a_lot_printed_in_one_batch_logs_and_audits_every_bag_in_order(
    bench: Any, clients: Any
) -> None:
    lot = _lot(bench, 12)
    bags = processing.bags_of(db.session, lot)
    response = clients.api(bench.lab.tech).post(
        f"/api/v1/lots/{lot.id}/labels", json={"format": "png"}
    )
    assert response.status_code == 200 and response.mimetype == "application/zip"

    ids = [int(text) for text in response.headers["X-Label-Print-Ids"].split(",")]
    rows = {
        row.id: row
        for row in db.session.execute(
            select(LabelPrint).where(LabelPrint.lot_id == lot.id)
        ).scalars()
    }
    assert sorted(rows) == sorted(ids)
    assert [rows[print_id].unit_id for print_id in ids] == [bag.id for bag in bags]
    for bag, print_id in zip(bags, ids, strict=True):
        row = rows[print_id]
        assert row.payload == encode_payload(parse_identifier(bag.code))
        assert row.output_format == "png" and row.copies == 1 and row.reason is None
        assert row.quarantine and row.unit_status == "quarantine"
        assert row.printed_by_id == bench.lab.tech.id and row.audit_seq is not None
    audited = db.session.execute(
        select(AuditEntry.entity_id, AuditEntry.action)
        .where(AuditEntry.entity_type == "label_print")
        .order_by(AuditEntry.seq)
    ).all()
    assert audited == [(str(print_id), "label.printed") for print_id in ids]

    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = archive.namelist()
        assert names == [f"{bag.code}.png" for bag in bags]
        for bag, name in zip(bags, names, strict=True):
            image = Image.open(io.BytesIO(archive.read(name)))
            assert image.mode == "1" and round(image.info["dpi"][0]) == 300
            (decoded,) = zxingcpp.read_barcodes(image)
            assert read_scan(decoded.text).canonical == bag.code
