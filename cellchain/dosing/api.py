"""API of the dosing package: protocols."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core import versioning
from cellchain.core.roles import Permission
from cellchain.core.schemas import SignIn
from cellchain.dosing import service
from cellchain.dosing.models import Protocol
from cellchain.dosing.schemas import ProtocolOut
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, unit_of_work

protocols_api = Blueprint(
    "protocols_api", __name__, url_prefix="/api/v1/protocols", description="Trial protocols"
)
blueprints = (protocols_api,)


def protocol_out(protocol: Protocol) -> dict[str, Any]:
    return versioning.describe(db.session, protocol)


@protocols_api.get("")
@requires(Permission.READ_RECORDS)
@protocols_api.response(200, ProtocolOut(many=True))
def list_protocols() -> Any:
    """Every version of every protocol, newest version first."""
    return [protocol_out(p) for p in service.list_protocols(db.session)]


@protocols_api.get("/<int:protocol_id>")
@requires(Permission.READ_RECORDS)
@protocols_api.response(200, ProtocolOut)
def get_protocol(protocol_id: int) -> Any:
    """One protocol version with its parameters and signatures (each marked valid or not)."""
    return protocol_out(service.get_protocol(db.session, protocol_id))


@protocols_api.post("/<int:protocol_id>/approve")
@requires(Permission.SIGN_PROTOCOL)
@protocols_api.arguments(SignIn)
@protocols_api.response(200, ProtocolOut)
def approve_protocol(data: dict[str, Any], protocol_id: int) -> Any:
    """QA approves a draft with an e-signature (password re-entered); it takes effect."""
    with unit_of_work() as session:
        protocol = service.get_protocol(session, protocol_id)
        service.approve_protocol(
            session, protocol=protocol, user=acting_user(), password=data["password"], now=now()
        )
    return protocol_out(protocol)
