"""The clinic's pages: the overview, the thaw scan, and the bedside flow for a phone or tablet
held in one hand (wristband → label → verdict → two signatures → start → end)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from cellchain.clinic.bedside import bedside, infusions, post_thaw, thaw
from cellchain.clinic.bedside.commands import (
    acknowledge_as_user,
    count_as_user,
    decide_as_user,
    end_as_user,
    sign_as_user,
    start_as_user,
    thaw_as_user,
    verify_as_user,
)
from cellchain.clinic.bedside.schemas import (
    BedsideIn,
    InfusionEndIn,
    PostThawCountIn,
    PostThawDecisionIn,
    ScanIn,
    SignOffIn,
    TimeFlagAcknowledgementIn,
)
from cellchain.clinic.models import Infusion, InfusionStatus, ShipmentStatus
from cellchain.clinic.shipments import shipments
from cellchain.core.i18n import _
from cellchain.core.roles import Permission, Role, holds
from cellchain.dosing import orders, patients
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, acting_user, now, requires, site_zone, unit_of_work
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form, refusal_context
from cellchain.web.resolve import register_record_page

blueprint = Blueprint("bedside", __name__)

register_record_page(
    "bedside_check", lambda entity_id: url_for("bedside.check", check_id=entity_id)
)
register_record_page(
    "infusion", lambda entity_id: url_for("bedside.infusion", infusion_id=entity_id)
)


@blueprint.get("/clinic")
@requires(Permission.READ_RECORDS)
def overview() -> ResponseReturnValue:
    """What the clinic has to do now: shipments to receive or held, doses thawing, infusions
    running."""
    session = db.session
    moving = [
        s
        for s in shipments.list_shipments(session)
        if s.status in (ShipmentStatus.IN_TRANSIT.value, ShipmentStatus.HELD.value)
    ]
    thawing = [(order, thaw.thaw_state(session, order)) for order in thaw.thawing(session)]
    running = list(
        session.execute(
            db.select(Infusion)
            .where(Infusion.status == InfusionStatus.IN_PROGRESS.value)
            .order_by(Infusion.started_at)
        ).scalars()
    )
    doses = [item.dose_order_id for s in moving for item in s.items]
    doses += [order.id for order, _state in thawing] + [i.dose_order_id for i in running]
    return render_template(
        "clinic/bedside/overview.html",
        moving=moving,
        thawing=thawing,
        running=running,
        now=now(),
        recalls=recalls_naming(session, doses=doses),
    )


@blueprint.route("/thaw", methods=["GET", "POST"])
@requires(Permission.THAW_DOSES)
def thaw_page() -> ResponseReturnValue:
    """Scan a bag to start its thaw, scan it again to complete it."""
    result, error = None, None
    if request.method == "POST":
        try:
            scan = load_form(ScanIn(), request.form)["scan"]
            with unit_of_work(AuditedRefusal("thaw.refused", "scan", "thaw")) as session:
                result = thaw_as_user(session, scan)
        except DomainError as problem:
            error = problem
    thawing = [(order, thaw.thaw_state(db.session, order)) for order in thaw.thawing(db.session)]
    return (
        render_template(
            "clinic/bedside/thaw.html", result=result, error=error, thawing=thawing, now=now()
        ),
        error.status if error else 200,
    )


@blueprint.get("/bedside")
@requires(Permission.ADMINISTER_DOSES)
def start_page() -> ResponseReturnValue:
    """Step 1: scan the patient's wristband."""
    return render_template("clinic/bedside/wristband.html", error=None)


@blueprint.post("/bedside/wristband")
@requires(Permission.ADMINISTER_DOSES)
def wristband() -> ResponseReturnValue:
    """Step 2: the wristband read; scan the bag or dose label."""
    scan = request.form.get("wristband", "").strip()
    try:
        with unit_of_work(AuditedRefusal("bedside.wristband_refused", "scan", "wristband")):
            patient = bedside.read_wristband(db.session, scan)
    except DomainError as error:
        return render_template("clinic/bedside/wristband.html", error=error), error.status
    return render_template(
        "clinic/bedside/label.html",
        patient=patient,
        receives_cells=patients.receives_cells(patient),
        wristband=scan,
    )


@blueprint.post("/bedside/checks")
@requires(Permission.ADMINISTER_DOSES)
def verify() -> ResponseReturnValue:
    """Both scans: the verdict is recorded (go or stop) and shown."""
    try:
        data = load_form(BedsideIn(), request.form)
        with unit_of_work(
            AuditedRefusal("bedside.scan_refused", "bedside_check", "new")
        ) as session:
            check_id = verify_as_user(session, data).id
    except DomainError as error:
        flash(_("Not checked: %(reason)s", reason=error.detail), "error")
        return redirect(url_for("bedside.start_page"))
    return redirect(url_for("bedside.check", check_id=check_id))


@blueprint.get("/bedside/checks/<int:check_id>")
@requires(Permission.READ_RECORDS)
def check(check_id: int) -> ResponseReturnValue:
    return _check_page(bedside.get_check(db.session, check_id))


@blueprint.post("/bedside/checks/<int:check_id>/signatures")
@requires(Permission.ADMINISTER_DOSES)
def sign(check_id: int) -> ResponseReturnValue:
    bedside.get_check(db.session, check_id)
    try:
        data = load_form(SignOffIn(), request.form)
        with unit_of_work(
            AuditedRefusal("bedside.sign_refused", "bedside_check", check_id)
        ) as session:
            sign_as_user(session, check_id, data)
    except DomainError as error:
        return _check_page(bedside.get_check(db.session, check_id), error)
    flash(_("Signed by two clinicians. Start the infusion when ready."), "success")
    return redirect(url_for("bedside.check", check_id=check_id))


@blueprint.post("/bedside/checks/<int:check_id>/start")
@requires(Permission.ADMINISTER_DOSES)
def start(check_id: int) -> ResponseReturnValue:
    bedside.get_check(db.session, check_id)
    try:
        with unit_of_work(
            AuditedRefusal("infusion.start_refused", "bedside_check", check_id)
        ) as session:
            started = start_as_user(session, check_id)
            stop_id = started.stop.id if started.stop else None
            infusion_id = started.infusion.id if started.infusion else None
    except DomainError as error:
        return _check_page(bedside.get_check(db.session, check_id), error)
    if stop_id is not None:
        flash(_("STOP: a check failed at the start. Nothing was started."), "error")
        return redirect(url_for("bedside.check", check_id=stop_id))
    flash(_("Infusion started."), "success")
    return redirect(url_for("bedside.infusion", infusion_id=infusion_id))


@blueprint.get("/bedside/infusions/<int:infusion_id>")
@requires(Permission.READ_RECORDS)
def infusion(infusion_id: int) -> ResponseReturnValue:
    return _infusion_page(infusions.get_infusion(db.session, infusion_id))


@blueprint.post("/bedside/infusions/<int:infusion_id>/end")
@requires(Permission.ADMINISTER_DOSES)
def end(infusion_id: int) -> ResponseReturnValue:
    infusions.get_infusion(db.session, infusion_id)
    form = MultiDict(request.form)
    form["stopped_early"] = "true" if form.get("stopped_early") else "false"
    try:
        data = load_form(InfusionEndIn(), form)
        with unit_of_work(
            AuditedRefusal("infusion.end_refused", "infusion", infusion_id)
        ) as session:
            end_as_user(session, infusion_id, data)
    except DomainError as error:
        return _infusion_page(infusions.get_infusion(db.session, infusion_id), error)
    if infusion_flag := infusions.get_infusion(db.session, infusion_id).time_flag:
        flash(
            _(
                "Infusion ended and recorded, and flagged: %(flag)s A second clinician "
                "must acknowledge it before the patient's next dose.",
                flag=infusion_flag,
            ),
            "error",
        )
    else:
        flash(_("Infusion ended and recorded."), "success")
    return redirect(url_for("bedside.infusion", infusion_id=infusion_id))


@blueprint.post("/bedside/infusions/<int:infusion_id>/acknowledge")
@requires(Permission.ADMINISTER_DOSES)
def acknowledge(infusion_id: int) -> ResponseReturnValue:
    infusions.get_infusion(db.session, infusion_id)
    try:
        data = load_form(TimeFlagAcknowledgementIn(), request.form)
        with unit_of_work(
            AuditedRefusal("infusion.acknowledge_refused", "infusion", infusion_id)
        ) as session:
            acknowledge_as_user(session, infusion_id, data)
    except DomainError as error:
        return _infusion_page(infusions.get_infusion(db.session, infusion_id), error)
    flash(_("Flag acknowledged with your signature."), "success")
    return redirect(url_for("bedside.infusion", infusion_id=infusion_id))


# --- pages --------------------------------------------------------------------------------------


def _check_page(check: Any, error: DomainError | None = None) -> ResponseReturnValue:
    summary = bedside.summary(db.session, check, now=now())
    return (
        render_template(
            "clinic/bedside/check.html",
            **refusal_context(
                error,
                summary=summary,
                check=check,
                seconds_left=summary.seconds_left(now()),
                server_now=now(),
                wrong_patient=check.dose_order is not None
                and check.patient_id is not None
                and check.dose_order.patient_id != check.patient_id,
                meaning=bedside.BEDSIDE_MEANING,
                recalls=recalls_naming(db.session, doses=[check.dose_order_id]).dose(
                    check.dose_order_id
                )
                if check.dose_order_id
                else [],
            ),
        ),
        error.status if error else 200,
    )


def _infusion_page(infusion: Infusion, error: DomainError | None = None) -> ResponseReturnValue:
    return (
        render_template(
            "clinic/bedside/infusion.html",
            **refusal_context(
                error,
                infusion=infusion,
                actions=infusions.infusion_actions(infusion),
                may_acknowledge=infusions.may_acknowledge(infusion, acting_user()),
                recalls=recalls_naming(db.session, doses=[infusion.dose_order_id]).dose(
                    infusion.dose_order_id
                ),
            ),
        ),
        error.status if error else 200,
    )


@blueprint.get("/doses/<int:order_id>/post-thaw-count")
@requires(Permission.READ_RECORDS)
def post_thaw_count(order_id: int) -> ResponseReturnValue:
    """The dose's post-thaw counts, the working of the count it is judged by, the form to
    count it and, outside tolerance, the investigator's decision."""
    return _count_page(order_id)


@blueprint.post("/doses/<int:order_id>/post-thaw-count")
@requires(Permission.THAW_DOSES)
def record_count(order_id: int) -> ResponseReturnValue:
    orders.get_order(db.session, order_id)
    try:
        data = load_form(PostThawCountIn(), request.form)
        with unit_of_work(
            AuditedRefusal("post_thaw.count_refused", "dose_order", order_id)
        ) as session:
            count = count_as_user(session, order_id, data)
            within = count.within_tolerance
            deviation = count.deviation_percent
    except DomainError as error:
        return _count_page(order_id, error)
    if within:
        flash(
            _(
                "Post-thaw count recorded: %(deviation)s %% of the target.",
                deviation=format(deviation, "+.2f"),
            ),
            "success",
        )
    else:
        flash(
            _(
                "Post-thaw count recorded: %(deviation)s %% of the target, OUTSIDE tolerance. "
                "The bedside stops until an investigator signs a decision.",
                deviation=format(deviation, "+.2f"),
            ),
            "error",
        )
    return redirect(url_for("bedside.post_thaw_count", order_id=order_id))


@blueprint.post("/doses/<int:order_id>/post-thaw-count/decision")
@requires(Permission.ADMINISTER_DOSES)
def decide(order_id: int) -> ResponseReturnValue:
    orders.get_order(db.session, order_id)
    try:
        data = load_form(PostThawDecisionIn(), request.form)
        with unit_of_work(
            AuditedRefusal("post_thaw.decision_refused", "dose_order", order_id)
        ) as session:
            decide_as_user(session, order_id, data)
    except DomainError as error:
        return _count_page(order_id, error)
    flash(_("Decision signed."), "success")
    return redirect(url_for("bedside.post_thaw_count", order_id=order_id))


def _count_page(order_id: int, error: DomainError | None = None) -> ResponseReturnValue:
    dose = post_thaw.dose_count(db.session, orders.get_order(db.session, order_id))
    return (
        render_template(
            "clinic/bedside/post_thaw.html",
            **refusal_context(
                error,
                dose=dose,
                order=dose.order,
                may_decide=holds(acting_user().roles, Role.INVESTIGATOR),
                meanings=post_thaw.DECISION_MEANINGS,
                # the registered cell counters, those a count made now may not use disabled
                counters=post_thaw.counters_offered(
                    db.session, on=now().astimezone(site_zone()).date()
                ),
            ),
        ),
        error.status if error else 200,
    )
