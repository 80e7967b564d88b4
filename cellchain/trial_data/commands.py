"""Acting-user glue of the trial-data exports and the DSMB summary, shared by the API and the
pages: the acting user, the time, the site and the trial (the protocol the request names, or
the only one signed) from the request, then the service.

Generating an export runs inside the request that asks for it (``run_export_as_user``): the
service commits its progress between steps through ``checkpoint``, so another request, in
any worker, reads how far it is from the database. Chosen over a background thread because
gunicorn's workers share nothing but the database and a thread dies with its worker without
a trace: here the request either ends with the file stored or marks the export failed.
"""

from __future__ import annotations

from flask import current_app

from cellchain.core.types import utcnow
from cellchain.errors import DomainError
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.trial_data import dsmb, exports
from cellchain.trial_data.models import ExportFormat, TrialDataExport


def request_export_as_user(
    session: DbSession, export_format: str, protocol_code: str | None = None
) -> TrialDataExport:
    """Ask for an export of the trial ``protocol_code`` (the only one signed when left out)."""
    return exports.request_export(
        session,
        ExportFormat(export_format),
        actor=acting_user(),
        now=now(),
        protocol_code=protocol_code,
    )


def run_export_as_user(session: DbSession, export_id: int) -> TrialDataExport:
    """Generate the export, committing its progress as it goes; an unexpected error marks
    it failed (in a transaction of its own) before it propagates."""
    export = exports.get_export(session, export_id, acting_user())
    try:
        return exports.run_export(
            session,
            export,
            actor=acting_user(),
            clock=utcnow,
            checkpoint=session.commit,
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


def export_now_as_user(
    session: DbSession, export_format: str, protocol_code: str | None = None
) -> TrialDataExport:
    """Ask for an export and generate it at once (the page without JavaScript, the API)."""
    export = request_export_as_user(session, export_format, protocol_code)
    session.commit()
    return run_export_as_user(session, export.id)


def download_as_user(session: DbSession, export_id: int) -> tuple[TrialDataExport, bytes]:
    export = exports.get_export(session, export_id, acting_user())
    return export, exports.download(session, export, actor=acting_user(), now=now())


def summary_now(session: DbSession, protocol_code: str | None = None) -> dsmb.TrialSummary:
    """The DSMB summary of the trial ``protocol_code`` (the only one signed when left out)."""
    return dsmb.trial_summary(
        session, protocol_code=exports.trial_of(session, protocol_code), now=now()
    )
