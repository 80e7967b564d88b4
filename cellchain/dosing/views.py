"""Pages of the dosing package: protocols; the patient list, enrolment with the checklist, the
patient (arm, COI, visits, weights, doses), the dose plan and order, and the second check."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from cellchain.core import signatures
from cellchain.core.i18n import _, lazy
from cellchain.core.roles import Permission, has_permission
from cellchain.documents import versioning
from cellchain.documents.views import add_document_pages
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
from cellchain.dosing.models import DoseOrder, DoseStatus, Patient, PatientStatus, Protocol, Sex
from cellchain.dosing.schemas import (
    DoseCancelIn,
    DoseDestroyIn,
    DoseOrderIn,
    DoseQueryIn,
    EnrolIn,
    PatientQueryIn,
    PermutedBlockIn,
    RandomizationListIn,
    SecondCheckIn,
    WeightConfirmIn,
    WeightIn,
)
from cellchain.dosing.service import PROTOCOLS
from cellchain.errors import DomainError
from cellchain.extensions import DbSession, db
from cellchain.http import acting_user, now, requires, site_zone, unit_of_work
from cellchain.manufacturing.models import ProductDefinition
from cellchain.sites.service import sites_of
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form, refusal_context
from cellchain.web.listing import page_request
from cellchain.web.resolve import register_record_page

if TYPE_CHECKING:  # annotations only: dosing does not import the clinic, built on it
    from cellchain.clinic.bedside.record import DoseAtClinic
    from cellchain.clinic.models import Infusion

blueprint = Blueprint("dosing", __name__)

register_record_page("patient", lambda entity_id: url_for("dosing.patient", patient_id=entity_id))

add_document_pages(
    blueprint,
    PROTOCOLS,
    name="protocol",
    heading=lazy("Trial protocols"),
    what=lazy("protocol"),
    template="dosing/protocol.html",
)


@blueprint.context_processor
def _product_pages() -> dict[str, Any]:
    """On a protocol version's page: each product definition in force now, by code, with the
    address of its page (the products the protocol names link to it)."""
    if request.endpoint != "dosing.protocol":
        return {}
    ids = versioning.in_force_ids(db.session, ProductDefinition, at=now())
    found = db.session.execute(
        select(ProductDefinition.code, ProductDefinition.id).where(ProductDefinition.id.in_(ids))
    ).all()
    return {
        "product_pages": {
            code: url_for("manufacturing.product", product_id=found_id) for code, found_id in found
        }
    }


@dataclass(frozen=True)
class ClinicReads:
    """What the clinic shows on dosing's pages: each visit's infusion on the patient page, and
    what became of a dose after the lab on the dose page. The clinic is built on dosing, so
    dosing does not import it: ``cellchain.wiring`` hands these in (``show_clinic``)."""

    infusions_of: Callable[[DbSession, Patient], Sequence[Infusion]]
    dose_at_clinic: Callable[[DbSession, DoseOrder], DoseAtClinic]


def show_clinic(app: Flask, reads: ClinicReads) -> None:
    """Show the clinic's reads on ``app``'s patient and dose pages."""
    app.extensions[ClinicReads.__name__] = reads


def _clinic() -> ClinicReads:
    return cast(ClinicReads, current_app.extensions[ClinicReads.__name__])


@blueprint.get("/patients")
@requires(Permission.READ_RECORDS)
def patient_list() -> ResponseReturnValue:
    query, page_asked, notes = page_request(PatientQueryIn(), request.args)
    status = PatientStatus(query["status"]) if "status" in query else None
    page = patients.patients_page(db.session, page_asked, status=status)
    found = page.items
    doses = orders.orders_of_patients(db.session, [p.id for p in found])
    return render_template(
        "dosing/patients.html",
        patients=found,
        page=page,
        notes=notes,
        status_options=[(status.value, status.label) for status in PatientStatus],
        doses=doses,
        recalls=recalls_naming(
            db.session,
            patients=[p.id for p in found],
            doses=[o.id for listed in doses.values() for o in listed],
        ),
    )


@blueprint.get("/doses")
@requires(Permission.READ_RECORDS)
def dose_list_page() -> ResponseReturnValue:
    """Every patient's dose orders, newest first, paged, sorted, filtered and searched."""
    query, page_asked, notes = page_request(DoseQueryIn(), request.args)
    status = DoseStatus(query["status"]) if "status" in query else None
    page = dose_list.doses_page(db.session, page_asked, status=status, visit=query.get("visit"))
    return render_template(
        "dosing/doses.html",
        doses=page.items,
        page=page,
        notes=notes,
        status_options=[(status.value, status.label) for status in DoseStatus],
        visit_options=[(code, code) for code in dose_list.visit_codes(db.session, at=now())],
        recalls=recalls_naming(db.session, doses=[d.order.id for d in page.items]),
    )


@blueprint.route("/patients/enrol", methods=["GET", "POST"])
@requires(Permission.ENROL_PATIENTS)
def enrol() -> ResponseReturnValue:
    """Enrol under a protocol in force: ``?protocol=CODE`` (the form's hidden field on
    posting); the only one when one is in force, a choice among them when several are."""
    in_force = patients.protocols_in_force(db.session, at=now())
    asked = request.form if request.method == "POST" else request.args
    code = asked.get("protocol")
    if not code and len(in_force) > 1:
        return render_template("dosing/enrol.html", protocol=None, choices=in_force)
    protocol = patients.chosen_protocol(db.session, code, in_force, at=now())
    if request.method == "GET":
        return _enrol_page(protocol, choices=in_force)
    try:
        form = _enrolment_form(request.form, protocol)
        form["protocol"] = protocol.code
        data = load_form(EnrolIn(), form)
        with unit_of_work() as session:
            patient = enrol_as_user(session, data)
            patient_id, message = (
                patient.id,
                _(
                    "%(study_id)s enrolled; COI %(coi)s.",
                    study_id=patient.study_id,
                    coi=patient.coi,
                ),
            )
    except DomainError as error:
        return _enrol_page(protocol, error, choices=in_force)
    flash(message, "success")
    return redirect(url_for("dosing.patient", patient_id=patient_id))


@blueprint.get("/patients/<int:patient_id>")
@requires(Permission.READ_RECORDS)
def patient(patient_id: int) -> ResponseReturnValue:
    return _patient_page(patients.get_patient(db.session, patient_id))


@blueprint.post("/patients/<int:patient_id>/weights")
@requires(Permission.RECORD_WEIGHTS)
def record_weight(patient_id: int) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)
    try:
        data = load_form(WeightIn(), request.form)
        with unit_of_work(weight_refused(patient_id)) as session:
            weight = weigh_as_user(session, patient_id, data)
            message = _("Weight %(weight)s kg recorded.", weight=format(weight.weight_kg, "g"))
            if weight.needs_confirmation:
                message += " " + _(
                    "It changed %(change)s %% from %(reference)s: no dose is computed from it"
                    " until the patient is weighed again or a second person countersigns it.",
                    change=format(weight.change_percent, "+.1f"),
                    reference=weight.change_reference,
                )
    except DomainError as error:
        return _patient_page(patients.get_patient(db.session, patient_id), error, "weight")
    flash(message, "info" if weight.needs_confirmation else "success")
    return redirect(url_for("dosing.patient", patient_id=patient_id))


@blueprint.post("/patients/<int:patient_id>/weights/<int:weight_id>/confirm")
@requires(Permission.RECORD_WEIGHTS)
def confirm_weight(patient_id: int, weight_id: int) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)
    try:
        data = load_form(WeightConfirmIn(), request.form)
        with unit_of_work(weight_refused(patient_id)) as session:
            weight = confirm_weight_as_user(session, patient_id, weight_id, data)
            message = _(
                "Weight %(weight)s kg confirmed by your countersignature.",
                weight=format(weight.weight_kg, "g"),
            )
    except DomainError as error:
        return _patient_page(patients.get_patient(db.session, patient_id), error, "confirm")
    flash(message, "success")
    return redirect(url_for("dosing.patient", patient_id=patient_id))


@blueprint.get("/patients/<int:patient_id>/doses/<visit>")
@requires(Permission.READ_RECORDS)
def plan(patient_id: int, visit: str) -> ResponseReturnValue:
    return _plan_page(patients.get_patient(db.session, patient_id), visit)


@blueprint.post("/patients/<int:patient_id>/doses/<visit>")
@requires(Permission.PREPARE_DOSES)
def order_dose(patient_id: int, visit: str) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)
    try:
        data = load_form(DoseOrderIn(), _order_form(request.form, visit))
        with unit_of_work() as session:
            order = order_as_user(session, patient_id, visit, data["override"])
            order_id = order.id
    except DomainError as error:
        return _plan_page(patients.get_patient(db.session, patient_id), visit, error)
    flash(
        _("Dose ordered and its bags allocated; it now needs an independent second check."),
        "success",
    )
    return redirect(url_for("dosing.dose", order_id=order_id))


@blueprint.get("/doses/<int:order_id>")
@requires(Permission.READ_RECORDS)
def dose(order_id: int) -> ResponseReturnValue:
    return _dose_page(orders.get_order(db.session, order_id))


@blueprint.post("/doses/<int:order_id>/check")
@requires(Permission.CHECK_DOSES)
def second_check(order_id: int) -> ResponseReturnValue:
    orders.get_order(db.session, order_id)
    form = MultiDict(request.form)
    form.setlist("bags", [line for line in form.get("bags", "").splitlines() if line.strip()])
    try:
        data = load_form(SecondCheckIn(), form, lists=("bags",))
        with unit_of_work() as session:
            check_as_user(session, order_id, data)
    except DomainError as error:
        return _dose_page(orders.get_order(db.session, order_id), error)
    flash(_("Second check signed: the dose is prepared and its label can be printed."), "success")
    return redirect(url_for("dosing.dose", order_id=order_id))


@blueprint.post("/doses/<int:order_id>/cancel")
@requires(Permission.PREPARE_DOSES)
def cancel_dose(order_id: int) -> ResponseReturnValue:
    orders.get_order(db.session, order_id)
    try:
        data = load_form(DoseCancelIn(), MultiDict(request.form))
        with unit_of_work() as session:
            cancel_as_user(session, order_id, data)
    except DomainError as error:
        return _dose_page(orders.get_order(db.session, order_id), error)
    flash(_("Dose order cancelled; the visit may have a replacement dose."), "success")
    return redirect(url_for("dosing.dose", order_id=order_id))


@blueprint.post("/doses/<int:order_id>/destroy")
@requires(Permission.ADMINISTER_DOSES)
def destroy_dose(order_id: int) -> ResponseReturnValue:
    orders.get_order(db.session, order_id)
    try:
        data = load_form(DoseDestroyIn(), MultiDict(request.form))
        with unit_of_work() as session:
            destroy_as_user(session, order_id, data)
    except DomainError as error:
        return _dose_page(orders.get_order(db.session, order_id), error)
    flash(_("Dose destroyed; the visit may have a replacement dose."), "success")
    return redirect(url_for("dosing.dose", order_id=order_id))


# --- pages --------------------------------------------------------------------------------------


def _enrol_page(
    protocol: Protocol, error: DomainError | None = None, *, choices: Sequence[Protocol] = ()
) -> ResponseReturnValue:
    randomized = patients.is_randomized(protocol.parameters)
    return (
        render_template(
            "dosing/enrol.html",
            **refusal_context(
                error,
                protocol=protocol,
                choices=choices,
                sexes=[{"value": s.value, "label": s.label} for s in Sex],
                # the clinical sites the enrolling user belongs to (docs/sites.md)
                sites=[
                    site
                    for site in sites_of(db.session, acting_user())
                    if site.clinical and site.active
                ],
                randomization=randomization.status(db.session, protocol) if randomized else None,
            ),
        ),
        error.status if error else 200,
    )


def _patient_page(
    patient: Patient, error: DomainError | None = None, which: str | None = None
) -> ResponseReturnValue:
    infusions = _clinic().infusions_of(db.session, patient)
    return (
        render_template(
            "dosing/patient.html",
            **refusal_context(
                error,
                patient=patient,
                which=which,
                arm_name=patients.arm_name(patient),
                receives_cells=patients.receives_cells(patient),
                visits=patients.schedule_of(db.session, patient, site_zone()),
                doses={o.visit: o for o in orders.orders_of(db.session, patient)},
                infused={i.dose_order.visit: i for i in infusions},
                confirmable={
                    w.id for w in patient.weights if patients.may_confirm(w, acting_user())
                },
                today=now().astimezone(site_zone()).date(),
                recalls=recalls_naming(db.session, patients=[patient.id]).patient(patient.id),
            ),
        ),
        error.status if error else 200,
    )


def _plan_page(
    patient: Patient, visit: str, error: DomainError | None = None
) -> ResponseReturnValue:
    plan, refused = None, None
    try:
        plan = orders.plan_dose(db.session, patient, visit, now=now(), zone=site_zone())
    except DomainError as problem:
        refused = problem
    return (
        render_template(
            "dosing/plan.html",
            **refusal_context(error, patient=patient, visit=visit, plan=plan, refused=refused),
        ),
        error.status if error else 200,
    )


def _dose_page(order: DoseOrder, error: DomainError | None = None) -> ResponseReturnValue:
    return (
        render_template(
            "dosing/dose.html",
            **refusal_context(
                error,
                order=order,
                actions=orders.dose_actions(order) | exceptions.exception_actions(order),
                manifests=signatures.manifest(db.session, order),
                at_clinic=_clinic().dose_at_clinic(db.session, order),
                recalls=recalls_naming(db.session, doses=[order.id]).dose(order.id),
            ),
        ),
        error.status if error else 200,
    )


def _enrolment_form(form: MultiDict[str, str], protocol: Protocol) -> MultiDict[str, Any]:
    """The flat HTML form (``answer.<code>`` = yes/no, ``value.<code>``) as ``EnrolIn``'s
    nested answers, loaded by the same schema as the API."""
    flat: MultiDict[str, Any] = MultiDict(
        {k: v for k, v in form.items() if not k.startswith(("answer.", "value."))}
    )
    items = [*protocol.parameters["inclusion"], *protocol.parameters["exclusion"]]
    answers = {}
    for item in items:
        code = item["code"]
        answer = form.get(f"answer.{code}", "")
        value = form.get(f"value.{code}", "").strip()
        answers[code] = {
            "answer": {"yes": True, "no": False}.get(answer),
            "value": value or None,
        }
    flat["answers"] = answers
    return flat


def _order_form(form: MultiDict[str, str], visit: str) -> MultiDict[str, Any]:
    data: MultiDict[str, Any] = MultiDict({"visit": visit})
    if form.get("override_reason", "").strip():
        data["override"] = {
            "investigator": form.get("investigator", ""),
            "password": form.get("investigator_password", ""),
            "reason": form.get("override_reason", ""),
        }
    return data


# --- randomization (issue 19) -------------------------------------------------------------------


@blueprint.get("/randomization")
@requires(Permission.READ_RECORDS)
def randomization_page() -> ResponseReturnValue:
    return _randomization_page(code=request.args.get("protocol"))


@blueprint.post("/randomization/permuted-block")
@requires(Permission.MANAGE_RANDOMIZATION)
def generate_schedule() -> ResponseReturnValue:
    form = MultiDict(request.form)
    sizes = [size for size in form.get("block_sizes", "").replace(" ", "").split(",") if size]
    form.setlist("block_sizes", sizes)
    try:
        data = load_form(PermutedBlockIn(), form, lists=("block_sizes",))
        with unit_of_work() as session:
            schedule = generate_schedule_as_user(session, data)
            message = _(
                "Permuted-block schedule of %(slots)s slots signed. Keep the seed in the trial"
                " master file: it is not stored and never shown again.",
                slots=schedule.planned_enrolment,
            )
    except DomainError as error:
        return _randomization_page(error, "generate", code=request.form.get("protocol"))
    flash(message, "success")
    return redirect(url_for("dosing.randomization_page", protocol=schedule.protocol_code))


@blueprint.post("/randomization/import")
@requires(Permission.MANAGE_RANDOMIZATION)
def import_schedule() -> ResponseReturnValue:
    form = MultiDict(request.form)
    upload = request.files.get("file")
    if upload is not None and upload.filename and not form.get("csv", "").strip():
        form["csv"] = upload.read().decode("utf-8-sig", errors="replace")
    try:
        data = load_form(RandomizationListIn(), form)
        with unit_of_work() as session:
            schedule = import_schedule_as_user(session, data)
            message = _(
                "Randomization list of %(slots)s slots imported and signed.",
                slots=schedule.planned_enrolment,
            )
    except DomainError as error:
        return _randomization_page(error, "import", code=request.form.get("protocol"))
    flash(message, "success")
    return redirect(url_for("dosing.randomization_page", protocol=schedule.protocol_code))


def _randomization_page(
    error: DomainError | None = None, which: str | None = None, *, code: str | None = None
) -> ResponseReturnValue:
    """A randomized protocol's schedule: ``code``'s, else the first by code (the others
    linked from the page)."""
    choices = [
        p
        for p in patients.protocols_in_force(db.session, at=now())
        if patients.is_randomized(p.parameters)
    ]
    first = choices[0].code if choices else None
    protocol = patients.chosen_protocol(db.session, code or first, choices, at=now())
    view = randomization.status(db.session, protocol)
    statistician = has_permission(acting_user().roles, Permission.MANAGE_RANDOMIZATION)
    return (
        render_template(
            "dosing/randomization.html",
            **refusal_context(
                error,
                protocol=protocol,
                choices=choices,
                view=view,
                which=which,
                statistician=statistician,
                slots=view.schedule.slots if view.schedule is not None and statistician else [],
                manifests=signatures.manifest(db.session, view.schedule) if view.schedule else [],
                counts=randomization.expected_counts(protocol),
            ),
        ),
        error.status if error else 200,
    )
