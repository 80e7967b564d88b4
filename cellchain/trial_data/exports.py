"""Exporting the trial's data (issue 19): asked for, generated with its progress, downloaded.

An export is a job in ``trial_data_exports``:

1. **Asked for** (``request_export``): a queued row naming the format and who asked; audited.
2. **Generated** (``run_export``): the row is claimed by a guarded update (queued → running,
   so of two runs of one export exactly one goes on), the trial's data are read in one go
   (``dataset.collect``), then written as ODM XML or as a CSV bundle. After each step the
   service sets ``percent`` and ``step`` and calls the caller's ``checkpoint``, which commits
   them in a short transaction of their own: any worker (they share only the database) can
   answer how far it is while it runs. Only progress is committed between the steps; the
   data are read before the first of them, in one transaction that sees one snapshot
   (REPEATABLE READ on PostgreSQL, ``audit_verification.one_snapshot``: under the default
   READ COMMITTED each of ``collect``'s queries would see what other users committed
   meanwhile), so the file is one snapshot. The file, its
   SHA-256, its size and the counts are stored, and the export is audited with the hash.
3. **Downloaded** (``download``): the stored file, checked against its hash, and an audit
   entry naming who took it.

Only the holders of ``Permission.EXPORT_TRIAL_DATA`` (the file is unblinded: it holds each
subject's arm) may do any of this; everyone else is refused with nothing saved.

Services flush; the caller commits (one use case, one transaction), except the progress the
caller's ``checkpoint`` commits while a file is generated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.core import audit
from cellchain.core.audit_verification import one_snapshot
from cellchain.core.display import UTC_ZONE
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _, document_text
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, require
from cellchain.dosing.models import Protocol
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.trial_data import csv_bundle, dataset, odm
from cellchain.trial_data.models import ExportFormat, ExportStatus, TrialDataExport

#: The share of the progress bar each phase takes, in percent (the rest is writing).
#: the zone a visit's day is told in when the caller names none (the site's: commands.py)
READ_DONE = 30
WRITE_DONE = 95


def trial_codes(session: DbSession) -> list[str]:
    """The protocols (codes) QA has signed a version of: the trials whose data may be
    exported or summarised, in force now or not any more."""
    return list(
        session.scalars(
            select(Protocol.code)
            .where(Protocol.status != "draft")
            .distinct()
            .order_by(Protocol.code)
        )
    )


def trial_of(session: DbSession, code: str | None) -> str:
    """The protocol code a request names (``protocol``), or the only one signed; refused
    (field ``protocol``) when it names none signed, or names none and several are."""
    codes = trial_codes(session)
    wanted = (code or "").strip().upper()
    if wanted and wanted in codes:
        return wanted
    if not wanted and len(codes) == 1:
        return codes[0]
    if wanted:
        message = _("No version of protocol %(code)s was ever signed.", code=wanted)
    elif not codes:
        message = _("No protocol is signed yet: there is no trial to export or summarise.")
    else:
        message = _("Choose the protocol (%(codes)s).", codes=", ".join(codes))
    raise InvalidInput(message, errors={"protocol": [message]})


def request_export(
    session: DbSession,
    export_format: ExportFormat,
    *,
    actor: User,
    now: dt.datetime,
    protocol_code: str | None = None,
) -> TrialDataExport:
    """A queued export in ``export_format`` of the data of the trial ``protocol_code`` (the
    only protocol signed when left out), asked for by ``actor``."""
    require(actor, Permission.EXPORT_TRIAL_DATA)
    export = TrialDataExport(
        protocol_code=trial_of(session, protocol_code),
        format=export_format.value,
        status=ExportStatus.QUEUED.value,
        percent=0,
        step="Queued",
        requested_at=now,
        requested_by_id=actor.id,
    )
    session.add(export)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="trial_data.export_requested",
        entity_type="trial_data_export",
        entity_id=export.id,
        changes={
            "protocol": (None, export.protocol_code),
            "format": (None, export.format),
            "status": (None, export.status),
        },
    )
    return export


def run_export(
    session: DbSession,
    export: TrialDataExport,
    *,
    actor: User,
    clock: Callable[[], dt.datetime],
    checkpoint: Callable[[], None],
    site_name: str,
    protocol_code: str | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> TrialDataExport:
    """Generate a queued export (see the module): a 409 unless it is still queued.

    ``clock`` gives the time of each step (the generation takes a while); ``checkpoint``
    commits the progress set before it; ``zone`` is the site's, whose calendar the visits'
    days and statuses are told in. The trial is the export's own (``protocol_code``, if
    given, must be it).
    """
    require(actor, Permission.EXPORT_TRIAL_DATA)
    if protocol_code is not None and protocol_code.strip().upper() != export.protocol_code:
        raise Conflict(
            _(
                "Export %(id)s is of protocol %(protocol)s, not %(other)s.",
                id=export.id,
                protocol=export.protocol_code,
                other=protocol_code,
            )
        )
    protocol_code = export.protocol_code
    started = clock()
    if not update_if(
        session,
        export,
        TrialDataExport.status == ExportStatus.QUEUED.value,
        status=ExportStatus.RUNNING.value,
        started_at=started,
        percent=1,
        step="Reading the trial's data",
    ):
        raise Conflict(
            _(
                "Export %(id)s is %(status)s; only a queued export is generated. Ask for a new"
                " export to generate another.",
                id=export.id,
                status=export.status_label,
            ),
            title=_("Export already generated"),
        )
    checkpoint()
    with one_snapshot(session) as reading:
        data = dataset.collect(
            reading, protocol_code=protocol_code, today=started.astimezone(zone).date(), zone=zone
        )

    def writing(done: int, total: int) -> None:
        share = READ_DONE + (WRITE_DONE - READ_DONE) * done // max(total, 1)
        _progress(export, share, f"Writing {done} of {total}", checkpoint)

    _progress(export, READ_DONE, f"Read {len(data.subjects)} subjects", checkpoint)
    title = f"{site_name}: trial {data.protocol_code}, data export {export.id}"
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", data.protocol_code) + f"-data-{export.id}"
    if export.format == ExportFormat.ODM.value:
        content = odm.render_odm(
            data,
            file_oid=odm.oid("cellchain", data.protocol_code, "export", str(export.id)),
            created_at=started,
            description=f"{title}; data SHA-256 {data.digest()}",
            progress=writing,
        )
        file_name, media_type = f"{stem}.xml", odm.MEDIA_TYPE
    else:
        content = csv_bundle.render_bundle(data, title=title, created_at=started, progress=writing)
        file_name, media_type = f"{stem}.zip", csv_bundle.MEDIA_TYPE
    _progress(export, WRITE_DONE, "Storing the file", checkpoint)
    digest = hashlib.sha256(content).hexdigest()
    finished = clock()
    before = export.status
    export.content = content
    export.sha256 = digest
    export.size_bytes = len(content)
    export.file_name = file_name
    export.media_type = media_type
    export.subjects = len(data.subjects)
    export.rows = len(data.records)
    export.status = ExportStatus.DONE.value
    export.finished_at = finished
    export.percent = 100
    export.step = "Done"
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=finished,
        action="trial_data.exported",
        entity_type="trial_data_export",
        entity_id=export.id,
        changes={
            "status": (before, export.status),
            "format": (None, export.format),
            "file_name": (None, file_name),
            "sha256": (None, digest),
            "size_bytes": (None, len(content)),
            "subjects": (None, export.subjects),
            "rows": (None, export.rows),
            "data_sha256": (None, data.digest()),
        },
    )
    return export


def mark_failed(
    session: DbSession, export_id: int, *, actor: User, now: dt.datetime, error: str
) -> None:
    """Record that generating the export stopped with ``error`` (a bug or a lost database
    connection, never a refusal): the export is failed (final), audited."""
    export = get_export(session, export_id)
    if export.status in (ExportStatus.DONE.value, ExportStatus.FAILED.value):
        return
    before = export.status
    export.status = ExportStatus.FAILED.value
    export.error = error[:2000]
    export.finished_at = now
    export.step = "Failed"
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="trial_data.export_failed",
        entity_type="trial_data_export",
        entity_id=export.id,
        changes={"status": (before, export.status), "error": (None, export.error)},
    )


def download(
    session: DbSession, export: TrialDataExport, *, actor: User, now: dt.datetime
) -> bytes:
    """The export's file for ``actor``, audited: who took which file (by its hash).

    A 409 unless the export is done, or if the stored file no longer has the hash it was
    audited with (it was changed in the database).
    """
    require(actor, Permission.EXPORT_TRIAL_DATA)
    if export.status != ExportStatus.DONE.value or export.content is None:
        raise Conflict(
            _(
                "Export %(id)s is %(status)s; its file can be downloaded once it is done.",
                id=export.id,
                status=export.status_label,
            ),
            title=_("Export not ready"),
        )
    content = export.content
    if hashlib.sha256(content).hexdigest() != export.sha256:
        raise Conflict(
            _(
                "The file of export %(id)s no longer matches the SHA-256 it was generated with:"
                " it was changed after generation. Ask for a new export and tell QA.",
                id=export.id,
            ),
            title=_("Export file changed"),
        )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="trial_data.downloaded",
        entity_type="trial_data_export",
        entity_id=export.id,
        changes={"file_name": (None, export.file_name), "sha256": (None, export.sha256)},
    )
    return content


def _own_only(reader: User | None) -> bool:
    """Whether ``reader`` reads only the exports they asked for: a clinic user of some sites
    (an investigator, ``sites.service.site_restricted``), whose export holds only their
    sites' patients (it is generated in their request, under the site filter), while another
    investigator's or the statistician's holds other sites' (docs/sites.md)."""
    from cellchain.sites.service import site_restricted

    return reader is not None and site_restricted(reader.roles)


def get_export(
    session: DbSession, export_id: int, reader: User | None = None
) -> TrialDataExport:
    """The export ``export_id``; a 404 for a clinic user who did not ask for it."""
    export = get_or_404(session, TrialDataExport, export_id, "trial data export", id_prefix="")
    if _own_only(reader) and reader is not None and export.requested_by_id != reader.id:
        # as if it did not exist, like another site's record
        raise NotFound(
            _("There is no %(what)s %(id)s.", what=document_text("trial data export"), id=export_id)
        )
    return export


def list_exports(
    session: DbSession, limit: int = 50, reader: User | None = None
) -> list[TrialDataExport]:
    """The latest exports ``reader`` may read (a clinic user: their own), newest first."""
    query = select(TrialDataExport).order_by(TrialDataExport.id.desc()).limit(limit)
    if _own_only(reader) and reader is not None:
        query = query.where(TrialDataExport.requested_by_id == reader.id)
    return list(session.scalars(query))


def _progress(
    export: TrialDataExport, percent: int, step: str, checkpoint: Callable[[], None]
) -> None:
    export.percent = percent
    export.step = step
    checkpoint()
