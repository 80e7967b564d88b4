"""Rules of the quality package: release specification versions and their approval.

QC results, invalidations, dispositions and the certificate of analysis build on these.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.core import versioning
from cellchain.core.models import Signature, User
from cellchain.core.roles import Permission
from cellchain.errors import Conflict
from cellchain.extensions import DbSession
from cellchain.quality.defaults import UC_MSC_SPEC_CODE, UC_MSC_SPEC_TITLE, UC_MSC_SPECIFICATION
from cellchain.quality.evaluation import check_specification
from cellchain.quality.models import Specification

#: The meaning printed with QA's signature on a specification version.
APPROVAL_MEANING = "approval: release specification in force"


def draft_specification(
    session: DbSession,
    *,
    actor: User | None,
    now: dt.datetime,
    code: str,
    title: str,
    parameters: dict[str, Any],
) -> Specification:
    """Write a new draft version; every line must be one the evaluation can judge."""
    check_specification(parameters)
    return versioning.draft(
        session,
        Specification,
        actor=actor,
        now=now,
        code=code,
        title=title,
        parameters=parameters,
    )


def load_default_specification(
    session: DbSession, *, actor: User | None, now: dt.datetime
) -> Specification:
    """The UC-MSC default specification as a draft, unless it is already on file."""
    check_specification(UC_MSC_SPECIFICATION)
    return versioning.first_or_draft(
        session,
        Specification,
        actor=actor,
        now=now,
        code=UC_MSC_SPEC_CODE,
        title=UC_MSC_SPEC_TITLE,
        parameters=UC_MSC_SPECIFICATION,
    )


def approve_specification(
    session: DbSession, *, specification: Specification, user: User, password: str, now: dt.datetime
) -> Signature:
    """QA signs a draft; it takes effect and the version in force before is superseded."""
    return versioning.approve(
        session,
        specification,
        meaning=APPROVAL_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.SIGN_SPECIFICATION,
    )


def specification_in_force(session: DbSession, code: str) -> Specification:
    spec = versioning.in_force(session, Specification, code.strip().upper())
    if spec is None:
        raise Conflict(
            f"No release specification for {code} is in force; QA must approve one first."
        )
    return spec


def list_specifications(session: DbSession) -> list[Specification]:
    return versioning.list_versions(session, Specification)


def get_specification(session: DbSession, specification_id: int) -> Specification:
    return versioning.get(session, Specification, specification_id)
