"""Where a resolved code leads: the page of the record it identifies.

Feature packages register a page for their entity type; a code not yet attached to a
record (a DIN reserved for label stock) leads to its identifier page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from flask import url_for

#: entity type → function giving the URL of that record's page
RECORD_PAGES: dict[str, Callable[[str], str]] = {}


def register_record_page(entity_type: str, url_for_id: Callable[[str], str]) -> None:
    RECORD_PAGES[entity_type] = url_for_id


class IssuedCode(Protocol):
    """What a code's page is found from: an ``IssuedIdentifier``, a row of its columns (the
    scan's Core read, ``chain/scanning.py``), or what the scan box found
    (``scanning.codes.Match``)."""

    @property
    def code(self) -> str: ...
    @property
    def entity_type(self) -> str | None: ...
    @property
    def entity_id(self) -> str | None: ...


# The manufacturing records the scan box finds by their own codes (issue 21). Registered here
# until manufacturing/processing/views.py registers them itself; a material lot leads to its
# stock page (issue 22).
register_record_page("lot", lambda entity_id: url_for("manufacturing.lot", lot_id=entity_id))
register_record_page(
    "material_lot",
    lambda entity_id: url_for("stock.material_lot", lot_id=entity_id),  # issue 22
)
register_record_page(
    "equipment",
    lambda entity_id: url_for("equipment.equipment_page", equipment_id=entity_id),
)


def record_url(issued: IssuedCode) -> str:
    if issued.entity_type and issued.entity_type in RECORD_PAGES and issued.entity_id:
        return RECORD_PAGES[issued.entity_type](issued.entity_id)
    return url_for("admin.identifier", code=issued.code)
