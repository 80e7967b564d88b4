"""The body of a patient enrolment request that passes every inclusion and exclusion check.
The arm is not in it: it is drawn from the signed randomization (``Clinic.randomize``)."""

from __future__ import annotations

from typing import Any

from cellchain.core.types import utcnow
from cellchain.dosing.defaults import NCT01420432_PARAMETERS


def enrol_body(**changes: Any) -> dict[str, Any]:
    today = utcnow().date()
    answers: dict[str, Any] = {}
    for item in NCT01420432_PARAMETERS["inclusion"]:
        value = {"ejection_fraction": 60.0, "creatinine": 80.0, "ecog": 1.0}.get(item["code"])
        answers[item["code"]] = {"answer": True, "value": value}
    for item in NCT01420432_PARAMETERS["exclusion"]:
        answers[item["code"]] = {"answer": False}
    body = {
        "study_id": "AS-101",
        "date_of_birth": today.replace(year=today.year - 35).isoformat(),
        "sex": "male",
        "day0": today.isoformat(),
        "answers": answers,
    }
    body.update(changes)
    return body
