"""API of processing: product definitions, materials, equipment, processing
steps, lots and their batch records. Load → call the service → dump; no rules here."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.documents.api import document_api
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.models import Lot, LotStatus, StepKind
from cellchain.manufacturing.processing import processing, resources
from cellchain.manufacturing.processing.batch_record import BatchRecord, batch_record
from cellchain.manufacturing.processing.commands import (
    freeze_lot_as_user,
    receive_material_as_user,
    record_step_as_user,
    release_material_as_user,
)
from cellchain.manufacturing.processing.schemas import (
    BankFreezeIn,
    BankThawIn,
    BatchRecordOut,
    FillIn,
    IsolationIn,
    LotOut,
    LotQueryIn,
    MaterialLotIn,
    MaterialLotOut,
    PassageIn,
    ProductDefinitionOut,
    StepIn,
    StepOut,
)
from cellchain.manufacturing.service import PRODUCTS
from cellchain.traceability.notices import recalls_naming
from cellchain.web.listing import PAGINATION_HEADERS, paged

products_api = document_api(
    PRODUCTS,
    ProductDefinitionOut,
    name="product",
    noun="product definition",
    description="Product definitions (QA-approved versions)",
    one_summary="One version with its parameters and signatures (each marked valid or not).",
)
materials_api = Blueprint(
    "materials_api", __name__, url_prefix="/api/v1", description="Materials"
)
steps_api = Blueprint(
    "steps_api", __name__, url_prefix="/api/v1", description="Processing steps and lots"
)
blueprints = (products_api, materials_api, steps_api)


# --- materials and equipment ------------------------------------------------------------------


@materials_api.get("/materials")
@requires(Permission.READ_RECORDS)
@materials_api.response(200, MaterialLotOut(many=True))
def list_materials() -> Any:
    """Every material lot on file, by material and expiry."""
    return resources.list_material_lots(db.session)


@materials_api.post("/materials")
@requires(Permission.MANAGE_MATERIALS)
@materials_api.arguments(MaterialLotIn)
@materials_api.response(201, MaterialLotOut)
def receive_material(entry: resources.MaterialLotInput) -> Any:
    """Record a received material lot; it cannot be used until released."""
    with unit_of_work() as session:
        lot = receive_material_as_user(session, entry)
    return lot


@materials_api.post("/materials/<int:lot_id>/release")
@requires(Permission.RELEASE_MATERIALS)
@materials_api.response(200, MaterialLotOut)
def release_material(lot_id: int) -> Any:
    """Release a material lot for use (refused once expired)."""
    with unit_of_work() as session:
        lot = release_material_as_user(session, lot_id)
    return lot


# --- processing steps and lots ------------------------------------------------------------------


def lot_out(lot: Lot) -> dict[str, Any]:
    product = lot.product_definition
    return {
        **{name: getattr(lot, name) for name in LotOut().fields if hasattr(lot, name)},
        "din": processing.lot_donation(db.session, lot).din,
        "product": f"{product.code} v{product.version}",
        "bag_count": len(processing.bags_of(db.session, lot)),
    }


def batch_record_out(record: BatchRecord) -> dict[str, Any]:
    return {
        **lot_out(record.lot),
        "recalls": recalls_naming(db.session, lots=[record.lot.id]).lot(record.lot.id),
        "steps": record.steps,
        "bags": [
            {
                "unit": bag,
                "volume_ml": cells.volume_ml,
                "total_cells_per_ml": cells.total_cells_per_ml,
                "total_cells": cells.cells,
                "viability_percent": cells.viability_percent,
                "viable_cells_at_fill": cells.viable_cells_at_fill,
            }
            for bag, cells in record.bags
        ],
        "open_deviations": [
            {"id": d.id, "category": d.category, "description": d.description}
            for d in record.open_deviations
        ],
        "excursions": [
            {
                "step_id": e.step.id,
                "kind": e.step.kind,
                "performed_at": e.step.performed_at,
                "passage": e.step.passage,
                "cumulative_pd": e.step.cumulative_pd,
                "exceeded": e.exceeded,
                "deviation_id": e.deviation.id,
                "deviation_status": e.deviation.status,
                "max_passage": e.authorisation.max_passage if e.authorisation else None,
                "max_cumulative_pd": e.authorisation.max_cumulative_pd if e.authorisation else None,
                "justification": e.authorisation.justification if e.authorisation else "",
                "authorised_by": e.authorisation.authorised_by.username if e.authorisation else "",
                "authorised_at": e.authorisation.authorised_at if e.authorisation else None,
                "signature_valid": e.signature_valid,
            }
            for e in record.excursions
        ],
    }


def _step(kind: StepKind, data: dict[str, Any]) -> Any:
    with unit_of_work() as session:
        step, lot = record_step_as_user(session, kind, data)
    if lot is not None:
        return batch_record_out(batch_record(db.session, lot))
    return step


@steps_api.post("/steps/isolation")
@requires(Permission.RECORD_PROCESSING)
@steps_api.arguments(IsolationIn)
@steps_api.response(201, StepOut)
def isolate(data: dict[str, Any]) -> Any:
    """Isolate from the donation's tissue into P0 vessels (starts processing)."""
    return _step(StepKind.ISOLATION, data)


@steps_api.post("/steps/passage")
@requires(Permission.RECORD_PROCESSING)
@steps_api.arguments(PassageIn)
@steps_api.response(201, StepOut)
def passage(data: dict[str, Any]) -> Any:
    """Harvest vessels of one donation and seed new vessels at the next passage."""
    return _step(StepKind.PASSAGE, data)


@steps_api.post("/steps/bank-freeze")
@requires(Permission.RECORD_PROCESSING)
@steps_api.arguments(BankFreezeIn)
@steps_api.response(201, StepOut)
def bank_freeze(data: dict[str, Any]) -> Any:
    """Harvest vessels into cell-bank vials."""
    return _step(StepKind.BANK_FREEZE, data)


@steps_api.post("/steps/bank-thaw")
@requires(Permission.RECORD_PROCESSING)
@steps_api.arguments(BankThawIn)
@steps_api.response(201, StepOut)
def bank_thaw(data: dict[str, Any]) -> Any:
    """Thaw a cell-bank vial into new vessels."""
    return _step(StepKind.BANK_THAW, data)


@steps_api.post("/steps/fill")
@requires(Permission.RECORD_PROCESSING)
@steps_api.arguments(FillIn)
@steps_api.response(201, BatchRecordOut)
def fill(data: dict[str, Any]) -> Any:
    """Final harvest, formulation and fill into a new lot's cryobags (in quarantine)."""
    return _step(StepKind.FILL, data)


@steps_api.get("/steps/<int:step_id>")
@requires(Permission.READ_RECORDS)
@steps_api.response(200, StepOut)
def get_step(step_id: int) -> Any:
    """One processing step with its units, counts, materials and equipment."""
    return processing.get_step(db.session, step_id)


@steps_api.get("/lots")
@requires(Permission.READ_RECORDS)
@steps_api.arguments(LotQueryIn, location="query")
@steps_api.response(200, LotOut(many=True), headers=PAGINATION_HEADERS)
def list_lots(args: dict[str, Any]) -> Any:
    """Lots, newest first, a page at a time (the ``X-Pagination`` header), ``status`` to
    filter, ``q`` to search the lot number; each with the recalls that name it."""
    status = LotStatus(args["status"]) if "status" in args else None
    page = processing.lots_page(db.session, PageRequest.of(args), status=status)
    named = recalls_naming(db.session, lots=[lot.id for lot in page.items])
    return paged(page, [{**lot_out(lot), "recalls": named.lot(lot.id)} for lot in page.items])


@steps_api.get("/lots/<int:lot_id>")
@requires(Permission.READ_RECORDS)
@steps_api.response(200, BatchRecordOut)
def get_lot(lot_id: int) -> Any:
    """The lot's batch record: every step that made its bags, the bags, open deviations."""
    return batch_record_out(batch_record(db.session, processing.get_lot(db.session, lot_id)))


@steps_api.post("/lots/<int:lot_id>/freezing")
@requires(Permission.RECORD_PROCESSING)
@steps_api.arguments(StepIn)
@steps_api.response(201, StepOut)
def freeze(data: dict[str, Any], lot_id: int) -> Any:
    """Controlled-rate freezing of the lot's bags (the freezer must be among the equipment)."""
    with unit_of_work() as session:
        step = freeze_lot_as_user(session, lot_id, data)
    return step
