"""The interfaces' side of the lists (issue 21): a page reads its query leniently (a bad
value is dropped and said), the API answers a page's rows with an ``X-Pagination`` header.

The API's pagination: the body is the page's rows (a JSON list, as every list answered
before), and the header ``X-Pagination`` holds, as JSON, flask-smorest's fields
``total``, ``total_pages``, ``first_page``, ``last_page``, ``page``, ``previous_page``
and ``next_page`` (when there is one), and ``page_size``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from cellchain.core.i18n import ACTIVE_LANGUAGE, SOURCE_LANGUAGE, _, document_text
from cellchain.core.listing import Page, PageRequest

#: The header, documented on each list's 200 response.
PAGINATION_HEADERS: dict[str, Any] = {
    "X-Pagination": {
        "description": (
            "JSON: total, total_pages, first_page, last_page, page, page_size, "
            "previous_page and next_page (when there is one)"
        ),
        "schema": {"type": "string"},
    }
}


def _ignored(name: str, value: str, messages: Any) -> str:
    """The note of a filter value dropped: with marshmallow's own words where they read in
    the reader's language (they are English, with the allowed values: not in a catalogue),
    else without them."""
    shown = " ".join(
        document_text(str(m)) for m in (messages if isinstance(messages, list) else [messages])
    )
    if ACTIVE_LANGUAGE.get() == SOURCE_LANGUAGE:
        return _(
            "Filter ignored: “%(value)s” is not a valid %(name)s (%(problem)s).",
            value=value,
            name=name,
            problem=shown,
        )
    return _("Filter ignored: “%(value)s” is not a valid %(name)s.", value=value, name=name)


def page_query(schema: ma.Schema, args: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """A page's query string loaded with ``schema``: an empty value is absent, a bad value
    is dropped (its default used) with a note the page shows, so a typed URL never fails."""
    data = {key: value for key, value in args.items() if value != "" and key in schema.fields}
    notes: list[str] = []
    for _attempt in range(len(data) + 1):
        try:
            return dict(schema.load(data)), notes
        except ma.ValidationError as error:
            for name, messages in error.normalized_messages().items():
                notes.append(_ignored(str(name), str(data.get(str(name), "")), messages))
                data.pop(str(name), None)
    return dict(schema.load({})), notes


def page_request(
    schema: ma.Schema, args: Mapping[str, str]
) -> tuple[dict[str, Any], PageRequest, list[str]]:
    """The loaded query, the page request (which corrects bad values) and the notes."""
    query, notes = page_query(schema, args)
    return query, PageRequest.of(query, correct=True), notes


def paged(page: Page[Any], items: list[Any] | None = None) -> tuple[list[Any], dict[str, str]]:
    """What a list API returns: the rows and the ``X-Pagination`` header."""
    return (page.items if items is None else items), {"X-Pagination": json.dumps(page.pagination())}
