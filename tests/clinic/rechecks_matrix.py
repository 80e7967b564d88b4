"""Permission-matrix entries of the pre-infusion re-check routes (merged into
``tests/test_permission_matrix.MATRIX``): read by everyone, recorded by the clinic's staff
who give the infusion (``Permission.ADMINISTER_DOSES``)."""

from __future__ import annotations

from tests.clinic.follow_up_matrix import CLINIC_STAFF, EVERYONE

RECHECKS_MATRIX = {
    ("rechecks.patient", "GET"): EVERYONE,
    ("rechecks.record", "POST"): CLINIC_STAFF,
    ("rechecks_api.patient_rechecks", "GET"): EVERYONE,
    ("rechecks_api.visit_states", "GET"): EVERYONE,
    ("rechecks_api.record_recheck", "POST"): CLINIC_STAFF,
}
