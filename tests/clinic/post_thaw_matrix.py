"""Permission-matrix entries of the post-thaw count routes (merged into
``tests/test_permission_matrix.MATRIX``): read by everyone, a count recorded by the clinic's
staff who thaw, the decision's route open to the clinic's staff (the service then refuses
anyone who is not an investigator, as for a dose override)."""

from __future__ import annotations

from cellchain.core.roles import Role
from tests.clinic.follow_up_matrix import CLINIC_STAFF, EVERYONE

POST_THAW_MATRIX: dict[tuple[str, str], frozenset[Role] | str] = {
    ("bedside.post_thaw_count", "GET"): EVERYONE,
    ("bedside.record_count", "POST"): CLINIC_STAFF,
    ("bedside.decide", "POST"): CLINIC_STAFF,
    ("bedside_api.dose_counts", "GET"): EVERYONE,
    ("bedside_api.record_count", "POST"): CLINIC_STAFF,
    ("bedside_api.decide", "POST"): CLINIC_STAFF,
}
