"""Labels that name a patient: the wristband (study ID and COI, never the arm) and the prepared
dose's label, printable only after the second check; both scan back to the right record."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from cellchain.core.payload import read_scan
from cellchain.core.types import utcnow
from cellchain.dosing import orders
from cellchain.extensions import db
from cellchain.labels import service
from cellchain.labels.content import NotLabellable
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import UTC
from tests.support.labels import SETTINGS

zxingcpp = pytest.importorskip("zxingcpp")


def _decode(png: bytes) -> str:
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return found.text


def test_a_wristband_carries_study_id_and_coi_and_scans_to_the_patient_page(
    clinic: Any, clients: Any
) -> None:
    patient = clinic.enrol(arm="CONTROL")
    printed = service.print_wristband(
        db.session,
        patient,
        output_format="png",
        copies=1,
        reason=None,
        settings=SETTINGS,
        actor=clinic.clinician,
        now=utcnow(),
    )
    db.session.commit()
    (record,) = printed.prints
    assert record.patient_id == patient.id and record.unit_id is None
    assert record.label_type == "wristband"
    payload = _decode(printed.data)
    assert read_scan(payload).canonical == patient.coi
    texts = service.wristband_for(patient, templates=SETTINGS.templates).content.texts
    assert "AS-001" in texts["patient_study_id"]
    assert all("CONTROL" not in text and "DMARDs" not in text for text in texts.values())
    web = clients.web(clinic.clinician)
    scanned = web.get("/scan", query_string={"code": payload})
    assert scanned.status_code == 302
    assert scanned.headers["Location"].endswith(f"/patients/{patient.id}")
    with pytest.raises(Exception, match="reprint needs a reason"):
        service.print_wristband(
            db.session,
            patient,
            output_format="zpl",
            copies=1,
            reason=None,
            settings=SETTINGS,
            actor=clinic.clinician,
            now=utcnow(),
        )


def test_the_dose_label_names_patient_coi_and_visit_only_after_the_second_check(
    clinic: Any, released: Any, make_user: Any
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    order = orders.order_dose(
        db.session, patient, "D0", actor=clinic.lab.tech, now=utcnow(), zone=UTC
    )
    db.session.commit()
    orders.second_check(
        db.session,
        order,
        checker=make_user("sam", "technician"),
        password=TEST_PASSWORD,
        volume_ml=order.volume_ml,
        bag_codes=[b.unit.code for b in order.bags],
        now=utcnow(),
    )
    db.session.commit()
    dose_unit = order.dose_unit
    printed = service.print_labels(
        db.session,
        [dose_unit],
        output_format="png",
        copies=1,
        reason=None,
        settings=SETTINGS,
        actor=clinic.lab.tech,
        now=utcnow(),
        name="dose",
    )
    db.session.commit()
    assert read_scan(_decode(printed.data)).canonical == dose_unit.code
    label = service.label_for(
        db.session, dose_unit, templates=SETTINGS.templates, zone=UTC, isbt=SETTINGS.isbt
    )
    texts = label.content.texts
    assert texts["patient_study_id"] == "Patient AS-001"
    assert texts["coi"].startswith("COI CH X9999") and texts["coi"].endswith("]")
    assert texts["visit"].startswith("D0 · planned")
    assert texts["volume"] == "Draw 15.1 mL from 1 bag(s)"
    assert label.lot is not None and texts["lot"] == f"Lot {label.lot.lot_number}"


def test_a_dose_not_yet_second_checked_has_no_label(clinic: Any, released: Any) -> None:
    from cellchain.chain import service as chain
    from cellchain.chain.models import LineageOperation, UnitKind, UnitStatus

    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    order = orders.order_dose(
        db.session, patient, "D0", actor=clinic.lab.tech, now=utcnow(), zone=UTC
    )
    (stray,) = chain.derive_units(
        db.session,
        parents=[order.bags[0].unit],
        kind=UnitKind.PREPARED_DOSE,
        operation=LineageOperation.PREPARE_DOSE,
        count=1,
        location="bench",
        actor=clinic.lab.tech,
        now=utcnow(),
        status=UnitStatus.ALLOCATED,
    )
    with pytest.raises(NotLabellable, match="after its independent second check"):
        service.label_for(
            db.session, stray, templates=SETTINGS.templates, zone=UTC, isbt=SETTINGS.isbt
        )
