"""Acting-user glue of pre-infusion re-checks, shared by the API and the page: the loaded
input, the acting user and the time from the request, then the service."""

from __future__ import annotations

from typing import Any

from cellchain.dosing import patients
from cellchain.dosing.models import PreInfusionRecheck
from cellchain.dosing.rechecks import rechecks
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now


def record_recheck_as_user(
    session: DbSession, patient_id: int, data: dict[str, Any]
) -> PreInfusionRecheck:
    """Record a re-check from loaded ``RecheckIn`` data."""
    patient = patients.get_patient(session, patient_id)
    return rechecks.record_recheck(
        session,
        patient,
        visit=data["visit"],
        answers={
            code: rechecks.RecheckAnswer(**answer) for code, answer in data["answers"].items()
        },
        note=data.get("note"),
        actor=acting_user(),
        now=now(),
    )
