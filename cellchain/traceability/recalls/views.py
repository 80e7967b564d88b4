"""Pages of recalls: the recall list, the preview and signature that open a recall, a recall's
page with its lookback, notifications and closing. The routes are on the ``traceability``
blueprint, shared with the trace pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.chain.models import UNIT_STATUS_NAMES
from cellchain.core.i18n import _
from cellchain.core.roles import Permission
from cellchain.dosing.models import DOSING_LABELS
from cellchain.errors import DomainError, InvalidInput
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, now, requires, site_zone, unit_of_work
from cellchain.manufacturing.processing import resources
from cellchain.traceability.models import RecallStatus, RecallTarget
from cellchain.traceability.pages import blueprint
from cellchain.traceability.recalls import recalls
from cellchain.traceability.recalls.commands import close_as_user, notify_as_user, open_as_user
from cellchain.traceability.recalls.schemas import (
    NotificationIn,
    RecallCloseIn,
    RecallOpenIn,
    RecallQueryIn,
)
from cellchain.traceability.trace import trace
from cellchain.web.forms import load_form, refusal_context
from cellchain.web.listing import page_request

# --- recalls ------------------------------------------------------------------------------------


@blueprint.get("/recalls")
@requires(Permission.READ_RECORDS)
def recall_list() -> ResponseReturnValue:
    return _list_page()


@blueprint.get("/recalls/new")
@requires(Permission.MANAGE_RECALLS)
def new_recall() -> ResponseReturnValue:
    """What a recall would block and whom it would list, before QA signs it."""
    try:
        target = RecallTarget(request.args.get("target_type", ""))
        given = request.args.get("target_id", "")
        target_id = (
            int(given)
            if given.isdigit()
            else recalls.resolve_target(db.session, target, request.args.get("target", ""))
        )
        return _preview_page(target, target_id)
    except ValueError:
        return _list_page(InvalidInput(_("Choose what kind of thing is recalled.")))
    except DomainError as error:
        return _list_page(error)


@blueprint.post("/recalls")
@requires(Permission.MANAGE_RECALLS)
def open_recall() -> ResponseReturnValue:
    try:
        target = RecallTarget(request.form.get("target_type", ""))
        target_id = int(request.form.get("target_id", ""))
    except ValueError:
        return _list_page(InvalidInput(_("Choose what is recalled, then open the recall.")))
    try:
        data = load_form(RecallOpenIn(), request.form)
        refusal = AuditedRefusal("recall.open_refused", target.value, target_id)
        with unit_of_work(refusal) as session:
            opened = open_as_user(session, data)
            recall_id = opened.recall.id
            message = _(
                "Recall %(number)s opened: %(blocked)s unit(s) blocked, %(patients)s patient(s)"
                " to notify.",
                number=opened.recall.number,
                blocked=opened.blocked,
                patients=opened.exposed_patients,
            )
    except DomainError as error:
        return _preview_page(target, target_id, error)
    flash(message, "success")
    return redirect(url_for("traceability.recall", recall_id=recall_id))


@blueprint.get("/recalls/<int:recall_id>")
@requires(Permission.READ_RECORDS)
def recall(recall_id: int) -> ResponseReturnValue:
    return _recall_page(recall_id)


@blueprint.post("/recalls/<int:recall_id>/notifications/<int:patient_id>")
@requires(Permission.NOTIFY_PATIENTS)
def notify(recall_id: int, patient_id: int) -> ResponseReturnValue:
    try:
        data = load_form(NotificationIn(), request.form)
        refusal = AuditedRefusal("recall.notification_refused", "recall", recall_id)
        with unit_of_work(refusal) as session:
            row = notify_as_user(session, recall_id, patient_id, data)
            message = _(
                "%(study_id)s recorded as notified (%(method)s).",
                study_id=row.patient.study_id,
                method=row.method,
            )
    except DomainError as error:
        return _recall_page(recall_id, error, f"notify-{patient_id}")
    flash(message, "success")
    return redirect(url_for("traceability.recall", recall_id=recall_id))


@blueprint.post("/recalls/<int:recall_id>/close")
@requires(Permission.MANAGE_RECALLS)
def close(recall_id: int) -> ResponseReturnValue:
    try:
        data = load_form(RecallCloseIn(), request.form)
        refusal = AuditedRefusal("recall.close_refused", "recall", recall_id)
        with unit_of_work(refusal) as session:
            closed = close_as_user(session, recall_id, data)
            message = _("Recall %(number)s closed.", number=closed.number)
    except DomainError as error:
        return _recall_page(recall_id, error, "close")
    flash(message, "success")
    return redirect(url_for("traceability.recall", recall_id=recall_id))


# --- pages --------------------------------------------------------------------------------------


def _wall_clock(value: dt.datetime) -> str:
    """A time as a ``datetime-local`` input shows it: the site's wall clock, to the minute."""
    return value.astimezone(site_zone()).strftime("%Y-%m-%dT%H:%M")


def _list_page(error: DomainError | None = None) -> ResponseReturnValue:
    typed = request.args.to_dict() if error else {}
    query, page_asked, notes = page_request(RecallQueryIn(), request.args)
    status = RecallStatus(query["status"]) if "status" in query else None
    page = recalls.recalls_page(db.session, page_asked, status=status)
    context = refusal_context(error, which="find")
    context["form"] = typed
    return (
        render_template(
            "traceability/recalls/recalls.html",
            **context,
            recalls=page.items,
            page=page,
            notes=notes,
            targets=[{"value": t.value, "label": t.label} for t in RecallTarget],
            material_lots=[
                {"value": str(lot.id), "label": lot.label}
                for lot in resources.list_material_lots(db.session)
            ],
        ),
        error.status if error else 200,
    )


def _preview_page(
    target: RecallTarget, target_id: int, error: DomainError | None = None
) -> ResponseReturnValue:
    forward = trace.trace_forward(db.session, target.value, target_id)
    return (
        render_template(
            "traceability/recalls/new_recall.html",
            **refusal_context(error, which="open"),
            target=target,
            target_id=target_id,
            forward=forward,
            counts=forward.count_by_status(),
            status_names=UNIT_STATUS_NAMES,
            fates=recalls.fates(forward),
            withdrawable=[o for o in forward.dose_orders if o.status in recalls.WITHDRAWABLE],
            exposed=trace.infused_patients(forward),
            already=recalls.recall_of(db.session, target, target_id),
            meaning=recalls.OPEN_MEANING,
        ),
        error.status if error else 200,
    )


def _recall_page(
    recall_id: int, error: DomainError | None = None, which: str | None = None
) -> ResponseReturnValue:
    view = recalls.recall_view(db.session, recalls.get_recall(db.session, recall_id))
    context: dict[str, Any] = refusal_context(error, which=which)
    return (
        render_template(
            "traceability/recalls/recall.html",
            **context,
            view=view,
            recall=view.recall,
            methods=recalls.NOTIFICATION_METHODS,
            method_names=recalls.NOTIFICATION_METHOD_NAMES,
            status_names=UNIT_STATUS_NAMES,
            dose_status_names=DOSING_LABELS,
            close_meaning=recalls.CLOSE_MEANING,
            zone=site_zone().key,
            opened_local=_wall_clock(view.recall.opened_at),
            now_local=_wall_clock(now()),
        ),
        error.status if error else 200,
    )
