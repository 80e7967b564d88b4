"""Marshmallow schemas of processing (with product definitions, materials and equipment): the
API's bodies and the bench forms."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from marshmallow import validate

from cellchain.chain.schemas import UnitOut
from cellchain.core.i18n import N_
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import SiteDateTime, WholeNumber
from cellchain.documents.schemas import VersionedDocumentOut
from cellchain.manufacturing.models import LotStatus, MaterialCategory, StockUnit
from cellchain.manufacturing.processing.processing import (
    CELL_BANKS,
    ISOLATION_METHODS,
    MAX_BAGS_PER_LOT,
    MAX_VESSELS_PER_STEP,
    Fill,
    Harvest,
    StepContext,
    Vessel,
)
from cellchain.manufacturing.processing.resources import MaterialLotInput
from cellchain.traceability.notice_schemas import recalls_field

# The bench forms show a field's message in the reader's language through ``document_text``
# (``web.forms.load_form``), which finds a text only as the catalogue has it: marshmallow's
# own range, length and choice messages carry their numbers and choices, so each check here
# says it in a fixed sentence marked with ``N_``. The API answers these in English, as it
# does every schema message.
assert MAX_VESSELS_PER_STEP == 100 and MAX_BAGS_PER_LOT == 200, "the messages below name them"


def _text(maximum: int, message: str) -> validate.Length:
    """Required text of at most ``maximum`` characters, refused in ``message``."""
    return validate.Length(min=1, max=maximum, error=message)


#: a scanned code
_CODE = validate.Length(min=1, max=60, error=N_("A code has 1 to 60 characters."))


class ProductDefinitionOut(VersionedDocumentOut):
    """A version of a product definition: donor test panel, windows and limits."""


class CodeList(ma.fields.List[str]):
    """Scanned codes: a JSON list, or text with one code per line (a scanner ends each with
    Enter, which in a text area is a new line) or separated by commas."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ma.fields.String(validate=_CODE), **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> list[str | None]:
        if isinstance(value, str):
            value = [part.strip() for part in value.replace(",", "\n").splitlines()]
            value = [part for part in value if part]
        return list(super()._deserialize(value, attr, data, **kwargs))


# --- materials and equipment ------------------------------------------------------------------


class MaterialLotIn(ma.Schema):
    material = ma.fields.String(
        required=True, validate=_text(120, N_("Required; at most 120 characters."))
    )
    category = ma.fields.String(
        required=True,
        validate=validate.OneOf(
            [c.value for c in MaterialCategory], error=N_("Choose one of the categories listed.")
        ),
    )
    supplier = ma.fields.String(
        required=True, validate=_text(120, N_("Required; at most 120 characters."))
    )
    lot_number = ma.fields.String(
        required=True, validate=_text(60, N_("Required; at most 60 characters."))
    )
    expiry_date = ma.fields.Date(required=True)
    quantity = ma.fields.Float(
        required=True,
        allow_nan=False,
        validate=validate.Range(min=0, min_inclusive=False, error=N_("More than zero.")),
        metadata={"description": "The quantity received, in ``unit``"},
    )
    unit = ma.fields.String(
        required=True,
        validate=validate.OneOf(
            [u.value for u in StockUnit], error=N_("Choose one of the units listed.")
        ),
        metadata={"description": "mL, g or units (pieces)"},
    )

    @ma.post_load
    def to_input(self, data: dict[str, Any], **_kwargs: Any) -> MaterialLotInput:
        return MaterialLotInput(
            **{
                **data,
                "category": MaterialCategory(data["category"]),
                "unit": StockUnit(data["unit"]),
            }
        )


class MaterialLotOut(ma.Schema):
    id = ma.fields.Integer()
    material = ma.fields.String()
    category = ma.fields.String()
    supplier = ma.fields.String()
    lot_number = ma.fields.String()
    expiry_date = ma.fields.Date()
    received_at = ma.fields.AwareDateTime()
    released = ma.fields.Boolean()
    released_at = ma.fields.AwareDateTime(allow_none=True)
    released_by = ma.fields.String(attribute="released_by.username", allow_none=True)
    quantity_received = ma.fields.Float(allow_none=True)
    unit = ma.fields.String(allow_none=True, metadata={"description": "mL, g or units"})


class EquipmentOut(ma.Schema):
    """A piece of equipment as a step names it (``StepOut.equipment``)."""

    id = ma.fields.Integer()
    code = ma.fields.String()
    kind = ma.fields.String()
    name = ma.fields.String()
    active = ma.fields.Boolean()


# --- processing steps -------------------------------------------------------------------------


class StepIn(ma.Schema):
    """What every step records: when, materials by lot, equipment, where the new units go."""

    performed_at = SiteDateTime(
        error_messages={"invalid": N_("Not a valid date and time.")},
        metadata={"description": "When it was done; now if absent. No offset: site time."},
    )
    materials = ma.fields.List(
        ma.fields.Integer(), load_default=list, metadata={"description": "Material lot ids"}
    )
    equipment = ma.fields.List(
        ma.fields.Integer(), load_default=list, metadata={"description": "Equipment ids"}
    )
    location = ma.fields.String(
        validate=validate.Length(max=120, error=N_("At most 120 characters."))
    )
    notes = ma.fields.String(
        validate=validate.Length(max=4000, error=N_("At most 4000 characters."))
    )
    deviation_id = WholeNumber(
        allow_none=True,
        metadata={
            "description": "The limit-excursion deviation, authorised by QA, that allows "
            "this step beyond the product's max passage or max CPD (needed only then)"
        },
    )
    material_quantities = ma.fields.Dict(
        keys=ma.fields.String(validate=validate.Regexp(r"^[0-9]{1,9}$")),
        values=ma.fields.Float(
            allow_nan=False,
            validate=validate.Range(min=0, min_inclusive=False, error=N_("More than zero.")),
        ),
        load_default=dict,
        metadata={
            "description": "The quantity used of a material lot, by lot id, in the lot's unit "
            "(the bench form's quantity_<id> fields); a lot left out uses the step's own figure "
            "where it has one (docs/materials.md)"
        },
    )

    @ma.pre_load
    def quantities_typed(self, data: Any, **_kwargs: Any) -> Any:
        """The bench form's ``quantity_<lot id>`` fields, gathered into
        ``material_quantities`` (an empty field is no quantity)."""
        if not isinstance(data, dict):
            return data
        typed = {k: v for k, v in data.items() if isinstance(k, str) and k.startswith("quantity_")}
        if not typed:
            return data
        rest = {k: v for k, v in data.items() if k not in typed}
        quantities = dict(rest.get("material_quantities") or {})
        quantities.update({k.removeprefix("quantity_"): v for k, v in typed.items() if v != ""})
        return {**rest, "material_quantities": quantities}

    def context(self, data: dict[str, Any], *, zone: ZoneInfo | None = None) -> StepContext:
        """The step's context; ``zone``: the site's (a material's expiry is a day there)."""
        return StepContext(
            performed_at=data.get("performed_at"),
            material_lot_ids=tuple(data["materials"]),
            equipment_ids=tuple(data["equipment"]),
            location=data.get("location"),
            notes=data.get("notes"),
            deviation_id=data.get("deviation_id"),
            material_quantities={
                int(lot): quantity for lot, quantity in data["material_quantities"].items()
            },
            **({"zone": zone} if zone is not None else {}),
        )


class NewVesselsIn(StepIn):
    """New vessels, all of one format and seeded alike (as at the bench)."""

    vessel_count = WholeNumber(
        required=True,
        validate=validate.Range(1, MAX_VESSELS_PER_STEP, error=N_("Between 1 and 100.")),
    )
    vessel_format = ma.fields.String(
        required=True, validate=_text(20, N_("Required; at most 20 characters."))
    )
    cells_per_vessel = ma.fields.Float(
        allow_nan=False, metadata={"description": "Cells seeded per vessel"}
    )

    @staticmethod
    def vessels(data: dict[str, Any]) -> list[Vessel]:
        return [Vessel(data["vessel_format"], data.get("cells_per_vessel"))] * data["vessel_count"]


class HarvestIn(ma.Schema):
    vessels_in = CodeList(
        required=True,
        validate=validate.Length(
            min=1, max=MAX_VESSELS_PER_STEP, error=N_("Scan 1 to 100 vessels.")
        ),
        metadata={"description": "Codes of the vessels harvested, as scanned"},
    )
    cells_harvested = ma.fields.Float(required=True, allow_nan=False)
    viability_percent = ma.fields.Float(required=True, allow_nan=False)

    @staticmethod
    def harvest(data: dict[str, Any]) -> Harvest:
        return Harvest(cells=data["cells_harvested"], viability_percent=data["viability_percent"])


class IsolationIn(NewVesselsIn):
    tissue = CodeList(
        required=True,
        validate=validate.Length(min=1, max=4, error=N_("Scan 1 to 4 tissue containers.")),
        metadata={"description": "Codes"},
    )
    method = ma.fields.String(
        required=True,
        validate=validate.OneOf(ISOLATION_METHODS, error=N_("Explant or enzymatic.")),
    )


class PassageIn(NewVesselsIn, HarvestIn):
    """Harvest the scanned vessels and seed new ones at the next passage."""


class BankFreezeIn(StepIn, HarvestIn):
    bank = ma.fields.String(
        required=True, validate=validate.OneOf(CELL_BANKS, error=N_("Master or working."))
    )
    vial_count = WholeNumber(
        required=True, validate=validate.Range(1, MAX_BAGS_PER_LOT, error=N_("Between 1 and 200."))
    )
    cells_per_vial = ma.fields.Float(required=True, allow_nan=False)
    volume_ml = ma.fields.Float(required=True, allow_nan=False)


class BankThawIn(NewVesselsIn):
    vial = ma.fields.String(required=True, validate=_CODE)
    viability_percent = ma.fields.Float(required=True, allow_nan=False)


class FillIn(StepIn, HarvestIn):
    bag_count = WholeNumber(
        required=True, validate=validate.Range(1, MAX_BAGS_PER_LOT, error=N_("Between 1 and 200."))
    )
    volume_ml = ma.fields.Float(required=True, allow_nan=False)
    total_cells_per_ml = ma.fields.Float(
        required=True,
        allow_nan=False,
        metadata={
            "description": "TOTAL (nucleated) cells per mL counted at fill, dead and alive; the "
            "dose applies the release viability to it once"
        },
    )
    dmso_percent = ma.fields.Float(required=True, allow_nan=False)

    @staticmethod
    def fill(data: dict[str, Any]) -> Fill:
        return Fill(
            bag_count=data["bag_count"],
            volume_ml=data["volume_ml"],
            total_cells_per_ml=data["total_cells_per_ml"],
            dmso_percent=data["dmso_percent"],
        )


class StepOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    donation_id = ma.fields.Integer()
    performed_at = ma.fields.AwareDateTime()
    recorded_at = ma.fields.AwareDateTime()
    performed_by = ma.fields.String(attribute="performed_by.username")
    method = ma.fields.String(allow_none=True)
    passage = ma.fields.Integer(allow_none=True)
    cells_harvested = ma.fields.Float(allow_none=True)
    viability_percent = ma.fields.Float(allow_none=True)
    cells_seeded_before = ma.fields.Float(allow_none=True)
    days_in_culture = ma.fields.Float(allow_none=True)
    population_doublings = ma.fields.Float(allow_none=True)
    cumulative_pd = ma.fields.Float(allow_none=True)
    lot_id = ma.fields.Integer(allow_none=True)
    notes = ma.fields.String(allow_none=True)
    deviation_id = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "The QA-authorised limit excursion this step relied on"},
    )
    inputs = ma.fields.Method("dump_inputs")
    outputs = ma.fields.Method("dump_outputs")
    materials = ma.fields.Method("dump_materials")
    equipment = ma.fields.Method("dump_equipment")

    def dump_inputs(self, step: Any) -> list[str]:
        return [row.unit.code for row in step.units if row.role == "input"]

    def dump_outputs(self, step: Any) -> list[str]:
        return [row.unit.code for row in step.units if row.role == "output"]

    def dump_materials(self, step: Any) -> list[dict[str, Any]]:
        """Each lot the step used, with the quantity used (in the lot's unit; null when not
        counted) and where it came from (``step``: its own figures; ``entered``)."""
        return [
            {
                **MaterialLotOut().dump(row.material_lot),
                "quantity_used": row.quantity,
                "quantity_source": row.quantity_source,
            }
            for row in step.materials
        ]

    def dump_equipment(self, step: Any) -> list[dict[str, Any]]:
        return [EquipmentOut().dump(row.item) for row in step.equipment]


class BagOut(ma.Schema):
    unit = ma.fields.Nested(UnitOut)
    volume_ml = ma.fields.Float()
    total_cells_per_ml = ma.fields.Float(
        metadata={"description": "TOTAL (nucleated) cells per mL counted at fill"}
    )
    total_cells = ma.fields.Float(metadata={"description": "volume_ml × total_cells_per_ml"})
    viability_percent = ma.fields.Float(
        metadata={"description": "viability of the harvest at fill (%)"}
    )
    viable_cells_at_fill = ma.fields.Float(
        metadata={"description": "total_cells × viability_percent / 100"}
    )


class LotOut(ma.Schema):
    id = ma.fields.Integer()
    lot_number = ma.fields.String()
    donation_id = ma.fields.Integer()
    din = ma.fields.String()
    product = ma.fields.String()
    status = ma.fields.String()
    made_at = ma.fields.AwareDateTime()
    final_passage = ma.fields.Integer()
    final_cumulative_pd = ma.fields.Float(allow_none=True)
    dmso_percent = ma.fields.Float()
    expires_at = ma.fields.AwareDateTime(allow_none=True)
    limit_flags = ma.fields.List(ma.fields.String())
    bag_count = ma.fields.Integer()
    recalls = recalls_field()


class ExcursionOut(ma.Schema):
    """A step that went beyond a product limit, and QA's authorisation it relied on."""

    step_id = ma.fields.Integer()
    kind = ma.fields.String()
    performed_at = ma.fields.AwareDateTime()
    passage = ma.fields.Integer()
    cumulative_pd = ma.fields.Float()
    exceeded = ma.fields.List(ma.fields.String(), metadata={"description": "Limits exceeded"})
    deviation_id = ma.fields.Integer()
    deviation_status = ma.fields.String()
    max_passage = ma.fields.Integer(allow_none=True)
    max_cumulative_pd = ma.fields.Float(allow_none=True)
    justification = ma.fields.String()
    authorised_by = ma.fields.String()
    authorised_at = ma.fields.AwareDateTime(allow_none=True)
    signature_valid = ma.fields.Boolean()


class BatchRecordOut(LotOut):
    excursions = ma.fields.List(
        ma.fields.Nested(ExcursionOut),
        metadata={"description": "Steps beyond the product's limits, each with its authorisation"},
    )
    steps = ma.fields.List(ma.fields.Nested(StepOut))
    bags = ma.fields.List(ma.fields.Nested(BagOut))
    open_deviations = ma.fields.List(ma.fields.Dict())
    recalls = recalls_field()


class LotQueryIn(ListQueryIn):
    """The lots list's page (``core.listing``; newest first; sort by made, lot, status,
    passage or cpd; ``q`` searches the lot number), filtered by status."""

    status = ma.fields.String(validate=validate.OneOf([s.value for s in LotStatus]))
