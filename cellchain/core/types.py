"""Column types and value helpers shared by every feature package."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    """The current time, UTC and aware, to microseconds (what the databases keep)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC timestamp on every database.

    PostgreSQL stores ``timestamptz``; SQLite stores text without a zone, so values are
    normalised to UTC on the way in and made aware again on the way out. Naive values are
    refused: a time without a zone is a bug, not a convention.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: cellchain stores aware UTC times only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def to_jsonable(value: Any) -> Any:
    """A JSON-safe form of a recorded value (times as ISO 8601 UTC, decimals as text)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return value


def canonical_json(value: Any) -> str:
    """One exact text for a value: sorted keys, no spaces. Hashes are taken over this."""
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class LabelledEnum(enum.StrEnum):
    """A stored value that people read: ``storage_excursion`` reads "storage excursion"."""

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


def sql_values(enum_type: type[enum.StrEnum]) -> str:
    """The members of ``enum_type`` as an SQL list, for a CHECK (column IN (…)) constraint."""
    return ", ".join(f"'{member.value}'" for member in enum_type)
