"""The REST routes of a kind of controlled document, written once: every version, one
version with its signatures, a new draft, a draft's change (a signed version refused), the
differences from the version in force, QA's approval into force on a date. Each feature
makes its blueprint with ``document_api``, so its URLs, endpoint names, tag and permission
stay its own."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.roles import Permission
from cellchain.documents.commands import approve_as_user, draft_as_user, edit_as_user
from cellchain.documents.schemas import (
    ApproveIn,
    ComparisonOut,
    DifferencesQuery,
    DraftChangeIn,
    DraftIn,
    VersionedDocumentOut,
)
from cellchain.documents.service import KINDS, DocumentKind
from cellchain.documents.versioning import describe
from cellchain.extensions import db
from cellchain.http import now, requires, unit_of_work

APPROVE_SUMMARY = (
    "QA approves a draft with an e-signature (password re-entered); it takes effect at "
    "effective_at (default: now; never before the signing), the version in force before it "
    "staying so until then."
)


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
    ``get_<name>``, ``draft_<name>``, ``change_<name>`` (PATCH and PUT of a draft),
    ``differences_<name>`` and ``approve_<name>`` (the version's id in the path is
    ``<name>_id``). ``noun`` names the kind in the summaries, ``one_summary`` is that of
    ``get_<name>``. The kind is listed in ``documents.service.KINDS`` under ``name``."""
    KINDS[name] = kind
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

    @blueprint.post("", endpoint=f"draft_{name}")
    @requires(kind.permission)
    @blueprint.arguments(DraftIn)
    @blueprint.response(201, schema)
    @blueprint.doc(
        summary=f"Draft the next version of a {noun}: title, change reason and every "
        "parameter; refused (422) when its parameters could not be used. Nothing uses it "
        "until QA signs it."
    )
    def draft(data: dict[str, Any]) -> Any:
        with unit_of_work() as session:
            document = draft_as_user(session, kind, **data)
        return describe(db.session, document)

    @blueprint.route(one, methods=["PATCH", "PUT"], endpoint=f"change_{name}")
    @requires(kind.permission)
    @blueprint.arguments(DraftChangeIn)
    @blueprint.response(200, schema)
    @blueprint.doc(
        summary=f"Change a draft {noun} (title, parameters, with a reason); a signed version "
        "is refused (409): it is never changed in place."
    )
    def change(data: dict[str, Any], **path: int) -> Any:
        with unit_of_work() as session:
            document = edit_as_user(
                session,
                kind,
                path[id_name],
                title=data.get("title"),
                parameters=data.get("parameters"),
                reason=data["reason"],
            )
        return describe(db.session, document)

    @blueprint.get(f"{one}/differences", endpoint=f"differences_{name}")
    @requires(Permission.READ_RECORDS)
    @blueprint.arguments(DifferencesQuery, location="query")
    @blueprint.response(200, ComparisonOut)
    @blueprint.doc(
        summary=f"A {noun} version beside the version in force now (or another version, "
        "'against'): every parameter changed, added or removed, with old and new values."
    )
    def differences(query: dict[str, Any], **path: int) -> Any:
        document = kind.get(db.session, path[id_name])
        against = kind.get(db.session, query["against"]) if query["against"] else None
        return kind.differences(db.session, document, at=now(), against=against)

    @blueprint.post(f"{one}/approve", endpoint=f"approve_{name}")
    @requires(kind.permission)
    @blueprint.arguments(ApproveIn)
    @blueprint.response(200, schema)
    @blueprint.doc(summary=APPROVE_SUMMARY)
    def approve(data: dict[str, Any], **path: int) -> Any:
        with unit_of_work() as session:
            document = approve_as_user(
                session, kind, path[id_name], data["password"], data["effective_at"]
            )
        return describe(db.session, document)

    return blueprint
