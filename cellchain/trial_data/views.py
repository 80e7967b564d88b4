"""Pages of the trial-data exports and the DSMB summary.

The exports page offers an ODM and a CSV export. Without JavaScript the form asks for the
export and generates it in the same request, then shows it. With ``trial_export.js`` the
form asks for it (``defer``), then the script starts the generation and polls the export's
progress until it is done, and shows the download.
"""

from __future__ import annotations

import re
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from cellchain.core.read_replica import reads
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, site_zone, unit_of_work
from cellchain.trial_data import dsmb, exports
from cellchain.trial_data.commands import (
    download_as_user,
    export_now_as_user,
    request_export_as_user,
    run_export_as_user,
    summary_now,
)
from cellchain.trial_data.dsmb_pdf import render_dsmb_pdf
from cellchain.trial_data.models import ExportFormat, TrialDataExport
from cellchain.trial_data.schemas import ExportIn
from cellchain.web.forms import load_form

blueprint = Blueprint("trial_data", __name__)


def _progress(export: TrialDataExport) -> dict[str, Any]:
    return {
        "id": export.id,
        "status": export.status,
        "percent": export.percent,
        "step": export.step_label,
        "page_url": url_for("trial_data.export_page", export_id=export.id),
        "run_url": url_for("trial_data.run", export_id=export.id),
        "progress_url": url_for("trial_data.progress", export_id=export.id),
        "download_url": url_for("trial_data.download", export_id=export.id),
    }


@blueprint.get("/trial-data")
@requires(Permission.EXPORT_TRIAL_DATA)
def exports_page() -> ResponseReturnValue:
    return render_template(
        "trial_data/exports.html",
        exports=exports.list_exports(db.session, reader=acting_user()),
        formats=list(ExportFormat),
        trials=exports.trial_codes(db.session),
    )


@blueprint.post("/trial-data/exports")
@requires(Permission.EXPORT_TRIAL_DATA)
def request_export() -> ResponseReturnValue:
    """Ask for an export; generate it now unless the page's script will (``defer``)."""
    form = request.form.copy()
    deferred = form.pop("defer", None)
    data = load_form(ExportIn(), form)
    if deferred:
        with unit_of_work() as session:
            export = request_export_as_user(session, data["format"], data.get("protocol"))
            answer = _progress(export)
        return jsonify(answer), 202
    with unit_of_work() as session:
        export = export_now_as_user(session, data["format"], data.get("protocol"))
        export_id = export.id
    return redirect(url_for("trial_data.export_page", export_id=export_id))


@blueprint.post("/trial-data/exports/<int:export_id>/run")
@requires(Permission.EXPORT_TRIAL_DATA)
def run(export_id: int) -> ResponseReturnValue:
    """Generate a queued export (the page's script calls this and polls the progress)."""
    with unit_of_work() as session:
        export = run_export_as_user(session, export_id)
        answer = _progress(export)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(answer)
    return redirect(answer["page_url"])


@blueprint.get("/trial-data/exports/<int:export_id>/progress")
@requires(Permission.EXPORT_TRIAL_DATA)
def progress(export_id: int) -> ResponseReturnValue:
    """How far the export is, as JSON, read fresh from the database."""
    return jsonify(_progress(exports.get_export(db.session, export_id, acting_user())))


@blueprint.get("/trial-data/exports/<int:export_id>")
@requires(Permission.EXPORT_TRIAL_DATA)
def export_page(export_id: int) -> ResponseReturnValue:
    export = exports.get_export(db.session, export_id, acting_user())
    return render_template("trial_data/export.html", export=export)


@blueprint.get("/trial-data/exports/<int:export_id>/download")
@requires(Permission.EXPORT_TRIAL_DATA)
def download(export_id: int) -> ResponseReturnValue:
    """The export's file, audited."""
    with unit_of_work() as session:
        export, content = download_as_user(session, export_id)
        name, media_type = export.file_name, export.media_type
    return Response(
        content,
        mimetype=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@blueprint.get("/trial-data/dsmb")
@requires(Permission.READ_TRIAL_SUMMARY)
def dsmb_page() -> ResponseReturnValue:
    """A trial's DSMB summary (``?protocol=CODE``); with several trials and none named, the
    choice among them."""
    session = reads()
    trials = exports.trial_codes(session)
    code = request.args.get("protocol")
    if not code and len(trials) > 1:
        return render_template("trial_data/dsmb.html", summary=None, trials=trials)
    summary = summary_now(session, code)
    return render_template(
        "trial_data/dsmb.html",
        summary=summary,
        tables=dsmb.summary_tables(summary),
        trials=trials,
    )


@blueprint.get("/trial-data/dsmb.pdf")
@requires(Permission.READ_TRIAL_SUMMARY)
def dsmb_pdf() -> ResponseReturnValue:
    summary = summary_now(reads(), request.args.get("protocol"))
    pdf = render_dsmb_pdf(
        summary,
        site_name=current_app.config["SITE_NAME"],
        zone=site_zone(),
        generated_at=now(),
        generated_by=acting_user().full_name,
    )
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", summary.protocol_code)
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{stem}-dsmb-summary.pdf"'},
    )
