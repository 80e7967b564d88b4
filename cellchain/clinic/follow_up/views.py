"""Pages of follow-up visits and adverse events: the clinic's due and overdue visits, and a
patient's follow-up (schedule with statuses, evaluations done, adverse events and outcomes)."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.clinic.follow_up import adverse_events, follow_up, reporting, scheduling
from cellchain.clinic.follow_up.acts import adverse_event_actions
from cellchain.clinic.follow_up.commands import (
    assess_as_user,
    follow_up_report_days,
    record_event_as_user,
    record_missed_as_user,
    record_report_as_user,
    record_visit_as_user,
    reports_due_now,
    reschedule_as_user,
    sign_deviation_as_user,
    site_today,
    update_outcome_as_user,
)
from cellchain.clinic.follow_up.schemas import (
    AdverseEventIn,
    AssessmentIn,
    DeviationSignIn,
    MissedIn,
    OutcomeIn,
    ReportIn,
    RescheduleIn,
    VisitDoneIn,
)
from cellchain.clinic.models import Causality, Outcome, ReportKind, SeriousCriterion, Seriousness
from cellchain.core.display import local_time
from cellchain.core.i18n import _
from cellchain.core.roles import Permission, Role, holds
from cellchain.dosing import patients
from cellchain.dosing.models import Patient
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, site_zone, unit_of_work
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form, refusal_context

blueprint = Blueprint("follow_up", __name__)


@blueprint.get("/follow-up")
@requires(Permission.READ_RECORDS)
def due() -> ResponseReturnValue:
    coming_up = request.args.get("coming_up") == "1"
    visits = follow_up.due_visits(
        db.session,
        today=site_today(),
        zone=site_zone(),
        coming_up_days=follow_up.COMING_UP_DAYS if coming_up else 0,
    )
    return render_template(
        "clinic/follow_up/due.html",
        visits=visits,
        recalls=recalls_naming(db.session, patients=[s.patient.id for s in visits]),
        coming_up=coming_up,
        coming_up_days=follow_up.COMING_UP_DAYS,
        today=site_today(),
    )


@blueprint.get("/adverse-events")
@requires(Permission.READ_RECORDS)
def adverse_events_listing() -> ResponseReturnValue:
    """The serious events with a sponsor report still to make (deadlines, overdue), then the
    trial's line listing."""
    return render_template(
        "clinic/follow_up/adverse_events.html",
        due=reports_due_now(db.session),
        events=reporting.trial_listing(db.session),
        criterion_labels={c.value: c.label for c in SeriousCriterion},
    )


@blueprint.get("/adverse-events.csv")
@requires(Permission.READ_RECORDS)
def adverse_events_csv() -> ResponseReturnValue:
    """The trial's line listing as CSV (pseudonymised: study IDs only)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reporting.LISTING_COLUMNS)
    writer.writeheader()
    for event in reporting.trial_listing(db.session):
        writer.writerow(reporting.listing_row(event))
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=adverse-events.csv"},
    )


@blueprint.get("/patients/<int:patient_id>/follow-up")
@requires(Permission.READ_RECORDS)
def patient(patient_id: int) -> ResponseReturnValue:
    return _patient_page(patients.get_patient(db.session, patient_id))


@blueprint.post("/patients/<int:patient_id>/follow-up")
@requires(Permission.RECORD_FOLLOW_UP)
def record_visit(patient_id: int) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)
    try:
        data = load_form(VisitDoneIn(), request.form)
        with unit_of_work() as session:
            row = record_visit_as_user(session, patient_id, data)
            message = _(
                "Visit %(visit)s recorded as done on %(day)s.",
                visit=row.visit,
                day=row.done_on.isoformat(),
            )
    except DomainError as error:
        return _patient_page(patients.get_patient(db.session, patient_id), error, "visit")
    flash(message, "success")
    return redirect(url_for("follow_up.patient", patient_id=patient_id))


@blueprint.post("/patients/<int:patient_id>/visit-reschedules")
@requires(Permission.RECORD_FOLLOW_UP)
def reschedule_visit(patient_id: int) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)
    try:
        data = load_form(RescheduleIn(), request.form)
        with unit_of_work() as session:
            row = reschedule_as_user(session, patient_id, data)
            message = _(
                "Visit %(visit)s moved to %(day)s.", visit=row.visit, day=row.planned_on.isoformat()
            )
            if row.outside_protocol:
                message += (
                    " The day is outside the protocol window: a protocol deviation is open "
                    "until an investigator signs it."
                )
    except DomainError as error:
        return _patient_page(patients.get_patient(db.session, patient_id), error, "reschedule")
    flash(message, "success")
    return redirect(url_for("follow_up.patient", patient_id=patient_id, _anchor="schedule"))


@blueprint.post("/visit-reschedules/<int:reschedule_id>/deviation-signature")
@requires(Permission.RECORD_FOLLOW_UP)
def sign_deviation(reschedule_id: int) -> ResponseReturnValue:
    row = scheduling.get_reschedule(db.session, reschedule_id)
    patient_id = row.patient_id
    try:
        data = load_form(DeviationSignIn(), request.form)
        with unit_of_work() as session:
            signed, _deviation = sign_deviation_as_user(session, reschedule_id, data)
            message = _(
                "Protocol deviation signed: %(visit)s on %(day)s.",
                visit=signed.visit,
                day=signed.planned_on.isoformat(),
            )
    except DomainError as error:
        return _patient_page(
            patients.get_patient(db.session, patient_id), error, f"deviation-{reschedule_id}"
        )
    flash(message, "success")
    return redirect(url_for("follow_up.patient", patient_id=patient_id, _anchor="schedule"))


@blueprint.post("/patients/<int:patient_id>/missed-visits")
@requires(Permission.RECORD_FOLLOW_UP)
def record_missed(patient_id: int) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)
    try:
        data = load_form(MissedIn(), request.form)
        with unit_of_work() as session:
            row = record_missed_as_user(session, patient_id, data)
            message = _("Visit %(visit)s recorded as missed.", visit=row.visit)
    except DomainError as error:
        return _patient_page(patients.get_patient(db.session, patient_id), error, "missed")
    flash(message, "success")
    return redirect(url_for("follow_up.patient", patient_id=patient_id, _anchor="schedule"))


@blueprint.post("/patients/<int:patient_id>/adverse-events")
@requires(Permission.RECORD_ADVERSE_EVENTS)
def record_adverse_event(patient_id: int) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)
    try:
        data = load_form(AdverseEventIn(), request.form, lists=("serious_criteria",))
        with unit_of_work() as session:
            event = record_event_as_user(session, patient_id, data)
            message = _(
                "Adverse event %(event)s (grade %(grade)s) recorded.",
                event=event.id,
                grade=event.grade,
            )
            clock = reporting.reporting_clock(event, now=event.recorded_at)
            if clock is not None:
                due = local_time(clock.initial_due, site_zone())
                message += " " + _(
                    "Serious: initial sponsor report due %(due)s (see Adverse events).", due=due
                )
    except DomainError as error:
        return _patient_page(patients.get_patient(db.session, patient_id), error, "event")
    flash(message, "success")
    return redirect(url_for("follow_up.patient", patient_id=patient_id, _anchor="adverse-events"))


@blueprint.post("/adverse-events/<int:event_id>/outcome")
@requires(Permission.RECORD_ADVERSE_EVENTS)
def update_outcome(event_id: int) -> ResponseReturnValue:
    event = adverse_events.get_adverse_event(db.session, event_id)
    patient_id = event.patient_id
    try:
        data = load_form(OutcomeIn(), request.form)
        with unit_of_work() as session:
            changed = update_outcome_as_user(session, event_id, data)
            message = _(
                "Outcome of adverse event %(event)s is now %(outcome)s.",
                event=changed.id,
                outcome=changed.outcome_label,
            )
    except DomainError as error:
        return _patient_page(
            patients.get_patient(db.session, patient_id), error, f"outcome-{event_id}"
        )
    flash(message, "success")
    return redirect(url_for("follow_up.patient", patient_id=patient_id, _anchor=f"ae-{event_id}"))


@blueprint.post("/adverse-events/<int:event_id>/assessment")
@requires(Permission.RECORD_ADVERSE_EVENTS)
def assess_adverse_event(event_id: int) -> ResponseReturnValue:
    """The investigator's causality and expectedness, e-signed with their password."""
    patient_id = adverse_events.get_adverse_event(db.session, event_id).patient_id
    try:
        data = load_form(AssessmentIn(), request.form)
        with unit_of_work() as session:
            event = assess_as_user(session, event_id, data)
            message = _(
                "Adverse event %(event)s assessed: %(causality)s.",
                event=event.id,
                causality=_label(Causality, event.causality),
            )
    except DomainError as error:
        return _patient_page(
            patients.get_patient(db.session, patient_id), error, f"assess-{event_id}"
        )
    flash(message, "success")
    return redirect(url_for("follow_up.patient", patient_id=patient_id, _anchor=f"ae-{event_id}"))


@blueprint.post("/adverse-events/<int:event_id>/reports")
@requires(Permission.RECORD_ADVERSE_EVENTS)
def record_adverse_event_report(event_id: int) -> ResponseReturnValue:
    """A serious event's initial or follow-up sponsor report sent: when, and its reference."""
    patient_id = adverse_events.get_adverse_event(db.session, event_id).patient_id
    try:
        data = load_form(ReportIn(), request.form)
        with unit_of_work() as session:
            event = record_report_as_user(session, event_id, data)
            message = _(
                "The %(kind)s report of adverse event %(event)s is recorded.",
                kind=_label(ReportKind, data["kind"]).lower(),
                event=event.id,
            )
    except DomainError as error:
        return _patient_page(
            patients.get_patient(db.session, patient_id), error, f"report-{event_id}"
        )
    flash(message, "success")
    return redirect(url_for("follow_up.patient", patient_id=patient_id, _anchor=f"ae-{event_id}"))


def _label(kind: type[Causality] | type[ReportKind], value: str | None) -> str:
    """The words of a stored code (the code itself when unknown)."""
    for member in kind:
        if member.value == value:
            return str(member.label)
    return value or ""


# --- pages --------------------------------------------------------------------------------------


def _patient_page(
    patient: Patient, error: DomainError | None = None, which: str | None = None
) -> ResponseReturnValue:
    """The patient's follow-up; after a refusal, the posted form (``which``) keeps what was
    typed and shows its field errors."""
    schedule = follow_up.patient_schedule(db.session, patient, today=site_today(), zone=site_zone())
    events = adverse_events.adverse_events_of(db.session, patient)
    return (
        render_template(
            "clinic/follow_up/patient.html",
            **refusal_context(error, patient=patient, which=which),
            schedule=schedule,
            open_evaluations=[
                {"value": s.visit.code, "label": f"{s.visit.name} ({s.visit.code})"}
                for s in schedule
                if not s.visit.infusion
                and s.status not in (follow_up.VisitStatus.DONE, follow_up.VisitStatus.MISSED)
            ],
            movable=[
                {"value": s.visit.code, "label": f"{s.visit.name} ({s.visit.code})"}
                for s in schedule
                if s.status
                in (
                    follow_up.VisitStatus.PLANNED,
                    follow_up.VisitStatus.DUE,
                    follow_up.VisitStatus.OVERDUE,
                )
                and (s.visit.day == 0 or not s.visit.provisional)
            ],
            missable=[
                {"value": s.visit.code, "label": f"{s.visit.name} ({s.visit.code})"}
                for s in schedule
                if s.status == follow_up.VisitStatus.OVERDUE
                and not (s.visit.day == 0 and patients.receives_cells(patient))
            ],
            reschedules=scheduling.reschedules_of(db.session, patient),
            missed=scheduling.missed_of(db.session, patient),
            events=events,
            actions={e.id: adverse_event_actions(e) for e in events},
            clocks={
                e.id: reporting.reporting_clock(
                    e, now=now(), follow_up_days=follow_up_report_days()
                )
                for e in events
            },
            may_assess=holds(acting_user().roles, Role.INVESTIGATOR),
            causalities=[{"value": c.value, "label": c.label} for c in Causality],
            expectedness=[
                {"value": "true", "label": _("Expected")},
                {"value": "false", "label": _("Unexpected")},
            ],
            report_kinds={k.value: k.label for k in ReportKind},
            criterion_labels={c.value: c.label for c in SeriousCriterion},
            serious_criteria_of=adverse_events.serious_criteria_of,
            infusions=[
                {
                    "value": str(infusion.id),
                    "label": _(
                        "%(visit)s · started %(when)s",
                        visit=infusion.dose_order.visit,
                        when=local_time(infusion.started_at, site_zone()),
                    ),
                }
                for infusion in adverse_events.infusions_of(db.session, patient)
            ],
            grades=[
                {"value": str(g), "label": str(label)} for g, label in adverse_events.GRADES.items()
            ],
            seriousness=[{"value": s.value, "label": s.label} for s in Seriousness],
            criteria=[{"value": c.value, "label": c.label} for c in SeriousCriterion],
            outcomes=[{"value": o.value, "label": o.label} for o in Outcome],
            arm_name=patients.arm_name(patient),
            today=site_today(),
        ),
        error.status if error else 200,
    )
