"""``cellchain audit verify --records`` and ``cellchain audit seal-baseline``: the regulated
rows checked against the audit trail (``core/record_state.py``, docs/security.md "Records
checked against the trail")."""

from __future__ import annotations

import getpass

import click
from flask.cli import with_appcontext

from cellchain.core import record_state
from cellchain.core.types import utcnow
from cellchain.extensions import db

#: Rows named one per line before the rest are only counted (per problem kind).
MAX_ROWS_SHOWN = 200


def check_records() -> bool:
    """Rebuild every regulated row from the trail; print the outcome, naming each row that
    differs (on standard error); whether every row matched."""
    report = record_state.verify_records(db.session)
    if report.intact:
        click.echo(f"Records match the trail: {report.rows_checked} rows verified.")
        return True
    for problem in report.differences[:MAX_ROWS_SHOWN]:
        click.echo(f"Record {problem.describe()}.", err=True)
    if len(report.differences) > MAX_ROWS_SHOWN:
        click.echo(f"… and {len(report.differences) - MAX_ROWS_SHOWN} more rows.", err=True)
    if report.unsealed:
        tables = sorted({problem.table for problem in report.unsealed})
        click.echo(
            f"{len(report.unsealed)} rows (in {', '.join(tables)}) predate the record trail and "
            "are not sealed: run `cellchain audit seal-baseline --reason …` once after the "
            "upgrade.",
            err=True,
        )
    click.echo(
        f"Records DIFFER from the trail: {len(report.differences)} rows differ, "
        f"{len(report.unsealed)} unsealed, of {report.rows_checked} rows.",
        err=True,
    )
    return False


@click.command("seal-baseline")
@click.option("--reason", required=True, help="Why, e.g. 'upgrade to 0023'; recorded.")
@with_appcontext
def seal_baseline_command(reason: str) -> None:
    """Record the values of every row that predates the record trail (an upgraded site, once,
    right after `cellchain db upgrade`), so `audit verify --records` checks them from now on.
    Rows inserted outside the application later are never sealed by it."""
    if not reason.strip():
        raise click.ClickException("A reason is required.")
    sealed = record_state.seal_baseline(
        db.session,
        reason=f"{reason.strip()} (via cellchain CLI by OS user {getpass.getuser()})",
        at=utcnow(),
    )
    db.session.commit()
    click.echo(f"Baseline sealed: {sealed} rows recorded in the audit trail.")


def add_records_commands(group: click.Group) -> None:
    """Add ``seal-baseline`` to the ``audit`` group."""
    group.add_command(seal_baseline_command)
