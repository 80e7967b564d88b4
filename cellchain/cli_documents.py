"""``cellchain documents``: a controlled document's version exported as a file (TOML or JSON)
and imported at another site as a DRAFT, so a validated configuration moves between a test
and a production site. An imported version is never in force: QA signs it at the target
site like any draft."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from cellchain.core.models import User
from cellchain.core.roles import has_permission
from cellchain.core.types import to_jsonable, utcnow
from cellchain.documents import texts
from cellchain.documents.service import KINDS, DocumentKind, kind_named
from cellchain.documents.versioning import VersionStatus, change_reason
from cellchain.errors import DomainError
from cellchain.extensions import db

#: what an export file says it is (checked on import)
FORMAT_NAME = "cellchain controlled document"
FORMAT_VERSION = 1


def _kind(name: str) -> tuple[str, DocumentKind[Any]]:
    kind = kind_named(name)
    if kind is None:
        known = ", ".join(sorted(KINDS))
        raise click.BadParameter(f"no kind of document {name!r}; known: {known}", param_hint="KIND")
    key = next(key for key, value in KINDS.items() if value is kind)
    return key, kind


@click.group("documents")
def documents_group() -> None:
    """Controlled documents (protocols, product definitions, specifications, …) as files."""


@documents_group.command("kinds")
@with_appcontext
def kinds() -> None:
    """List the kinds of controlled document (the KIND of export and import)."""
    for key in sorted(KINDS):
        click.echo(f"{key}\t{KINDS[key].model.document_label}")


@documents_group.command("export")
@click.argument("kind_name", metavar="KIND")
@click.argument("code")
@click.option("--version", "number", type=int, help="That version (default: the one in force).")
@click.option("--format", "fmt", type=click.Choice(["toml", "json"]), default="toml")
@with_appcontext
def export(kind_name: str, code: str, number: int | None, fmt: str) -> None:
    """Write version N of document CODE of KIND (default: the version in force now) to
    standard output, as TOML or JSON."""
    key, kind = _kind(kind_name)
    wanted = code.strip().upper()
    if number is None:
        document = kind.in_force_or_none(db.session, wanted, at=utcnow())
        if document is None:
            raise click.ClickException(f"no version of {key} {wanted} is in force; give --version")
    else:
        found = [d for d in kind.versions(db.session) if d.code == wanted and d.version == number]
        if not found:
            raise click.ClickException(f"{key} {wanted} has no version {number}")
        document = found[0]
    data: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": key,
        "code": document.code,
        "version": document.version,
        "status": document.status,
        "title": document.title,
        "change_reason": change_reason(db.session, document) or "",
        "exported_at": utcnow().isoformat(timespec="seconds"),
        "parameters": document.parameters,
    }
    if fmt == "json":
        sys.stdout.write(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n")
    else:
        try:
            sys.stdout.write(texts.to_toml(data))
        except ValueError as error:
            raise click.ClickException(f"{error}: export it with --format json") from error


@documents_group.command("import")
@click.argument("kind_name", metavar="KIND")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", help="The change's reason (default: the file's, with its origin).")
@click.option(
    "--user", "username", required=True, help="Who imports it (QA: the audit trail names them)."
)
@with_appcontext
def import_(kind_name: str, path: Path, reason: str | None, username: str) -> None:
    """Write the version in FILE (TOML or JSON, from ``export``) as a new DRAFT of its code:
    never in force until QA signs it here. Refused when the file's kind is not KIND, its
    parameters fail the kind's check, or USER may not draft this kind."""
    key, kind = _kind(kind_name)
    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None or not user.active:
        raise click.ClickException(f"There is no active user {username!r}: nothing imported.")
    if not has_permission(user.roles, kind.permission):
        raise click.ClickException(f"{username} may not draft a {key}: nothing imported.")
    text = path.read_text(encoding="utf-8")
    try:
        read = texts.from_json if text.lstrip().startswith("{") else texts.from_toml
        data = read(text)
    except DomainError as error:
        raise click.ClickException(f"{path}: {error.detail}") from error
    if data.get("format") != FORMAT_NAME:
        raise click.ClickException(f"{path} is not an export of `cellchain documents export`")
    if kind_named(str(data.get("kind", ""))) is not kind:
        raise click.ClickException(
            f"{path} holds a {data.get('kind')!r} document, not a {key}: nothing imported"
        )
    parameters = data.get("parameters")
    if not isinstance(parameters, dict) or not isinstance(data.get("code"), str):
        raise click.ClickException(f"{path} has no code or parameters: nothing imported")
    origin = f"imported from {path.name} ({key} {data['code']} v{data.get('version')})"
    given = reason or str(data.get("change_reason") or "").strip()
    try:
        document = kind.draft(
            db.session,
            actor=user,
            now=utcnow(),
            code=data["code"],
            title=str(data.get("title", "")),
            parameters=parameters,
            reason=f"{given} — {origin}" if given else origin,
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in (error.errors or {}).items())
        raise click.ClickException(
            f"refused, nothing imported: {error.detail}" + (f" ({fields})" if fields else "")
        ) from error
    assert document.status == VersionStatus.DRAFT.value
    click.echo(
        f"Imported as DRAFT {key} {document.code} v{document.version} (id {document.id}); "
        "not in force until QA signs it at this site."
    )
