"""Pages of the quality package: release specifications."""

from __future__ import annotations

from flask import Blueprint, url_for
from flask.typing import ResponseReturnValue

from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import now, requires
from cellchain.quality import service
from cellchain.quality.evaluation import criterion_text
from cellchain.web.documents import approve_from_form, document_page, versions_page

blueprint = Blueprint("quality", __name__)


@blueprint.app_template_filter("criterion")
def criterion(test: dict[str, object]) -> str:
    """A specification line's acceptance criterion in words."""
    return criterion_text(test)  # type: ignore[arg-type]


@blueprint.get("/specifications")
@requires(Permission.READ_RECORDS)
def specifications() -> ResponseReturnValue:
    return versions_page(
        "Release specifications",
        list(service.list_specifications(db.session)),
        "quality.specification",
        "specification_id",
    )


@blueprint.get("/specifications/<int:specification_id>")
@requires(Permission.READ_RECORDS)
def specification(specification_id: int) -> ResponseReturnValue:
    found = service.get_specification(db.session, specification_id)
    return document_page(
        "quality/specification.html", "specification", found, service.APPROVAL_MEANING
    )


@blueprint.post("/specifications/<int:specification_id>/approve")
@requires(Permission.SIGN_SPECIFICATION)
def approve(specification_id: int) -> ResponseReturnValue:
    return approve_from_form(
        lambda session, user, password: service.approve_specification(
            session,
            specification=service.get_specification(session, specification_id),
            user=user,
            password=password,
            now=now(),
        ),
        back_url=url_for("quality.specification", specification_id=specification_id),
        what="specification",
    )
