"""The navigation bar: what each role sees. A link appears only if its permission is held."""

from __future__ import annotations

from dataclasses import dataclass

from cellchain.core.i18n import LazyText, lazy
from cellchain.core.roles import Permission, Role, has_permission


@dataclass(frozen=True)
class NavItem:
    label: LazyText
    endpoint: str
    permission: Permission


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem(lazy("Home"), "web.home", Permission.USE_APP),
    NavItem(lazy("Notifications"), "notifications.notification_list", Permission.USE_APP),
    NavItem(lazy("Donations"), "donors.donations", Permission.READ_RECORDS),
    NavItem(
        lazy("Eligibility queue"), "donors.eligibility_queue", Permission.DETERMINE_ELIGIBILITY
    ),
    NavItem(lazy("Manufacturing"), "manufacturing.lots", Permission.READ_RECORDS),
    NavItem(lazy("Vessels in culture"), "vessels.vessels_in_culture", Permission.READ_RECORDS),
    NavItem(lazy("Units"), "chain.units", Permission.READ_RECORDS),
    NavItem(lazy("QA queue"), "quality.queues", Permission.READ_RECORDS),
    NavItem(lazy("Patients"), "dosing.patient_list", Permission.READ_RECORDS),
    NavItem(lazy("Doses"), "dosing.dose_list_page", Permission.READ_RECORDS),
    NavItem(lazy("Clinic"), "bedside.overview", Permission.READ_RECORDS),
    NavItem(lazy("Shipments"), "shipments.shipment_list", Permission.READ_RECORDS),
    NavItem(lazy("Print log"), "labels.print_log_page", Permission.READ_RECORDS),
    NavItem(lazy("Follow-up"), "follow_up.due", Permission.READ_RECORDS),
    NavItem(lazy("Adverse events"), "follow_up.adverse_events_listing", Permission.READ_RECORDS),
    NavItem(lazy("Trial data"), "trial_data.exports_page", Permission.EXPORT_TRIAL_DATA),
    NavItem(lazy("Recalls"), "traceability.recall_list", Permission.READ_RECORDS),
    NavItem(lazy("Storage"), "storage.tanks", Permission.READ_RECORDS),
    NavItem(lazy("Deviations"), "storage.deviations_list", Permission.READ_RECORDS),
    NavItem(lazy("Identifiers"), "admin.identifiers", Permission.READ_RECORDS),
    NavItem(lazy("Sites"), "sites.site_list", Permission.READ_RECORDS),
    NavItem(lazy("Products"), "manufacturing.products", Permission.READ_RECORDS),
    NavItem(lazy("Specifications"), "quality.specifications", Permission.READ_RECORDS),
    NavItem(lazy("Donor test panels"), "panels.panels", Permission.READ_RECORDS),
    NavItem(lazy("Label templates"), "label_templates.templates", Permission.READ_RECORDS),
    NavItem(lazy("Protocols"), "dosing.protocols", Permission.READ_RECORDS),
    NavItem(lazy("Randomization"), "dosing.randomization_page", Permission.MANAGE_RANDOMIZATION),
    NavItem(lazy("Audit trail"), "admin.audit_review", Permission.READ_AUDIT),
    NavItem(lazy("Users"), "admin.users", Permission.MANAGE_USERS),
    NavItem(lazy("My account"), "admin.account", Permission.USE_APP),
    NavItem(lazy("API"), "api-docs.openapi_swagger_ui", Permission.USE_APP),
)


def items_for(roles: frozenset[Role]) -> list[NavItem]:
    return [item for item in NAV_ITEMS if has_permission(roles, item.permission)]
