"""The pages of a kind of controlled document, written once: every version, one version with
its signatures, a new draft from a version (its parameters as TOML), a draft's change, the
differences from the version in force, QA's approval form with the effective time. Each
feature adds them to its own blueprint with ``add_document_pages``, so their URLs, endpoint
names and permission stay its own."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core import signatures
from cellchain.core.i18n import LazyText, _
from cellchain.core.roles import Permission
from cellchain.documents import fields, texts, versioning
from cellchain.documents.commands import approve_as_user, draft_as_user, edit_as_user
from cellchain.documents.schemas import ApproveIn
from cellchain.documents.service import DocumentKind
from cellchain.documents.versioning import VersionStatus
from cellchain.errors import Conflict, DomainError
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, unit_of_work
from cellchain.web.forms import load_form, refusal_context


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
    rendered with ``template``, which extends ``documents/document.html``), ``approve`` (its
    form, with the effective time), ``<name>_draft`` (a new version, prefilled from this one),
    ``<name>_edit`` (a draft's change; a signed version refused) and ``<name>_differences``
    (beside the version in force) to ``blueprint``; ``what`` names one document in messages
    and links."""
    plural, id_name = f"{name}s", f"{name}_id"
    detail_endpoint = f"{blueprint.name}.{name}"

    def link(endpoint: str, document_id: int, **args: Any) -> str:
        values: dict[str, Any] = {id_name: document_id, **args}
        return url_for(endpoint, **values)

    def links(document_id: int) -> dict[str, str]:
        return {
            "detail": link(detail_endpoint, document_id),
            "draft": link(f"{blueprint.name}.{name}_draft", document_id),
            "edit": link(f"{blueprint.name}.{name}_edit", document_id),
            "differences": link(f"{blueprint.name}.{name}_differences", document_id),
            "versions": url_for(f"{blueprint.name}.{plural}"),
        }

    @blueprint.get(f"/{plural}", endpoint=plural)
    @requires(Permission.READ_RECORDS)
    def versions() -> ResponseReturnValue:
        documents = kind.versions(db.session)
        in_force = versioning.in_force_ids(db.session, kind.model, at=now())
        return render_template(
            "documents/versions.html",
            heading=str(heading),
            documents=documents,
            standings={d.id: versioning.standing(d, in_force, now()) for d in documents},
            detail_endpoint=detail_endpoint,
            draft_endpoint=f"{blueprint.name}.{name}_draft",
            may_draft=kind.may_draft(acting_user()),
            id_name=id_name,
        )

    @blueprint.get(f"/{plural}/<int:{id_name}>", endpoint=name)
    @requires(Permission.READ_RECORDS)
    def page(**path: int) -> ResponseReturnValue:
        document_id = path[id_name]
        document = kind.get(db.session, document_id)
        in_force = versioning.in_force_ids(db.session, kind.model, at=now())
        user = acting_user()
        return render_template(
            template,
            document=document,
            what=str(what),
            standing=versioning.standing(document, in_force, now()),
            change_reason=versioning.change_reason(db.session, document),
            manifests=signatures.manifest(db.session, document),
            approval_meaning=kind.approval_meaning,
            may_approve=kind.may_approve(document, user),
            may_draft=kind.may_draft(user),
            may_edit=kind.may_draft(user) and document.status == VersionStatus.DRAFT.value,
            approve_url=link(f"{blueprint.name}.approve", document_id),
            links=links(document_id),
        )

    def form_page(
        document: Any, *, editing: bool, error: DomainError | None = None
    ) -> ResponseReturnValue:
        if request.method == "POST":  # a post without the editor's name is TOML text
            editor = "fields" if request.form.get("editor") == "fields" else "toml"
        else:
            editor = "toml" if request.args.get("editor") == "toml" else "fields"
        try:
            as_toml = texts.to_toml(document.parameters)
        except ValueError:  # a version on file with a value TOML cannot hold (a null)
            as_toml = ""
        prefilled = {"title": document.title, "parameters": as_toml, "reason": ""}
        context = refusal_context(error)
        typed = context.pop("form")
        if editor == "fields" and typed:  # a box left unticked posts nothing: keep it so
            prefilled = {k: v for k, v in prefilled.items() if k != "parameters"}
        form = {**prefilled, **typed}
        return (
            render_template(
                "documents/draft.html",
                document=document,
                what=str(what),
                editing=editing,
                editor=editor,
                items=(
                    fields.items(document.parameters, kind=kind.model.signature_entity_type)
                    if editor == "fields"
                    else []
                ),
                posted=bool(typed),
                form=form,
                links=links(document.id),
                **context,
            ),
            error.status if error else 200,
        )

    def posted_parameters(source: Any) -> dict[str, Any]:
        """The parameters the form posted: its labelled fields read onto ``source``'s, or
        its TOML text."""
        if request.form.get("editor") == "fields":
            return fields.parameters_from_form(source.parameters, request.form)
        return texts.from_toml(request.form.get("parameters", ""))

    @blueprint.route(
        f"/{plural}/<int:{id_name}>/draft", methods=["GET", "POST"], endpoint=f"{name}_draft"
    )
    @requires(kind.permission)
    def draft(**path: int) -> ResponseReturnValue:
        source = kind.get(db.session, path[id_name])
        if request.method == "GET":
            return form_page(source, editing=False)
        try:
            with unit_of_work() as session:
                created = draft_as_user(
                    session,
                    kind,
                    code=source.code,
                    title=request.form.get("title", ""),
                    parameters=posted_parameters(source),
                    reason=request.form.get("reason", ""),
                )
        except DomainError as error:
            return form_page(source, editing=False, error=error)
        flash(
            _(
                "Draft version %(version)s written: compare it with the version in force, then "
                "QA signs it.",
                version=created.version,
            ),
            "success",
        )
        return redirect(link(f"{blueprint.name}.{name}_differences", created.id))

    @blueprint.route(
        f"/{plural}/<int:{id_name}>/edit", methods=["GET", "POST"], endpoint=f"{name}_edit"
    )
    @requires(kind.permission)
    def edit(**path: int) -> ResponseReturnValue:
        document = kind.get(db.session, path[id_name])
        if document.status != VersionStatus.DRAFT.value:
            refusal = Conflict(
                _(
                    "This version is signed: it is never changed in place; draft a new "
                    "version instead."
                )
            )
            if request.method == "GET":
                flash(refusal.detail, "error")
                return redirect(link(detail_endpoint, document.id))
            return form_page(document, editing=True, error=refusal)
        if request.method == "GET":
            return form_page(document, editing=True)
        try:
            with unit_of_work() as session:
                edit_as_user(
                    session,
                    kind,
                    document.id,
                    title=request.form.get("title", ""),
                    parameters=posted_parameters(document),
                    reason=request.form.get("reason", ""),
                )
        except DomainError as error:
            db.session.rollback()
            return form_page(kind.get(db.session, document.id), editing=True, error=error)
        flash(_("Draft changed."), "success")
        return redirect(link(f"{blueprint.name}.{name}_differences", document.id))

    @blueprint.get(f"/{plural}/<int:{id_name}>/differences", endpoint=f"{name}_differences")
    @requires(Permission.READ_RECORDS)
    def differences(**path: int) -> ResponseReturnValue:
        document = kind.get(db.session, path[id_name])
        against_id = request.args.get("against", type=int)
        against = kind.get(db.session, against_id) if against_id else None
        comparison = kind.differences(db.session, document, at=now(), against=against)
        return render_template(
            "documents/differences.html",
            comparison=comparison,
            document=document,
            what=str(what),
            links=links(document.id),
            base_link=link(detail_endpoint, comparison.base.id) if comparison.base else None,
            may_approve=kind.may_approve(document, acting_user()),
        )

    @blueprint.post(f"/{plural}/<int:{id_name}>/approve", endpoint="approve")
    @requires(kind.permission)
    def approve(**path: int) -> ResponseReturnValue:
        document_id = path[id_name]
        try:
            data = load_form(ApproveIn(), request.form)
            with unit_of_work() as session:
                document = approve_as_user(
                    session, kind, document_id, data["password"], data["effective_at"]
                )
                pending = document.effective_at is not None and document.effective_at > now()
        except DomainError as error:
            flash(_("Not signed: %(error)s", error=error.detail), "error")
        else:
            if pending:
                flash(
                    _(
                        "Signed: this %(what)s version takes effect at the time given; the "
                        "version in force stays so until then.",
                        what=str(what),
                    ),
                    "success",
                )
            else:
                flash(
                    _("Signed: this %(what)s version is now in force.", what=str(what)), "success"
                )
        return redirect(link(detail_endpoint, document_id))
