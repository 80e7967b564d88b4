"""Lists that scale (issue 21): one page of a list, sorted, searched and counted in the database.

A list declares a :class:`ListSpec`: the sort keys it allows (a whitelist, each a column),
its default sort and direction (newest first where time matters), a unique tiebreaker
column so that rows with the same sort value keep one order and pages never repeat or
skip a row, the columns a search text looks in, and its page sizes. A request for a page
is a :class:`PageRequest` (page number, page size, sort key, direction, search text; the
list's own filters are applied by its service to the select before it is paged). Then
:func:`fetch_page` sends two statements whatever the data: the total (one ``count``) and
the page's rows (``ORDER BY … LIMIT … OFFSET``).

Bad values are refused with ``InvalidInput`` (422 on the API), or, when the request says
``correct`` (the HTML pages), replaced by the defaults with a note the page shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from cellchain.core.i18n import _
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession

_Row = TypeVar("_Row")
#: a sortable or searchable column: a model's attribute or any column expression
Column = ColumnElement[Any] | InstrumentedAttribute[Any]

#: No list sends more rows than this in one page (the API's ``page_size`` maximum).
MAX_PAGE_SIZE = 500
#: The page size when a list does not say.
DEFAULT_PAGE_SIZE = 50
#: A search text longer than this is refused (the codes searched are short).
MAX_SEARCH_LENGTH = 100


class Direction(StrEnum):
    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True)
class ListSpec:
    """What a list allows: its sort keys (name → column), their default, the unique
    tiebreaker, the searched columns (or a ``search`` function of the text), page sizes."""

    sorts: Mapping[str, Column]
    default_sort: str
    tiebreaker: Column
    default_direction: Direction = Direction.DESC
    searched: Sequence[Column] = ()
    search: Callable[[str], ColumnElement[bool]] | None = None
    default_page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = MAX_PAGE_SIZE

    def __post_init__(self) -> None:
        if self.default_sort not in self.sorts:
            raise ValueError(f"the default sort {self.default_sort!r} is not a sort key")

    @property
    def sort_keys(self) -> tuple[str, ...]:
        return tuple(self.sorts)

    def where_search(self, text: str) -> ColumnElement[bool]:
        """The condition a search text puts on the rows: any searched column contains it,
        case-insensitively (``%`` and ``_`` are matched as themselves)."""
        if self.search is not None:
            return self.search(text)
        if not self.searched:
            return false()
        pattern = "%" + like_escaped(text) + "%"
        return or_(*(column.ilike(pattern, escape="\\") for column in self.searched))


def like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern, its wildcards matched literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class PageRequest:
    """Which page of a list to show. ``None`` means the list's default. ``correct``: replace
    bad values by the defaults and say so (a page), rather than refuse them (the API)."""

    page: int = 1
    page_size: int | None = None
    sort: str | None = None
    direction: Direction | None = None
    search: str = ""
    correct: bool = False

    @classmethod
    def of(cls, args: Mapping[str, Any], *, correct: bool = False) -> PageRequest:
        """The request a loaded ``ListQueryIn`` (or a subclass) describes."""
        direction = args.get("direction")
        return cls(
            page=int(args.get("page") or 1),
            page_size=args.get("page_size"),
            sort=args.get("sort") or None,
            direction=Direction(direction) if direction else None,
            search=(args.get("q") or "").strip(),
            correct=correct,
        )


@dataclass(frozen=True)
class Page(Generic[_Row]):
    """One page of a list, and how to reach the others."""

    items: list[_Row]
    total: int
    page: int
    page_size: int
    sort: str
    direction: Direction
    search: str = ""
    #: what was corrected in the request, for the page to say (empty on the API)
    notes: tuple[str, ...] = field(default=())

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))

    @property
    def per_page(self) -> int:
        """The page size (the donations list's earlier name)."""
        return self.page_size

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def first(self) -> int:
        """The position (from 1) of the page's first row in the whole list; 0 when empty."""
        return (self.page - 1) * self.page_size + 1 if self.items else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.page_size + len(self.items)

    def with_items(self, items: list[Any]) -> Page[Any]:
        """The same page holding ``items`` (the rows made into what the interface shows)."""
        return replace(self, items=items)

    def pagination(self) -> dict[str, int]:
        """The API's ``X-Pagination`` header, in flask-smorest's format."""
        shown: dict[str, int] = {
            "total": self.total,
            "total_pages": self.pages,
            "first_page": 1,
            "last_page": self.pages,
            "page": self.page,
            "page_size": self.page_size,
        }
        if self.has_previous:
            shown["previous_page"] = self.page - 1
        if self.has_next:
            shown["next_page"] = self.page + 1
        return shown


def _refuse(name: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors={name: [message]})


def _resolved(spec: ListSpec, request: PageRequest) -> tuple[str, Direction, int, list[str]]:
    """The sort key, direction and page size to use, and the notes of what was corrected."""
    notes: list[str] = []
    sort = request.sort or spec.default_sort
    if sort not in spec.sorts:
        message = _(
            "This list cannot be sorted by “%(key)s”; it sorts by %(keys)s.",
            key=sort,
            keys=", ".join(spec.sorts),
        )
        if not request.correct:
            raise _refuse("sort", message)
        notes.append(message)
        sort = spec.default_sort
    size = request.page_size or spec.default_page_size
    if not 1 <= size <= spec.max_page_size:
        message = _(
            "A page holds from 1 to %(most)s rows, not %(size)s.",
            most=spec.max_page_size,
            size=size,
        )
        if not request.correct:
            raise _refuse("page_size", message)
        notes.append(message)
        size = spec.default_page_size
    if len(request.search) > MAX_SEARCH_LENGTH:
        message = _("A search text has at most %(most)s characters.", most=MAX_SEARCH_LENGTH)
        raise _refuse("q", message)
    if request.page < 1:
        message = _("Pages are numbered from 1.")
        if not request.correct:
            raise _refuse("page", message)
        notes.append(message)
    return sort, request.direction or spec.default_direction, size, notes


def fetch_page(
    session: DbSession, query: Select[Any], spec: ListSpec, request: PageRequest
) -> Page[Any]:
    """The page ``request`` asks for of the rows ``query`` selects (its filters applied;
    any ORDER BY it has is replaced): two statements, the count and the rows."""
    sort, direction, size, notes = _resolved(spec, request)
    if request.search:
        query = query.where(spec.where_search(request.search))
    query = query.order_by(None)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    pages = max(1, math.ceil(total / size))
    page = max(1, request.page)
    if page > pages and request.correct:
        notes.append(
            _("There is no page %(page)s: the list has %(pages)s.", page=page, pages=pages)
        )
        page = pages
    column = spec.sorts[sort]
    if direction is Direction.DESC:
        order = [column.desc(), spec.tiebreaker.desc()]
    else:
        order = [column.asc(), spec.tiebreaker.asc()]
    if column is spec.tiebreaker:
        order = order[:1]
    rows = session.execute(query.order_by(*order).limit(size).offset((page - 1) * size))
    items = list(rows.scalars()) if len(query.column_descriptions) == 1 else list(rows.all())
    return Page(
        items=items,
        total=total,
        page=page,
        page_size=size,
        sort=sort,
        direction=direction,
        search=request.search,
        notes=tuple(notes),
    )
