"""Pages of the dosing package: protocols."""

from __future__ import annotations

from flask import Blueprint, url_for
from flask.typing import ResponseReturnValue

from cellchain.core.roles import Permission
from cellchain.dosing import service
from cellchain.extensions import db
from cellchain.http import now, requires
from cellchain.web.documents import approve_from_form, document_page, versions_page

blueprint = Blueprint("dosing", __name__)


@blueprint.get("/protocols")
@requires(Permission.READ_RECORDS)
def protocols() -> ResponseReturnValue:
    return versions_page(
        "Trial protocols",
        list(service.list_protocols(db.session)),
        "dosing.protocol",
        "protocol_id",
    )


@blueprint.get("/protocols/<int:protocol_id>")
@requires(Permission.READ_RECORDS)
def protocol(protocol_id: int) -> ResponseReturnValue:
    found = service.get_protocol(db.session, protocol_id)
    return document_page("dosing/protocol.html", "protocol", found, service.APPROVAL_MEANING)


@blueprint.post("/protocols/<int:protocol_id>/approve")
@requires(Permission.SIGN_PROTOCOL)
def approve(protocol_id: int) -> ResponseReturnValue:
    return approve_from_form(
        lambda session, user, password: service.approve_protocol(
            session,
            protocol=service.get_protocol(session, protocol_id),
            user=user,
            password=password,
            now=now(),
        ),
        back_url=url_for("dosing.protocol", protocol_id=protocol_id),
        what="protocol",
    )
