"""Pages shared by every versioned, QA-approved document (protocols, product definitions).

The feature packages keep their own routes (and so their own permissions and URLs); the
bodies, which are the same for every kind of document, live here once.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, render_template, request
from flask.typing import ResponseReturnValue

from cellchain.core import signatures
from cellchain.core.models import User
from cellchain.core.schemas import SignIn
from cellchain.core.versioning import VersionedDocument
from cellchain.errors import DomainError
from cellchain.extensions import DbSession, db
from cellchain.http import acting_user, unit_of_work
from cellchain.web.forms import load_form


def versions_page(
    heading: str, documents: list[VersionedDocument], detail_endpoint: str, id_name: str
) -> str:
    """Every version of every document of one kind, linked to its page."""
    return render_template(
        "core/versions.html",
        heading=heading,
        documents=documents,
        detail_endpoint=detail_endpoint,
        id_name=id_name,
    )


def document_page(template: str, name: str, document: VersionedDocument, meaning: str) -> str:
    """One version with its signatures, each checked against the content now."""
    return render_template(
        template,
        **{name: document},
        manifests=signatures.manifest(db.session, document),
        approval_meaning=meaning,
    )


def approve_from_form(
    approve: Callable[[DbSession, User, str], object], *, back_url: str, what: str
) -> ResponseReturnValue:
    """Run ``approve(session, signer, password)`` with the password from the form."""
    try:
        data = load_form(SignIn(), request.form)
        with unit_of_work() as session:
            approve(session, acting_user(), data["password"])
    except DomainError as error:
        flash(f"Not signed: {error.detail}", "error")
    else:
        flash(f"Signed: this {what} version is now in force.", "success")
    return redirect(back_url)
