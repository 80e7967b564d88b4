"""Pages of the dosing package: protocols."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core import signatures
from cellchain.core.roles import Permission
from cellchain.core.schemas import SignIn
from cellchain.dosing import service
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, unit_of_work
from cellchain.web.forms import load_form

blueprint = Blueprint("dosing", __name__)


@blueprint.get("/protocols")
@requires(Permission.READ_RECORDS)
def protocols() -> ResponseReturnValue:
    return render_template(
        "core/versions.html",
        heading="Trial protocols",
        documents=service.list_protocols(db.session),
        detail_endpoint="dosing.protocol",
        id_name="protocol_id",
    )


@blueprint.get("/protocols/<int:protocol_id>")
@requires(Permission.READ_RECORDS)
def protocol(protocol_id: int) -> ResponseReturnValue:
    found = service.get_protocol(db.session, protocol_id)
    return render_template(
        "dosing/protocol.html",
        protocol=found,
        manifests=signatures.manifest(db.session, found),
        approval_meaning=service.APPROVAL_MEANING,
    )


@blueprint.post("/protocols/<int:protocol_id>/approve")
@requires(Permission.SIGN_PROTOCOL)
def approve(protocol_id: int) -> ResponseReturnValue:
    try:
        data = load_form(SignIn(), request.form)
        with unit_of_work() as session:
            found = service.get_protocol(session, protocol_id)
            service.approve_protocol(
                session, protocol=found, user=acting_user(), password=data["password"], now=now()
            )
    except DomainError as error:
        flash(f"Not signed: {error.detail}", "error")
    else:
        flash("Signed: this protocol version is now in force.", "success")
    return redirect(url_for("dosing.protocol", protocol_id=protocol_id))
