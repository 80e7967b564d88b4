"""The query parameters every list shares (issue 21): one marshmallow schema, subclassed by
each list to add its own filters (a status, a type). The sort key is checked against the
list's whitelist by ``core.listing`` (which knows the list), with a 422 naming the keys."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.core.listing import MAX_PAGE_SIZE, MAX_SEARCH_LENGTH, Direction
from cellchain.core.schemas import WholeNumber

#: The largest page number asked for (far beyond any list; keeps the offset in range).
MAX_PAGE = 1_000_000


class ListQueryIn(ma.Schema):
    """Which page of a list: ``page`` (from 1), ``page_size``, ``sort`` (one of the list's
    sort keys), ``direction`` (``asc`` or ``desc``), ``q`` (a search text)."""

    page = WholeNumber(
        load_default=1,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": "The page, from 1"},
    )
    page_size = WholeNumber(
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": "Rows per page (the list's default when absent)"},
    )
    sort = ma.fields.String(
        validate=validate.Length(min=1, max=40),
        metadata={"description": "A sort key the list declares (its default when absent)"},
    )
    direction = ma.fields.String(
        validate=validate.OneOf([d.value for d in Direction]),
        metadata={"description": "asc or desc (the list's default when absent)"},
    )
    q = ma.fields.String(
        validate=validate.Length(max=MAX_SEARCH_LENGTH),
        metadata={"description": "Search text: the rows whose codes contain it"},
    )
