"""API of the dosing package: protocols; patients, weights and dose orders (enrol, weigh, plan
and order a dose, second check). Load → command → dump; no rules here."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core import signatures
from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission, has_permission
from cellchain.documents.api import document_api
from cellchain.dosing import dose_list, exceptions, orders, patients, randomization
from cellchain.dosing.commands import (
    cancel_as_user,
    check_as_user,
    confirm_weight_as_user,
    destroy_as_user,
    enrol_as_user,
    generate_schedule_as_user,
    import_schedule_as_user,
    order_as_user,
    weigh_as_user,
    weight_refused,
)
from cellchain.dosing.models import DoseOrder, DoseStatus, Patient, PatientStatus
from cellchain.dosing.schemas import (
    DoseCancelIn,
    DoseDestroyIn,
    DoseDetailOut,
    DoseListOut,
    DoseOrderIn,
    DoseOrderOut,
    DosePlanOut,
    DoseQueryIn,
    EnrolIn,
    PatientDetailOut,
    PatientOut,
    PatientQueryIn,
    PermutedBlockIn,
    ProtocolOut,
    ProtocolQueryIn,
    RandomizationListIn,
    RandomizationStatusOut,
    SecondCheckIn,
    WeightConfirmIn,
    WeightIn,
    WeightOut,
)
from cellchain.dosing.service import PROTOCOLS
from cellchain.extensions import DbSession, db
from cellchain.http import acting_user, now, requires, site_zone, unit_of_work
from cellchain.traceability.models import Recall
from cellchain.traceability.notices import recalls_naming
from cellchain.web.listing import PAGINATION_HEADERS, paged

protocols_api = document_api(
    PROTOCOLS,
    ProtocolOut,
    name="protocol",
    noun="protocol",
    description="Trial protocols",
    one_summary="One protocol version with its parameters and signatures (each marked valid or "
    "not).",
)
patients_api = Blueprint(
    "patients_api", __name__, url_prefix="/api/v1", description="Patients and dose orders"
)
blueprints = (protocols_api, patients_api)


class Shown:
    """A record as an answer dumps it: ``shown`` holds what its schema shows beyond the
    record's own columns, read here from the services; every other attribute reads through
    to the record."""

    def __init__(self, record: object, **shown: object) -> None:
        self._record = record
        self.__dict__.update(shown)

    def __getattr__(self, name: str) -> object:
        return getattr(self._record, name)


def patient_out(patient: Patient, recalls: list[Recall] | None = None) -> Shown:
    """A patient as ``PatientDetailOut`` dumps it (``PatientOut`` shows a part of it); the arm
    and randomization number are null for a role that does not see arms (``SEE_ARMS``)."""
    concealed = (
        {}
        if randomization.may_see_arms(acting_user().roles)
        else {"arm": None, "randomization_number": None}
    )
    return Shown(
        patient,
        **concealed,
        receives_cells=patients.receives_cells(patient),
        visits=patients.schedule_of(db.session, patient, site_zone()),
        recalls=recalls or [],
    )


def dose_out(order: DoseOrder, recalls: list[Recall] | None = None) -> Shown:
    """A dose order as ``DoseDetailOut`` dumps it (``DoseOrderOut`` shows a part of it)."""
    return Shown(
        order,
        signatures=orders.order_signatures(db.session, order),
        recalls=recalls or [],
        actions=sorted([*orders.dose_actions(order), *exceptions.exception_actions(order)]),
    )


@patients_api.get("/patients")
@requires(Permission.READ_RECORDS)
@patients_api.arguments(PatientQueryIn, location="query")
@patients_api.response(200, PatientOut(many=True), headers=PAGINATION_HEADERS)
def list_patients(args: dict[str, Any]) -> Any:
    """Patients by study ID (no names, no record numbers), a page at a time (the
    ``X-Pagination`` header), ``status`` to filter, ``q`` to search the study ID and COI;
    each with the recalls that name them."""
    status = PatientStatus(args["status"]) if "status" in args else None
    page = patients.patients_page(db.session, PageRequest.of(args), status=status)
    named = recalls_naming(db.session, patients=[p.id for p in page.items])
    return paged(page, [patient_out(p, named.patient(p.id)) for p in page.items])


@patients_api.post("/patients")
@requires(Permission.ENROL_PATIENTS)
@patients_api.arguments(EnrolIn)
@patients_api.response(201, PatientDetailOut)
def enrol(data: dict[str, Any]) -> Any:
    """Enrol a patient under a protocol in force (``protocol``; the only one when left out):
    age and checklist checked against that protocol, arm drawn, COI allocated."""
    with unit_of_work() as session:
        patient = enrol_as_user(session, data)
    return patient_out(patient)


@patients_api.get("/patients/<int:patient_id>")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, PatientDetailOut)
def get_patient(patient_id: int) -> Any:
    """A patient with weights and the visit schedule, and the recalls that name them (a
    lookback listing them, or a dose of theirs withdrawn)."""
    patient = patients.get_patient(db.session, patient_id)
    return patient_out(patient, recalls_naming(db.session, patients=[patient.id]).all())


@patients_api.post("/patients/<int:patient_id>/weights")
@requires(Permission.RECORD_WEIGHTS)
@patients_api.arguments(WeightIn)
@patients_api.response(201, WeightOut)
def record_weight(data: dict[str, Any], patient_id: int) -> Any:
    """A body weight (measured now unless said otherwise). Refused outside the protocol's
    plausible bounds, in the future, before birth or before enrolment; recorded unconfirmed
    (``needs_confirmation``) when it changed by the protocol's flag."""
    with unit_of_work(weight_refused(patient_id)) as session:
        weight = weigh_as_user(session, patient_id, data)
    return weight


@patients_api.post("/patients/<int:patient_id>/weights/<int:weight_id>/confirm")
@requires(Permission.RECORD_WEIGHTS)
@patients_api.arguments(WeightConfirmIn)
@patients_api.response(200, WeightOut)
def confirm_weight(data: dict[str, Any], patient_id: int, weight_id: int) -> Any:
    """A second person (not whoever recorded it) countersigns a weight that changed by the
    protocol's flag, with their own password; a dose can then be computed from it."""
    with unit_of_work(weight_refused(patient_id)) as session:
        weight = confirm_weight_as_user(session, patient_id, weight_id, data)
    return weight


@patients_api.get("/patients/<int:patient_id>/doses")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, DoseOrderOut(many=True))
def list_doses(patient_id: int) -> Any:
    patient = patients.get_patient(db.session, patient_id)
    return [dose_out(order) for order in orders.orders_of(db.session, patient)]


@patients_api.get("/patients/<int:patient_id>/doses/<visit>/plan")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, DosePlanOut)
def plan(patient_id: int, visit: str) -> Any:
    """What a dose for this visit would be now, with the working; refused with every reason."""
    patient = patients.get_patient(db.session, patient_id)
    return orders.plan_dose(db.session, patient, visit, now=now(), zone=site_zone())


@patients_api.post("/patients/<int:patient_id>/doses")
@requires(Permission.PREPARE_DOSES)
@patients_api.arguments(DoseOrderIn)
@patients_api.response(201, DoseOrderOut)
def order_dose(data: dict[str, Any], patient_id: int) -> Any:
    """Order the visit's dose and allocate its bags (409 if a bag was taken meanwhile)."""
    with unit_of_work() as session:
        order = order_as_user(session, patient_id, data["visit"], data["override"])
    return dose_out(order)


@patients_api.get("/doses")
@requires(Permission.READ_RECORDS)
@patients_api.arguments(DoseQueryIn, location="query")
@patients_api.response(200, DoseListOut(many=True), headers=PAGINATION_HEADERS)
def list_all_doses(args: dict[str, Any]) -> Any:
    """Every patient's dose orders, newest first, a page at a time (the ``X-Pagination``
    header); ``status`` and ``visit`` to filter, ``q`` to search the study ID, the COI
    identifier and the bag codes; each with when its infusion started and the recalls that
    name it."""
    status = DoseStatus(args["status"]) if "status" in args else None
    page = dose_list.doses_page(
        db.session, PageRequest.of(args), status=status, visit=args.get("visit")
    )
    named = recalls_naming(db.session, doses=[d.order.id for d in page.items])
    return paged(page, [Shown(d, recalls=named.dose(d.order.id)) for d in page.items])


@patients_api.get("/doses/<int:order_id>")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, DoseDetailOut)
def get_dose(order_id: int) -> Any:
    """One dose order, with the recalls that name it."""
    order = orders.get_order(db.session, order_id)
    return dose_out(order, recalls_naming(db.session, doses=[order.id]).dose(order.id))


@patients_api.post("/doses/<int:order_id>/check")
@requires(Permission.CHECK_DOSES)
@patients_api.arguments(SecondCheckIn)
@patients_api.response(200, DoseOrderOut)
def second_check(data: dict[str, Any], order_id: int) -> Any:
    """The independent second check: re-entered volume, scanned bags, password signature."""
    with unit_of_work() as session:
        order = check_as_user(session, order_id, data)
    return dose_out(order)


@patients_api.post("/doses/<int:order_id>/cancel")
@requires(Permission.PREPARE_DOSES)
@patients_api.arguments(DoseCancelIn)
@patients_api.response(200, DoseOrderOut)
def cancel_dose(data: dict[str, Any], order_id: int) -> Any:
    """Cancel a dose order none of whose units left the lab: its bags go back to available.
    Signed with a reason; the visit may then have a replacement dose."""
    with unit_of_work() as session:
        order = cancel_as_user(session, order_id, data)
    return dose_out(order)


@patients_api.post("/doses/<int:order_id>/destroy")
@requires(Permission.ADMINISTER_DOSES)
@patients_api.arguments(DoseDestroyIn)
@patients_api.response(200, DoseOrderOut)
def destroy_dose(data: dict[str, Any], order_id: int) -> Any:
    """Destroy a prepared dose (in the lab, shipped or thawed): its units are discarded.
    A reason, the actor's signature and a witness's; the visit may then have a replacement."""
    with unit_of_work() as session:
        order = destroy_as_user(session, order_id, data)
    return dose_out(order)


def randomization_out(session: DbSession, code: str | None) -> Shown:
    """A randomized protocol's randomization as ``RandomizationStatusOut`` dumps it: counts
    for everyone, every slot with its arm for the statistician only."""
    protocol = patients.randomized_protocol(session, code, at=now())
    view = randomization.status(session, protocol)
    schedule = (
        Shown(view.schedule, signatures=signatures.manifest(session, view.schedule))
        if view.schedule is not None
        else None
    )
    slots = (
        list(view.schedule.slots)
        if view.schedule is not None
        and has_permission(acting_user().roles, Permission.MANAGE_RANDOMIZATION)
        else None
    )
    return Shown(
        view,
        protocol=protocol.code,
        remaining=view.remaining,
        schedule=schedule,
        slots=slots,
    )


@patients_api.get("/randomization")
@requires(Permission.READ_RECORDS)
@patients_api.arguments(ProtocolQueryIn, location="query")
@patients_api.response(200, RandomizationStatusOut)
def randomization_status(query: dict[str, Any]) -> Any:
    """A randomized protocol's schedule (``?protocol=CODE``; the only one when left out):
    method, signature, used and remaining slots. The slots and their arms are listed for the
    trial statistician only (allocation concealed)."""
    return randomization_out(db.session, query.get("protocol"))


@patients_api.post("/randomization/permuted-block")
@requires(Permission.MANAGE_RANDOMIZATION)
@patients_api.arguments(PermutedBlockIn)
@patients_api.response(201, RandomizationStatusOut)
def generate_schedule(data: dict[str, Any]) -> Any:
    """Generate the permuted-block schedule from the statistician's seed (stored only as its
    SHA-256), signed with their password. Replaces an active schedule none of whose slots is
    used (409 once one is)."""
    with unit_of_work() as session:
        generate_schedule_as_user(session, data)
    return randomization_out(db.session, data.get("protocol"))


@patients_api.post("/randomization/import")
@requires(Permission.MANAGE_RANDOMIZATION)
@patients_api.arguments(RandomizationListIn)
@patients_api.response(201, RandomizationStatusOut)
def import_schedule(data: dict[str, Any]) -> Any:
    """Import a randomization list (CSV: randomization number, arm), signed with the
    password; refused when an arm is unknown, a number repeated, or the counts do not fit
    the planned enrolment and ratio."""
    with unit_of_work() as session:
        import_schedule_as_user(session, data)
    return randomization_out(db.session, data.get("protocol"))
