"""Tables of the trial-data package: one row per export of the trial's data (a job with its
progress, then the file, its hash and who asked for it)."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from cellchain.core.i18n import LazyText, gettext, lazy
from cellchain.core.models import User
from cellchain.core.types import LabelledEnum, UTCDateTime, sql_values
from cellchain.extensions import Model, Recorded


class ExportFormat(LabelledEnum):
    ODM = "odm"  #: CDISC ODM 1.3.2 XML, one file
    CSV = "csv"  #: a zip: one CSV per form, the data dictionary and a manifest

    @property
    def label(self) -> str:
        return "CDISC ODM 1.3.2 XML" if self is ExportFormat.ODM else str(_CSV_BUNDLE)


_CSV_BUNDLE = lazy("CSV bundle (zip)")


class ExportStatus(LabelledEnum):
    QUEUED = "queued"  #: asked for, not yet generated
    RUNNING = "running"  #: being generated: ``percent`` and ``step`` say how far
    DONE = "done"  #: generated: the file, its hash and size are kept (final)
    FAILED = "failed"  #: generation stopped with an error (final); ask for a new export

    @property
    def label(self) -> str:
        """The status in the language of the moment."""
        return str(EXPORT_STATUS_LABELS[self])


EXPORT_STATUS_LABELS: dict[ExportStatus, LazyText] = {
    ExportStatus.QUEUED: lazy("queued"),
    ExportStatus.RUNNING: lazy("running"),
    ExportStatus.DONE: lazy("done"),
    ExportStatus.FAILED: lazy("failed"),
}


class TrialDataExport(Recorded, Model):
    """An export of the trial's data, pseudonymised (study ID and COI, never a name).

    ``percent`` and ``step`` are progress bookkeeping, written in short transactions of their
    own while the export is generated and left out of the audit trail
    (``core.record_state.UNRECORDED_COLUMNS``); the file is kept in the trail as its digest.
    """

    __tablename__ = "trial_data_exports"
    __table_args__ = (
        CheckConstraint(f"format IN ({sql_values(ExportFormat)})", name="format_known"),
        CheckConstraint(f"status IN ({sql_values(ExportStatus)})", name="status_known"),
        CheckConstraint("percent BETWEEN 0 AND 100", name="percent_range"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    #: the protocol (code) whose subjects the export holds: every subject enrolled under any
    #: version of it, each with the version they were enrolled under (issue 22)
    protocol_code: Mapped[str] = mapped_column(String(40))
    format: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))
    #: how far the generation is, 0–100, and what it is doing, in words
    percent: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[str | None] = mapped_column(String(200))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: the download's file name, e.g. NCT01420432-export-12.xml
    file_name: Mapped[str | None] = mapped_column(String(200))
    media_type: Mapped[str | None] = mapped_column(String(100))
    #: the file itself, kept in the database so every worker and every machine can serve it
    content: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    #: SHA-256 of ``content`` (hex), as audited and printed in the manifest
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    #: how many subjects and data rows the file holds
    subjects: Mapped[int | None] = mapped_column(Integer)
    rows: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    requested_by: Mapped[User] = relationship()

    @property
    def step_label(self) -> str:
        """The stored (English) progress step in the reader's language."""
        return step_shown(self.step)

    @property
    def format_label(self) -> str:
        return ExportFormat(self.format).label

    @property
    def status_label(self) -> str:
        return ExportStatus(self.status).label


#: the progress steps an export stores (in English, as it writes them: ``exports.generate``)
_FIXED_STEPS: dict[str, LazyText] = {
    "Queued": EXPORT_STATUS_LABELS[ExportStatus.QUEUED],
    "Reading the trial's data": lazy("Reading the trial's data"),
    "Storing the file": lazy("Storing the file"),
}
_WRITING = re.compile(r"Writing (\d+) of (\d+)")
_READ = re.compile(r"Read (\d+) subjects")


def step_shown(step: str | None) -> str:
    """A stored progress step in the reader's language (any other text as it is)."""
    if not step:
        return ""
    if step in _FIXED_STEPS:
        return str(_FIXED_STEPS[step])
    if found := _WRITING.fullmatch(step):
        return gettext("Writing %(done)s of %(total)s", done=found[1], total=found[2])
    if found := _READ.fullmatch(step):
        return gettext("Read %(count)s subjects", count=found[1])
    return step
