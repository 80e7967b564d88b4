"""Loading a record by its id, or a 404 that says what was asked for.

Every feature reads its records by id the same way, and a missing one is the same refusal
(``NotFound``, 404 on the API, the error page on the web), worded "There is no <what>
<id>." so that the message names the kind of record and the number that found nothing.
"""

from __future__ import annotations

from typing import TypeVar

from cellchain.core.i18n import N_, _, document_text
from cellchain.errors import NotFound
from cellchain.extensions import DbSession

Record = TypeVar("Record")

#: The names of the records features load by id, marked so that the catalogue has them: the
#: refusal names the kind of record in the reader's language (``document_text``; a name not
#: listed reads as the feature wrote it)
RECORD_NAMES = (
    N_("adverse event"),
    N_("bedside check"),
    N_("deviation"),
    N_("donation"),
    N_("donor"),
    N_("donor test result"),
    N_("dose order"),
    N_("equipment"),
    N_("infusion"),
    N_("label print"),
    N_("lot"),
    N_("material lot"),
    N_("patient"),
    N_("post-thaw count"),
    N_("processing step"),
    N_("QC result"),
    N_("shipment"),
    N_("trial data export"),
    N_("unit"),
    N_("user"),
    N_("visit reschedule"),
)


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
        number = f"{id_prefix}{record_id}"
        raise NotFound(
            _(
                "There is no %(what)s %(id)s.",
                what=document_text(what),
                id=number,
            )
        )
    return record
