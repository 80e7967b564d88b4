"""Pages of equipment (issue 22): the list with due states, one piece with its history and
the forms to record a calibration or maintenance and change its intervals, the registration
form, a certificate's download, and the import of tank readings from a CSV export."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue

from cellchain.core.i18n import _
from cellchain.core.roles import Permission
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.equipment import service
from cellchain.manufacturing.equipment.commands import (
    certificate_upload,
    change_intervals_as_user,
    import_readings_as_user,
    record_event_as_user,
    register_equipment_as_user,
    today,
)
from cellchain.manufacturing.equipment.schemas import (
    EquipmentIn,
    EquipmentQueryIn,
    EventIn,
    IntervalsChangeIn,
)
from cellchain.manufacturing.models import EquipmentEventKind, EquipmentKind
from cellchain.web.forms import load_form, refusal_context
from cellchain.web.listing import page_request

blueprint = Blueprint("equipment", __name__)


@blueprint.get("/equipment")
@requires(Permission.READ_RECORDS)
def equipment_list() -> ResponseReturnValue:
    return _list_page()


def _list_page(error: DomainError | None = None) -> ResponseReturnValue:
    query, page_asked, notes = page_request(EquipmentQueryIn(), request.args)
    day = today()
    page = service.equipment_page(
        db.session,
        page_asked,
        today=day,
        due=bool(query.get("due")),
        kind=EquipmentKind(query["kind"]) if "kind" in query else None,
    )
    html = render_template(
        "manufacturing/equipment/list.html",
        **refusal_context(
            error,
            page=page,
            items=[(item, service.due_state(item, day)) for item in page.items],
            notes=notes,
            kinds=list(EquipmentKind),
            due_names=service.DUE_STATE_NAMES,
            due_only=bool(query.get("due")),
            next_due_on=service.next_due_on,
        ),
    )
    return (html, error.status) if error else html


@blueprint.post("/equipment")
@requires(Permission.REGISTER_EQUIPMENT)
def register_equipment() -> ResponseReturnValue:
    try:
        data = load_form(EquipmentIn(), request.form)
        with unit_of_work() as session:
            item = register_equipment_as_user(session, data)
            item_id, code = item.id, item.code
    except DomainError as error:
        db.session.rollback()
        return _list_page(error)
    flash(_("Equipment %(code)s registered.", code=code), "success")
    return redirect(url_for("equipment.equipment_page", equipment_id=item_id))


@blueprint.get("/equipment/<int:equipment_id>")
@requires(Permission.READ_RECORDS)
def equipment_page(equipment_id: int) -> ResponseReturnValue:
    return _item_page(equipment_id)


def _item_page(
    equipment_id: int,
    error: DomainError | None = None,
    which: str | None = None,
    *,
    file_dropped: bool = False,
) -> ResponseReturnValue:
    item = service.get_equipment(db.session, equipment_id)
    html = render_template(
        "manufacturing/equipment/equipment.html",
        **refusal_context(
            error,
            item=item,
            state=service.due_state(item, today()),
            due_names=service.DUE_STATE_NAMES,
            kind_names=service.EVENT_KIND_NAMES,
            history=service.history(db.session, item),
            actions=service.equipment_actions(item),
            event_kinds=[
                kind
                for kind in EquipmentEventKind
                if kind != EquipmentEventKind.CALIBRATION
                or service.EquipmentAction.RECORD_CALIBRATION in service.equipment_actions(item)
            ],
            which=which,
            today=today(),
            file_dropped=file_dropped,
        ),
    )
    return (html, error.status) if error else html


@blueprint.post("/equipment/<int:equipment_id>/events")
@requires(Permission.RECORD_CALIBRATIONS)
def record_event(equipment_id: int) -> ResponseReturnValue:
    try:
        data = load_form(EventIn(), request.form)
        upload = certificate_upload(request.files.get("certificate"))
        with unit_of_work() as session:
            event = record_event_as_user(session, equipment_id, data, upload)
            kind = service.EVENT_KIND_NAMES[event.kind]
            day = event.performed_on.isoformat()
    except DomainError as error:
        db.session.rollback()
        # a browser never keeps a chosen file: the page says to choose it again
        chosen = request.files.get("certificate")
        return _item_page(
            equipment_id, error, "event", file_dropped=bool(chosen and chosen.filename)
        )
    flash(_("The %(kind)s of %(day)s is recorded.", kind=kind, day=day), "success")
    return redirect(url_for("equipment.equipment_page", equipment_id=equipment_id))


@blueprint.post("/equipment/<int:equipment_id>/intervals")
@requires(Permission.REGISTER_EQUIPMENT)
def change_intervals(equipment_id: int) -> ResponseReturnValue:
    try:
        data = load_form(IntervalsChangeIn(), request.form)
        with unit_of_work() as session:
            change_intervals_as_user(session, equipment_id, data)
    except DomainError as error:
        db.session.rollback()
        return _item_page(equipment_id, error, "intervals")
    flash(_("The intervals are changed."), "success")
    return redirect(url_for("equipment.equipment_page", equipment_id=equipment_id))


@blueprint.get("/equipment/<int:equipment_id>/events/<int:equipment_event_id>/certificate")
@requires(Permission.READ_RECORDS)
def certificate(equipment_id: int, equipment_event_id: int) -> ResponseReturnValue:
    item = service.get_equipment(db.session, equipment_id)
    stored = service.certificate_of(
        db.session, service.get_event(db.session, item, equipment_event_id)
    )
    return send_file(
        io.BytesIO(stored.content),
        mimetype=stored.media_type,
        as_attachment=True,
        download_name=stored.file_name,
    )


# --- tank readings from a monitoring system's CSV export ----------------------------------------


@blueprint.get("/storage/readings/import")
@requires(Permission.RECORD_STORAGE)
def import_readings_form() -> ResponseReturnValue:
    return render_template("manufacturing/equipment/import_readings.html", error=None, errors={})


@blueprint.post("/storage/readings/import")
@requires(Permission.RECORD_STORAGE)
def import_readings() -> ResponseReturnValue:
    upload = request.files.get("file")
    content: Any = upload.read() if upload is not None and upload.filename else b""
    try:
        with unit_of_work() as session:
            outcome = import_readings_as_user(session, content)
            opened = [deviation.id for deviation in outcome.deviations]
    except DomainError as error:
        db.session.rollback()
        html = render_template(
            "manufacturing/equipment/import_readings.html",
            error=error.detail,
            errors=error.errors,
        )
        return html, error.status
    flash(
        _(
            "%(imported)s reading(s) imported, %(duplicates)s duplicate(s) skipped, "
            "%(deviations)s deviation(s) opened.",
            imported=outcome.imported,
            duplicates=outcome.duplicates,
            deviations=len(opened),
        ),
        "warning" if opened else "success",
    )
    return redirect(url_for("storage.tanks"))
