"""FHIR R5 export of an infusion: what a hospital system imports to know which product went
into which patient (issue 9, DOMAIN.md §1 traceability).

One infusion becomes a ``collection`` Bundle of:

* a ``Patient`` known only by the study ID and the chain-of-identity identifier: no name, no
  record number, no birth date (21 CFR 1271.290(c); the clinic keeps those out of cellchain);
* one ``BiologicallyDerivedProduct`` per bag of the dose and one for the prepared dose, whose
  ``parent`` are the bags. Each carries its unit code with the check character, the donation's
  DIN as ``biologicalSourceEvent`` (the element FHIR maps to the ISBT 128 DIN), the lot's
  expiry and the processing facility;
* one ``BiologicallyDerivedProductDispense``: the dose handed over to the patient at the start
  of the infusion, with who administered it and how much was infused. When a recall names
  the dose (issue 16, item 9), its ``note`` carries one annotation per recall, "RECALL <number>
  (<status>): <reason> — /recalls/<id>", after the note on the infusion's course: a note and
  not an extension, so that any receiver shows it without knowing a profile of ours;
* the ``Practitioner`` who administered it (username only) and the processing
  ``Organization`` (facility code only), so that every reference resolves inside the bundle.

Every ``fullUrl`` is a ``urn:uuid:`` derived (UUID 5) from identifiers that never change, so
the same infusion always exports the same bundle; only ``timestamp`` says when it was made.
Nothing here reads the request or the configuration: the caller passes the time and the URL.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterable
from typing import Any

from cellchain.chain.models import Unit, UnitKind, UnitStatus
from cellchain.clinic.bedside.infusions import infusions_of
from cellchain.clinic.models import Infusion, InfusionStatus
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import User
from cellchain.core.types import utcnow
from cellchain.dosing.models import DoseOrder, Patient
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import CellRecord, Lot
from cellchain.quality.results import lot_of_unit
from cellchain.traceability.models import Recall
from cellchain.traceability.notices import recalls_naming

#: The media type of the export (FHIR R5 JSON).
FHIR_JSON = "application/fhir+json"

#: Every fullUrl is uuid5(NAMESPACE, key): stable across exports, servers and databases.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cellchain:fhir")

UCUM = "http://unitsofmeasure.org"
PRODUCT_CATEGORY = "http://hl7.org/fhir/product-category"
PRODUCT_STATUS = "http://hl7.org/fhir/biologicallyderived-product-status"
DISPENSE_STATUS = "http://hl7.org/fhir/biologicallyderivedproductdispense-status"
#: Property types of our own: R5 binds BiologicallyDerivedProduct.property.type by example only.
PROPERTY_SYSTEM = "urn:cellchain:product-property"

#: The dispense records the hand-over of the dose to the patient, which happened when the
#: infusion started (R5 leaves administration to other resources). So a running, a completed
#: and a stopped infusion are all "issued": the product reached the patient. How the infusion
#: went (running, ended, stopped early and why) is in the note and in ``quantity``. Mapping
#: explicitly makes a new infusion status fail here (KeyError) instead of exporting a guess.
DISPENSE_STATUS_OF: dict[InfusionStatus, str] = {
    InfusionStatus.IN_PROGRESS: "issued",
    InfusionStatus.COMPLETED: "issued",
    InfusionStatus.STOPPED: "issued",
}


def system(facility: str, kind: str) -> str:
    """The identifier system for ``kind`` (study-id, coi, unit, din, infusion, user) at the
    facility: study IDs and usernames mean something only at their site."""
    return f"urn:cellchain:{facility}:{kind}"


def full_url(key: str) -> str:
    """The fullUrl of the resource named by ``key``: the same key, the same URL, always."""
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, key)}"


def infusion_bundle(
    session: DbSession,
    infusion: Infusion,
    *,
    base_url: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The FHIR R5 ``collection`` Bundle of one infusion (see the module docstring).

    ``base_url`` is the site's root URL; when given, the bundle links to where it is served.
    ``now`` is the bundle's timestamp (the export time), the only value that changes between
    two exports of the same infusion.
    """
    dose_code = _dose_unit(infusion.dose_order).code
    link = None
    if base_url:
        link = f"{base_url.rstrip('/')}/api/v1/infusions/{infusion.id}/fhir"
    return _bundle(
        key=f"bundle:infusion:{dose_code}",
        entries=_infusion_entries(session, infusion),
        now=now,
        self_link=link,
    )


def patient_bundle(
    session: DbSession, patient: Patient, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Every infusion of ``patient`` in one collection Bundle, each resource once. A patient
    with no infusion gets the Patient alone: nothing given is not an error."""
    entries = [_patient_entry(patient)]
    for infusion in infusions_of(session, patient):
        entries.extend(_infusion_entries(session, infusion))
    return _bundle(key=f"bundle:patient:{patient.coi}", entries=entries, now=now, self_link=None)


# --- the bundle -----------------------------------------------------------------------------


def _bundle(
    *, key: str, entries: Iterable[dict[str, Any]], now: dt.datetime | None, self_link: str | None
) -> dict[str, Any]:
    """A collection Bundle of ``entries``; an entry repeated (the same fullUrl) is kept once."""
    unique: dict[str, dict[str, Any]] = {}
    for entry in entries:
        unique.setdefault(entry["fullUrl"], entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": _id(key),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": full_url(key)},
        "type": "collection",
        "timestamp": _instant(now or utcnow()),
    }
    if self_link:
        bundle["link"] = [{"relation": "self", "url": self_link}]
    bundle["entry"] = list(unique.values())
    return bundle


def _infusion_entries(session: DbSession, infusion: Infusion) -> list[dict[str, Any]]:
    """Patient, products (bags first, then the dose), organization, practitioner, dispense."""
    order = infusion.dose_order
    recalls = recalls_naming(session, doses=[order.id]).dose(order.id)
    dose = _dose_unit(order)
    facility = parse_identifier(infusion.patient.coi).facility_code
    bags = []
    for bag in order.bags:
        fill = _fill(session, bag.unit)
        bags.append(
            _product_entry(
                bag.unit,
                facility=facility,
                parents=[],
                volume_ml=fill.volume_ml,
                cells=fill.cells,
                cells_counted="total",  # a bag's fill is a total count (DOMAIN.md §7)
                lots=_lots(session, [bag.unit]),
            )
        )
    product = _product_entry(
        dose,
        facility=facility,
        parents=[entry["fullUrl"] for entry in bags],
        volume_ml=order.volume_ml,
        cells=order.delivered_cells,
        lots=_lots(session, _units(order)),
    )
    organizations = [_organization_entry(fin) for fin in _facilities([dose, *_units(order)])]
    return [
        _patient_entry(infusion.patient),
        *organizations,
        *bags,
        product,
        _practitioner_entry(infusion.administered_by, facility),
        _dispense_entry(infusion, facility=facility, product=product["fullUrl"], recalls=recalls),
    ]


# --- resources ------------------------------------------------------------------------------


def _patient_entry(patient: Patient) -> dict[str, Any]:
    """The patient by study ID and COI only: names, record numbers and birth dates stay at
    the clinic (DOMAIN.md §1, §9)."""
    facility = parse_identifier(patient.coi).facility_code
    key = f"patient:{patient.coi}"
    return _entry(
        key,
        {
            "resourceType": "Patient",
            "identifier": [
                {
                    "use": "official",
                    "type": {"text": "Trial subject ID"},
                    "system": system(facility, "study-id"),
                    "value": patient.study_id,
                },
                {
                    "use": "secondary",
                    "type": {"text": "Chain-of-identity identifier (ISBT 128 ST-028)"},
                    "system": system(facility, "coi"),
                    "value": patient.coi,
                },
            ],
        },
    )


def _product_entry(
    unit: Unit,
    *,
    facility: str,
    parents: list[str],
    volume_ml: float | None,
    cells: float | None,
    lots: list[Lot],
    cells_counted: str = "viable",
) -> dict[str, Any]:
    """One labelled unit (a bag or the prepared dose) as a BiologicallyDerivedProduct. A bag's
    cells are its fill's total count (``total-cells``), a dose's the viable cells delivered
    (``viable-cells``): the property says which, as the labels do."""
    donation = unit.donation
    resource: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProduct",
        "productCategory": {"system": PRODUCT_CATEGORY, "code": "cells", "display": "Cells"},
    }
    definitions = {lot.product_definition.code: lot.product_definition for lot in lots}
    if len(definitions) == 1:
        (definition,) = definitions.values()
        resource["productCode"] = {
            "coding": [
                {
                    "system": system(facility, "product"),
                    "code": definition.code,
                    "display": definition.title,
                }
            ],
            "text": f"{definition.title} ({unit.kind_label})",
        }
    else:
        resource["productCode"] = {"text": unit.kind_label}
    if parents:
        resource["parent"] = [{"reference": parent} for parent in parents]
    resource["identifier"] = [
        {
            "use": "official",
            "type": {"text": "Unit code with check character"},
            "system": system(facility, "unit"),
            "value": unit.code,
        },
        *(
            {
                "use": "secondary",
                "type": {"text": "Lot"},
                "system": system(facility, "lot"),
                "value": lot.lot_number,
            }
            for lot in lots
        ),
    ]
    resource["biologicalSourceEvent"] = {
        "type": {"text": "Donation identification number (DIN) with check character"},
        "system": system(facility, "din"),
        "value": donation.din,
    }
    resource["processingFacility"] = [
        {"reference": full_url(f"organization:{fin}"), "display": f"Facility {fin}"}
        for fin in _facilities([unit])
    ]
    resource["productStatus"] = {
        "system": PRODUCT_STATUS,
        "code": "available" if unit.status == UnitStatus.AVAILABLE.value else "unavailable",
    }
    expiries = [lot.expires_at for lot in lots if lot.expires_at is not None]
    if expiries:  # a dose expires with the first of its lots to expire
        resource["expirationDate"] = _instant(min(expiries))
    resource["collection"] = {"collectedDateTime": _instant(donation.collected_at)}
    limits = [
        lot.product_definition.parameters.get("storage_max_temperature_c")
        for lot in lots
        if unit.kind == UnitKind.CRYOBAG.value
    ]
    known = [float(limit) for limit in limits if limit is not None]
    if known:
        resource["storageTempRequirements"] = {"high": _quantity(min(known), "°C", "Cel")}
    properties = []
    if volume_ml is not None:
        properties.append(_property("volume", "Volume", _quantity(volume_ml, "mL", "mL")))
    if cells is not None and math.isfinite(cells):
        properties.append(
            _property(
                f"{cells_counted}-cells",
                f"{cells_counted.capitalize()} cells",
                _quantity(cells, "cells", "{cells}"),
            )
        )
    if properties:
        resource["property"] = properties
    return _entry(f"unit:{unit.code}", resource)


def _organization_entry(fin: str) -> dict[str, Any]:
    """The processing facility by its facility identification number (the first five
    characters of every DIN it issues); R5 asks for a name or an identifier, not both."""
    return _entry(
        f"organization:{fin}",
        {
            "resourceType": "Organization",
            "identifier": [
                {
                    "type": {"text": "ISBT 128 facility identification number"},
                    "system": "urn:cellchain:facility",
                    "value": fin,
                }
            ],
        },
    )


def _practitioner_entry(user: User, facility: str) -> dict[str, Any]:
    """The clinician who administered the dose, by username only."""
    return _entry(
        f"practitioner:{facility}:{user.username}",
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": system(facility, "user"), "value": user.username}],
        },
    )


def _dispense_entry(
    infusion: Infusion, *, facility: str, product: str, recalls: list[Recall]
) -> dict[str, Any]:
    """The dose handed over to its patient at the start of the infusion, and the recalls that
    name it."""
    order = infusion.dose_order
    dose = _dose_unit(order)
    practitioner = full_url(f"practitioner:{facility}:{infusion.administered_by.username}")
    resource: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProductDispense",
        "identifier": [{"system": system(facility, "infusion"), "value": str(infusion.id)}],
        "status": DISPENSE_STATUS_OF[InfusionStatus(infusion.status)],
        "product": {"reference": product, "display": dose.code},
        "patient": {
            "reference": full_url(f"patient:{infusion.patient.coi}"),
            "display": infusion.patient.study_id,
        },
        "performer": [
            {
                "function": {"text": "Administered the infusion"},
                "actor": {"reference": practitioner, "display": infusion.administered_by.username},
            }
        ],
    }
    if order.checked_at is not None:
        resource["preparedDate"] = _instant(order.checked_at)
    resource["whenHandedOver"] = _instant(infusion.started_at)
    if infusion.volume_infused_ml is not None:
        resource["quantity"] = _quantity(infusion.volume_infused_ml, "mL", "mL")
    resource["usageInstruction"] = (
        f"Visit {order.visit}: infuse {order.volume_ml:.1f} mL holding "
        f"{_cells(order.delivered_cells)} viable cells."
    )
    resource["note"] = [{"text": _course(infusion), "time": _instant(infusion.started_at)}] + [
        {
            "text": f"RECALL {r.number} ({r.status}): {r.reason} — /recalls/{r.id}",
            "time": _instant(r.opened_at),
        }
        for r in recalls
    ]
    return _entry(f"dispense:{dose.code}", resource)


# --- helpers --------------------------------------------------------------------------------


def _course(infusion: Infusion) -> str:
    """How the infusion went, in words: the visit, the cells delivered, the end."""
    order = infusion.dose_order
    words = [
        f"Visit {order.visit}. Delivered cells {_cells(order.delivered_cells)} "
        f"(target {_cells(order.target_cells)}, {order.deviation_percent:+.1f} %).",
        f"Infusion started {_instant(infusion.started_at)}.",
    ]
    status = InfusionStatus(infusion.status)
    if status is InfusionStatus.IN_PROGRESS:
        words.append("Infusion in progress.")
    else:
        ended = "stopped early" if status is InfusionStatus.STOPPED else "completed"
        when = _instant(infusion.ended_at) if infusion.ended_at else "unknown"
        words.append(
            f"Infusion {ended} {when}: {infusion.volume_infused_ml:.1f} of "
            f"{order.volume_ml:.1f} mL at {infusion.rate_ml_per_h:g} mL/h; "
            f"reaction: {infusion.reaction or 'none'}."
        )
    return " ".join(words)


def _dose_unit(order: DoseOrder) -> Unit:
    """The prepared dose's unit; an infusion exists only for a prepared (labelled) dose."""
    if order.dose_unit is None:
        raise ValueError(f"dose order {order.id} has no prepared dose unit")
    return order.dose_unit


def _units(order: DoseOrder) -> list[Unit]:
    return [bag.unit for bag in order.bags]


def _lots(session: DbSession, units: list[Unit]) -> list[Lot]:
    """The lots of ``units`` (bags), each once, first seen first."""
    found: dict[int, Lot] = {}
    for unit in units:
        lot = lot_of_unit(session, unit)
        if lot is not None:
            found.setdefault(lot.id, lot)
    return list(found.values())


def _fill(session: DbSession, unit: Unit) -> CellRecord:
    """What a bag was filled with; an empty record for a unit that has none."""
    return session.get(CellRecord, unit.id) or CellRecord(unit_id=unit.id)


def _facilities(units: list[Unit]) -> list[str]:
    """The facility codes of the units' DINs, each once: where the material was processed."""
    return list(dict.fromkeys(parse_identifier(unit.donation.din).facility_code for unit in units))


def _entry(key: str, resource: dict[str, Any]) -> dict[str, Any]:
    """A bundle entry whose fullUrl and resource id both come from ``key``."""
    return {"fullUrl": full_url(key), "resource": _with_id(key, resource)}


def _with_id(key: str, resource: dict[str, Any]) -> dict[str, Any]:
    resource_type = resource["resourceType"]
    rest = {name: value for name, value in resource.items() if name != "resourceType"}
    return {"resourceType": resource_type, "id": _id(key), **rest}


def _id(key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, key))


def _property(code: str, display: str, quantity: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": PROPERTY_SYSTEM, "code": code, "display": display}]},
        "valueQuantity": quantity,
    }


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    """A UCUM quantity; whole numbers of cells are written without a fraction."""
    number: float | int = int(value) if float(value).is_integer() else round(value, 6)
    return {"value": number, "unit": unit, "system": UCUM, "code": code}


def _cells(value: float) -> str:
    """``7.02 × 10^7``: cell counts the way the dose pages write them."""
    if value <= 0 or not math.isfinite(value):
        return f"{value:g}"
    exponent = math.floor(math.log10(value))
    return f"{value / 10**exponent:.2f} × 10^{exponent}"


def _instant(value: dt.datetime) -> str:
    """An aware time as FHIR writes it, in UTC (``…Z``)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime refused: cellchain stores aware UTC times only")
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
