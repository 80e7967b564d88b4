"""Every route × every role: who may use it, checked by real requests.

The table below is the specification. A route added without an entry here fails
``test_every_route_has_an_entry``; an entry whose route is gone fails it too.
"""

from __future__ import annotations

import pytest
from werkzeug.routing import Rule

from cellchain.core import accounts
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.clinic.follow_up_matrix import FOLLOW_UP_MATRIX
from tests.conftest import TEST_PASSWORD

T, QC, QA, CLIN, INV, ADM = (
    Role.TECHNICIAN,
    Role.QC_ANALYST,
    Role.QA,
    Role.CLINICIAN,
    Role.INVESTIGATOR,
    Role.ADMIN,
)
EVERYONE = frozenset(Role)
PUBLIC = "public"

#: (endpoint, method) → the roles allowed, or PUBLIC for routes that need no login.
MATRIX: dict[tuple[str, str], frozenset[Role] | str] = {
    ("static", "GET"): PUBLIC,
    ("web.login", "GET"): PUBLIC,
    ("web.login", "POST"): PUBLIC,
    ("web.logout", "POST"): EVERYONE,
    ("web.home", "GET"): EVERYONE,
    ("web.scan", "GET"): EVERYONE,
    ("core.account", "GET"): EVERYONE,
    ("core.change_password", "POST"): EVERYONE,
    ("core.create_token", "POST"): EVERYONE,
    ("core.revoke_token", "POST"): EVERYONE,
    ("core.identifiers", "GET"): EVERYONE,
    ("core.identifier", "GET"): EVERYONE,
    ("core.reserve_dins", "POST"): frozenset({T, ADM}),
    ("core.audit_review", "GET"): frozenset({QA, ADM, INV}),
    ("core.audit_export", "GET"): frozenset({QA, ADM, INV}),
    ("core.audit_verify", "POST"): frozenset({QA}),
    ("core.users", "GET"): frozenset({ADM}),
    ("core.new_user", "GET"): frozenset({ADM}),
    ("core.new_user", "POST"): frozenset({ADM}),
    ("core.user", "GET"): frozenset({ADM}),
    ("core.deactivate_user", "POST"): frozenset({ADM}),
    ("core.unlock_user", "POST"): frozenset({ADM}),
    ("core.set_roles", "POST"): frozenset({ADM}),
    ("dosing.protocols", "GET"): EVERYONE,
    ("dosing.protocol", "GET"): EVERYONE,
    ("dosing.approve", "POST"): frozenset({QA}),
    ("chain.unit", "GET"): EVERYONE,
    ("chain.record_event", "POST"): frozenset({T, CLIN}),
    ("donors.donations", "GET"): EVERYONE,
    ("donors.register", "GET"): frozenset({T}),
    ("donors.register", "POST"): frozenset({T}),
    ("donors.donation", "GET"): EVERYONE,
    ("donors.receive", "POST"): frozenset({T}),
    ("donors.start_processing", "POST"): frozenset({T}),
    ("donors.record_result", "POST"): frozenset({QC}),
    ("donors.correct_result", "POST"): frozenset({QC}),
    ("donors.eligibility", "GET"): EVERYONE,
    ("donors.determine", "POST"): frozenset({QA}),
    ("donors.eligibility_queue", "GET"): EVERYONE,
    ("donors.donor", "GET"): EVERYONE,
    ("donors.correct_screening", "POST"): frozenset({T}),
    ("manufacturing.products", "GET"): EVERYONE,
    ("manufacturing.product", "GET"): EVERYONE,
    ("manufacturing.approve", "POST"): frozenset({QA}),
    ("manufacturing.lots", "GET"): EVERYONE,
    ("manufacturing.materials", "GET"): EVERYONE,
    ("manufacturing.receive_material", "POST"): frozenset({T, QA}),
    ("manufacturing.release_material", "POST"): frozenset({QA}),
    ("manufacturing.equipment", "GET"): EVERYONE,
    ("manufacturing.register_equipment", "POST"): frozenset({T, QA}),
    ("manufacturing.new_step", "GET"): frozenset({T}),
    ("manufacturing.record_step_form", "POST"): frozenset({T}),
    ("manufacturing.step", "GET"): EVERYONE,
    ("manufacturing.lot", "GET"): EVERYONE,
    ("manufacturing.freeze_lot", "POST"): frozenset({T}),
    ("manufacturing.lot_pdf", "GET"): EVERYONE,
    ("storage.tanks", "GET"): EVERYONE,
    ("storage.tank", "GET"): EVERYONE,
    ("storage.store", "POST"): frozenset({T}),
    ("storage.record_reading", "POST"): frozenset({T}),
    ("storage.deviations_list", "GET"): EVERYONE,
    ("storage.open_deviation", "POST"): EVERYONE,
    ("storage.deviation", "GET"): EVERYONE,
    ("storage.close_deviation", "POST"): frozenset({QA}),
    ("quality.specifications", "GET"): EVERYONE,
    ("quality.specification", "GET"): EVERYONE,
    ("quality.testing", "GET"): EVERYONE,
    ("quality.take_samples", "POST"): frozenset({T, QC}),
    ("quality.record_results", "POST"): frozenset({QC}),
    ("quality.invalidate", "POST"): frozenset({QA}),
    ("quality.review", "GET"): EVERYONE,
    ("quality.release", "POST"): frozenset({QA}),
    ("quality.reject", "POST"): frozenset({QA}),
    ("quality.certificate", "GET"): EVERYONE,
    ("quality.queues", "GET"): EVERYONE,
    ("quality.approve", "POST"): frozenset({QA}),
    ("docs_static.swagger_file", "GET"): EVERYONE,
    ("api-docs.openapi_json", "GET"): EVERYONE,
    ("api-docs.openapi_swagger_ui", "GET"): EVERYONE,
    ("account_api.me", "GET"): EVERYONE,
    ("account_api.Tokens", "GET"): EVERYONE,
    ("account_api.Tokens", "POST"): EVERYONE,
    ("account_api.revoke_token", "POST"): EVERYONE,
    ("users_api.Users", "GET"): frozenset({ADM}),
    ("users_api.Users", "POST"): frozenset({ADM}),
    ("users_api.get_user", "GET"): frozenset({ADM}),
    ("users_api.deactivate_user", "POST"): frozenset({ADM}),
    ("users_api.unlock_user", "POST"): frozenset({ADM}),
    ("users_api.set_roles", "PUT"): frozenset({ADM}),
    ("audit_api.list_audit", "GET"): frozenset({QA, ADM, INV}),
    ("audit_api.export_audit", "GET"): frozenset({QA, ADM, INV}),
    ("audit_api.verify_audit", "POST"): frozenset({QA}),
    ("scan_api.scan", "GET"): EVERYONE,
    ("identifiers_api.get_identifier", "GET"): EVERYONE,
    ("identifiers_api.reserve_dins", "POST"): frozenset({T, ADM}),
    ("units_api.get_unit", "GET"): EVERYONE,
    ("units_api.record_event", "POST"): frozenset({T, CLIN}),
    ("units_api.trace_back", "GET"): EVERYONE,
    ("units_api.trace_forward", "GET"): EVERYONE,
    ("units_api.derive", "POST"): frozenset({T}),
    ("donations_api.list_donations", "GET"): EVERYONE,
    ("donations_api.register_donation", "POST"): frozenset({T}),
    ("donations_api.get_donation", "GET"): EVERYONE,
    ("donations_api.receive", "POST"): frozenset({T}),
    ("donations_api.start_processing", "POST"): frozenset({T}),
    ("donations_api.record_result", "POST"): frozenset({QC}),
    ("donations_api.correct_result", "POST"): frozenset({QC}),
    ("donations_api.eligibility_review", "GET"): EVERYONE,
    ("donations_api.determine", "POST"): frozenset({QA}),
    ("donations_api.eligibility_queue", "GET"): EVERYONE,
    ("donors_api.get_donor", "GET"): EVERYONE,
    ("donors_api.correct_screening", "POST"): frozenset({T}),
    ("products_api.list_products", "GET"): EVERYONE,
    ("products_api.get_product", "GET"): EVERYONE,
    ("products_api.approve_product", "POST"): frozenset({QA}),
    ("materials_api.list_materials", "GET"): EVERYONE,
    ("materials_api.receive_material", "POST"): frozenset({T, QA}),
    ("materials_api.release_material", "POST"): frozenset({QA}),
    ("materials_api.list_equipment", "GET"): EVERYONE,
    ("materials_api.register_equipment", "POST"): frozenset({T, QA}),
    ("steps_api.isolate", "POST"): frozenset({T}),
    ("steps_api.passage", "POST"): frozenset({T}),
    ("steps_api.bank_freeze", "POST"): frozenset({T}),
    ("steps_api.bank_thaw", "POST"): frozenset({T}),
    ("steps_api.fill", "POST"): frozenset({T}),
    ("steps_api.get_step", "GET"): EVERYONE,
    ("steps_api.list_lots", "GET"): EVERYONE,
    ("steps_api.get_lot", "GET"): EVERYONE,
    ("steps_api.freeze", "POST"): frozenset({T}),
    ("storage_api.list_tanks", "GET"): EVERYONE,
    ("storage_api.get_tank", "GET"): EVERYONE,
    ("storage_api.store_unit", "POST"): frozenset({T}),
    ("storage_api.record_reading", "POST"): frozenset({T}),
    ("deviations_api.list_deviations", "GET"): EVERYONE,
    ("deviations_api.open_deviation", "POST"): EVERYONE,
    ("deviations_api.get_deviation", "GET"): EVERYONE,
    ("deviations_api.close_deviation", "POST"): frozenset({QA}),
    ("specifications_api.list_specifications", "GET"): EVERYONE,
    ("specifications_api.get_specification", "GET"): EVERYONE,
    ("specifications_api.approve_specification", "POST"): frozenset({QA}),
    ("release_api.list_samples", "GET"): EVERYONE,
    ("release_api.take_samples", "POST"): frozenset({T, QC}),
    ("release_api.list_results", "GET"): EVERYONE,
    ("release_api.record_results", "POST"): frozenset({QC}),
    ("release_api.get_result", "GET"): EVERYONE,
    ("release_api.invalidate_result", "POST"): frozenset({QA}),
    ("release_api.review", "GET"): EVERYONE,
    ("release_api.release", "POST"): frozenset({QA}),
    ("release_api.reject", "POST"): frozenset({QA}),
    ("release_api.certificate", "GET"): EVERYONE,
    ("release_api.awaiting_review", "GET"): EVERYONE,
    ("release_api.out_of_specification", "GET"): EVERYONE,
    ("release_api.open_deviations", "GET"): EVERYONE,
    ("protocols_api.list_protocols", "GET"): EVERYONE,
    ("protocols_api.get_protocol", "GET"): EVERYONE,
    ("protocols_api.approve_protocol", "POST"): frozenset({QA}),
    ("labels.unit_labels", "GET"): EVERYONE,
    ("labels.print_unit", "POST"): frozenset({T, QA}),
    ("labels.lot_labels", "GET"): EVERYONE,
    ("labels.print_lot", "POST"): frozenset({T, QA}),
    ("labels.applied", "POST"): frozenset({T, QA}),
    ("labels.destroyed", "POST"): frozenset({T, QA}),
    ("labels.scan_photo", "POST"): EVERYONE,
    ("labels.patient_labels", "GET"): EVERYONE,
    ("labels.print_patient", "POST"): frozenset({CLIN, INV}),
    ("labels_api.print_patient", "POST"): frozenset({CLIN, INV}),
    ("labels_api.patient_log", "GET"): EVERYONE,
    ("labels_api.print_unit", "POST"): frozenset({T, QA}),
    ("labels_api.unit_log", "GET"): EVERYONE,
    ("labels_api.print_lot", "POST"): frozenset({T, QA}),
    ("labels_api.lot_log", "GET"): EVERYONE,
    ("labels_api.applied", "POST"): frozenset({T, QA}),
    ("labels_api.destroyed", "POST"): frozenset({T, QA}),
    ("labels_api.scan_photo", "POST"): EVERYONE,
    ("clinic.patient_list", "GET"): EVERYONE,
    ("clinic.enrol", "GET"): frozenset({CLIN, INV}),
    ("clinic.enrol", "POST"): frozenset({CLIN, INV}),
    ("clinic.patient", "GET"): EVERYONE,
    ("clinic.record_weight", "POST"): frozenset({CLIN, INV}),
    ("clinic.plan", "GET"): EVERYONE,
    ("clinic.order_dose", "POST"): frozenset({T}),
    ("clinic.dose", "GET"): EVERYONE,
    ("clinic.second_check", "POST"): frozenset({T, QA}),
    ("patients_api.list_patients", "GET"): EVERYONE,
    ("patients_api.enrol", "POST"): frozenset({CLIN, INV}),
    ("patients_api.get_patient", "GET"): EVERYONE,
    ("patients_api.record_weight", "POST"): frozenset({CLIN, INV}),
    ("patients_api.list_doses", "GET"): EVERYONE,
    ("patients_api.plan", "GET"): EVERYONE,
    ("patients_api.order_dose", "POST"): frozenset({T}),
    ("patients_api.get_dose", "GET"): EVERYONE,
    ("patients_api.second_check", "POST"): frozenset({T, QA}),
    ("coi.report", "GET"): EVERYONE,
    ("coi.report_pdf", "GET"): EVERYONE,
    ("coi_api.coi_report", "GET"): EVERYONE,
    ("shipments.shipment_list", "GET"): EVERYONE,
    ("shipments.dispatch", "POST"): frozenset({T}),
    ("shipments.shipment", "GET"): EVERYONE,
    ("shipments.hand_off", "POST"): frozenset({T, CLIN}),
    ("shipments.receive", "POST"): frozenset({CLIN, INV}),
    ("shipments.decide", "POST"): frozenset({QA}),
    ("bedside.overview", "GET"): EVERYONE,
    ("bedside.thaw_page", "GET"): frozenset({CLIN, INV}),
    ("bedside.thaw_page", "POST"): frozenset({CLIN, INV}),
    ("bedside.start_page", "GET"): frozenset({CLIN, INV}),
    ("bedside.wristband", "POST"): frozenset({CLIN, INV}),
    ("bedside.verify", "POST"): frozenset({CLIN, INV}),
    ("bedside.check", "GET"): EVERYONE,
    ("bedside.sign", "POST"): frozenset({CLIN, INV}),
    ("bedside.start", "POST"): frozenset({CLIN, INV}),
    ("bedside.infusion", "GET"): EVERYONE,
    ("bedside.end", "POST"): frozenset({CLIN, INV}),
    ("shipments_api.list_shipments", "GET"): EVERYONE,
    ("shipments_api.dispatch", "POST"): frozenset({T}),
    ("shipments_api.get_shipment", "GET"): EVERYONE,
    ("shipments_api.hand_off", "POST"): frozenset({T, CLIN}),
    ("shipments_api.receive", "POST"): frozenset({CLIN, INV}),
    ("shipments_api.decide", "POST"): frozenset({QA}),
    ("bedside_api.thaw_scan", "POST"): frozenset({CLIN, INV}),
    ("bedside_api.verify", "POST"): frozenset({CLIN, INV}),
    ("bedside_api.get_check", "GET"): EVERYONE,
    ("bedside_api.sign", "POST"): frozenset({CLIN, INV}),
    ("bedside_api.start", "POST"): frozenset({CLIN, INV}),
    ("bedside_api.get_infusion", "GET"): EVERYONE,
    ("bedside_api.end", "POST"): frozenset({CLIN, INV}),
    ("bedside_api.patient_infusions", "GET"): EVERYONE,
    ("fhir_api.infusion_fhir", "GET"): EVERYONE,
    ("traceability.trace_forward", "GET"): EVERYONE,
    ("traceability.trace_back", "GET"): EVERYONE,
    ("traceability.recall_list", "GET"): EVERYONE,
    ("traceability.new_recall", "GET"): frozenset({QA}),
    ("traceability.open_recall", "POST"): frozenset({QA}),
    ("traceability.recall", "GET"): EVERYONE,
    ("traceability.notify", "POST"): frozenset({QA, CLIN, INV}),
    ("traceability.close", "POST"): frozenset({QA}),
    ("trace_api.forward", "GET"): EVERYONE,
    ("trace_api.back", "GET"): EVERYONE,
    ("recalls_api.recall_list", "GET"): EVERYONE,
    ("recalls_api.open_recall", "POST"): frozenset({QA}),
    ("recalls_api.recall_detail", "GET"): EVERYONE,
    ("recalls_api.notify", "POST"): frozenset({QA, CLIN, INV}),
    ("recalls_api.close", "POST"): frozenset({QA}),
}
MATRIX.update(FOLLOW_UP_MATRIX)

SAMPLE_VALUES = {"integer": "1", "path": "app.css", "default": "X999926000001X"}


def route_methods(app) -> list[tuple[Rule, str]]:
    return [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]


def sample_url(rule: Rule) -> str:
    values = {}
    for name, converter in rule._converters.items():
        kind = type(converter).__name__.replace("Converter", "").lower()
        values[name] = SAMPLE_VALUES.get(kind, SAMPLE_VALUES["default"])
    if rule.endpoint == "docs_static.swagger_file":
        values["filename"] = "swagger-ui.css"
    return rule.build(values, append_unknown=False)[1]


def test_every_route_has_an_entry(app):
    registered = {(rule.endpoint, method) for rule, method in route_methods(app)}
    assert registered - MATRIX.keys() == set(), "routes without a permission-matrix entry"
    assert MATRIX.keys() - registered == set(), "matrix entries for routes that no longer exist"


def test_anonymous_requests_are_sent_to_login(app):
    client = app.test_client()
    for rule, method in route_methods(app):
        if MATRIX[(rule.endpoint, method)] == PUBLIC:
            continue
        response = client.open(sample_url(rule), method=method)
        where = f"{method} {rule.rule}"
        if rule.rule.startswith("/api/") and not rule.rule.startswith("/api/v1/docs"):
            assert response.status_code == 401, where
            assert response.mimetype == "application/problem+json", where
        else:
            assert response.status_code == 302, where
            assert "/login" in response.headers["Location"], where


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_each_role_reaches_exactly_its_routes(app, make_user, role):
    # Record #1 of each kind is a decoy, so routes called with id 1 (revoke token 1,
    # deactivate user 1) act on it and not on the user and token doing the checking.
    decoy = make_user("decoy", Role.TECHNICIAN)
    accounts.create_token(db.session, user=decoy, now=utcnow(), name="decoy")
    db.session.commit()
    user = make_user(f"matrix-{role.value.replace('_', '-')}", role)
    _row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="matrix")
    db.session.commit()
    wrong = []
    for rule, method in route_methods(app):
        allowed = MATRIX[(rule.endpoint, method)]
        if allowed == PUBLIC:
            continue
        client = app.test_client()
        if rule.rule.startswith("/api/") and not rule.rule.startswith("/api/v1/docs"):
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        else:
            login = client.post(
                "/login", data={"username": user.username, "password": TEST_PASSWORD}
            )
            assert login.status_code == 302
        response = client.open(sample_url(rule), method=method)
        denied = response.status_code == 403
        if denied == (role in allowed) or response.status_code in (401, 500):
            wrong.append(f"{method} {rule.rule} → {response.status_code}")
    assert wrong == [], f"{role.value} got the wrong answer from: {wrong}"
