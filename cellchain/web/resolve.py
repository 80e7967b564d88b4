"""Where a resolved code leads: the page of the record it identifies.

Feature packages register a page for their entity type; a code not yet attached to a
record (a DIN reserved for label stock) leads to its identifier page.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import url_for

from cellchain.core.models import IssuedIdentifier

#: entity type → function giving the URL of that record's page
RECORD_PAGES: dict[str, Callable[[str], str]] = {}


def register_record_page(entity_type: str, url_for_id: Callable[[str], str]) -> None:
    RECORD_PAGES[entity_type] = url_for_id


def record_url(issued: IssuedIdentifier) -> str:
    if issued.entity_type and issued.entity_type in RECORD_PAGES and issued.entity_id:
        return RECORD_PAGES[issued.entity_type](issued.entity_id)
    return url_for("admin.identifier", code=issued.code)
