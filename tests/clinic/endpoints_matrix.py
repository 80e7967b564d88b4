"""Permission-matrix entries of the efficacy-endpoint routes (merged into
``tests/test_permission_matrix.MATRIX``): read by everyone, recorded by the clinic's staff,
as follow-up visits are."""

from __future__ import annotations

from tests.clinic.follow_up_matrix import CLINIC_STAFF, EVERYONE

ENDPOINTS_MATRIX = {
    ("endpoints.patient", "GET"): EVERYONE,
    ("endpoints.record", "POST"): CLINIC_STAFF,
    ("endpoints_api.patient_endpoints", "GET"): EVERYONE,
    ("endpoints_api.record_endpoints", "POST"): CLINIC_STAFF,
}
