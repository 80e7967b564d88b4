"""The navigation bar: what each role sees. A link appears only if its permission is held."""

from __future__ import annotations

from dataclasses import dataclass

from cellchain.core.roles import Permission, Role, has_permission


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    permission: Permission


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem("Home", "web.home", Permission.USE_APP),
    NavItem("Donations", "donors.donations", Permission.READ_RECORDS),
    NavItem("Eligibility queue", "donors.eligibility_queue", Permission.DETERMINE_ELIGIBILITY),
    NavItem("Manufacturing", "manufacturing.lots", Permission.READ_RECORDS),
    NavItem("QA queue", "quality.queues", Permission.READ_RECORDS),
    NavItem("Patients", "dosing.patient_list", Permission.READ_RECORDS),
    NavItem("Clinic", "bedside.overview", Permission.READ_RECORDS),
    NavItem("Shipments", "shipments.shipment_list", Permission.READ_RECORDS),
    NavItem("Follow-up", "follow_up.due", Permission.READ_RECORDS),
    NavItem("Adverse events", "follow_up.adverse_events_listing", Permission.READ_RECORDS),
    NavItem("Trial data", "trial_data.exports_page", Permission.EXPORT_TRIAL_DATA),
    NavItem("Recalls", "traceability.recall_list", Permission.READ_RECORDS),
    NavItem("Storage", "storage.tanks", Permission.READ_RECORDS),
    NavItem("Deviations", "storage.deviations_list", Permission.READ_RECORDS),
    NavItem("Identifiers", "admin.identifiers", Permission.READ_RECORDS),
    NavItem("Products", "manufacturing.products", Permission.READ_RECORDS),
    NavItem("Specifications", "quality.specifications", Permission.READ_RECORDS),
    NavItem("Protocols", "dosing.protocols", Permission.READ_RECORDS),
    NavItem("Randomization", "dosing.randomization_page", Permission.MANAGE_RANDOMIZATION),
    NavItem("Audit trail", "admin.audit_review", Permission.READ_AUDIT),
    NavItem("Users", "admin.users", Permission.MANAGE_USERS),
    NavItem("My account", "admin.account", Permission.USE_APP),
    NavItem("API", "api-docs.openapi_swagger_ui", Permission.USE_APP),
)


def items_for(roles: frozenset[Role]) -> list[NavItem]:
    return [item for item in NAV_ITEMS if has_permission(roles, item.permission)]
