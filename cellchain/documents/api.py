"""The REST routes of a kind of controlled document, written once: every version, one
version with its signatures, QA's approval. Each feature makes its blueprint with
``document_api``, so its URLs, endpoint names, tag and permission stay its own."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.roles import Permission
from cellchain.core.schemas import SignIn
from cellchain.documents.commands import approve_as_user
from cellchain.documents.schemas import VersionedDocumentOut
from cellchain.documents.service import DocumentKind
from cellchain.documents.versioning import describe
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work

APPROVE_SUMMARY = "QA approves a draft with an e-signature (password re-entered); it takes effect."


def document_api(
    kind: DocumentKind[Any],
    schema: type[VersionedDocumentOut],
    *,
    name: str,
    noun: str,
    description: str,
    one_summary: str,
) -> Blueprint:
    """The blueprint ``<name>s_api`` under ``/api/v1/<name>s``: ``list_<name>s``,
    ``get_<name>`` and ``approve_<name>`` (the version's id in the path is ``<name>_id``).
    ``noun`` names the kind in the summaries, ``one_summary`` is that of ``get_<name>``."""
    plural = f"{name}s"
    blueprint = Blueprint(
        f"{plural}_api", __name__, url_prefix=f"/api/v1/{plural}", description=description
    )
    id_name = f"{name}_id"
    one = f"/<int:{id_name}>"

    @blueprint.get("", endpoint=f"list_{plural}")
    @requires(Permission.READ_RECORDS)
    @blueprint.response(200, schema(many=True))
    @blueprint.doc(summary=f"Every version of every {noun}, newest version first.")
    def list_versions() -> Any:
        return [describe(db.session, document) for document in kind.versions(db.session)]

    @blueprint.get(one, endpoint=f"get_{name}")
    @requires(Permission.READ_RECORDS)
    @blueprint.response(200, schema)
    @blueprint.doc(summary=one_summary)
    def get_version(**path: int) -> Any:
        return describe(db.session, kind.get(db.session, path[id_name]))

    @blueprint.post(f"{one}/approve", endpoint=f"approve_{name}")
    @requires(kind.permission)
    @blueprint.arguments(SignIn)
    @blueprint.response(200, schema)
    @blueprint.doc(summary=APPROVE_SUMMARY)
    def approve(data: dict[str, Any], **path: int) -> Any:
        with unit_of_work() as session:
            document = approve_as_user(session, kind, path[id_name], data["password"])
        return describe(db.session, document)

    return blueprint
