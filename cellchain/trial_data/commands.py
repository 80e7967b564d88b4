"""Acting-user glue of the trial-data exports and the DSMB summary, shared by the API and the
pages: the acting user, the time, the site and the trial from the request, then the service.

Generating an export runs inside the request that asks for it (``run_export_as_user``): the
service commits its progress between steps through ``checkpoint``, so another request, in
any worker, reads how far it is from the database. Chosen over a background thread because
gunicorn's workers share nothing but the database and a thread dies with its worker without
a trace: here the request either ends with the file stored or marks the export failed.
"""

from __future__ import annotations

from flask import current_app

from cellchain.core.types import utcnow
from cellchain.dosing.defaults import NCT01420432_CODE
from cellchain.errors import DomainError
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.trial_data import dsmb, exports
from cellchain.trial_data.models import ExportFormat, TrialDataExport

#: The trial whose data are exported and summarised.
TRIAL = NCT01420432_CODE


def request_export_as_user(session: DbSession, export_format: str) -> TrialDataExport:
    return exports.request_export(
        session, ExportFormat(export_format), actor=acting_user(), now=now()
    )


def run_export_as_user(session: DbSession, export_id: int) -> TrialDataExport:
    """Generate the export, committing its progress as it goes; an unexpected error marks
    it failed (in a transaction of its own) before it propagates."""
    export = exports.get_export(session, export_id)
    try:
        return exports.run_export(
            session,
            export,
            actor=acting_user(),
            clock=utcnow,
            checkpoint=session.commit,
            protocol_code=TRIAL,
            site_name=current_app.config["SITE_NAME"],
            zone=site_zone(),
        )
    except DomainError:
        raise
    except Exception as error:
        session.rollback()
        exports.mark_failed(
            session, export_id, actor=acting_user(), now=utcnow(), error=repr(error)
        )
        session.commit()
        raise


def export_now_as_user(session: DbSession, export_format: str) -> TrialDataExport:
    """Ask for an export and generate it at once (the page without JavaScript, the API)."""
    export = request_export_as_user(session, export_format)
    session.commit()
    return run_export_as_user(session, export.id)


def download_as_user(session: DbSession, export_id: int) -> tuple[TrialDataExport, bytes]:
    export = exports.get_export(session, export_id)
    return export, exports.download(session, export, actor=acting_user(), now=now())


def summary_now(session: DbSession) -> dsmb.TrialSummary:
    return dsmb.trial_summary(session, protocol_code=TRIAL, now=now())
