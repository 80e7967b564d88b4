"""API of the trial-data exports and the DSMB summary.

An export: ``POST /trial-data/exports`` asks for one (202, queued), ``POST
/trial-data/exports/{id}/run`` generates it (the answer comes when it is done), ``GET
/trial-data/exports/{id}`` says how far it is (from any worker, while it runs), ``GET
/trial-data/exports/{id}/file`` downloads it (audited). Only the holders of
``export_trial_data`` reach them: the file is unblinded.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from cellchain.core.read_replica import reads
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import acting_user, requires, unit_of_work
from cellchain.trial_data import exports
from cellchain.trial_data.commands import (
    download_as_user,
    request_export_as_user,
    run_export_as_user,
    summary_now,
)
from cellchain.trial_data.schemas import ExportIn, ExportOut, TrialQueryIn, TrialSummaryOut

trial_data_api = Blueprint(
    "trial_data_api",
    __name__,
    url_prefix="/api/v1/trial-data",
    description="Trial data export (CDISC ODM, CSV) and DSMB summary",
)
blueprints = (trial_data_api,)

_FILE = {
    "200": {
        "description": "The export's file: ODM XML or a zip of CSV files",
        "content": {"application/xml": {}, "application/zip": {}},
    }
}


@trial_data_api.get("/exports")
@requires(Permission.EXPORT_TRIAL_DATA)
@trial_data_api.response(200, ExportOut(many=True))
def list_exports() -> Any:
    """The latest exports, newest first, each with its status and progress."""
    return exports.list_exports(db.session, reader=acting_user())


@trial_data_api.post("/exports")
@requires(Permission.EXPORT_TRIAL_DATA)
@trial_data_api.arguments(ExportIn)
@trial_data_api.response(202, ExportOut)
def request_export(data: dict[str, Any]) -> Any:
    """Ask for an export of the trial's data as `odm` or `csv`: queued, audited. Generate it
    with `POST /trial-data/exports/{export_id}/run`."""
    with unit_of_work() as session:
        export = request_export_as_user(session, data["format"], data.get("protocol"))
    return export


@trial_data_api.post("/exports/<int:export_id>/run")
@requires(Permission.EXPORT_TRIAL_DATA)
@trial_data_api.response(200, ExportOut)
def run_export(export_id: int) -> Any:
    """Generate a queued export; answers when it is done (its progress is readable from
    `GET /trial-data/exports/{export_id}` meanwhile). A 409 unless it is queued."""
    with unit_of_work() as session:
        export = run_export_as_user(session, export_id)
    return export


@trial_data_api.get("/exports/<int:export_id>")
@requires(Permission.EXPORT_TRIAL_DATA)
@trial_data_api.response(200, ExportOut)
def export_status(export_id: int) -> Any:
    """An export's status and progress (percent, step), then its file's name, SHA-256 and size."""
    return exports.get_export(db.session, export_id, acting_user())


@trial_data_api.get("/exports/<int:export_id>/file")
@requires(Permission.EXPORT_TRIAL_DATA)
@trial_data_api.doc(responses=_FILE)
def export_file(export_id: int) -> Any:
    """The export's file, audited (who downloaded which file, by its SHA-256); a 409 while it
    is not done."""
    with unit_of_work() as session:
        export, content = download_as_user(session, export_id)
        name, media_type, digest = export.file_name, export.media_type, export.sha256
    return Response(
        content,
        mimetype=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": digest or "",
        },
    )


@trial_data_api.get("/dsmb-summary")
@requires(Permission.READ_TRIAL_SUMMARY)
@trial_data_api.arguments(TrialQueryIn, location="query")
@trial_data_api.response(200, TrialSummaryOut)
def dsmb_summary(query: dict[str, Any]) -> Any:
    """The DSMB summary of a trial (``?protocol=CODE``; the only one when left out):
    enrolment, doses by visit, deviations and adverse events by arm (unblinded)."""
    return summary_now(reads(), query.get("protocol"))
