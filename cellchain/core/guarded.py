"""Guarded updates: change a row only if it is still as it was read (DESIGN.md rule 2).

A status change, a closure or a slot being filled is an ``UPDATE … WHERE <the state read>``.
Of two people doing the same at once, the second waits for the first's row lock and then
finds nothing to update, so nobody wins twice; the caller turns ``False`` into its own
Conflict message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, inspect, update
from sqlalchemy.orm.attributes import set_committed_value

from cellchain.core import record_state
from cellchain.extensions import DbSession


def update_if(
    session: DbSession, record: Any, *conditions: ColumnElement[bool], **values: Any
) -> bool:
    """Set ``values`` on ``record``'s row where ``conditions`` still hold; whether it did.

    On success the loaded ``record`` shows the new values too, without reading the row again.
    """
    model = type(record)
    (key,) = inspect(model).primary_key
    changed = session.execute(
        record_state.marked(
            update(model)
            .where(key == getattr(record, key.key), *conditions)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    )
    # Session.execute is typed to return a Result; an UPDATE's is a CursorResult, with rowcount
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_state.touched(session, model, [getattr(record, key.key)])
    for name, value in values.items():
        set_committed_value(record, name, value)
    return True
