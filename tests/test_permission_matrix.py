"""Every route × every role: who may use it, checked by real requests on the demo site.

The table below is the specification. A route added without an entry here fails
``test_every_route_has_an_entry``; an entry whose route is gone fails it too.

The requests run against a copy of the demo site's database (``cellchain demo``, plus a recall
and an adverse event it does not make), with the ids of real records in every URL: a route
that answers 500 on real data (as ``GET /api/v1/results/{id}`` once did for every result)
fails here, which an empty database hid behind 404s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.routing import Rule

from cellchain.clinic.follow_up import adverse_events
from cellchain.clinic.models import (
    AdverseEvent,
    BedsideCheck,
    Infusion,
    Shipment,
    VisitReschedule,
)
from cellchain.core import accounts
from cellchain.core.models import IssuedIdentifier, User, UserRole
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.demo import DEMO_USERS
from cellchain.donors.models import Donation, Donor, DonorTestPanel, DonorTestResult
from cellchain.dosing.models import DoseOrder, Patient, Protocol
from cellchain.extensions import db
from cellchain.labels.models import LabelPrint, LabelTemplateDocument
from cellchain.manufacturing.models import (
    CellRecord,
    Deviation,
    Equipment,
    EquipmentEvent,
    Lot,
    MaterialLot,
    ProcessingStep,
    ProductDefinition,
    StepKind,
)
from cellchain.manufacturing.storage import storage
from cellchain.quality.models import QcResult, Specification
from cellchain.traceability.models import Recall, RecallTarget
from cellchain.traceability.recalls import recalls
from cellchain.trial_data.models import TrialDataExport
from cellchain.web.security import SESSION_TOKEN_KEY
from tests.clinic.endpoints_matrix import ENDPOINTS_MATRIX
from tests.clinic.follow_up_matrix import FOLLOW_UP_MATRIX
from tests.clinic.post_thaw_matrix import POST_THAW_MATRIX
from tests.clinic.rechecks_matrix import RECHECKS_MATRIX
from tests.clinic.trial_export_matrix import TRIAL_EXPORT_MATRIX, seed_export
from tests.conftest import TEST_PASSWORD, DatabaseFactory

#: long tests: started first (tests/conftest.py, ``heavy``)
pytestmark = pytest.mark.heavy

T, QC, QA, CLIN, INV, ADM = (
    Role.TECHNICIAN,
    Role.QC_ANALYST,
    Role.QA,
    Role.CLINICIAN,
    Role.INVESTIGATOR,
    Role.ADMIN,
)
STAT = Role.STATISTICIAN
MON = Role.MONITOR
EVERYONE = frozenset(Role)
PUBLIC = "public"

#: (endpoint, method) → the roles allowed, or PUBLIC for routes that need no login.
MATRIX: dict[tuple[str, str], frozenset[Role] | str] = {
    ("static", "GET"): PUBLIC,
    ("web.login", "GET"): PUBLIC,
    ("web.login", "POST"): PUBLIC,
    ("web.choose_language", "POST"): PUBLIC,
    ("web.logout", "POST"): EVERYONE,
    ("web.home", "GET"): EVERYONE,
    ("web.scan", "GET"): EVERYONE,
    ("admin.account", "GET"): EVERYONE,
    ("admin.change_password", "POST"): EVERYONE,
    ("admin.create_token", "POST"): EVERYONE,
    ("admin.revoke_token", "POST"): EVERYONE,
    ("admin.identifiers", "GET"): EVERYONE,
    ("admin.identifier", "GET"): EVERYONE,
    ("admin.reserve_dins", "POST"): frozenset({T, ADM}),
    ("admin.audit_review", "GET"): frozenset({QA, ADM, INV}),
    ("admin.audit_export", "GET"): frozenset({QA, ADM, INV}),
    ("admin.audit_verify", "POST"): frozenset({QA}),
    ("admin.users", "GET"): frozenset({ADM}),
    ("admin.new_user", "GET"): frozenset({ADM}),
    ("admin.new_user", "POST"): frozenset({ADM}),
    ("admin.user", "GET"): frozenset({ADM}),
    ("admin.revoke_user_token", "POST"): frozenset({ADM}),
    ("admin.deactivate_user", "POST"): frozenset({ADM}),
    ("admin.unlock_user", "POST"): frozenset({ADM}),
    ("admin.set_roles", "POST"): frozenset({ADM}),
    ("dosing.protocols", "GET"): EVERYONE,
    ("dosing.protocol", "GET"): EVERYONE,
    ("dosing.approve", "POST"): frozenset({QA}),
    ("dosing.protocol_draft", "GET"): frozenset({QA}),
    ("dosing.protocol_draft", "POST"): frozenset({QA}),
    ("dosing.protocol_edit", "GET"): frozenset({QA}),
    ("dosing.protocol_edit", "POST"): frozenset({QA}),
    ("dosing.protocol_differences", "GET"): EVERYONE,
    ("chain.units", "GET"): EVERYONE,
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
    ("manufacturing.product_draft", "GET"): frozenset({QA}),
    ("manufacturing.product_draft", "POST"): frozenset({QA}),
    ("manufacturing.product_edit", "GET"): frozenset({QA}),
    ("manufacturing.product_edit", "POST"): frozenset({QA}),
    ("manufacturing.product_differences", "GET"): EVERYONE,
    ("manufacturing.lots", "GET"): EVERYONE,
    ("vessels.vessels_in_culture", "GET"): EVERYONE,
    ("vessels_api.list_vessels_in_culture", "GET"): EVERYONE,
    ("manufacturing.materials", "GET"): EVERYONE,
    ("manufacturing.receive_material", "POST"): frozenset({T, QA}),
    ("manufacturing.release_material", "POST"): frozenset({QA}),
    ("stock.material_lot", "GET"): EVERYONE,
    ("stock.adjust", "POST"): frozenset({T, QA}),
    ("stock.set_reorder_level", "POST"): frozenset({T, QA}),
    ("equipment.equipment_list", "GET"): EVERYONE,
    ("equipment.register_equipment", "POST"): frozenset({QA}),
    ("equipment.equipment_page", "GET"): EVERYONE,
    ("equipment.record_event", "POST"): frozenset({T, QA}),
    ("equipment.change_intervals", "POST"): frozenset({QA}),
    ("equipment.certificate", "GET"): EVERYONE,
    ("equipment.import_readings_form", "GET"): frozenset({T}),
    ("equipment.import_readings", "POST"): frozenset({T}),
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
    ("storage.authorise_excursion", "POST"): frozenset({QA}),
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
    ("quality.specification_draft", "GET"): frozenset({QA}),
    ("quality.specification_draft", "POST"): frozenset({QA}),
    ("quality.specification_edit", "GET"): frozenset({QA}),
    ("quality.specification_edit", "POST"): frozenset({QA}),
    ("quality.specification_differences", "GET"): EVERYONE,
    ("panels.panels", "GET"): EVERYONE,
    ("panels.panel", "GET"): EVERYONE,
    ("panels.approve", "POST"): frozenset({QA}),
    ("panels.panel_draft", "GET"): frozenset({QA}),
    ("panels.panel_draft", "POST"): frozenset({QA}),
    ("panels.panel_edit", "GET"): frozenset({QA}),
    ("panels.panel_edit", "POST"): frozenset({QA}),
    ("panels.panel_differences", "GET"): EVERYONE,
    ("label_templates.templates", "GET"): EVERYONE,
    ("label_templates.template", "GET"): EVERYONE,
    ("label_templates.approve", "POST"): frozenset({QA}),
    ("label_templates.template_draft", "GET"): frozenset({QA}),
    ("label_templates.template_draft", "POST"): frozenset({QA}),
    ("label_templates.template_edit", "GET"): frozenset({QA}),
    ("label_templates.template_edit", "POST"): frozenset({QA}),
    ("label_templates.template_differences", "GET"): EVERYONE,
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
    ("users_api.user_tokens", "GET"): frozenset({ADM}),
    ("users_api.deactivate_user", "POST"): frozenset({ADM}),
    ("users_api.unlock_user", "POST"): frozenset({ADM}),
    ("users_api.set_roles", "PUT"): frozenset({ADM}),
    ("audit_api.list_audit", "GET"): frozenset({QA, ADM, INV}),
    ("audit_api.export_audit", "GET"): frozenset({QA, ADM, INV}),
    ("audit_api.verify_audit", "POST"): frozenset({QA}),
    ("scan_api.scan", "GET"): EVERYONE,
    ("worklist_api.worklist", "GET"): EVERYONE,
    ("notifications.notification_list", "GET"): EVERYONE,
    ("notifications.mark_read", "POST"): EVERYONE,
    ("notifications.set_email", "POST"): EVERYONE,
    ("notifications.confirm_email", "GET"): EVERYONE,
    ("notifications.confirm_email_post", "POST"): EVERYONE,
    ("notifications.outbox", "GET"): frozenset({QA, ADM, INV}),
    ("notifications_api.notification_list", "GET"): EVERYONE,
    ("notifications_api.mark_read", "POST"): EVERYONE,
    ("notifications_api.set_email", "PUT"): EVERYONE,
    ("notifications_api.confirm_email", "POST"): EVERYONE,
    ("notifications_api.outbox", "GET"): frozenset({QA, ADM, INV}),
    ("lookup_api.lookup", "GET"): EVERYONE,
    ("identifiers_api.get_identifier", "GET"): EVERYONE,
    ("identifiers_api.reserve_dins", "POST"): frozenset({T, ADM}),
    ("units_api.list_units", "GET"): EVERYONE,
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
    ("products_api.draft_product", "POST"): frozenset({QA}),
    ("products_api.change_product", "PATCH"): frozenset({QA}),
    ("products_api.change_product", "PUT"): frozenset({QA}),
    ("products_api.differences_product", "GET"): EVERYONE,
    ("materials_api.list_materials", "GET"): EVERYONE,
    ("materials_api.receive_material", "POST"): frozenset({T, QA}),
    ("materials_api.release_material", "POST"): frozenset({QA}),
    ("stock_api.stock_list", "GET"): EVERYONE,
    ("stock_api.lot_stock", "GET"): EVERYONE,
    ("stock_api.adjust", "POST"): frozenset({T, QA}),
    ("stock_api.reorder_levels", "GET"): EVERYONE,
    ("stock_api.set_reorder_level", "PUT"): frozenset({T, QA}),
    ("equipment_api.list_equipment", "GET"): EVERYONE,
    ("equipment_api.register_equipment", "POST"): frozenset({QA}),
    ("equipment_api.get_equipment", "GET"): EVERYONE,
    ("equipment_api.change_intervals", "PUT"): frozenset({QA}),
    ("equipment_api.record_event", "POST"): frozenset({T, QA}),
    ("equipment_api.certificate", "GET"): EVERYONE,
    ("equipment_api.import_readings", "POST"): frozenset({T}),
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
    ("deviations_api.authorise_excursion", "POST"): frozenset({QA}),
    ("specifications_api.list_specifications", "GET"): EVERYONE,
    ("specifications_api.get_specification", "GET"): EVERYONE,
    ("specifications_api.approve_specification", "POST"): frozenset({QA}),
    ("specifications_api.draft_specification", "POST"): frozenset({QA}),
    ("specifications_api.change_specification", "PATCH"): frozenset({QA}),
    ("specifications_api.change_specification", "PUT"): frozenset({QA}),
    ("specifications_api.differences_specification", "GET"): EVERYONE,
    ("panels_api.list_panels", "GET"): EVERYONE,
    ("panels_api.get_panel", "GET"): EVERYONE,
    ("panels_api.approve_panel", "POST"): frozenset({QA}),
    ("panels_api.draft_panel", "POST"): frozenset({QA}),
    ("panels_api.change_panel", "PATCH"): frozenset({QA}),
    ("panels_api.change_panel", "PUT"): frozenset({QA}),
    ("panels_api.differences_panel", "GET"): EVERYONE,
    ("label_templates_api.list_label_templates", "GET"): EVERYONE,
    ("label_templates_api.get_label_template", "GET"): EVERYONE,
    ("label_templates_api.approve_label_template", "POST"): frozenset({QA}),
    ("label_templates_api.draft_label_template", "POST"): frozenset({QA}),
    ("label_templates_api.change_label_template", "PATCH"): frozenset({QA}),
    ("label_templates_api.change_label_template", "PUT"): frozenset({QA}),
    ("label_templates_api.differences_label_template", "GET"): EVERYONE,
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
    ("protocols_api.draft_protocol", "POST"): frozenset({QA}),
    ("protocols_api.change_protocol", "PATCH"): frozenset({QA}),
    ("protocols_api.change_protocol", "PUT"): frozenset({QA}),
    ("protocols_api.differences_protocol", "GET"): EVERYONE,
    ("labels.unit_labels", "GET"): EVERYONE,
    ("labels.outstanding", "GET"): EVERYONE,
    ("labels.print_log_page", "GET"): EVERYONE,
    ("labels_api.print_log_list", "GET"): EVERYONE,
    ("labels.print_unit", "POST"): frozenset({T, QA}),
    ("labels.lot_labels", "GET"): EVERYONE,
    ("labels.print_lot", "POST"): frozenset({T, QA}),
    ("labels.applied", "POST"): frozenset({T, QA}),
    ("labels.unit_applied", "POST"): frozenset({T, QA}),
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
    ("labels_api.unit_applied", "POST"): frozenset({T, QA}),
    ("labels_api.destroyed", "POST"): frozenset({T, QA}),
    ("labels_api.scan_photo", "POST"): EVERYONE,
    ("dosing.patient_list", "GET"): EVERYONE,
    ("dosing.dose_list_page", "GET"): EVERYONE,
    ("dosing.enrol", "GET"): frozenset({CLIN, INV}),
    ("dosing.enrol", "POST"): frozenset({CLIN, INV}),
    ("dosing.patient", "GET"): EVERYONE,
    ("dosing.record_weight", "POST"): frozenset({CLIN, INV}),
    ("dosing.confirm_weight", "POST"): frozenset({CLIN, INV}),
    ("dosing.plan", "GET"): EVERYONE,
    ("dosing.order_dose", "POST"): frozenset({T}),
    ("dosing.dose", "GET"): EVERYONE,
    ("dosing.second_check", "POST"): frozenset({T, QA}),
    ("dosing.cancel_dose", "POST"): frozenset({T}),
    ("dosing.destroy_dose", "POST"): frozenset({CLIN, INV}),
    ("patients_api.list_patients", "GET"): EVERYONE,
    ("patients_api.enrol", "POST"): frozenset({CLIN, INV}),
    ("patients_api.get_patient", "GET"): EVERYONE,
    ("patients_api.record_weight", "POST"): frozenset({CLIN, INV}),
    ("patients_api.confirm_weight", "POST"): frozenset({CLIN, INV}),
    ("patients_api.list_doses", "GET"): EVERYONE,
    ("patients_api.list_all_doses", "GET"): EVERYONE,
    ("patients_api.plan", "GET"): EVERYONE,
    ("patients_api.order_dose", "POST"): frozenset({T}),
    ("patients_api.get_dose", "GET"): EVERYONE,
    ("patients_api.second_check", "POST"): frozenset({T, QA}),
    ("patients_api.cancel_dose", "POST"): frozenset({T}),
    ("patients_api.destroy_dose", "POST"): frozenset({CLIN, INV}),
    ("dosing.randomization_page", "GET"): EVERYONE,
    ("dosing.generate_schedule", "POST"): frozenset({STAT}),
    ("dosing.import_schedule", "POST"): frozenset({STAT}),
    ("patients_api.randomization_status", "GET"): EVERYONE,
    ("patients_api.generate_schedule", "POST"): frozenset({STAT}),
    ("patients_api.import_schedule", "POST"): frozenset({STAT}),
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
    ("bedside.to_thaw_today", "GET"): EVERYONE,
    ("bedside.decisions_awaited", "GET"): EVERYONE,
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
    ("bedside.acknowledge", "POST"): frozenset({CLIN, INV}),
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
    ("bedside_api.acknowledge", "POST"): frozenset({CLIN, INV}),
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
MATRIX.update(
    {
        ("sites.site_list", "GET"): EVERYONE,
        ("sites.create_site", "POST"): frozenset({ADM}),
        ("sites.site", "GET"): EVERYONE,
        ("sites.update_site", "POST"): frozenset({ADM}),
        ("sites.set_user_sites", "POST"): frozenset({ADM}),
        ("sites_api.Sites", "GET"): EVERYONE,
        ("sites_api.Sites", "POST"): frozenset({ADM}),
        ("sites_api.get_site", "GET"): EVERYONE,
        ("sites_api.update_site", "PUT"): frozenset({ADM}),
        ("sites_api.user_sites", "GET"): frozenset({ADM}),
        ("sites_api.set_user_sites", "PUT"): frozenset({ADM}),
    }
)
MATRIX.update(FOLLOW_UP_MATRIX)
MATRIX.update(ENDPOINTS_MATRIX)
MATRIX.update(RECHECKS_MATRIX)
MATRIX.update(TRIAL_EXPORT_MATRIX)
MATRIX.update(POST_THAW_MATRIX)

#: What the monitor may post: their own session (docs/sites.md). Every other write route of
#: the app is refused to the monitor (403), whatever the table above grants everyone.
MONITOR_POSTS = frozenset({("web.logout", "POST"), ("admin.change_password", "POST")})
#: GETs whose answer is a file (PDF, CSV): people's names cannot be rewritten in them, so
#: the monitor is refused them (docs/sites.md)
MONITOR_NO_FILES = frozenset(
    {
        ("manufacturing.lot_pdf", "GET"),
        ("coi.report_pdf", "GET"),
        ("quality.certificate", "GET"),
        ("release_api.certificate", "GET"),
        ("equipment.certificate", "GET"),
        ("equipment_api.certificate", "GET"),
    }
)
for _key, _allowed in list(MATRIX.items()):
    if _allowed == PUBLIC or MON not in _allowed:
        continue
    if (_key[1] != "GET" and _key not in MONITOR_POSTS) or _key in MONITOR_NO_FILES:
        MATRIX[_key] = _allowed - {MON}

SAMPLE_VALUES = {"integer": "1", "path": "app.css", "default": "X999926000001X"}


# --- the demo site's records ---------------------------------------------------------------------


def _seed_extras(app: Flask) -> None:
    """What the demo does not make: QA recalls the lot that was infused (so the recall pages
    list a patient to notify) and the infused patient has an adverse event; committed by
    ``app`` (the worker's shared app, on the live database), no connection left open."""
    with app.app_context():
        session = db.session
        passwords = {demo.username: demo.password for demo in DEMO_USERS}
        users = {u.username: u for u in session.scalars(select(User))}
        infusion = session.scalars(select(Infusion).order_by(Infusion.id)).first()
        now = utcnow()
        recalls.open_recall(
            session,
            target=RecallTarget.LOT,
            target_id=_lot_of(infusion),
            reason="Permission matrix: a recall on the demo's infused lot",
            user=users["qa"],
            password=passwords["qa"],
            now=now,
        )
        adverse_events.record_adverse_event(
            session,
            infusion.patient,
            adverse_events.AdverseEventReport(
                onset_at=max(infusion.started_at, now - dt.timedelta(minutes=1)),
                description="Mild headache",
                grade=1,
                seriousness="non_serious",
                outcome="recovering",
                infusion_id=infusion.id,
            ),
            actor=users["clinician"],
            now=now,
        )
        seed_export(session, users["investigator"])
        session.commit()
        session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def matrix_snapshot(
    databases: DatabaseFactory, demo_snapshot: str, shared_app: Flask
) -> Iterator[str]:
    """The demo site with the extras, made once per module on the live database and kept as a
    snapshot: each test starts from a copy, on the worker's shared app."""
    databases.restore(demo_snapshot)
    _seed_extras(shared_app)
    snapshot = databases.snapshot()
    yield snapshot
    databases.drop(snapshot)


@pytest.fixture
def database_url(databases: DatabaseFactory, matrix_snapshot: str) -> str:
    """Every test here runs on a fresh copy of the demo site with the extras."""
    return databases.restore(matrix_snapshot)


def _lot_of(infusion: Infusion) -> int:
    """The lot of the infused dose's first bag."""
    bag = infusion.dose_order.bags[0]
    return db.session.scalar(select(CellRecord.lot_id).where(CellRecord.unit_id == bag.unit_id))


def _ids(model: Any, *where: Any) -> list[int]:
    return list(db.session.scalars(select(model.id).where(*where).order_by(model.id)))


def demo_records() -> dict[str, list[Any]]:
    """URL parameter → real values from the demo database, the richest record first (the
    infused patient, its dose, lot, donation and shipment, the recall)."""
    infusion = db.session.scalars(select(Infusion).order_by(Infusion.id)).first()
    order = infusion.dose_order
    lot_id = _lot_of(infusion)
    donation_id = order.dose_unit.donation_id

    def first(value: int, values: list[int]) -> list[int]:
        return [value, *[v for v in values if v != value]]

    tanks = [summary.tank.id for summary in storage.list_tanks(db.session)]
    codes = list(
        db.session.scalars(
            select(IssuedIdentifier.code).where(IssuedIdentifier.kind == kind).limit(2)
        )
        for kind in ("DIN", "COI", "UNIT")
    )
    shipment = db.session.scalars(
        select(Shipment).where(Shipment.id.in_(_ids(Shipment))).order_by(Shipment.id.desc())
    ).first()
    return {
        "check_id": _ids(BedsideCheck)[::-1],
        "code": [code for kind in codes for code in kind],
        "deviation_id": _ids(Deviation),
        "donation_id": first(donation_id, _ids(Donation)),
        "donor_id": _ids(Donor),
        "event_id": _ids(AdverseEvent),
        "infusion_id": _ids(Infusion),
        "kind_name": [kind.value for kind in StepKind],
        "lot_id": first(lot_id, _ids(Lot)),
        "material_lot_id": _ids(MaterialLot),
        "order_id": first(order.id, _ids(DoseOrder)),
        "patient_id": first(infusion.patient_id, _ids(Patient)),
        "print_id": _ids(LabelPrint),
        "product_id": _ids(ProductDefinition),
        "protocol_id": _ids(Protocol),
        "recall_id": _ids(Recall),
        "reschedule_id": _ids(VisitReschedule),
        "qc_result_id": _ids(QcResult),
        "donor_result_id": _ids(DonorTestResult, DonorTestResult.donation_id == donation_id),
        "shipment_id": first(shipment.id, _ids(Shipment)) if shipment else [],
        "specification_id": _ids(Specification),
        "site_id": _site_ids(),
        "panel_id": _ids(DonorTestPanel),
        "template_id": _ids(LabelTemplateDocument),
        "label_template_id": _ids(LabelTemplateDocument),
        "step_id": _ids(ProcessingStep),
        "tank_id": tanks,
        "token_id": [1],  # the decoy's token
        "unit_id": first(order.dose_unit_id, [u for u in _unit_ids()]),
        "user_id": _ids(User)[:1],  # a demo user, never the one checking
        "weight_id": _weight_ids(),
        "visit": [order.visit, "M3"],
        "equipment_id": _ids(Equipment),
        "equipment_event_id": _ids(EquipmentEvent),
        "export_id": _ids(TrialDataExport),
        "filename": ["app.css"],
        "token": ["not-a-confirmation-token"],  # an e-mail confirmation link's secret
    }


def _site_ids() -> list[int]:
    from cellchain.sites.models import Site

    return _ids(Site)


def _unit_ids() -> list[int]:
    from cellchain.chain.models import Unit

    return _ids(Unit)


def _weight_ids() -> list[int]:
    from cellchain.dosing.models import Weight

    return _ids(Weight)


#: trace kind → the parameter naming the records it starts from
TRACE_KINDS = {
    "forward": {
        "donation": "donation_id",
        "lot": "lot_id",
        "unit": "unit_id",
        "material_lot": "material_lot_id",
        "equipment": "equipment_id",
    },
    "back": {"infusion": "infusion_id", "dose": "order_id", "unit": "unit_id"},
}


def _source(rule: Rule, name: str) -> str:
    """Which list of ``demo_records`` fills parameter ``name`` of ``rule``."""
    if name == "lot_id" and "/materials/" in rule.rule:
        return "material_lot_id"
    if name == "result_id":
        return "donor_result_id" if "/donations/" in rule.rule else "qc_result_id"
    return name


def demo_urls(rule: Rule, records: dict[str, list[Any]], *, every: bool) -> list[str]:
    """URLs of ``rule`` with real values: the first (richest) record of each parameter, or
    with ``every`` each record of each parameter in turn (the others at their first)."""
    if rule.endpoint == "docs_static.swagger_file":
        return [rule.build({"filename": "swagger-ui.css"}, append_unknown=False)[1]]
    names = list(rule._converters)
    if "kind" in names:  # a trace: each kind it starts from with that kind's records
        direction = "forward" if "/forward/" in rule.rule else "back"
        urls = []
        for kind, source in TRACE_KINDS[direction].items():
            for value in records[source][: None if every else 1]:
                urls.append(rule.build({"kind": kind, "record_id": value})[1])
        return urls
    firsts = {}
    for name in names:
        values = records[_source(rule, name)]
        firsts[name] = values[0] if values else 999_999
    urls = [rule.build(firsts, append_unknown=False)[1]]
    if every:
        for name in names:
            for value in records[_source(rule, name)][1:]:
                urls.append(rule.build({**firsts, name: value}, append_unknown=False)[1])
    return urls


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


def test_the_demo_site_has_a_record_for_every_url_parameter(app):
    records = demo_records()
    names = {_source(rule, name) for rule, _m in route_methods(app) for name in rule._converters}
    names -= {"kind", "record_id"}
    assert {name for name in names if not records.get(name)} == set()


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


class Clients:
    """Test clients acting as one user: the API's with the bearer token, the pages' logged
    in. One logged-in client serves every page request, GET or not, for as long as its session
    opens pages: after each page request other than a GET its session is checked as the app
    checks it, and once a request ended it (a logout, the user's own password or roles
    changed, …) the next page request gets a client that has just logged in, as every page
    POST here once did (a login per page POST: 1072 of 8559 requests of this module)."""

    def __init__(self, app: Any, user: User, token: str) -> None:
        self.app, self.user, self.token = app, user, token
        self._pages: Any = None
        self._after_write = False  #: the last page request may have ended the session

    def _logged_in(self) -> Any:
        client = self.app.test_client()
        login = client.post(
            "/login", data={"username": self.user.username, "password": TEST_PASSWORD}
        )
        assert login.status_code == 302
        return client

    def _opens_pages(self, client: Any) -> bool:
        """Whether the session cookie of ``client`` still logs ``self.user`` in: the check the
        app makes of every page request's cookie (``web.security.load_session_user``)."""
        cookie = client.get_cookie(self.app.config["SESSION_COOKIE_NAME"])
        if cookie is None:
            return False
        serializer = self.app.session_interface.get_signing_serializer(self.app)
        values = serializer.loads(cookie.value)
        user_id = str(values.get("_user_id", ""))
        if not user_id.isdigit():
            return False
        with self.app.app_context():  # a session of its own, removed with the context
            user = accounts.session_user(
                db.session, user_id=int(user_id), token=values.get(SESSION_TOKEN_KEY)
            )
            return user is not None and user.id == self.user.id

    def for_(self, rule: Rule, method: str) -> Any:
        if rule.rule.startswith("/api/") and not rule.rule.startswith("/api/v1/docs"):
            client = self.app.test_client()
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
            return client
        if self._pages is None or (self._after_write and not self._opens_pages(self._pages)):
            self._pages = self._logged_in()
        self._after_write = method != "GET"  # a GET changes no session: no check after one
        return self._pages


#: Each role alone, and each account holding Administrator with a signing role (possible only
#: from before the rule, or by editing the database): that one reaches exactly the
#: administrator's routes, its signing role suspended (no super-user); and the statistician
#: held with a role that enrols: the statistician suspended (allocation concealment).
ACCOUNTS: list[tuple[frozenset[Role], frozenset[Role]]] = [
    *((frozenset({role}), frozenset({role})) for role in Role),
    *((frozenset({ADM, signing}), frozenset({ADM})) for signing in (QA, QC, INV, STAT)),
    *((frozenset({STAT, enrolling}), frozenset({enrolling})) for enrolling in (CLIN, INV)),
]


@pytest.mark.parametrize(
    ("holds", "acts_as"),
    ACCOUNTS,
    ids=lambda roles: "+".join(sorted(role.value for role in roles)),
)
def test_each_role_reaches_exactly_its_routes(app, make_user, holds, acts_as):
    # Token #1 is a decoy's, so the routes called with token id 1 revoke it and not the token
    # doing the checking; user ids are the demo's, never the checking user's.
    decoy = make_user("decoy", Role.TECHNICIAN)
    accounts.create_token(db.session, user=decoy, now=utcnow(), name="decoy")
    db.session.commit()
    first, *others = sorted(holds)
    user = make_user("matrix-" + "-".join(role.value.replace("_", "-") for role in holds), first)
    db.session.add_all(UserRole(user_id=user.id, role=role.value) for role in others)
    _row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="matrix")
    db.session.commit()
    records = demo_records()
    # GETs first, on the records as the demo left them; then the POSTs, which carry no body
    # and so are refused by the schema or the rules (a 4xx, never a 500).
    ordered = sorted(route_methods(app), key=lambda pair: pair[1] != "GET")
    wrong = []
    clients = Clients(app, user, token)
    for rule, method in ordered:
        allowed = MATRIX[(rule.endpoint, method)]
        if allowed == PUBLIC:
            continue
        client = clients.for_(rule, method)
        for url in demo_urls(rule, records, every=False):
            response = client.open(url, method=method)
            denied = response.status_code == 403
            if denied == bool(acts_as & allowed) or response.status_code in (401, 500):
                wrong.append(f"{method} {url} → {response.status_code}")
    assert wrong == [], f"{sorted(holds)} got the wrong answer from: {wrong}"


def test_every_page_and_api_get_answers_every_demo_record(app, make_user):
    """Each GET with each real record of each of its parameters, as a role allowed to use it:
    an answer below 500 (a 404 only where the record does not belong, e.g. a tank id that is
    not a tank, never a crash)."""
    users: dict[Role, Clients] = {}
    for role in Role:
        user = make_user(f"every-{role.value.replace('_', '-')}", role)
        _row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="every")
        users[role] = Clients(app, user, token)
    db.session.commit()
    records = demo_records()
    crashed = []
    for rule, method in route_methods(app):
        allowed = MATRIX[(rule.endpoint, method)]
        if method != "GET" or allowed == PUBLIC:
            continue
        client = users[sorted(allowed)[0]].for_(rule, method)
        for url in demo_urls(rule, records, every=True):
            response = client.get(url)
            if response.status_code >= 500:
                crashed.append(f"GET {url} → {response.status_code}")
    assert crashed == []
