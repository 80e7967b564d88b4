"""Pages of processing: product definitions, materials, equipment, the bench
step forms (reachable by scanning a vessel), step pages and the batch record of a lot."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from cellchain.chain import service as chain
from cellchain.core.i18n import _, lazy
from cellchain.core.roles import Permission
from cellchain.documents.views import add_document_pages
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, site_zone, unit_of_work
from cellchain.manufacturing.models import LotStatus, StepKind
from cellchain.manufacturing.processing import processing, resources, step_equipment
from cellchain.manufacturing.processing.batch_record import batch_record
from cellchain.manufacturing.processing.batch_record_pdf import render_batch_record_pdf
from cellchain.manufacturing.processing.commands import (
    STEP_SCHEMAS,
    freeze_lot_as_user,
    receive_material_as_user,
    record_step_as_user,
    release_material_as_user,
    step_kind,
)
from cellchain.manufacturing.processing.schemas import (
    LotQueryIn,
    MaterialLotIn,
    StepIn,
)
from cellchain.manufacturing.service import PRODUCTS
from cellchain.manufacturing.stock import views as stock_views
from cellchain.manufacturing.terms import term
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form
from cellchain.web.listing import page_request

blueprint = Blueprint("manufacturing", __name__)


add_document_pages(
    blueprint,
    PRODUCTS,
    name="product",
    heading=lazy("Product definitions"),
    what="product definition",
    template="manufacturing/processing/product.html",
)


# --- bench pages: materials, equipment, steps, lots ---------------------------------------------


def _typed() -> dict[str, Any]:
    """What the person typed, to show again after a refusal (lists kept as lists)."""
    form: dict[str, Any] = {k: v for k, v in request.form.items() if k != "csrf_token"}
    for name in ("materials", "equipment"):
        form[name] = request.form.getlist(name)
    return form


@blueprint.get("/manufacturing")
@requires(Permission.READ_RECORDS)
def lots() -> ResponseReturnValue:
    query, page_asked, notes = page_request(LotQueryIn(), request.args)
    status = LotStatus(query["status"]) if "status" in query else None
    page = processing.lots_page(db.session, page_asked, status=status)
    found = page.items
    return render_template(
        "manufacturing/processing/lots.html",
        lots=found,
        page=page,
        notes=notes,
        status_options=[(status.value, term(status)) for status in LotStatus],
        recalls=recalls_naming(db.session, lots=[lot.id for lot in found]),
    )


@blueprint.get("/materials")
@requires(Permission.READ_RECORDS)
def materials() -> ResponseReturnValue:
    return _materials_page()


def _materials_page(error: DomainError | None = None) -> ResponseReturnValue:
    """The stock list (issue 22: ``manufacturing.stock``), with the receipt form."""
    return stock_views.materials_page(error)


@blueprint.post("/materials/receive")
@requires(Permission.MANAGE_MATERIALS)
def receive_material() -> ResponseReturnValue:
    try:
        entry = load_form(MaterialLotIn(), request.form)
        with unit_of_work() as session:
            lot = receive_material_as_user(session, entry)
            label = lot.label
    except DomainError as error:
        db.session.rollback()
        return _materials_page(error)
    flash(_("Received %(lot)s; it can be used once QA releases it.", lot=label), "success")
    return redirect(url_for("manufacturing.materials"))


@blueprint.post("/materials/<int:lot_id>/release")
@requires(Permission.RELEASE_MATERIALS)
def release_material(lot_id: int) -> ResponseReturnValue:
    try:
        with unit_of_work() as session:
            lot = release_material_as_user(session, lot_id)
            label = lot.label
    except DomainError as error:
        flash(_("Not released: %(error)s", error=error.detail), "error")
    else:
        flash(_("Released for use: %(lot)s.", lot=label), "success")
    return redirect(url_for("manufacturing.materials"))


def _step_form(
    kind: StepKind, form: dict[str, Any], error: DomainError | None = None
) -> ResponseReturnValue:
    session = db.session
    page = render_template(
        "manufacturing/processing/step_form.html",
        kind=kind,
        form=form,
        formats=_vessel_formats(session, form),
        # the kinds of equipment the step needs (issue 22), said beside the choice
        needed_equipment=step_equipment.needed_names(kind),
        **_offers(session),
        error=error.detail if error else None,
        errors=error.errors if error else {},
    )
    return (page, error.status) if error else page


def _offers(session: Any) -> dict[str, list[resources.Offer]]:
    """What a step performed now may use, and what it may not with why (the service's own
    rules, ``resources.offered_*``; a back-dated step is still checked when recorded)."""
    at = now()
    return {
        "equipment": resources.offered_equipment(session, on=at.astimezone(site_zone()).date()),
        "materials": resources.offered_material_lots(session, at=at, zone=site_zone()),
    }


def _vessel_formats(session: Any, form: dict[str, Any]) -> list[str]:
    """The vessel formats of the product of the scanned units."""
    return list(_product_of(session, form).parameters["vessel_formats"])


def _product_of(session: Any, form: dict[str, Any]) -> Any:
    """The product definition of the scanned units' donation (a lot's product is its own,
    issue 22); before a unit is scanned, the default product's version in force."""
    codes = form.get("vessels_in") or form.get("tissue") or form.get("vial") or ""
    first = codes.replace(",", "\n").split()[:1]
    try:
        return chain.resolve_unit(session, first[0]).donation.product_definition
    except (DomainError, IndexError):
        return PRODUCTS.in_force(session, PRODUCTS.default.code, at=now())


@blueprint.get("/steps/<kind_name>/new")
@requires(Permission.RECORD_PROCESSING)
def new_step(kind_name: str) -> ResponseReturnValue:
    """The step form, with the scanned unit(s) already filled in (``?units=CODE``)."""
    kind = step_kind(kind_name)
    units = "".join(code + "\n" for code in request.args.getlist("units"))
    field = {StepKind.ISOLATION: "tissue", StepKind.BANK_THAW: "vial"}.get(kind, "vessels_in")
    form: dict[str, Any] = {field: units, "materials": [], "equipment": []}
    if kind == StepKind.FILL:  # the product's fill, as a starting point
        parameters = _product_of(db.session, form).parameters
        form["volume_ml"] = parameters["fill_volume_ml"]
        form["total_cells_per_ml"] = f"{parameters['target_concentration_cells_per_ml']:g}"
        form["dmso_percent"] = parameters["dmso_percent"]["max"]
    return _step_form(kind, form)


@blueprint.post("/steps/<kind_name>")
@requires(Permission.RECORD_PROCESSING)
def record_step_form(kind_name: str) -> ResponseReturnValue:
    kind = step_kind(kind_name)
    try:
        data = load_form(STEP_SCHEMAS[kind](), request.form, lists=("materials", "equipment"))
        with unit_of_work() as session:
            step, lot = record_step_as_user(session, kind, data)
            target = (
                url_for("manufacturing.lot", lot_id=lot.id)
                if lot is not None
                # record_step_as_user returns a step whenever it returns no lot
                else url_for("manufacturing.step", step_id=step.id)  # type: ignore[union-attr]
            )
    except DomainError as error:
        db.session.rollback()
        return _step_form(kind, _typed(), error)
    flash(_("Recorded: %(step)s.", step=term(kind)), "success")
    return redirect(target)


@blueprint.get("/steps/<int:step_id>")
@requires(Permission.READ_RECORDS)
def step(step_id: int) -> ResponseReturnValue:
    found = processing.get_step(db.session, step_id)
    outputs = [row.unit for row in found.units if row.role == "output"]
    return render_template(
        "manufacturing/processing/step.html",
        step=found,
        inputs=[row.unit for row in found.units if row.role == "input"],
        outputs=outputs,
        records=processing.cell_records(db.session, outputs),
    )


@blueprint.get("/lots/<int:lot_id>")
@requires(Permission.READ_RECORDS)
def lot(lot_id: int) -> ResponseReturnValue:
    record = batch_record(db.session, processing.get_lot(db.session, lot_id))
    actions = processing.lot_actions(db.session, record.lot)
    return render_template(
        "manufacturing/processing/lot.html",
        record=record,
        actions=actions,
        recalls=recalls_naming(db.session, lots=[lot_id]).lot(lot_id),
        # the freezing form's (issue 22: the DMSO's use defaults from the bags), when offered
        **(_offers(db.session) if "freeze" in actions else {"equipment": [], "materials": []}),
    )


@blueprint.post("/lots/<int:lot_id>/freezing")
@requires(Permission.RECORD_PROCESSING)
def freeze_lot(lot_id: int) -> ResponseReturnValue:
    try:
        data = load_form(StepIn(), request.form, lists=("materials", "equipment"))
        with unit_of_work() as session:
            freeze_lot_as_user(session, lot_id, data)
    except DomainError as error:
        flash(_("Not recorded: %(error)s", error=error.detail), "error")
    else:
        flash(_("Controlled-rate freezing recorded."), "success")
    return redirect(url_for("manufacturing.lot", lot_id=lot_id))


@blueprint.get("/lots/<int:lot_id>/batch-record.pdf")
@requires(Permission.READ_RECORDS)
def lot_pdf(lot_id: int) -> ResponseReturnValue:
    """The printable batch record of the lot."""
    found = processing.get_lot(db.session, lot_id)
    pdf = render_batch_record_pdf(
        batch_record(db.session, found),
        site_name=current_app.config["SITE_NAME"],
        zone=site_zone(),
        generated_at=now(),
        generated_by=acting_user().full_name,
        recalls=recalls_naming(db.session, lots=[lot_id]).lot(lot_id),
    )
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{found.lot_number}-batch-record.pdf"'},
    )
