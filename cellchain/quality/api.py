"""API of the quality package: release specifications."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core import versioning
from cellchain.core.roles import Permission
from cellchain.core.schemas import SignIn
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, unit_of_work
from cellchain.quality import service
from cellchain.quality.schemas import SpecificationOut

specifications_api = Blueprint(
    "specifications_api",
    __name__,
    url_prefix="/api/v1/specifications",
    description="Release specifications (QA-approved versions)",
)
blueprints = (specifications_api,)


@specifications_api.get("")
@requires(Permission.READ_RECORDS)
@specifications_api.response(200, SpecificationOut(many=True))
def list_specifications() -> Any:
    """Every version of every release specification, newest version first."""
    return [versioning.describe(db.session, s) for s in service.list_specifications(db.session)]


@specifications_api.get("/<int:specification_id>")
@requires(Permission.READ_RECORDS)
@specifications_api.response(200, SpecificationOut)
def get_specification(specification_id: int) -> Any:
    """One version with its tests and signatures (each marked valid or not)."""
    found = service.get_specification(db.session, specification_id)
    return versioning.describe(db.session, found)


@specifications_api.post("/<int:specification_id>/approve")
@requires(Permission.SIGN_SPECIFICATION)
@specifications_api.arguments(SignIn)
@specifications_api.response(200, SpecificationOut)
def approve_specification(data: dict[str, Any], specification_id: int) -> Any:
    """QA approves a draft with an e-signature (password re-entered); it takes effect."""
    with unit_of_work() as session:
        found = service.get_specification(session, specification_id)
        service.approve_specification(
            session, specification=found, user=acting_user(), password=data["password"], now=now()
        )
    return versioning.describe(db.session, found)
