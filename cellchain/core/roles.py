"""Roles (DOMAIN.md §6) and what each may do.

A user holds one or more roles. Routes ask for a *permission*, never a role, so that the
table below is the one place that says who may do what; the README prints it for sites.
There is no super-user: an administrator manages accounts but cannot release a lot, never
holds a signing role (QA, QC analyst, investigator, statistician) as well, and never changes
their own roles. The statistician, who sees the unused randomization slots, never holds a role
that enrols patients (allocation concealment).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from cellchain.core.i18n import LazyText, _, lazy
from cellchain.errors import PermissionDenied

if TYPE_CHECKING:
    from cellchain.core.models import User


class Role(enum.StrEnum):
    """A job a person does at the site."""

    TECHNICIAN = "technician"
    QC_ANALYST = "qc_analyst"
    QA = "qa"
    CLINICIAN = "clinician"
    INVESTIGATOR = "investigator"
    STATISTICIAN = "statistician"
    ADMIN = "admin"
    #: a sponsor's monitor: reads pseudonymised records of every site, changes nothing
    MONITOR = "monitor"

    @property
    def label(self) -> str:
        """The role's name in the language of the moment."""
        return str(ROLE_LABELS[self])


ROLE_LABELS: dict[Role, LazyText] = {
    Role.TECHNICIAN: lazy("GMP lab technician"),
    Role.QC_ANALYST: lazy("QC analyst"),
    Role.QA: lazy("Quality assurance"),
    Role.CLINICIAN: lazy("Clinician"),
    Role.INVESTIGATOR: lazy("Investigator"),
    Role.STATISTICIAN: lazy("Trial statistician"),
    Role.ADMIN: lazy("Administrator"),
    Role.MONITOR: lazy("Monitor (sponsor)"),
}


class Permission(enum.StrEnum):
    """Something a route lets a user do."""

    USE_APP = "use_app"  #: any active user: home, scan, own account and API tokens
    READ_RECORDS = "read_records"  #: identifier pages, protocols
    ALLOCATE_IDENTIFIERS = "allocate_identifiers"  #: reserve DINs for label stock
    READ_AUDIT = "read_audit"  #: audit trail pages, API and CSV export
    VERIFY_AUDIT = "verify_audit"  #: run the tamper-evidence check
    MANAGE_USERS = "manage_users"  #: create, deactivate, unlock, change roles
    MANAGE_SITES = "manage_sites"  #: create and edit sites, set users' site memberships
    SIGN_PROTOCOL = "sign_protocol"  #: approve a protocol version with an e-signature
    SIGN_PRODUCT = "sign_product"  #: approve a product definition version with an e-signature
    SIGN_SPECIFICATION = "sign_specification"  #: approve a release specification version
    REGISTER_DONATIONS = "register_donations"  #: register, receive, start processing
    RECORD_CUSTODY = "record_custody"  #: receive, move, hand off and scan units
    PROCESS_UNITS = "process_units"  #: make new units from parents (lineage)
    RECORD_DONOR_TESTS = "record_donor_tests"  #: enter and correct infectious-disease results
    DETERMINE_ELIGIBILITY = "determine_eligibility"  #: e-signed donor eligibility
    RECORD_PROCESSING = "record_processing"  #: record processing steps of the batch record
    MANAGE_MATERIALS = "manage_materials"  #: receive material lots
    REGISTER_EQUIPMENT = "register_equipment"  #: register equipment, change its intervals
    RECORD_CALIBRATIONS = "record_calibrations"  #: record equipment calibration, maintenance
    RELEASE_MATERIALS = "release_materials"  #: release a material lot for use
    RECORD_STORAGE = "record_storage"  #: put units into LN2 storage, record tank readings
    OPEN_DEVIATIONS = "open_deviations"  #: open a deviation
    CLOSE_DEVIATIONS = "close_deviations"  #: close a deviation with an e-signature
    TAKE_QC_SAMPLES = "take_qc_samples"  #: draw labelled QC sample tubes from a lot's bags
    RECORD_QC_RESULTS = "record_qc_results"  #: record release-test results of a lot
    INVALIDATE_QC_RESULTS = "invalidate_qc_results"  #: set a result aside, e-signed, for a retest
    DISPOSE_LOTS = "dispose_lots"  #: release or reject a lot with an e-signature
    PRINT_LABELS = "print_labels"  #: print and reprint (with a reason) unit and lot labels
    RECONCILE_LABELS = "reconcile_labels"  #: count printed labels applied or destroyed
    ENROL_PATIENTS = "enrol_patients"  #: enrol trial patients (checklist, COI; arm drawn)
    MANAGE_RANDOMIZATION = "manage_randomization"  #: generate or import the signed schedule
    SEE_ARMS = "see_arms"  #: see a patient's arm and randomization number (single blind)
    RECORD_WEIGHTS = "record_weights"  #: record a patient's body weight
    PREPARE_DOSES = "prepare_doses"  #: order a dose and allocate its bags
    CHECK_DOSES = "check_doses"  #: second-check a dose prepared by someone else, e-signed
    SHIP_DOSES = "ship_doses"  #: dispatch prepared doses from the lab in a shipment
    RECEIVE_SHIPMENTS = "receive_shipments"  #: receive a shipment at the clinic
    DECIDE_HOLDS = "decide_holds"  #: accept or reject a shipment held at receipt, e-signed
    THAW_DOSES = "thaw_doses"  #: start and complete the thaw of a bag by scanning it
    ADMINISTER_DOSES = "administer_doses"  #: bedside check, two-person sign-off, infusion
    RECORD_ADVERSE_EVENTS = "record_adverse_events"  #: record adverse events and outcomes
    RECORD_FOLLOW_UP = "record_follow_up"  #: record follow-up evaluations done
    MANAGE_RECALLS = "manage_recalls"  #: open and close recalls with an e-signature
    NOTIFY_PATIENTS = "notify_patients"  #: record that an exposed patient was notified
    EXPORT_TRIAL_DATA = "export_trial_data"  #: export the trial's data (ODM, CSV), unblinded
    READ_TRIAL_SUMMARY = "read_trial_summary"  #: the DSMB summary by arm (unblinded)


ALL_ROLES = frozenset(Role)
#: Roles that may record something: every role but the read-only monitor (issue 22).
WRITING_ROLES = ALL_ROLES - {Role.MONITOR}
#: The people who work at the bedside: clinicians and the investigators who are physicians.
CLINIC_STAFF = frozenset({Role.CLINICIAN, Role.INVESTIGATOR})

GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.USE_APP: ALL_ROLES,
    Permission.READ_RECORDS: ALL_ROLES,
    Permission.ALLOCATE_IDENTIFIERS: frozenset({Role.TECHNICIAN, Role.ADMIN}),
    Permission.READ_AUDIT: frozenset({Role.QA, Role.ADMIN, Role.INVESTIGATOR}),
    Permission.VERIFY_AUDIT: frozenset({Role.QA}),
    Permission.MANAGE_USERS: frozenset({Role.ADMIN}),
    Permission.MANAGE_SITES: frozenset({Role.ADMIN}),
    Permission.SIGN_PROTOCOL: frozenset({Role.QA}),
    Permission.SIGN_PRODUCT: frozenset({Role.QA}),
    Permission.SIGN_SPECIFICATION: frozenset({Role.QA}),
    Permission.REGISTER_DONATIONS: frozenset({Role.TECHNICIAN}),
    Permission.RECORD_CUSTODY: frozenset({Role.TECHNICIAN, Role.CLINICIAN}),
    Permission.PROCESS_UNITS: frozenset({Role.TECHNICIAN}),
    Permission.RECORD_DONOR_TESTS: frozenset({Role.QC_ANALYST}),
    Permission.DETERMINE_ELIGIBILITY: frozenset({Role.QA}),
    Permission.RECORD_PROCESSING: frozenset({Role.TECHNICIAN}),
    Permission.MANAGE_MATERIALS: frozenset({Role.TECHNICIAN, Role.QA}),
    # intervals and exemptions from calibration are quality decisions (review 1, item 14)
    Permission.REGISTER_EQUIPMENT: frozenset({Role.QA}),
    Permission.RECORD_CALIBRATIONS: frozenset({Role.TECHNICIAN, Role.QA}),
    Permission.RELEASE_MATERIALS: frozenset({Role.QA}),
    Permission.RECORD_STORAGE: frozenset({Role.TECHNICIAN}),
    Permission.OPEN_DEVIATIONS: WRITING_ROLES,
    Permission.CLOSE_DEVIATIONS: frozenset({Role.QA}),
    Permission.TAKE_QC_SAMPLES: frozenset({Role.TECHNICIAN, Role.QC_ANALYST}),
    Permission.RECORD_QC_RESULTS: frozenset({Role.QC_ANALYST}),
    Permission.INVALIDATE_QC_RESULTS: frozenset({Role.QA}),
    Permission.DISPOSE_LOTS: frozenset({Role.QA}),
    Permission.PRINT_LABELS: frozenset({Role.TECHNICIAN, Role.QA}),
    Permission.RECONCILE_LABELS: frozenset({Role.TECHNICIAN, Role.QA}),
    Permission.ENROL_PATIENTS: frozenset({Role.CLINICIAN, Role.INVESTIGATOR}),
    Permission.MANAGE_RANDOMIZATION: frozenset({Role.STATISTICIAN}),
    Permission.SEE_ARMS: frozenset({Role.QA, Role.STATISTICIAN, *CLINIC_STAFF}),
    Permission.RECORD_WEIGHTS: frozenset({Role.CLINICIAN, Role.INVESTIGATOR}),
    Permission.PREPARE_DOSES: frozenset({Role.TECHNICIAN}),
    Permission.CHECK_DOSES: frozenset({Role.TECHNICIAN, Role.QA}),
    Permission.SHIP_DOSES: frozenset({Role.TECHNICIAN}),
    Permission.RECEIVE_SHIPMENTS: CLINIC_STAFF,
    Permission.DECIDE_HOLDS: frozenset({Role.QA}),
    Permission.THAW_DOSES: CLINIC_STAFF,
    Permission.ADMINISTER_DOSES: CLINIC_STAFF,
    Permission.RECORD_ADVERSE_EVENTS: CLINIC_STAFF,
    Permission.RECORD_FOLLOW_UP: CLINIC_STAFF,
    Permission.MANAGE_RECALLS: frozenset({Role.QA}),
    Permission.NOTIFY_PATIENTS: frozenset({Role.QA, *CLINIC_STAFF}),
    Permission.EXPORT_TRIAL_DATA: frozenset({Role.INVESTIGATOR, Role.STATISTICIAN}),
    Permission.READ_TRIAL_SUMMARY: frozenset({Role.INVESTIGATOR, Role.STATISTICIAN}),
}


#: Roles whose holders sign the records that release product to patients (DOMAIN.md §7).
#: The statistician signs the randomization schedule, which decides who is given cells.
SIGNING_ROLES = frozenset({Role.QA, Role.QC_ANALYST, Role.INVESTIGATOR, Role.STATISTICIAN})


def role_conflict(roles: set[Role] | frozenset[Role]) -> frozenset[Role]:
    """The roles of ``roles`` that are suspended because ``roles`` combines what one account
    never holds, or an empty set.

    Rules: administration and a signing role are never held by one account (no super-user),
    or an administrator could give an account QA and sign as QA; and managing the
    randomization (which shows the unused slots' arms) is never held with enrolling patients,
    or the enroller would know the next patient's arm before enrolling them (allocation
    concealment, issue 19). An account holding both (made before the rule, or changed in the
    database) has the signing roles, and the randomization role, suspended.
    """
    roles = frozenset(roles)
    suspended = roles & SIGNING_ROLES if Role.ADMIN in roles else frozenset()
    if roles & GRANTS[Permission.ENROL_PATIENTS]:
        suspended |= roles & GRANTS[Permission.MANAGE_RANDOMIZATION]
    if Role.MONITOR in roles:  # the read-only monitor is never held with a role that writes
        suspended |= roles - {Role.MONITOR}
    return suspended


def knows_the_schedule(roles: set[Role] | frozenset[Role]) -> bool:
    """Whether ``roles`` include one that manages the randomization (suspended or not): such
    an account has seen the unused slots' arms and never enrols nor draws (defence in depth
    behind ``role_conflict``)."""
    return bool(frozenset(roles) & GRANTS[Permission.MANAGE_RANDOMIZATION])


def conflict_explanation(roles: set[Role] | frozenset[Role]) -> str:
    """Why ``roles``' suspended roles grant nothing, for messages and the account pages."""
    roles = frozenset(roles)
    suspended = role_conflict(roles)
    parts = []
    if Role.ADMIN in roles and suspended & SIGNING_ROLES:
        names = ", ".join(sorted(str(role.label) for role in suspended & SIGNING_ROLES))
        parts.append(
            _(
                "Administrator is held together with %(names)s: an account with both signs "
                "nothing until another administrator removes one of them",
                names=names,
            )
        )
    if Role.MONITOR in roles and suspended - {Role.MONITOR}:
        parts.append(
            _(
                "Monitor is held together with %(names)s: a monitor changes nothing, so the "
                "other roles grant nothing until an administrator removes one of them",
                names=", ".join(sorted(str(r.label) for r in roles - {Role.MONITOR})),
            )
        )
    randomizing = suspended & GRANTS[Permission.MANAGE_RANDOMIZATION]
    enrolling = roles & GRANTS[Permission.ENROL_PATIENTS]
    if randomizing and enrolling:
        parts.append(
            _(
                "%(randomizing)s is held together with %(enrolling)s: whoever sees the unused "
                "randomization slots never enrols, so the account signs nothing and enrols "
                "nobody until an administrator removes one of them",
                randomizing=", ".join(sorted(str(r.label) for r in randomizing)),
                enrolling=", ".join(sorted(str(r.label) for r in enrolling)),
            )
        )
    return _("; ").join(parts) + _(".") if parts else ""


def conflict_title(roles: set[Role] | frozenset[Role]) -> str:
    """The title of a refusal for an account whose roles conflict."""
    if Role.MONITOR in roles and len(roles) > 1:
        return _("The monitor's role is never combined with another")
    if Role.ADMIN in roles and frozenset(roles) & SIGNING_ROLES:
        return _("Administration and signing roles are never combined")
    return _("Randomization and enrolment are never combined")


def effective_roles(roles: set[Role] | frozenset[Role]) -> frozenset[Role]:
    """The roles that grant permissions: an account that holds a combination ``role_conflict``
    refuses (one made before the rule, or changed in the database) has those roles suspended
    until an administrator removes one of the two."""
    return frozenset(roles) - role_conflict(roles)


def roles_allowed(permission: Permission) -> frozenset[Role]:
    """The roles that hold ``permission``."""
    return GRANTS[permission]


def has_permission(roles: set[Role] | frozenset[Role], permission: Permission) -> bool:
    """Whether any of ``roles`` grants ``permission`` (suspended signing roles grant none)."""
    return bool(GRANTS[permission] & effective_roles(roles))


def holds(roles: set[Role] | frozenset[Role], allowed: Permission | Role) -> bool:
    """Whether ``roles`` grant ``allowed``: a permission of ``GRANTS``, or one role by name
    (the investigator's dose override, which has no route of its own). Suspended signing
    roles grant neither."""
    if isinstance(allowed, Permission):
        return has_permission(roles, allowed)
    return allowed in effective_roles(roles)


def require(user: User, allowed: Permission | Role) -> None:
    """Refuse with ``PermissionDenied`` (403) unless ``user``'s effective roles grant
    ``allowed``.

    The routes check the same table (``http.requires``); services that record a signed act
    call this themselves (``signatures.sign`` always does), so a CLI, a script or a future
    route cannot skip the rule by calling the service directly.
    """
    if holds(user.roles, allowed):
        return
    suspended = role_conflict(user.roles)
    granted = GRANTS[allowed] if isinstance(allowed, Permission) else frozenset({allowed})
    if suspended & granted:
        raise PermissionDenied(
            _(
                "%(name)s's roles are suspended: %(why)s",
                name=user.full_name,
                why=conflict_explanation(user.roles),
            ),
            title=conflict_title(user.roles),
        )
    who = _(" or ").join(sorted(str(role.label) for role in granted))
    held = ", ".join(sorted(str(role.label) for role in user.roles)) or _("no role")
    raise PermissionDenied(
        _(
            "Only %(who)s may do this (%(what)s); %(name)s holds %(held)s.",
            who=who,
            what=allowed.value,
            name=user.full_name,
            held=held,
        )
    )
