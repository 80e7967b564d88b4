"""API of deviations: open, read, close and authorise a limit excursion.

Load → call the service → dump. No rules here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_smorest import Blueprint

from cellchain.core import signatures
from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.core.signatures import SignatureManifest
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.deviations import commands, deviations
from cellchain.manufacturing.deviations.schemas import (
    DeviationCloseIn,
    DeviationDetailOut,
    DeviationOpenIn,
    DeviationOut,
    DeviationQueryIn,
    ExcursionAuthoriseIn,
)
from cellchain.manufacturing.models import Deviation, DeviationCategory
from cellchain.web.listing import PAGINATION_HEADERS, paged

deviations_api = Blueprint(
    "deviations_api", __name__, url_prefix="/api/v1/deviations", description="Deviations"
)
blueprints = (deviations_api,)


# --- what the endpoints return ------------------------------------------------------------------


@dataclass(frozen=True)
class DeviationDetail:
    """A deviation with its signatures (and those of its authorisation, if any); reads
    through to the deviation for its own fields."""

    deviation: Deviation
    signatures: list[SignatureManifest]
    authorisation: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.deviation, name)


def deviation_detail(deviation: Deviation) -> DeviationDetail:
    found = deviation.authorisation
    authorisation = (
        {
            **{
                name: getattr(found, name)
                for name in ("id", "max_passage", "max_cumulative_pd", "justification")
            },
            "authorised_at": found.authorised_at,
            "authorised_by": found.authorised_by,
            "signatures": signatures.manifest(db.session, found),
        }
        if found is not None
        else None
    )
    return DeviationDetail(deviation, signatures.manifest(db.session, deviation), authorisation)


# --- deviations ---------------------------------------------------------------------------------


@deviations_api.get("")
@requires(Permission.READ_RECORDS)
@deviations_api.arguments(DeviationQueryIn, location="query")
@deviations_api.response(200, DeviationOut(many=True), headers=PAGINATION_HEADERS)
def list_deviations(args: dict[str, Any]) -> Any:
    """Deviations, newest first, a page at a time (the ``X-Pagination`` header);
    ``status=open`` or ``closed`` and ``category`` to filter, ``q`` to search the number,
    the lot number and the description."""
    page = deviations.deviations_page(
        db.session,
        PageRequest.of(args),
        status=args.get("status"),
        category=DeviationCategory(args["category"]) if "category" in args else None,
    )
    return paged(page)


@deviations_api.post("")
@requires(Permission.OPEN_DEVIATIONS)
@deviations_api.arguments(DeviationOpenIn)
@deviations_api.response(201, DeviationDetailOut)
def open_deviation(data: dict[str, Any]) -> Any:
    """Open a deviation, against a lot or none; an open deviation blocks the lot's release."""
    with unit_of_work() as session:
        deviation = commands.open_deviation_by_ids(session, data)
    return deviation_detail(deviation)


@deviations_api.get("/<int:deviation_id>")
@requires(Permission.READ_RECORDS)
@deviations_api.response(200, DeviationDetailOut)
def get_deviation(deviation_id: int) -> Any:
    """One deviation with its closing signature, checked against the deviation as it is now."""
    return deviation_detail(deviations.get_deviation(db.session, deviation_id))


@deviations_api.post("/<int:deviation_id>/close")
@requires(Permission.CLOSE_DEVIATIONS)
@deviations_api.arguments(DeviationCloseIn)
@deviations_api.response(200, DeviationDetailOut)
def close_deviation(data: dict[str, Any], deviation_id: int) -> Any:
    """QA closes the deviation with a resolution, signing with their password."""
    with unit_of_work() as session:
        deviation = commands.close_deviation_as_user(session, deviation_id, data)
    return deviation_detail(deviation)


@deviations_api.post("/<int:deviation_id>/authorise")
@requires(Permission.CLOSE_DEVIATIONS)
@deviations_api.arguments(ExcursionAuthoriseIn)
@deviations_api.response(200, DeviationDetailOut)
def authorise_excursion(data: dict[str, Any], deviation_id: int) -> Any:
    """QA authorises a limit excursion (up to ``max_passage`` and/or ``max_cumulative_pd``,
    with a justification), signing with their password. Steps beyond the product's limits
    name this deviation; the lot's release stays blocked by its limit flags."""
    with unit_of_work() as session:
        deviation = commands.authorise_excursion_as_user(session, deviation_id, data)
    return deviation_detail(deviation)
