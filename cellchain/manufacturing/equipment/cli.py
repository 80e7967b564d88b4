"""``cellchain storage import-readings FILE``: tank readings from a monitoring system's CSV
export, as the page and the API import them (all rows or none; duplicates skipped), recorded
as the command line's operator (``--user``, a technician)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from cellchain.core.models import User
from cellchain.core.roles import Permission, has_permission
from cellchain.core.types import utcnow
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.manufacturing.storage import reading_import


@click.group("storage")
def storage_group() -> None:
    """LN2 storage: tank readings."""


@storage_group.command("import-readings")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "username", required=True, help="The technician recording them.")
@with_appcontext
def import_readings(file: Path, username: str) -> None:
    """Import tank readings from a monitoring system's CSV export (columns: timestamp with
    its UTC offset, tank, temperature_c, optional level_percent). A bad row refuses the whole
    file, each problem by row number; nothing is saved then (exit status 1)."""
    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None or not user.active:
        raise click.ClickException(f"There is no active user {username!r}.")
    if not has_permission(user.roles, Permission.RECORD_STORAGE):
        raise click.ClickException(f"{username} may not record tank readings.")
    try:
        outcome = reading_import.import_readings(
            db.session,
            file.read_bytes(),
            actor=user,
            now=utcnow(),
            zone=ZoneInfo(current_app.config["SITE_TIMEZONE"]),
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        problems = "\n".join(f"  {problem}" for problem in error.errors.get("file", []))
        raise click.ClickException(f"{error.detail}\n{problems}".rstrip()) from None
    click.echo(
        f"{outcome.imported} reading(s) imported, {outcome.duplicates} duplicate(s) skipped, "
        f"{len(outcome.deviations)} deviation(s) opened"
        + (": " + ", ".join(f"#{d.id}" for d in outcome.deviations) if outcome.deviations else ".")
    )
