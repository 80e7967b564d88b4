"""Permission-matrix entries of the trial-data export and DSMB summary routes (merged into
``tests/test_permission_matrix.MATRIX``): the investigator and the trial statistician
only, as the files and the summary are unblinded; and the export the matrix's demo site is
given to reach them with."""

from __future__ import annotations

from typing import Any

from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.dosing.defaults import NCT01420432_CODE
from cellchain.trial_data import exports
from cellchain.trial_data.models import ExportFormat

UNBLINDED = frozenset({Role.INVESTIGATOR, Role.STATISTICIAN})

TRIAL_EXPORT_MATRIX: dict[tuple[str, str], frozenset[Role] | str] = {
    ("trial_data.exports_page", "GET"): UNBLINDED,
    ("trial_data.request_export", "POST"): UNBLINDED,
    ("trial_data.run", "POST"): UNBLINDED,
    ("trial_data.progress", "GET"): UNBLINDED,
    ("trial_data.export_page", "GET"): UNBLINDED,
    ("trial_data.download", "GET"): UNBLINDED,
    ("trial_data.dsmb_page", "GET"): UNBLINDED,
    ("trial_data.dsmb_pdf", "GET"): UNBLINDED,
    ("trial_data_api.list_exports", "GET"): UNBLINDED,
    ("trial_data_api.request_export", "POST"): UNBLINDED,
    ("trial_data_api.run_export", "POST"): UNBLINDED,
    ("trial_data_api.export_status", "GET"): UNBLINDED,
    ("trial_data_api.export_file", "GET"): UNBLINDED,
    ("trial_data_api.dsmb_summary", "GET"): UNBLINDED,
}


def seed_export(session: Any, investigator: Any) -> None:
    """A generated ODM export of the demo trial, as its investigator would make it."""
    export = exports.request_export(
        session,
        ExportFormat.ODM,
        actor=investigator,
        now=utcnow(),
        protocol_code=NCT01420432_CODE,  # the demo holds two trials (issue 22)
    )
    session.flush()
    exports.run_export(
        session,
        export,
        actor=investigator,
        clock=utcnow,
        checkpoint=session.flush,
        protocol_code=NCT01420432_CODE,
        site_name="Permission matrix",
    )
