"""The pages of a kind of controlled document, written once: every version, one version with
its signatures, QA's approval form. Each feature adds them to its own blueprint with
``add_document_pages``, so their URLs, endpoint names and permission stay its own."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core import signatures
from cellchain.core.i18n import LazyText, _
from cellchain.core.roles import Permission
from cellchain.core.schemas import SignIn
from cellchain.documents.commands import approve_as_user
from cellchain.documents.service import DocumentKind
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import acting_user, requires, unit_of_work
from cellchain.web.forms import load_form


def add_document_pages(
    blueprint: Blueprint,
    kind: DocumentKind[Any],
    *,
    name: str,
    heading: str | LazyText,
    what: str | LazyText,
    template: str,
) -> None:
    """Add ``<name>s`` (``/<name>s``, headed ``heading``), ``<name>`` (``/<name>s/<id>``,
    rendered with ``template``, which extends ``documents/document.html``) and ``approve``
    (its form) to ``blueprint``; ``what`` names one document in messages and links."""
    plural, id_name = f"{name}s", f"{name}_id"
    detail_endpoint = f"{blueprint.name}.{name}"

    def link(endpoint: str, document_id: int) -> str:
        values: dict[str, Any] = {id_name: document_id}
        return url_for(endpoint, **values)

    @blueprint.get(f"/{plural}", endpoint=plural)
    @requires(Permission.READ_RECORDS)
    def versions() -> ResponseReturnValue:
        return render_template(
            "documents/versions.html",
            heading=str(heading),
            documents=kind.versions(db.session),
            detail_endpoint=detail_endpoint,
            id_name=id_name,
        )

    @blueprint.get(f"/{plural}/<int:{id_name}>", endpoint=name)
    @requires(Permission.READ_RECORDS)
    def page(**path: int) -> ResponseReturnValue:
        document_id = path[id_name]
        document = kind.get(db.session, document_id)
        return render_template(
            template,
            document=document,
            what=str(what),
            manifests=signatures.manifest(db.session, document),
            approval_meaning=kind.approval_meaning,
            may_approve=kind.may_approve(document, acting_user()),
            approve_url=link(f"{blueprint.name}.approve", document_id),
        )

    @blueprint.post(f"/{plural}/<int:{id_name}>/approve", endpoint="approve")
    @requires(kind.permission)
    def approve(**path: int) -> ResponseReturnValue:
        document_id = path[id_name]
        try:
            data = load_form(SignIn(), request.form)
            with unit_of_work() as session:
                approve_as_user(session, kind, document_id, data["password"])
        except DomainError as error:
            flash(_("Not signed: %(error)s", error=error.detail), "error")
        else:
            flash(_("Signed: this %(what)s version is now in force.", what=str(what)), "success")
        return redirect(link(detail_endpoint, document_id))
