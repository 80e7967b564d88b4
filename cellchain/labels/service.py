"""Printing labels, and accounting for every printed label (DOMAIN.md §9).

``print_labels`` draws the labels of one or more units in the chosen format and records a
``LabelPrint`` per unit in the same transaction: the file is only handed out if the log says
it was printed. A unit printed before needs a reason (a reprint). ``record_applied`` counts a
label put on its container when it is scanned there; ``destroy_labels`` counts copies
destroyed, with a reason. ``reconciliation`` sums a lot's labels: issued = applied +
destroyed + outstanding, and lists the bags whose label still says quarantine after release.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, bindparam, func, insert, select

from cellchain.chain import service as chain
from cellchain.chain.models import (
    UNIT_KIND_NAMES,
    UNIT_STATUS_NAMES,
    Unit,
    UnitKind,
    UnitStatus,
)
from cellchain.core import audit, record_state
from cellchain.core.guarded import update_if
from cellchain.core.i18n import (
    ACTIVE_LANGUAGE,
    N_,
    SOURCE_LANGUAGE,
    _,
    document_text,
    lazy,
    using_language,
)
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.wording import Quoted, Worded, Wording, say, text_of, worded
from cellchain.dosing.models import Patient
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.labels.content import (
    IsbtSettings,
    UnitLabel,
    labels_for,
    status_markings,
    wristband_for,
)
from cellchain.labels.content import label_for as label_for  # one unit's label, re-exported
from cellchain.labels.layout import Drawing, lay_out
from cellchain.labels.models import (
    MAX_COPIES,
    LabelEvent,
    LabelEventKind,
    LabelPrint,
    OutputFormat,
)
from cellchain.labels.output import render_pdf, render_png, render_zpl
from cellchain.labels.templates import LabelTemplate
from cellchain.manufacturing.models import Lot
from cellchain.manufacturing.processing.processing import bags_of

MEDIA_TYPES: dict[str, str] = {
    OutputFormat.PNG: "image/png",
    OutputFormat.PDF: "application/pdf",
    OutputFormat.ZPL: "application/vnd.zebra.zpl",
}
ZIP_MEDIA_TYPE = "application/zip"
#: the reason offered when a released lot's quarantine labels are replaced: stored in English
#: (the print log and the audit trail); a form offers it through ``document_text``, and the
#: offered text sent back unchanged in the reader's language is stored as this English
RELEASE_REPRINT_REASON = N_("Lot released: replacing the quarantine labels")


@dataclass(frozen=True)
class LabelSettings:
    """What printing needs from the site: its templates, time zone and ISBT 128 mode."""

    templates: Mapping[str, LabelTemplate]
    zone: ZoneInfo
    isbt: IsbtSettings


@dataclass(frozen=True)
class PrintedFile:
    """The file to send to the printer, and the log rows it was recorded as."""

    data: bytes
    media_type: str
    filename: str
    prints: list[LabelPrint]

    def __post_init__(self) -> None:
        # read now: after the commit the rows are expired, and each id would be a query
        object.__setattr__(self, "print_ids", tuple(record.id for record in self.prints))

    #: the ids of ``prints``, in order, as they were when the file was made
    print_ids: tuple[int, ...] = field(init=False)


@dataclass(frozen=True)
class Reconciliation:
    """A lot's labels: issued = applied + destroyed + outstanding."""

    issued: int
    applied: int
    destroyed: int
    #: units of the lot whose latest label still says quarantine although it is released
    quarantine_labels_to_replace: list[Unit]
    #: units of the lot no label has been printed for yet
    never_printed: list[Unit]

    @property
    def outstanding(self) -> int:
        return self.issued - self.applied - self.destroyed


def print_labels(
    session: DbSession,
    units: Sequence[Unit],
    *,
    output_format: str,
    copies: int,
    reason: str | None,
    settings: LabelSettings,
    actor: User,
    now: dt.datetime,
    name: str,
) -> PrintedFile:
    """Draw the labels of ``units`` (``copies`` of each) and log the print.

    Refused with the field named: an unknown format, copies outside 1–50, no unit, a unit
    that cannot carry a label, and a reprint without a reason.
    """
    _check_request(output_format, copies)
    if not units:
        raise InvalidInput(_("There is no unit to print a label for."))
    labels = labels_for(
        session, units, templates=settings.templates, zone=settings.zone, isbt=settings.isbt
    )
    reprinted = printed_before(session, units)
    return _print(
        session, labels, reprinted, output_format, copies, reason, actor=actor, now=now, name=name
    )


def print_wristband(
    session: DbSession,
    patient: Patient,
    *,
    output_format: str,
    copies: int,
    reason: str | None,
    settings: LabelSettings,
    actor: User,
    now: dt.datetime,
) -> PrintedFile:
    """The patient's wristband (study ID and COI identifier), logged like any label."""
    _check_request(output_format, copies)
    label = wristband_for(patient, templates=settings.templates)
    earlier = session.execute(
        select(LabelPrint.id).where(LabelPrint.patient_id == patient.id).limit(1)
    ).first()
    reprinted = {-patient.id} if earlier else set()
    return _print(
        session,
        [label],
        reprinted,
        output_format,
        copies,
        reason,
        actor=actor,
        now=now,
        name=f"{patient.study_id}-wristband",
    )


def _check_request(output_format: str, copies: int) -> None:
    if output_format not in MEDIA_TYPES:
        raise InvalidInput(
            _(
                "Unknown label format %(format)s; choose PNG, PDF or ZPL.",
                format=repr(output_format),
            ),
            errors={"format": [_("Choose PNG, PDF or ZPL.")]},
        )
    if not 1 <= copies <= MAX_COPIES:
        raise InvalidInput(
            _("Copies must be from 1 to %(most)s.", most=MAX_COPIES),
            errors={"copies": [_("From 1 to %(most)s.", most=MAX_COPIES)]},
        )


def _subject_key(label: UnitLabel) -> int:
    """A unit's id, or minus the patient's id for a wristband (what "printed before" keys)."""
    if label.unit is not None:
        return label.unit.id
    assert label.patient is not None
    return -label.patient.id


def _subject_code(label: UnitLabel) -> str:
    # a label is of a unit or, a wristband, of a patient
    return label.unit.code if label.unit is not None else label.patient.coi  # type: ignore[union-attr]


def _print(
    session: DbSession,
    labels: Sequence[UnitLabel],
    reprinted: set[int],
    output_format: str,
    copies: int,
    reason: str | None,
    *,
    actor: User,
    now: dt.datetime,
    name: str,
) -> PrintedFile:
    reason = (reason or "").strip() or None
    drawings = [lay_out(label.template, label.content) for label in labels]
    _refuse_cut(labels, drawings)
    again = [label for label in labels if _subject_key(label) in reprinted]
    if again and reason is None:
        codes = ", ".join(sorted(_subject_code(label) for label in again))
        raise InvalidInput(
            _("A label was printed before for %(codes)s; a reprint needs a reason.", codes=codes),
            errors={"reason": [_("Give the reason for the reprint.")]},
            title=_("Reason required"),
        )
    prints = _log(
        session,
        [
            _log_row(
                label,
                output_format,
                copies,
                reason if _subject_key(label) in reprinted else None,
                actor=actor,
                now=now,
            )
            for label in labels
        ],
    )
    audit.record_many(
        session,
        [
            audit.Draft(
                "label.reprinted" if record.reprint else "label.printed",
                "label_print",
                record.id,
                {
                    "subject": (None, record.subject_code),
                    "copies": (None, record.copies),
                    "format": (None, record.output_format),
                    "template": (None, f"{record.label_type} v{record.template_version}"),
                    "template_hash": (None, record.template_hash),
                    "template_id": (None, record.template_id),
                    "quarantine": (None, record.quarantine),
                },
                record.reason,
            )
            for record in prints
        ],
        actor=actor,
        at=now,
    )
    return _render(labels, drawings, output_format, copies, name, prints)


def _refuse_cut(labels: Sequence[UnitLabel], drawings: Sequence[Drawing]) -> None:
    """Refuse, before anything is recorded, to print a label whose layout would cut text
    (``Drawing.cut``): the template check (``template_documents.fit``) should have refused
    such a template; this is the second line, naming the label and its fields."""
    cut = [
        _(
            "%(code)s: %(fields)s",
            code=_subject_code(label),
            fields=", ".join(drawing.cut),
        )
        for label, drawing in zip(labels, drawings, strict=True)
        if drawing.cut
    ]
    if cut:
        raise InvalidInput(
            _(
                "This label is not printed: its text would be cut off (%(cases)s). Ask quality "
                "assurance for a template version whose boxes hold it.",
                cases="; ".join(cut),
            ),
            title=_("Text would be cut"),
        )


def print_lot_labels(
    session: DbSession,
    lot: Lot,
    *,
    output_format: str,
    copies: int,
    reason: str | None,
    settings: LabelSettings,
    actor: User,
    now: dt.datetime,
    only_to_replace: bool = False,
) -> PrintedFile:
    """The labels of every bag of the lot still in existence (or only of those whose label
    still says quarantine after release)."""
    if only_to_replace:
        units = reconciliation(session, lot).quarantine_labels_to_replace
        if not units:
            raise InvalidInput(
                _(
                    "No bag of %(lot)s carries a quarantine label to replace.",
                    lot=lot.lot_number,
                )
            )
        reason = _release_reason(reason)
    else:
        units = [unit for unit in bags_of(session, lot) if unit.status not in _GONE_STATUSES]
    return print_labels(
        session,
        units,
        output_format=output_format,
        copies=copies,
        reason=reason,
        settings=settings,
        actor=actor,
        now=now,
        name=f"{lot.lot_number}-labels",
    )


def _release_reason(reason: str | None) -> str:
    """The reason of replacing a released lot's quarantine labels: none given, or the offered
    one sent back unchanged in the reader's language, is ``RELEASE_REPRINT_REASON`` in English
    (what the print log and the audit trail keep)."""
    given = (reason or "").strip()
    if not given or given == document_text(RELEASE_REPRINT_REASON):
        return RELEASE_REPRINT_REASON
    return given


def record_applied(
    session: DbSession,
    lot: Lot | None,
    scanned: str,
    *,
    actor: User,
    now: dt.datetime,
    unit: Unit | None = None,
) -> LabelPrint:
    """A label put on its container, scanned there: counted against the unit's latest print
    with copies still unaccounted for. With ``lot``, the unit must belong to it; with
    ``unit`` (a unit's own label page: a prepared dose belongs to no lot), it must be that
    unit."""
    expected = unit
    unit = chain.resolve_unit(session, scanned)
    if expected is not None and unit.id != expected.id:
        raise InvalidInput(
            _(
                "The label scanned is %(scanned)s's, not %(expected)s's; scan the label on "
                "%(expected)s.",
                scanned=unit.code,
                expected=expected.code,
            ),
            errors={"code": [_("Not this unit's label.")]},
        )
    if lot is not None and _lot_id_of(session, unit) != lot.id:
        raise InvalidInput(
            _(
                "%(unit)s is not a unit of lot %(lot)s; apply its label on its own lot.",
                unit=unit.code,
                lot=lot.lot_number,
            ),
            errors={"code": [_("Not a unit of this lot.")]},
        )
    record = session.execute(
        select(LabelPrint)
        .where(
            LabelPrint.unit_id == unit.id,
            LabelPrint.applied + LabelPrint.destroyed < LabelPrint.copies,
        )
        .order_by(LabelPrint.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if record is None:
        raise InvalidInput(
            _(
                "Every label printed for %(unit)s is already applied or destroyed; "
                "print (or reprint) its label first.",
                unit=unit.code,
            ),
            errors={"code": [_("No printed label of this unit is waiting to be applied.")]},
        )
    _account(session, record, LabelEventKind.APPLIED, 1, None, actor=actor, now=now)
    return record


def destroy_labels(
    session: DbSession,
    record: LabelPrint,
    count: int,
    reason: str | None,
    *,
    actor: User,
    now: dt.datetime,
) -> LabelPrint:
    """Count ``count`` copies of a print as destroyed, with the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            _("A reason is required to destroy labels."),
            errors={"reason": [_("Say why the labels were destroyed.")]},
            title=_("Reason required"),
        )
    if not 1 <= count <= record.outstanding:
        raise InvalidInput(
            _(
                "Only %(outstanding)s label(s) of this print are unaccounted for.",
                outstanding=record.outstanding,
            ),
            errors={"count": [_("From 1 to %(most)s.", most=record.outstanding)]},
        )
    _account(session, record, LabelEventKind.DESTROYED, count, reason, actor=actor, now=now)
    return record


def reconciliation(session: DbSession, lot: Lot) -> Reconciliation:
    """Sum the lot's labels and list what still needs a label."""
    issued, applied, destroyed = session.execute(
        select(
            func.coalesce(func.sum(LabelPrint.copies), 0),
            func.coalesce(func.sum(LabelPrint.applied), 0),
            func.coalesce(func.sum(LabelPrint.destroyed), 0),
        ).where(LabelPrint.lot_id == lot.id)
    ).one()
    latest = _latest_prints(session, lot)
    bags = [unit for unit in bags_of(session, lot) if unit.status not in _GONE_STATUSES]
    to_replace = [
        unit
        for unit in bags
        if unit.id in latest
        and latest[unit.id].quarantine
        and unit.status != UnitStatus.QUARANTINE
        and unit.status in _RELEASED_STATUSES
    ]
    never = [unit for unit in bags if unit.id not in latest]
    return Reconciliation(int(issued), int(applied), int(destroyed), to_replace, never)


@dataclass(frozen=True)
class LabelState:
    """Whether a unit carries the label its status requires now (DOMAIN.md §7, §9)."""

    unit: Unit
    #: the label the unit must carry, as a wording (``core.wording``: source text and values)
    required_wording: Wording
    #: the status marking that label prints ("" for none)
    marking: str
    #: the print whose label is on the unit: the latest print with a copy applied
    on_unit: LabelPrint | None
    #: why the unit does not carry it, naming the unit and the missing or superseded label, as
    #: a wording, for whoever stores or signs its English and shows it translated (a bedside
    #: check); None when it carries it
    wording: Wording | None
    #: the language of the moment when the state was read, which ``required`` and ``problem``
    #: read in (made when first read: the bedside, which reads only the wordings, makes none)
    language: str = SOURCE_LANGUAGE

    @property
    def ok(self) -> bool:
        return self.wording is None

    @functools.cached_property
    def required(self) -> str:
        """The label the unit must carry, in the reader's words ("its dose label", "its
        released label"; ``english_of`` gives the English)."""
        with using_language(self.language):
            return text_of(self.required_wording)

    @functools.cached_property
    def problem(self) -> str | None:
        """Why the unit does not carry it, in the reader's language (``english_of`` gives the
        English); None when it does."""
        if self.wording is None:
            return None
        with using_language(self.language):
            return text_of(self.wording)


def label_state(session: DbSession, unit: Unit) -> LabelState:
    """``label_states`` of one unit."""
    return label_states(session, [unit])[0]


def label_states(session: DbSession, units: Sequence[Unit]) -> list[LabelState]:
    """Which label each unit must carry now, and whether the print log shows it printed AND
    applied, and not superseded since.

    The required label is the one its status requires: the marking ``status_marking`` gives
    (none for a released bag, so a bag still carrying its quarantine label fails; a recalled
    unit's marking names the recall) on the template of its kind (a prepared dose: its dose
    label, with the patient's study ID and COI identifier). The label on the unit is its
    latest print that is not wholly destroyed unapplied (a spoiled reprint never reached the
    unit). It is superseded when it was printed with another marking (a status change since)
    and missing when it is not applied yet (a reprint not yet on the unit supersedes the
    label before it). One query for the print log of every unit.
    """
    prints: dict[int, list[LabelPrint]] = {unit.id: [] for unit in units}
    if units:
        for record in session.execute(
            _prints_statement(), {"unit_ids": [unit.id for unit in units]}
        ).scalars():
            prints[cast(int, record.unit_id)].append(record)  # unit_id IN (...): never NULL
    markings = status_markings(session, units)
    return [_state(unit, markings[unit.id], prints[unit.id]) for unit in units]


@functools.cache
def _prints_statement() -> Select[LabelPrint]:
    """The print log of the units ``:unit_ids``, oldest first; built once per process (issue
    20: the bedside check reads it on every scan)."""
    return (
        select(LabelPrint)
        .where(LabelPrint.unit_id.in_(bindparam("unit_ids", expanding=True, type_=Integer())))
        .order_by(LabelPrint.id)
    )


def label_problems(session: DbSession, units: Sequence[Unit]) -> list[Worded]:
    """What is missing or superseded on ``units``' labels, one text per unit; none when every
    unit carries the label its status requires. In English, whoever reads: a bedside check
    signs them. Each keeps its wording (``core.wording.wording_of``), which the check keeps
    beside the English so that its page reads it translated (``LabelState.problem`` is the
    same text in the reader's language, for a page or a refusal)."""
    return [worded(state.wording) for state in label_states(session, units) if state.wording]


class PrintRead(NamedTuple):
    """A print of a unit's label as ``label_states`` judges it, read as plain columns."""

    id: int
    marking: str
    unit_status: str
    copies: int
    applied: int
    destroyed: int

    @property
    def outstanding(self) -> int:
        """Copies neither applied nor destroyed yet (``LabelPrint.outstanding``)."""
        return self.copies - self.applied - self.destroyed


def label_problems_of(
    session: DbSession, units: Sequence[Unit], prints: Mapping[int, Sequence[PrintRead]]
) -> list[Worded]:
    """``label_problems`` (in English) from the units' print logs already read (by unit id,
    oldest first; a unit absent has none): no ORM object per print (issue 20, the bedside)."""
    markings = status_markings(session, units)
    states = (
        # _state reads of a print only what PrintRead holds (id, marking, unit_status,
        # applied, outstanding); on_unit is not read here
        _state(unit, markings[unit.id], cast(Sequence[LabelPrint], prints.get(unit.id, ())))
        for unit in units
    )
    return [worded(state.wording) for state in states if state.wording]


# A unit's label problems and the labels they name: each a wording (``core.wording``), so that
# a page reads it translated (``LabelState.problem``) and a bedside check signs its English
# while keeping the wording beside it (``label_problems``); the dispatch's refusal quotes it in
# the reader's language and is audited in English.
_LABEL_MARKED = lazy("its label marked “%(marking)s”")
_DOSE_LABEL = lazy("its dose label (patient study ID and COI identifier)")
_RELEASED_LABEL = lazy("its released label")
_UNIT_NAMED = lazy("%(unit)s (%(kind)s)")
_NEVER_PRINTED = lazy("%(name)s has no label: %(required)s was never printed.")
_ALL_DESTROYED = lazy(
    "%(name)s has no label: every label printed for it was destroyed unused; "
    "print and apply %(required)s."
)
_SUPERSEDED_MARKED = lazy(
    "%(name)s is %(status)s and needs %(required)s, but its latest label (print "
    "#%(print)s, printed while it was %(then)s) says “%(said)s”: that label is "
    "superseded; print and apply %(required)s."
)
_SUPERSEDED_UNMARKED = lazy(
    "%(name)s is %(status)s and needs %(required)s, but its latest label (print "
    "#%(print)s, printed while it was %(then)s) says no status marking: that label "
    "is superseded; print and apply %(required)s."
)
_NOT_APPLIED_REPRINT = lazy(
    "%(name)s: %(required)s (print #%(print)s) is printed but not applied; the label "
    "on it (print #%(on_unit)s) is superseded by that reprint. Put it on and scan it "
    "there."
)
_NOT_APPLIED = lazy(
    "%(name)s: %(required)s (print #%(print)s) is printed but not applied. Put it on "
    "and scan it there."
)


def _state(unit: Unit, marking: str, prints: Sequence[LabelPrint]) -> LabelState:
    live = [record for record in prints if record.applied or record.outstanding]
    applied = [record for record in live if record.applied]
    on_unit = applied[-1] if applied else None
    required = _required(unit, marking)
    return LabelState(
        unit,
        required,
        marking,
        on_unit,
        _problem(unit, marking, required, prints, live, on_unit),
        # what a page reads, it reads in the language of the moment
        ACTIVE_LANGUAGE.get(),
    )


def _required(unit: Unit, marking: str) -> Wording:
    """The label the unit must carry, as a wording."""
    if marking:
        # the marking is the label's own printed text, quoted as printed
        return say(_LABEL_MARKED, marking=Quoted(marking))
    if unit.kind == UnitKind.PREPARED_DOSE:
        return say(_DOSE_LABEL)
    return say(_RELEASED_LABEL)


def _status(status: str) -> Wording | str:
    """A unit status in the reader's words (the stored value where none is known)."""
    name = UNIT_STATUS_NAMES.get(status)
    return say(name) if name is not None else status


def _problem(
    unit: Unit,
    marking: str,
    required: Wording,
    prints: Sequence[LabelPrint],
    live: Sequence[LabelPrint],
    on_unit: LabelPrint | None,
) -> Wording | None:
    """Why the unit does not carry ``required``, the label its status requires (printing
    ``marking``), as a wording (source text and values): read translated on a page, stored and
    signed in English; None when it does."""
    # read from the columns alone: the bedside hands in plain rows (``UnitRead``), not units
    kind = UNIT_KIND_NAMES.get(unit.kind)
    name = say(_UNIT_NAMED, unit=unit.code, kind=say(kind) if kind is not None else unit.kind_label)
    if not live:
        if not prints:
            return say(_NEVER_PRINTED, name=name, required=required)
        return say(_ALL_DESTROYED, name=name, required=required)
    latest = live[-1]
    if latest.marking != marking:
        facts: dict[str, Any] = {
            "name": name,
            "status": _status(unit.status),
            "required": required,
            "print": latest.id,
            "then": _status(latest.unit_status),
        }
        if latest.marking:
            return say(_SUPERSEDED_MARKED, said=Quoted(latest.marking), **facts)
        return say(_SUPERSEDED_UNMARKED, **facts)
    if not latest.applied:
        if on_unit is not None:
            return say(
                _NOT_APPLIED_REPRINT,
                name=name,
                required=required,
                print=latest.id,
                on_unit=on_unit.id,
            )
        return say(_NOT_APPLIED, name=name, required=required, print=latest.id)
    return None


def prints_of_lot(session: DbSession, lot: Lot) -> list[LabelPrint]:
    return list(
        session.execute(
            select(LabelPrint).where(LabelPrint.lot_id == lot.id).order_by(LabelPrint.id.desc())
        ).scalars()
    )


def prints_of_patient(session: DbSession, patient: Patient) -> list[LabelPrint]:
    return list(
        session.execute(
            select(LabelPrint)
            .where(LabelPrint.patient_id == patient.id)
            .order_by(LabelPrint.id.desc())
        ).scalars()
    )


def prints_of_unit(session: DbSession, unit: Unit) -> list[LabelPrint]:
    return list(
        session.execute(
            select(LabelPrint).where(LabelPrint.unit_id == unit.id).order_by(LabelPrint.id.desc())
        ).scalars()
    )


def printed_before(session: DbSession, units: Sequence[Unit]) -> set[int]:
    """The ids of those ``units`` a label was printed for before (printing again is a reprint)."""
    rows = session.execute(
        select(LabelPrint.unit_id).where(LabelPrint.unit_id.in_([unit.id for unit in units]))
    ).scalars()
    return set(cast("Iterable[int]", rows))  # unit_id IN (...) matches no NULL


def get_print(session: DbSession, print_id: int) -> LabelPrint:
    return get_or_404(session, LabelPrint, print_id, "label print", id_prefix="")


# --- internals ----------------------------------------------------------------------------------

_GONE_STATUSES = frozenset({UnitStatus.CONSUMED, UnitStatus.DISCARDED, UnitStatus.INFUSED})
_RELEASED_STATUSES = frozenset({UnitStatus.AVAILABLE, UnitStatus.ALLOCATED})


def _latest_prints(session: DbSession, lot: Lot) -> dict[int, LabelPrint]:
    latest: dict[int, LabelPrint] = {}
    for record in session.execute(
        select(LabelPrint).where(LabelPrint.lot_id == lot.id).order_by(LabelPrint.id)
    ).scalars():
        latest[cast(int, record.unit_id)] = record  # a lot's prints are its units' prints
    return latest


def _lot_id_of(session: DbSession, unit: Unit) -> int | None:
    from cellchain.quality.results import lot_of_unit

    lot = lot_of_unit(session, unit)
    return lot.id if lot is not None else None


def _log_row(
    label: UnitLabel,
    output_format: str,
    copies: int,
    reason: str | None,
    *,
    actor: User,
    now: dt.datetime,
) -> dict[str, Any]:
    """The print log row of one label, as the values of its columns."""
    # a label is of a unit or, a wristband, of a patient
    subject = label.unit if label.unit is not None else label.patient
    assert subject is not None
    return {
        "unit_id": label.unit.id if label.unit is not None else None,
        "patient_id": label.patient.id if label.patient is not None else None,
        "lot_id": label.lot.id if label.lot is not None else None,
        "label_type": label.template.label_type,
        "template_version": label.template.version,
        "template_hash": label.template.content_hash,
        "template_id": label.template.document_id,
        "output_format": output_format,
        "copies": copies,
        "payload": label.content.payload,
        "quarantine": label.quarantine,
        "marking": label.content.texts.get("status", ""),
        "isbt": label.isbt,
        "unit_status": subject.status,
        "reason": reason,
        "printed_at": now,
        "printed_by_id": actor.id,
        "applied": 0,
        "destroyed": 0,
    }


def _log(session: DbSession, rows: Sequence[dict[str, Any]]) -> list[LabelPrint]:
    """Insert the print log rows in one statement and return them in the order given.

    A set-based INSERT (its rows marked for the record trail): the unit of work would send
    one INSERT per row on SQLite, which cannot return the ids of a many-row INSERT in the
    order of its rows. Its rows come back in no particular order, so each is matched to its
    label by its subject; rows of the same subject in one print are identical."""
    inserted = session.scalars(record_state.marked(insert(LabelPrint).returning(LabelPrint)), rows)
    by_subject: dict[tuple[int | None, int | None], list[LabelPrint]] = defaultdict(list)
    for record in sorted(inserted, key=lambda record: record.id):
        by_subject[(record.unit_id, record.patient_id)].append(record)
    prints = [by_subject[(row["unit_id"], row["patient_id"])].pop(0) for row in rows]
    record_state.touched(session, LabelPrint, [record.id for record in prints])
    return prints


def _account(
    session: DbSession,
    record: LabelPrint,
    kind: LabelEventKind,
    count: int,
    reason: str | None,
    *,
    actor: User,
    now: dt.datetime,
) -> None:
    """Add ``count`` to the print's applied or destroyed copies, if nobody did meanwhile."""
    column = "applied" if kind is LabelEventKind.APPLIED else "destroyed"
    new_value = getattr(record, column) + count
    if not update_if(
        session,
        record,
        LabelPrint.applied == record.applied,
        LabelPrint.destroyed == record.destroyed,
        **{column: new_value},
    ):
        raise Conflict(_("These labels were accounted for by someone else just now; look again."))
    session.add(
        LabelEvent(
            label_print=record,
            kind=kind,
            count=count,
            reason=reason,
            at=now,
            recorded_by_id=actor.id,
        )
    )
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"label.{kind.value}",
        entity_type="label_print",
        entity_id=record.id,
        changes={column: (new_value - count, new_value)},
        reason=reason,
    )


def _render(
    labels: Sequence[UnitLabel],
    drawings: Sequence[Drawing],
    output_format: str,
    copies: int,
    name: str,
    prints: list[LabelPrint],
) -> PrintedFile:
    if output_format == OutputFormat.PDF:
        repeated = [drawing for drawing in drawings for _ in range(copies)]
        data = render_pdf(repeated, title=name)
        return PrintedFile(data, MEDIA_TYPES[output_format], f"{name}.pdf", prints)
    if output_format == OutputFormat.ZPL:
        data = render_zpl(drawing for drawing in drawings for _ in range(copies))
        return PrintedFile(data, MEDIA_TYPES[output_format], f"{name}.zpl", prints)
    if len(drawings) == 1:
        return PrintedFile(
            render_png(drawings[0]), MEDIA_TYPES[output_format], f"{name}.png", prints
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for label, drawing in zip(labels, drawings, strict=True):
            archive.writestr(f"{_subject_code(label)}.png", render_png(drawing))
    return PrintedFile(buffer.getvalue(), ZIP_MEDIA_TYPE, f"{name}-png.zip", prints)
