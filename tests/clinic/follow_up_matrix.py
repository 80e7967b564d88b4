"""Permission-matrix entries of the follow-up and adverse-event routes (merged into
``tests/test_permission_matrix.MATRIX``)."""

from __future__ import annotations

from cellchain.core.roles import Role

EVERYONE = frozenset(Role)
CLINIC_STAFF = frozenset({Role.CLINICIAN, Role.INVESTIGATOR})

FOLLOW_UP_MATRIX: dict[tuple[str, str], frozenset[Role] | str] = {
    ("follow_up.due", "GET"): EVERYONE,
    ("follow_up.patient", "GET"): EVERYONE,
    ("follow_up.record_visit", "POST"): CLINIC_STAFF,
    ("follow_up.record_adverse_event", "POST"): CLINIC_STAFF,
    ("follow_up.update_outcome", "POST"): CLINIC_STAFF,
    ("follow_up.adverse_events_listing", "GET"): EVERYONE,
    ("follow_up.adverse_events_csv", "GET"): EVERYONE,
    ("follow_up.assess_adverse_event", "POST"): CLINIC_STAFF,
    ("follow_up.record_adverse_event_report", "POST"): CLINIC_STAFF,
    ("follow_up.reschedule_visit", "POST"): CLINIC_STAFF,
    ("follow_up.sign_deviation", "POST"): CLINIC_STAFF,
    ("follow_up.record_missed", "POST"): CLINIC_STAFF,
    ("follow_up_api.list_reschedules", "GET"): EVERYONE,
    ("follow_up_api.reschedule_visit", "POST"): CLINIC_STAFF,
    ("follow_up_api.sign_deviation", "POST"): CLINIC_STAFF,
    ("follow_up_api.record_missed", "POST"): CLINIC_STAFF,
    ("follow_up_api.due_visits", "GET"): EVERYONE,
    ("follow_up_api.patient_follow_up", "GET"): EVERYONE,
    ("follow_up_api.record_visit_done", "POST"): CLINIC_STAFF,
    ("follow_up_api.list_adverse_events", "GET"): EVERYONE,
    ("follow_up_api.record_adverse_event", "POST"): CLINIC_STAFF,
    ("follow_up_api.update_outcome", "POST"): CLINIC_STAFF,
    ("follow_up_api.trial_adverse_events", "GET"): EVERYONE,
    ("follow_up_api.adverse_event_reports_due", "GET"): EVERYONE,
    ("follow_up_api.assess_adverse_event", "POST"): CLINIC_STAFF,
    ("follow_up_api.record_adverse_event_report", "POST"): CLINIC_STAFF,
}
