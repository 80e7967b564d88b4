"""Acting-user glue of efficacy endpoints, shared by the API and the page: the loaded input,
the acting user, the time and the site's calendar from the request, then the service."""

from __future__ import annotations

from typing import Any

from cellchain.clinic.endpoints import endpoints
from cellchain.dosing import patients
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone


def record_endpoints_as_user(
    session: DbSession, patient_id: int, data: dict[str, Any]
) -> endpoints.TableRow:
    """Record a visit's endpoints from loaded ``EndpointsIn`` data; the visit's table row."""
    patient = patients.get_patient(session, patient_id)
    zone = site_zone()
    row = endpoints.record_endpoints(
        session,
        patient,
        visit=data["visit"],
        assessed_on=data["assessed_on"],
        values={name: data[name] for name in endpoints.VALUE_FIELDS},
        actor=acting_user(),
        now=now(),
        zone=zone,
    )
    return next(r for r in endpoints.endpoint_table(session, patient, zone) if r.visit == row.visit)
