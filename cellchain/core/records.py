"""Loading a record by its id, or a 404 that says what was asked for.

Every feature reads its records by id the same way, and a missing one is the same refusal
(``NotFound``, 404 on the API, the error page on the web), worded "There is no <what>
<id>." so that the message names the kind of record and the number that found nothing.
"""

from __future__ import annotations

from typing import TypeVar

from cellchain.errors import NotFound
from cellchain.extensions import DbSession

Record = TypeVar("Record")


def get_or_404(
    session: DbSession, model: type[Record], record_id: int, what: str, *, id_prefix: str = "#"
) -> Record:
    """The ``model`` row with this id, or ``NotFound`` "There is no <what> <id_prefix><id>.".

    Most records are named with a number sign ("There is no unit #12."); the clinic's,
    dosing's and labels' messages have always shown the bare id ("There is no shipment 12."),
    and pass ``id_prefix=""`` so that they read as before.
    """
    record = session.get(model, record_id)
    if record is None:
        raise NotFound(f"There is no {what} {id_prefix}{record_id}.")
    return record
