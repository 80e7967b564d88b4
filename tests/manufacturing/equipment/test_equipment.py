"""Equipment calibration and maintenance (issue 22): records, due dates, certificates in the
database, and the refusal of equipment not in date at the time of use on every path."""

from __future__ import annotations

import datetime as dt
import io
import json
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.equipment import service as equipment
from cellchain.manufacturing.models import (
    EquipmentCertificate,
    EquipmentEventKind,
    EquipmentKind,
    StoragePosition,
    TankReading,
)
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.storage import storage
from cellchain.quality.models import QcResult
from cellchain.worklists import service as worklists
from tests.support.equipment import calibrate, register_in_date

PDF = b"%PDF-1.4\n% certificate\n%%EOF\n"


def _register(bench: Any, code: str, kind: EquipmentKind = EquipmentKind.CENTRIFUGE, **kw: Any):
    item = equipment.register_equipment(
        db.session,
        equipment.EquipmentInput(
            code=code, kind=kind, name=f"{code} (test)", calibration_interval_days=365, **kw
        ),
        actor=bench.lab.qa,
        now=utcnow(),
    )
    db.session.commit()
    return item


def _overdue(bench: Any, code: str, kind: EquipmentKind = EquipmentKind.CENTRIFUGE):
    """Calibrated 400 days ago on a 365-day interval: due 35 days ago."""
    item = _register(bench, code, kind)
    calibrate(db.session, item, actor=bench.lab.tech, now=utcnow(), days_ago=400)
    db.session.commit()
    return item


def _due_text(item: Any) -> str:
    return (utcnow().date() - dt.timedelta(days=35)).isoformat()


# --- registration, intervals, events -----------------------------------------------------------


def test_registration_needs_an_interval_or_a_reason(bench: Any) -> None:
    with pytest.raises(InvalidInput, match="calibration interval"):
        equipment.register_equipment(
            db.session,
            equipment.EquipmentInput(code="X-1", kind=EquipmentKind.CENTRIFUGE, name="X"),
            actor=bench.lab.qa,
            now=utcnow(),
        )
    db.session.rollback()
    exempt = equipment.register_equipment(
        db.session,
        equipment.EquipmentInput(
            code="X-2",
            kind=EquipmentKind.CENTRIFUGE,
            name="X",
            calibration_exempt_reason="No measuring function",
        ),
        actor=bench.lab.qa,
        now=utcnow(),
    )
    assert equipment.due_state(exempt, utcnow().date()) == equipment.DueState.IN_DATE
    equipment.require_in_date(db.session, [exempt], on=utcnow().date())  # usable, never calibrated
    with pytest.raises(Conflict, match="not subject to calibration"):
        calibrate(db.session, exempt, actor=bench.lab.tech, now=utcnow())


def test_an_interval_change_is_audited_with_its_reason_and_moves_the_due_date(bench: Any) -> None:
    item = register_in_date(
        db.session,
        code="CF-9",
        kind=EquipmentKind.CENTRIFUGE,
        name="CF",
        actor=bench.lab.qa,
        now=utcnow(),
    )
    before = item.calibration_due_on
    with pytest.raises(InvalidInput):
        equipment.change_intervals(
            db.session,
            item,
            equipment.Intervals(90, None, None),
            reason=" ",
            actor=bench.lab.qa,
            now=utcnow(),
        )
    equipment.change_intervals(
        db.session,
        item,
        equipment.Intervals(90, None, 30),
        reason="Vendor advice",
        actor=bench.lab.qa,
        now=utcnow(),
    )
    db.session.commit()
    assert item.calibration_due_on == before - dt.timedelta(days=365 - 90)
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "equipment.intervals_changed")
    ).scalar_one()
    assert entry.reason == "Vendor advice"
    assert json.loads(entry.changes)["calibration_interval_days"] == [365, 90]


def test_a_certificate_is_kept_in_the_database_and_checked_by_its_content(bench: Any) -> None:
    item = _register(bench, "CF-10")
    for content, problem in (
        (b"", "empty"),
        (b"MZ\x90\x00 not a pdf", "PDF, PNG or JPEG"),
        (b"%PDF-" + b"0" * equipment.MAX_CERTIFICATE_BYTES, "larger than"),
    ):
        with pytest.raises(InvalidInput) as refused:
            equipment.record_event(
                db.session,
                item,
                equipment.EventInput(
                    EquipmentEventKind.CALIBRATION,
                    utcnow().date(),
                    "Cal Ltd",
                    True,
                    certificate=equipment.CertificateFile("c.pdf", content),
                ),
                actor=bench.lab.tech,
                now=utcnow(),
                today=utcnow().date(),
            )
        assert problem.lower() in " ".join(refused.value.errors["certificate"]).lower()
        db.session.rollback()
    event = equipment.record_event(
        db.session,
        item,
        equipment.EventInput(
            EquipmentEventKind.CALIBRATION,
            utcnow().date(),
            "Cal Ltd",
            True,
            "C-1",
            certificate=equipment.CertificateFile("../../etc/cert.pdf", PDF),
        ),
        actor=bench.lab.tech,
        now=utcnow(),
        today=utcnow().date(),
    )
    db.session.commit()
    stored = db.session.get(EquipmentCertificate, event.id)
    assert stored.content == PDF and stored.media_type == "application/pdf"
    assert stored.file_name == "cert.pdf"
    assert item.calibration_due_on == utcnow().date() + dt.timedelta(days=365)


def test_a_failed_calibration_or_none_makes_it_unusable(bench: Any) -> None:
    today = utcnow().date()
    never = _register(bench, "CF-11")
    with pytest.raises(Conflict, match=r"CF-11.*had not been calibrated"):
        equipment.require_in_date(db.session, [never], on=today)
    assert equipment.due_state(never, today) == equipment.DueState.NOT_CALIBRATED
    calibrate(db.session, never, actor=bench.lab.tech, now=utcnow(), days_ago=10)
    calibrate(db.session, never, actor=bench.lab.tech, now=utcnow(), passed=False)
    with pytest.raises(Conflict, match="failed its last calibration"):
        equipment.require_in_date(db.session, [never], on=today)
    # before the failure, it was in date
    equipment.require_in_date(db.session, [never], on=today - dt.timedelta(days=5))


def test_maintenance_due_from_registration_then_from_the_last_one(bench: Any) -> None:
    item = _register(bench, "CF-12", maintenance_interval_days=30)
    calibrate(db.session, item, actor=bench.lab.tech, now=utcnow(), days_ago=1)
    today = utcnow().date()
    assert item.maintenance_due_on == today + dt.timedelta(days=30)
    with pytest.raises(Conflict, match="due for maintenance on"):
        equipment.require_in_date(db.session, [item], on=today + dt.timedelta(days=31))


# --- the refusal at the time of use ------------------------------------------------------------


def _steps(donation: Any) -> int:
    return len(processing.steps_of_donation(db.session, donation.id))


def test_a_step_with_overdue_equipment_is_refused_and_nothing_saved(bench: Any) -> None:
    late = _overdue(bench, "CF-20")
    donation = bench.lab.eligible_donation()
    with pytest.raises(Conflict) as refused:
        processing.isolate(
            db.session,
            donation,
            tissue=donation.units[:1],
            method="enzymatic",
            vessels=[processing.Vessel("T175", 1e6)],
            context=bench.context(equipment_ids=(bench.equipment["BSC-01"].id, late.id)),
            actor=bench.lab.tech,
            now=utcnow(),
        )
    db.session.rollback()
    assert "CF-20" in refused.value.detail and _due_text(late) in refused.value.detail
    assert _steps(donation) == 0


def test_the_time_of_use_counts_not_now(bench: Any) -> None:
    """What a step checks (``usable_equipment`` on the step's performed day): a step dated 40
    days ago, when the equipment was in date, passes; dated today, refused."""
    from cellchain.manufacturing.processing import resources

    late = _overdue(bench, "CF-21")
    today = utcnow().date()
    assert resources.usable_equipment(db.session, [late.id], on=today - dt.timedelta(days=40))
    with pytest.raises(Conflict, match="CF-21"):
        resources.usable_equipment(db.session, [late.id], on=today)


def test_the_api_and_the_page_refuse_a_step_with_overdue_equipment(bench: Any, clients) -> None:
    late = _overdue(bench, "CF-22")
    donation = bench.lab.eligible_donation()
    body = bench.isolation_body(donation, equipment=[late.id])
    answer = clients.api(bench.lab.tech).post("/api/v1/steps/isolation", json=body)
    assert answer.status_code == 409, answer.get_json()
    assert "CF-22" in answer.get_json()["detail"] and _due_text(late) in answer.get_json()["detail"]
    page = clients.web(bench.lab.tech).post(
        "/steps/isolation",
        data={
            **{k: v for k, v in body.items() if k not in ("tissue", "materials", "equipment")},
            "tissue": donation.units[0].code,
            "materials": bench.materials["medium"].id,
            "equipment": late.id,
        },
    )
    assert page.status_code == 409 and "CF-22" in page.get_data(as_text=True)
    assert _steps(donation) == 0


def test_a_storage_placement_in_an_overdue_tank_is_refused(bench: Any) -> None:
    from tests.support.storage import make_lot

    tank = _overdue(bench, "LN2-09", EquipmentKind.LN2_TANK)
    _lot, bags = make_lot(bench, bags=1)
    with pytest.raises(Conflict, match="LN2-09") as refused:
        storage.store_unit(
            db.session,
            bags[0],
            tank=tank,
            rack="1",
            box="1",
            slot="1",
            actor=bench.lab.tech,
            now=utcnow(),
            zone=UTC,
        )
    db.session.rollback()
    assert _due_text(tank) in refused.value.detail
    assert (
        db.session.execute(
            select(func.count())
            .select_from(StoragePosition)
            .where(StoragePosition.tank_id == tank.id)
        ).scalar_one()
        == 0
    )


def test_a_qc_result_on_an_overdue_instrument_is_refused_and_an_in_date_one_linked(
    desk: Any,
) -> None:
    late = _overdue(desk.bench, "CNT-09", EquipmentKind.CELL_COUNTER)
    with pytest.raises(Conflict, match="CNT-09") as refused:
        desk.record(desk.entry("VIABILITY", instrument="cnt-09"))
    db.session.rollback()
    assert _due_text(late) in refused.value.detail
    assert "VIABILITY.instrument" in refused.value.errors
    assert db.session.execute(select(func.count()).select_from(QcResult)).scalar_one() == 0
    good = register_in_date(
        db.session,
        code="CNT-10",
        kind=EquipmentKind.CELL_COUNTER,
        name="Counter",
        actor=desk.lab.qa,
        now=utcnow(),
    )
    (result,) = desk.record(desk.entry("VIABILITY", instrument="CNT-10"))
    assert result.equipment_id == good.id
    (free,) = desk.record(desk.entry("CD73"))  # FLOW-01: not registered, free text
    assert free.equipment_id is None


# --- queue, pages and API -----------------------------------------------------------------------


def test_the_technician_queue_counts_equipment_due(bench: Any) -> None:
    today = utcnow().date()
    moment = worklists.Moment(now=utcnow(), today=today, zone=UTC)
    before = equipment.count_equipment_due(db.session, today=today)
    _overdue(bench, "CF-30")
    soon = _register(bench, "CF-31")
    calibrate(db.session, soon, actor=bench.lab.tech, now=utcnow(), days_ago=360)
    db.session.commit()
    assert equipment.count_equipment_due(db.session, today=today) == before + 2
    from cellchain.core.roles import Role

    (queue,) = worklists.worklists(db.session, frozenset({Role.TECHNICIAN}), at=moment)
    line = next(item for item in queue.items if item.key == "equipment_due")
    assert line.count == before + 2 and line.endpoint == "equipment.equipment_list"


def test_pages_list_show_and_record(bench: Any, clients) -> None:
    late = _overdue(bench, "CF-40")
    tech, qa = clients.web(bench.lab.tech), clients.web(bench.lab.qa)
    listing = tech.get("/equipment?due=1").get_data(as_text=True)
    assert "CF-40" in listing and 'data-state="overdue"' in listing
    assert "BSC-01" not in listing  # in date
    assert "equipment-form" not in listing  # registering is QA's
    assert tech.post("/equipment", data={"code": "N-1"}).status_code == 403
    registered = qa.post(
        "/equipment",
        data={
            "code": "inc-09",
            "kind": "incubator",
            "name": "Spare",
            "calibration_interval_days": "180",
        },
    )
    assert registered.status_code == 302
    refused = qa.post("/equipment", data={"code": "inc-10", "kind": "incubator", "name": "S"})
    assert refused.status_code == 422 and 'value="inc-10"' in refused.get_data(as_text=True)
    recorded = tech.post(
        f"/equipment/{late.id}/events",
        data={
            "kind": "calibration",
            "performed_on": utcnow().date().isoformat(),
            "performed_by": "Cal Ltd",
            "result": "pass",
            "certificate_ref": "C-40",
            "certificate": (io.BytesIO(PDF), "cal.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert recorded.status_code == 302, recorded.get_data(as_text=True)
    page = tech.get(f"/equipment/{late.id}").get_data(as_text=True)
    assert "C-40" in page and 'data-state="in_date"' in page
    event_id = equipment.history(db.session, late)[0].id
    download = tech.get(f"/equipment/{late.id}/events/{event_id}/certificate")
    assert download.status_code == 200 and download.data == PDF
    bad = tech.post(
        f"/equipment/{late.id}/events",
        data={
            "kind": "calibration",
            "performed_on": utcnow().date().isoformat(),
            "performed_by": "Cal Ltd",
            "result": "pass",
            "certificate": (io.BytesIO(b"GIF89a"), "cal.gif"),
        },
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422 and "PDF, PNG or JPEG" in bad.get_data(as_text=True)


def test_the_api(bench: Any, clients) -> None:
    qa, tech = clients.api(bench.lab.qa), clients.api(bench.lab.tech)
    made = qa.post(
        "/api/v1/equipment",
        json={
            "code": "cf-50",
            "kind": "centrifuge",
            "name": "CF",
            "calibration_interval_days": 365,
        },
    )
    assert made.status_code == 201 and made.get_json()["due_state"] == "not_calibrated"
    item_id = made.get_json()["id"]
    assert tech.post("/api/v1/equipment", json={"code": "x"}).status_code == 403
    event = tech.post(
        f"/api/v1/equipment/{item_id}/events",
        data={
            "kind": "calibration",
            "performed_on": utcnow().date().isoformat(),
            "performed_by": "Cal Ltd",
            "result": "pass",
            "certificate": (io.BytesIO(PDF), "cal.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert event.status_code == 201, event.get_json()
    assert event.get_json()["certificate"]["media_type"] == "application/pdf"
    one = tech.get(f"/api/v1/equipment/{item_id}").get_json()
    assert one["due_state"] == "in_date" and len(one["history"]) == 1
    changed = qa.put(
        f"/api/v1/equipment/{item_id}/intervals",
        json={
            "calibration_interval_days": 180,
            "reason": "Tighter",
        },
    )
    assert changed.status_code == 200 and changed.get_json()["calibration_interval_days"] == 180
    listed = tech.get("/api/v1/equipment", query_string={"q": "CF-50"})
    assert [row["code"] for row in listed.get_json()] == ["CF-50"]
    assert "X-Pagination" in listed.headers


# --- tank readings from CSV ---------------------------------------------------------------------


def _readings(tank: Any) -> int:
    return db.session.execute(
        select(func.count()).select_from(TankReading).where(TankReading.tank_id == tank.id)
    ).scalar_one()


def _csv(*rows: str) -> bytes:
    return ("timestamp,tank,temperature_c,level_percent\n" + "\n".join(rows) + "\n").encode()


def test_a_csv_is_imported_with_duplicates_skipped_and_excursions_raised(bench: Any) -> None:
    from cellchain.manufacturing.storage import reading_import
    from tests.support.storage import make_lot, store

    tank = bench.equipment["LN2-01"]
    _lot, bags = make_lot(bench, bags=1)
    store(bench, bags[0])
    t1 = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8)))
    t2 = t1 + dt.timedelta(milliseconds=500)
    later = utcnow() + dt.timedelta(seconds=2)
    content = _csv(
        f"{t1.isoformat()},LN2-01,-185.5,80",
        f"{t2.isoformat()},ln2-01,-120.0,",
        f"{t1.isoformat()},LN2-01,-185.5,80",
    )
    before = _readings(tank)
    outcome = reading_import.import_readings(
        db.session, content, actor=bench.lab.tech, now=later, zone=UTC
    )
    db.session.commit()
    assert (outcome.imported, outcome.duplicates, len(outcome.deviations)) == (2, 1, 1)
    assert _readings(tank) == before + 2
    again = reading_import.import_readings(
        db.session, content, actor=bench.lab.tech, now=later, zone=UTC
    )
    assert (again.imported, again.duplicates) == (0, 3)


def test_a_bad_csv_is_refused_by_row_and_nothing_saved(bench: Any, clients) -> None:
    tank = bench.equipment["LN2-01"]
    before = _readings(tank)
    good = utcnow().isoformat()
    content = _csv(
        f"{good},LN2-01,-190,",
        "2026-01-01T08:00:00,LN2-01,-190,",
        f"{good},LN2-77,-190,",
        f"{good},LN2-01,cold,",
        f"{good},LN2-01,-190,150",
    )
    answer = clients.api(bench.lab.tech).post(
        "/api/v1/tank-readings/import",
        data={"file": (io.BytesIO(content), "export.csv")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 422
    problems = answer.get_json()["errors"]["file"]
    assert [p.split(":")[0] for p in problems] == ["row 3", "row 4", "row 5", "row 6"]
    assert "no UTC offset" in problems[0] and "LN2-77" in problems[1]
    assert _readings(tank) == before
    page = clients.web(bench.lab.tech).post(
        "/storage/readings/import",
        data={"file": (io.BytesIO(content), "export.csv")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 422 and "row 4" in page.get_data(as_text=True)
    ok = clients.web(bench.lab.tech).post(
        "/storage/readings/import",
        data={"file": (io.BytesIO(_csv(f"{good},LN2-01,-190,")), "export.csv")},
        content_type="multipart/form-data",
    )
    assert ok.status_code == 302 and _readings(tank) == before + 1


def test_the_cli_imports_readings(bench: Any, app, tmp_path) -> None:
    from cellchain.manufacturing.equipment.cli import storage_group

    tank = bench.equipment["LN2-01"]
    before = _readings(tank)
    good = tmp_path / "good.csv"
    good.write_bytes(_csv(f"{utcnow().isoformat()},LN2-01,-191,"))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_csv("yesterday,LN2-01,-191,"))
    runner = app.test_cli_runner()
    user = bench.lab.tech.username
    refused = runner.invoke(storage_group, ["import-readings", str(bad), "--user", user])
    assert refused.exit_code == 1 and "row 2" in refused.output
    done = runner.invoke(storage_group, ["import-readings", str(good), "--user", user])
    assert done.exit_code == 0 and "1 reading(s) imported" in done.output, done.output
    db.session.expire_all()
    assert _readings(tank) == before + 1


def test_the_equipment_pages_read_in_chinese(bench: Any, clients) -> None:
    from tests.support.untranslated import assert_translated

    late = _overdue(bench, "CF-60")
    calibrate(db.session, late, actor=bench.lab.tech, now=utcnow(), days_ago=2, passed=False)
    db.session.commit()
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    qa, tech = clients.web(bench.lab.qa), clients.web(bench.lab.tech)
    pages = {
        "list": qa.get("/equipment", headers=chinese),
        "due": qa.get("/equipment?due=1", headers=chinese),
        "one": qa.get(f"/equipment/{late.id}", headers=chinese),
        "one (technician)": tech.get(f"/equipment/{late.id}", headers=chinese),
        "import": tech.get("/storage/readings/import", headers=chinese),
        "refused import": tech.post(
            "/storage/readings/import",
            data={"file": (io.BytesIO(_csv("x,LN2-01,-190,")), "e.csv")},
            content_type="multipart/form-data",
            headers=chinese,
        ),
    }
    assert {name: page.status_code for name, page in pages.items()} == {
        **{name: 200 for name in pages},
        "refused import": 422,
    }
    names = [bench.lab.qa.full_name, bench.lab.qa.username, bench.lab.tech.full_name]
    names += [bench.lab.tech.username, "Calibration Services Ltd (test)", "'x'"]
    names.append(clients.app.config["SITE_NAME"])
    # the pages' own content (the shell's navigation is tests/web/test_every_page_in_chinese's)
    main = {
        name: page.get_data(as_text=True).split('<main id="main"', 1)[1].split("</main>", 1)[0]
        for name, page in pages.items()
    }
    assert_translated({name: "<main " + html for name, html in main.items()}, data=names)


def test_the_api_and_the_page_refuse_a_qc_result_on_an_overdue_instrument(
    desk: Any, clients
) -> None:
    late = _overdue(desk.bench, "CNT-11", EquipmentKind.CELL_COUNTER)
    (sample,) = desk.sample()
    today = utcnow().date().isoformat()
    line = {"test": "VIABILITY", "value": 95.0, "instrument": "CNT-11", "tested_on": today}
    answer = clients.api(desk.lab.qc).post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": sample.unit.code, "results": [line]},
    )
    assert answer.status_code == 409, answer.get_json()
    assert (
        "CNT-11" in answer.get_json()["detail"] and _due_text(late) in answer.get_json()["detail"]
    )
    page = clients.web(desk.lab.qc).post(
        f"/lots/{desk.lot.id}/results",
        data={
            "sample": sample.unit.code,
            "value-VIABILITY": "95",
            "numeric-VIABILITY": "1",
            "instrument-VIABILITY": "cnt-11",
            "tested_on-VIABILITY": today,
        },
    )
    assert page.status_code == 409 and "CNT-11" in page.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(QcResult)).scalar_one() == 0


def test_the_api_and_the_page_refuse_a_placement_in_an_overdue_tank(bench: Any, clients) -> None:
    from tests.support.storage import make_lot

    tank = _overdue(bench, "LN2-08", EquipmentKind.LN2_TANK)
    _lot, bags = make_lot(bench, bags=1)
    answer = clients.api(bench.lab.tech).post(
        f"/api/v1/storage/units/{bags[0].id}",
        json={"tank_id": tank.id, "rack": "1", "box": "1", "slot": "1"},
    )
    assert answer.status_code == 409, answer.get_json()
    assert (
        "LN2-08" in answer.get_json()["detail"] and _due_text(tank) in answer.get_json()["detail"]
    )
    page = clients.web(bench.lab.tech).post(
        f"/storage/tanks/{tank.id}/store",
        data={"code": bags[0].code, "rack": "1", "box": "1", "slot": "1"},
        follow_redirects=True,
    )
    assert "LN2-08" in page.get_data(as_text=True) and _due_text(tank) in page.get_data(
        as_text=True
    )
    assert (
        db.session.execute(
            select(func.count())
            .select_from(StoragePosition)
            .where(StoragePosition.unit_id.is_not(None))
        ).scalar_one()
        == 0
    )


def test_equipment_from_before_migration_0040_is_refused_until_it_has_an_interval(
    bench: Any,
) -> None:
    """A row with no interval and no exemption (as migration 0040 leaves the equipment on
    file) is subject to calibration: refused, and in the technician's queue."""
    item = _register(bench, "CF-70")
    item.calibration_interval_days = None
    db.session.commit()
    today = utcnow().date()
    with pytest.raises(Conflict, match="no calibration interval on file"):
        equipment.require_in_date(db.session, [item], on=today)
    assert equipment.due_state(item, today) == equipment.DueState.NOT_CALIBRATED
    page = equipment.equipment_page(
        db.session, equipment.listing.PageRequest(search="CF-70"), today=today, due=True
    )
    assert [row.code for row in page.items] == ["CF-70"]
