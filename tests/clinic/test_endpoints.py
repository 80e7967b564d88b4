"""Efficacy endpoints: the scores against hand-computed values, ranges refused with nothing
saved, the per-patient table over time, the page and who may record."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cellchain.clinic.endpoints import endpoints, scores
from cellchain.clinic.follow_up import scheduling
from cellchain.clinic.models import EfficacyEndpoints
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from tests.support.follow_up import back_date, infuse

BASDAI_ITEMS = [4, 6, 2, 3, 5, 7]  # (4+6+2+3 + (5+7)/2) / 5 = 21/5 = 4.2
BASFI_ITEMS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # 55/10 = 5.5
# ASDAS-CRP: 0.121·6 + 0.058·7 + 0.110·5 + 0.073·2 + 0.579·ln(10+1)
#          = 0.726 + 0.406 + 0.55 + 0.146 + 1.388381 = 3.216381
ASDAS = 3.216381
UTC = ZoneInfo("UTC")


def values(**changes: float) -> dict[str, float]:
    body: dict[str, float] = {
        **{f"basdai_q{i}": float(v) for i, v in enumerate(BASDAI_ITEMS, 1)},
        **{f"basfi_q{i}": float(v) for i, v in enumerate(BASFI_ITEMS, 1)},
        "patient_global": 5.0,
        "crp_mg_l": 10.0,
        "esr_mm_h": 28.0,
    }
    body.update(changes)
    return body


def day(days_ago: int) -> str:
    return (utcnow().date() - dt.timedelta(days=days_ago)).isoformat()


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(EfficacyEndpoints)) or 0


@pytest.fixture
def patient(clinic: Any) -> Any:
    """Enrolled with day 0 182 days ago: M6 is due today."""
    return back_date(clinic.enrol(), 182)


# --- the scores ---------------------------------------------------------------------------------


def test_basdai_is_q1_to_q4_and_the_mean_of_q5_q6_over_five() -> None:
    assert scores.basdai(BASDAI_ITEMS) == pytest.approx(4.2)
    assert scores.basdai([10] * 6) == pytest.approx(10.0)
    assert scores.basdai([0, 0, 0, 0, 10, 0]) == pytest.approx(1.0)  # Q5 counts half
    with pytest.raises(ValueError):
        scores.basdai([1, 2, 3])


def test_basfi_is_the_mean_of_ten_items() -> None:
    assert scores.basfi(BASFI_ITEMS) == pytest.approx(5.5)
    with pytest.raises(ValueError):
        scores.basfi([1] * 9)


def test_asdas_crp_against_a_hand_computed_value_and_the_crp_floor() -> None:
    asdas = scores.asdas_crp(
        back_pain=6, morning_stiffness_duration=7, patient_global=5, peripheral_pain=2, crp_mg_l=10
    )
    assert asdas == pytest.approx(ASDAS, abs=1e-6)
    items = {"back_pain": 6, "morning_stiffness_duration": 7, "patient_global": 5}
    low = scores.asdas_crp(**items, peripheral_pain=2, crp_mg_l=0.5)
    assert low == pytest.approx(scores.asdas_crp(**items, peripheral_pain=2, crp_mg_l=2))
    assert low == pytest.approx(1.828 + 0.579 * math.log(3), abs=1e-9)
    both = scores.scores(BASDAI_ITEMS, BASFI_ITEMS, patient_global=5, crp_mg_l=10)
    assert both == scores.Scores(basdai=4.2, basfi=5.5, asdas_crp=3.22)


# --- the service --------------------------------------------------------------------------------


def test_a_visit_is_recorded_once_and_audited(clinic: Any, patient: Any) -> None:
    row = endpoints.record_endpoints(
        db.session,
        patient,
        visit=" m6 ",
        assessed_on=utcnow().date(),
        values=values(),
        actor=clinic.clinician,
        now=utcnow(),
        zone=UTC,
    )
    db.session.commit()
    assert (row.visit, row.basdai_q6, row.crp_mg_l) == ("M6", 7.0, 10.0)
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "endpoints.recorded")
    ).scalar_one()
    assert (entry.entity_type, entry.entity_id) == ("patient", str(patient.id))
    assert "asdas_crp" in str(entry.changes) and "3.22" in str(entry.changes)
    with pytest.raises(Conflict, match="already recorded"):
        endpoints.record_endpoints(
            db.session,
            patient,
            visit="M6",
            assessed_on=utcnow().date(),
            values=values(),
            actor=clinic.clinician,
            now=utcnow(),
            zone=UTC,
        )
    db.session.rollback()
    assert count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("basdai_q1", 10.5),
        ("basdai_q6", -1),
        ("basfi_q10", 11),
        ("patient_global", 12),
        ("crp_mg_l", -0.1),
        ("crp_mg_l", 501),
        ("esr_mm_h", 250),
        ("esr_mm_h", math.nan),
    ],
)
def test_a_value_out_of_range_is_refused_on_its_field(
    clinic: Any, patient: Any, field: str, value: float
) -> None:
    with pytest.raises(InvalidInput) as refused:
        endpoints.record_endpoints(
            db.session,
            patient,
            visit="M6",
            assessed_on=utcnow().date(),
            values=values(**{field: value}),
            actor=clinic.clinician,
            now=utcnow(),
            zone=UTC,
        )
    assert set(refused.value.errors) == {field}
    db.session.rollback()
    assert count() == 0


def test_a_visit_that_is_not_an_evaluation_is_refused(clinic: Any, patient: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        endpoints.record_endpoints(
            db.session,
            patient,
            visit="M3",
            assessed_on=utcnow().date() + dt.timedelta(days=1),
            values=values(),
            actor=clinic.clinician,
            now=utcnow(),
            zone=UTC,
        )
    assert set(refused.value.errors) == {"visit", "assessed_on"}
    assert "BL, M6, M12" in refused.value.detail


# --- over HTTP ----------------------------------------------------------------------------------


def test_api_records_and_lists_the_table_over_time(clinic: Any, patient: Any, clients: Any) -> None:
    nurse = clients.api(clinic.clinician)
    url = f"/api/v1/patients/{patient.id}/endpoints"
    baseline = nurse.post(
        url, json={"visit": "BL", "assessed_on": day(100), **values(crp_mg_l=1.0)}
    )
    assert baseline.status_code == 201, baseline.get_json()
    body = baseline.get_json()
    assert body["visit"] == "BL" and body["assessment"]["recorded_by"] == clinic.clinician.username
    # CRP 1 mg/L counts as 2: 1.828 + 0.579·ln 3 = 2.464
    assert body["scores"] == {"basdai": 4.2, "basfi": 5.5, "asdas_crp": 2.46}
    m6 = nurse.post(url, json={"visit": "M6", "assessed_on": day(0), **values(basdai_q1=0)})
    assert m6.status_code == 201, m6.get_json()
    table = clients.api(clinic.lab.tech).get(url)  # everyone may read
    assert table.status_code == 200
    rows = table.get_json()
    assert [r["visit"] for r in rows] == ["BL", "M6", "M12"]
    assert rows[1]["scores"] == {"basdai": 3.4, "basfi": 5.5, "asdas_crp": 3.22}
    assert rows[1]["assessment"]["esr_mm_h"] == 28.0
    assert rows[2]["assessment"] is None and rows[2]["scores"] is None
    again = nurse.post(url, json={"visit": "M6", "assessed_on": day(0), **values()})
    assert again.status_code == 409


def test_api_refuses_out_of_range_with_422_and_saves_nothing(
    clinic: Any, patient: Any, clients: Any
) -> None:
    nurse = clients.api(clinic.clinician)
    url = f"/api/v1/patients/{patient.id}/endpoints"
    refused = nurse.post(
        url, json={"visit": "M6", "assessed_on": day(0), **values(basfi_q3=11, esr_mm_h=-2)}
    )
    assert refused.status_code == 422
    problem = refused.get_json()
    assert "out of range" in problem["detail"]
    assert {"basfi_q3", "esr_mm_h"} <= set(problem["errors"])
    missing = nurse.post(url, json={"visit": "M6", "assessed_on": day(0)})
    assert missing.status_code == 422
    assert count() == 0


def test_who_may_record(clinic: Any, patient: Any, clients: Any) -> None:
    url = f"/api/v1/patients/{patient.id}/endpoints"
    body = {"visit": "M6", "assessed_on": day(0), **values()}
    assert clients.api(clinic.lab.tech).post(url, json=body).status_code == 403
    assert count() == 0
    assert clients.api(clinic.investigator).post(url, json=body).status_code == 201


def test_the_page_shows_the_table_and_the_form_records_or_re_renders(
    clinic: Any, patient: Any, clients: Any
) -> None:
    web = clients.web(clinic.clinician)
    url = f"/patients/{patient.id}/endpoints"
    page = web.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="endpoints-form"' in html and 'data-visit="BL"' in html and "not recorded" in html
    form = {"visit": "M6", "assessed_on": day(0), **{k: str(v) for k, v in values().items()}}
    refused = web.post(url, data={**form, "crp_mg_l": "900"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="form-error"' in html and "out of range" in html and 'value="900"' in html
    assert count() == 0
    done = web.post(url, data=form)
    assert done.status_code == 302
    shown = web.get(done.headers["Location"]).get_data(as_text=True)
    assert "Endpoints of" in shown and '<td class="asdas">3.22</td>' in shown
    assert '<td class="basdai">4.20</td>' in shown
    lab = clients.web(clinic.lab.tech).get(url)
    assert lab.status_code == 200 and 'id="endpoints-form"' not in lab.get_data(as_text=True)
    assert clients.web(clinic.lab.tech).get("/patients/999/endpoints").status_code == 404


# --- tied to the visit (issue 19) ---------------------------------------------------------------


def post(clients: Any, clinic: Any, patient: Any, visit: str, assessed_on: str) -> Any:
    return clients.api(clinic.investigator).post(
        f"/api/v1/patients/{patient.id}/endpoints",
        json={"visit": visit, "assessed_on": assessed_on, **values()},
    )


def test_month_6_is_refused_before_its_window_opens(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol()  # enrolled today, day 0 today: month 6 opens on day 168
    refused = post(clients, clinic, patient, "M6", day(0))
    assert refused.status_code == 422, refused.get_json()
    assert set(refused.get_json()["errors"]) == {"assessed_on"}
    assert "before the Month 6 evaluation window opens" in refused.get_json()["detail"]
    assert count() == 0
    web = clients.web(clinic.clinician)
    form = {"visit": "M6", "assessed_on": day(0), **{k: str(v) for k, v in values().items()}}
    page = web.post(f"/patients/{patient.id}/endpoints", data=form)
    assert page.status_code == 422 and "window opens" in page.get_data(as_text=True)
    assert count() == 0


def test_month_6_counts_from_the_actual_first_infusion(clinic: Any, clients: Any) -> None:
    patient = back_date(clinic.enrol(), 200)  # day 0 200 days ago: provisionally overdue
    infuse(clinic, patient, at=utcnow() - dt.timedelta(days=150))  # infused 50 days late
    # month 6 is planned 32 days ahead, its window opens in 18 days
    refused = post(clients, clinic, patient, "M6", day(0))
    assert refused.status_code == 422 and "assessed_on" in refused.get_json()["errors"]
    table = clients.api(clinic.clinician).get(f"/api/v1/patients/{patient.id}/endpoints")
    m6 = table.get_json()[1]
    assert (m6["opens_on"], m6["closes_on"]) == (day(-18), day(-46))
    assert count() == 0


def test_baseline_is_refused_after_the_first_infusion_day(clinic: Any, clients: Any) -> None:
    patient = back_date(clinic.enrol(), 10)
    infuse(clinic, patient, at=utcnow() - dt.timedelta(days=5))
    refused = post(clients, clinic, patient, "BL", day(4))
    assert refused.status_code == 422, refused.get_json()
    assert set(refused.get_json()["errors"]) == {"assessed_on"}
    assert "after the first infusion" in refused.get_json()["detail"]
    assert count() == 0
    on_the_day = post(clients, clinic, patient, "BL", day(5))
    assert on_the_day.status_code == 201, on_the_day.get_json()
    assert on_the_day.get_json()["closes_on"] == day(5)


def test_a_control_patients_visits_count_from_the_scheduled_day_0(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(arm="CONTROL"), 185)  # day 0 185 days ago, no infusion
    late_baseline = post(clients, clinic, patient, "BL", day(184))
    assert late_baseline.status_code == 422 and "day 0" in late_baseline.get_json()["detail"]
    assert post(clients, clinic, patient, "BL", day(185)).status_code == 201
    m6 = post(clients, clinic, patient, "M6", day(0))  # day 185: in 182 ± 14
    assert m6.status_code == 201, m6.get_json()
    assert m6.get_json()["outside_window"] is False
    assert m6.get_json()["opens_on"] == day(185 - 168)


def test_late_month_6_is_recorded_and_flagged_outside_the_window(clinic: Any, clients: Any) -> None:
    patient = back_date(clinic.enrol(arm="CONTROL"), 200)  # month 6 closed 4 days ago
    late = post(clients, clinic, patient, "M6", day(0))
    assert late.status_code == 201, late.get_json()
    assert late.get_json()["outside_window"] is True and late.get_json()["closes_on"] == day(4)
    rows = clients.api(clinic.lab.tech).get(f"/api/v1/patients/{patient.id}/endpoints")
    assert [row["outside_window"] for row in rows.get_json()] == [False, True, False]
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "endpoints.recorded")
    ).scalar_one()
    assert '"outside_window":[null,true]' in entry.changes
    html = clients.web(clinic.clinician).get(f"/patients/{patient.id}/endpoints")
    row = html.get_data(as_text=True).split('data-visit="M6"', 1)[1].split("</tr>", 1)[0]
    assert "outside window" in row
    in_window = clients.web(clinic.clinician).get(f"/patients/{patient.id}/endpoints")
    baseline = in_window.get_data(as_text=True).split('data-visit="BL"', 1)[1]
    assert "outside window" not in baseline.split("</tr>", 1)[0]


def test_a_missed_visit_takes_no_endpoints(clinic: Any, clients: Any) -> None:
    patient = back_date(clinic.enrol(arm="CONTROL"), 200)  # month 6 overdue
    scheduling.record_missed(
        db.session,
        patient,
        visit="M6",
        reason="Patient moved abroad; could not attend.",
        actor=clinic.clinician,
        now=utcnow(),
        zone=UTC,
    )
    db.session.commit()
    refused = post(clients, clinic, patient, "M6", day(0))
    assert refused.status_code == 409, refused.get_json()
    assert "missed" in refused.get_json()["detail"]
    assert count() == 0
    web = clients.web(clinic.clinician)
    form = {"visit": "M6", "assessed_on": day(0), **{k: str(v) for k, v in values().items()}}
    page = web.post(f"/patients/{patient.id}/endpoints", data=form)
    assert page.status_code == 409 and count() == 0
    shown = web.get(f"/patients/{patient.id}/endpoints").get_data(as_text=True)
    assert "recorded as missed" in shown.split('data-visit="M6"', 1)[1].split("</tr>", 1)[0]
    assert '<option value="M6"' not in shown
    table = clients.api(clinic.clinician).get(f"/api/v1/patients/{patient.id}/endpoints")
    assert [row["missed"] for row in table.get_json()] == [False, True, False]
