"""The ``cellchain`` command: init, demo, serve, users, tokens, backup, restore, audit, and
Flask-Migrate's ``db``."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, NoAppException, with_appcontext
from flask_migrate import upgrade
from sqlalchemy.exc import OperationalError

from cellchain import create_app
from cellchain.cli_db_roles import DEFAULT_ROLE, add_db_roles_command
from cellchain.cli_documents import documents_group
from cellchain.cli_notifications import notifications_group
from cellchain.cli_records import add_records_commands, check_records
from cellchain.cli_translations import translations_group
from cellchain.config import ConfigurationError
from cellchain.core import (
    accounts,
    audit,
    audit_checkpoints,
    audit_keys,
    audit_verification,
    backup,
)
from cellchain.core.accounts import AccountPolicy
from cellchain.core.audit import AuditFilter
from cellchain.core.display import local_time
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.manufacturing.equipment.cli import storage_group


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigurationError as error:
        # Flask's CLI prints this one as a plain message, not a traceback.
        raise NoAppException(str(error)) from error


class CellchainGroup(FlaskGroup):
    """Flask's command group, with database errors reported in one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperationalError as error:
            raise click.ClickException(
                f"The database is not ready ({error.orig}). Check CELLCHAIN_DATABASE_URL and "
                "run `cellchain db upgrade` (or `cellchain init`)."
            ) from error


@click.group(cls=CellchainGroup, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """cellchain: cell-therapy manufacturing and chain-of-identity tracker."""


add_db_roles_command()  # `cellchain db roles`, in Flask-Migrate's `db` group
main.add_command(translations_group)
main.add_command(notifications_group)
main.add_command(storage_group)  # `cellchain storage import-readings`
main.add_command(documents_group)


def _policy() -> AccountPolicy:
    return AccountPolicy.from_config(current_app.config)


def _cli_reason(reason: str) -> str:
    """CLI actions are recorded as the system, naming the operating-system account."""
    return f"{reason} (via cellchain CLI by OS user {getpass.getuser()})"


def _fail(error: DomainError) -> click.ClickException:
    details = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.errors.items())
    return click.ClickException(f"{error.detail} {details}".strip())


# --- init, demo, serve ----------------------------------------------------------------------


@main.command()
@click.option("--admin-username", default="admin", show_default=True)
@click.option("--admin-name", default=None, help="Printed name of the first administrator.")
@with_appcontext
def init(admin_username: str, admin_name: str | None) -> None:
    """Migrate the database, create the first administrator, load the default protocol.

    The administrator's password is asked for (or read from CELLCHAIN_ADMIN_PASSWORD).
    """
    from cellchain.donors import panels
    from cellchain.dosing import service as dosing
    from cellchain.labels import template_documents
    from cellchain.manufacturing import service as products
    from cellchain.quality import service as quality

    upgrade()
    now = utcnow()
    if accounts.count_users(db.session) == 0:
        name = admin_name or click.prompt("Printed name of the first administrator")
        password = os.environ.get("CELLCHAIN_ADMIN_PASSWORD") or click.prompt(
            f"Password for {admin_username}", hide_input=True, confirmation_prompt=True
        )
        try:
            accounts.create_user(
                db.session,
                actor=None,
                now=now,
                username=admin_username,
                full_name=name,
                password=password,
                roles=[Role.ADMIN],
                policy=_policy(),
            )
        except DomainError as error:
            db.session.rollback()
            raise _fail(error) from error
        click.echo(f"Created administrator {admin_username}.")
    protocol = dosing.PROTOCOLS.load_default(db.session, actor=None, now=now)
    product = products.PRODUCTS.load_default(db.session, actor=None, now=now)
    specification = quality.SPECIFICATIONS.load_default(db.session, actor=None, now=now)
    panel = panels.load_default(db.session, actor=None, now=now)
    label_templates = template_documents.load_defaults(db.session, actor=None, now=now)
    # the manufacturing facility and the first clinical site, from today's configuration
    # (docs/sites.md); kept as they are once recorded
    from cellchain.sites.service import ensure_configured_sites

    facility_site, clinical_site = ensure_configured_sites(
        db.session,
        name=current_app.config["SITE_NAME"],
        zone=current_app.config["SITE_TIMEZONE"],
        facility_code=current_app.config.get("FACILITY_CODE") or "FAC",
        now=now,
    )
    db.session.commit()
    click.echo(
        f"Sites: {facility_site.code} ({facility_site.time_zone}), manufacturing facility; "
        f"{clinical_site.code} ({clinical_site.time_zone}), clinical site."
    )
    click.echo(
        f"Protocol {protocol.code} v{protocol.version} is {protocol.status}; "
        "QA approves it with a signature on the Protocols page."
    )
    click.echo(
        f"Product {product.code} v{product.version} is {product.status}; "
        "QA approves it with a signature on the Products page before donations are registered."
    )
    click.echo(
        f"Release specification {specification.code} v{specification.version} is "
        f"{specification.status}; QA approves it on the Specifications page before lots are tested."
    )
    click.echo(
        f"Donor test panel {panel.code} v{panel.version} is {panel.status}; QA approves it on the "
        "Donor test panels page before donations are registered."
    )
    drafts = [t for t in label_templates if t.status == "draft"]
    click.echo(
        f"Label templates: {len(label_templates)} on file, {len(drafts)} in draft; QA approves "
        "each on the Label templates page before its labels are printed."
    )


def _serve_development(app: Flask, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.command(with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file for the demo (default: instance/demo.sqlite, recreated).",
)
@click.option("--no-serve", is_flag=True, help="Build the demo database and stop.")
def demo(host: str, port: int, database: Path | None, no_serve: bool) -> None:
    """A fresh demo site on SQLite: users for every role, two protocols and products, served."""
    from cellchain.demo import DEMO_TIMEZONE, DEMO_USERS, seed_demo

    probe = create_app({"ENV_NAME": "development", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    path = database or Path(probe.instance_path) / "demo.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    app = create_app(
        {
            "ENV_NAME": "development",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path.resolve()}",
            # the demo is the first site, a hospital in Shandong, unless told otherwise
            "SITE_TIMEZONE": os.environ.get("CELLCHAIN_TIMEZONE") or DEMO_TIMEZONE,
        }
    )
    with app.app_context():
        upgrade()
        site = seed_demo(
            db.session,
            now=utcnow(),
            facility_code=app.config["FACILITY_CODE"],
            policy=AccountPolicy.from_config(app.config),
            site_zone=ZoneInfo(app.config["SITE_TIMEZONE"]),
        )
        db.session.commit()
        dins = [row.code for row in site.reserved_dins]
        stages = {stage: donation.din for stage, donation in site.donations.items()}
        lots = {stage: lot.lot_number for stage, lot in site.lots.items()}
        shippers = {stage: shipment.shipper_id for stage, shipment in site.shipments.items()}
        from cellchain.sites.service import list_sites

        site_lines = [
            f"  {s.code:<13} {s.time_zone:<15} {s.kind_label}: {s.name}"
            for s in list_sites(db.session)
        ]
    click.echo(f"Demo database: {path}")
    click.echo("Demo users (username / password / role):")
    for user in DEMO_USERS:
        click.echo(f"  {user.username:<13} {user.password:<24} {user.role.label}")
    click.echo("Demo sites (the monitor reads every one, pseudonymised):")
    for line in site_lines:
        click.echo(line)
    click.echo("Demo donations (DIN to scan):")
    for stage, din in stages.items():
        click.echo(f"  {stage.replace('_', ' '):<21} {din}")
    click.echo("Demo lots (QA queue: /qa):")
    for stage, lot_number in lots.items():
        click.echo(f"  {stage.replace('_', ' '):<21} {lot_number}")
    click.echo(
        "Trial NCT01420432 (Patients): AS-001 to AS-010, odd numbers in the MSC arm with a "
        "second-checked day-0 dose, even numbers in the control arm"
    )
    click.echo(
        "Trial PL-MSC-OL-01 (open label, one arm, 2.0 × 10⁶ viable cells/kg of the placenta "
        "product PL-MSC): PL-001 with a second-checked day-0 dose from the placenta lot"
    )
    click.echo(
        f"Clinic: AS-001's dose is on its way in dry shipper {shippers['in_transit']} (log in as "
        "clinician: Clinic → Shipments to receive it, Thaw, Bedside check with nurse as the "
        f"second clinician); AS-005's shipment {shippers['held']} is held for QA; AS-003 was "
        "infused this morning"
    )
    click.echo(
        f"Off the happy path (log in as investigator): AS-009's day-0 dose (dry shipper "
        f"{shippers['missed_thaw']}) missed its thaw window; its page offers destroy (witness: "
        "nurse), then the technician orders a replacement the same day. AS-004 has a serious "
        "adverse event with its sponsor-report deadline (Adverse events); AS-002 (control "
        "arm, day 0 183 days ago) is in its month-6 window: its efficacy endpoints have their "
        "baseline, month 6 to record"
    )
    click.echo(
        "Labels: each lot's page has Labels; the released lot's bags still carry quarantine "
        "labels, to be reprinted (PNG, PDF or ZPL)"
    )
    click.echo(f"Reserved DINs to try in the scan box: {', '.join(dins)}")
    if no_serve:
        return
    click.echo(f"Serving on http://{host}:{port}/  (Ctrl+C stops)")
    _serve_development(app, host, port)


@main.command(with_appcontext=False)
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--dev", is_flag=True, help="Werkzeug's single-process server instead of gunicorn.")
def serve(bind: str, workers: int, dev: bool) -> None:
    """Serve the app configured by CELLCHAIN_* variables (gunicorn; --dev for Werkzeug)."""
    app = _create_app()
    host, _, port = bind.rpartition(":")
    if dev:
        _serve_development(app, host or "127.0.0.1", int(port))
        return
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers)

        def load(self) -> Any:
            return app

    Server().run()


# --- users ------------------------------------------------------------------------------------


@main.group()
def users() -> None:
    """Manage accounts (recorded in the audit trail as the system)."""


@users.command("list")
@with_appcontext
def users_list() -> None:
    """List every account with its status and roles."""
    for user in accounts.list_users(db.session):
        status = "deactivated" if not user.active else ("LOCKED" if user.locked else "active")
        roles = ",".join(sorted(role.value for role in user.roles))
        click.echo(f"{user.username:<20} {status:<12} {roles:<40} {user.full_name}")


@users.command("create")
@click.argument("username")
@click.option("--full-name", required=True, help="Printed name shown with signatures.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([r.value for r in Role]),
    help="Repeat for several roles.",
)
@click.option("--password", default=None, help="Asked for when not given.")
@with_appcontext
def users_create(
    username: str, full_name: str, roles: tuple[str, ...], password: str | None
) -> None:
    """Create an account; its holder changes the password at first login."""
    password = password or click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        accounts.create_user(
            db.session,
            actor=None,
            now=utcnow(),
            username=username,
            full_name=full_name,
            password=password,
            roles=roles,
            policy=_policy(),
            must_change_password=True,
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise _fail(error) from error
    click.echo(f"Created {username}.")


def _user_or_fail(username: str) -> Any:
    user = accounts.find_user(db.session, username)
    if user is None:
        raise click.ClickException(f"There is no user {username!r}.")
    return user


@users.command("deactivate")
@click.argument("username")
@click.option("--reason", required=True)
@with_appcontext
def users_deactivate(username: str, reason: str) -> None:
    """Deactivate an account for good."""
    try:
        accounts.deactivate_user(
            db.session,
            actor=None,
            now=utcnow(),
            user=_user_or_fail(username),
            reason=_cli_reason(reason),
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise _fail(error) from error
    click.echo(f"Deactivated {username}.")


@users.command("unlock")
@click.argument("username")
@click.option("--reason", required=True)
@with_appcontext
def users_unlock(username: str, reason: str) -> None:
    """Unlock an account locked after failed attempts."""
    try:
        accounts.unlock_user(
            db.session,
            actor=None,
            now=utcnow(),
            user=_user_or_fail(username),
            reason=_cli_reason(reason),
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise _fail(error) from error
    click.echo(f"Unlocked {username}.")


# --- API tokens -----------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """API tokens: mint one for a user (after their password), list, revoke."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What the token is for, e.g. 'LIMS export'.")
@click.option(
    "--scope",
    type=click.Choice(list(accounts.TOKEN_SCOPES)),
    default="full",
    show_default=True,
    help="read: GET, HEAD and OPTIONS only (integrations); full: devices.",
)
@click.option(
    "--days", type=int, default=None, help="Lifetime; the site's API_TOKEN_DAYS if not given."
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the user's password from the first line of standard input (for scripts).",
)
@with_appcontext
def tokens_create(
    username: str, name: str, scope: str, days: int | None, password_stdin: bool
) -> None:
    """Mint an API token for USERNAME after asking for that user's password; it is printed
    once and never stored."""
    user = _user_or_fail(username)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"Password of {user.username}", hide_input=True)
    config = current_app.config
    try:
        accounts.verify_password(
            db.session, user=user, password=password, purpose="token creation", now=utcnow()
        )
        _row, token = accounts.create_token(
            db.session,
            user=user,
            now=utcnow(),
            name=name,
            scope=scope,
            days=days or config["API_TOKEN_DAYS"],
            max_days=config["API_TOKEN_MAX_DAYS"],
            reason=_cli_reason("minted with the user's password"),
        )
        db.session.commit()
    except accounts.CredentialsRejected as failure:
        db.session.rollback()
        accounts.record_failed_authentication(
            db.session, failure=failure, now=utcnow(), policy=_policy()
        )
        db.session.commit()
        raise _fail(failure) from failure
    except DomainError as error:
        db.session.rollback()
        raise _fail(error) from error
    click.echo(token)


@tokens.command("list")
@click.argument("username")
@with_appcontext
def tokens_list(username: str) -> None:
    """List USERNAME's API tokens (never the tokens themselves)."""
    current = utcnow()
    zone = ZoneInfo(current_app.config["SITE_TIMEZONE"])
    for row in accounts.list_tokens(db.session, _user_or_fail(username)):
        status = "revoked" if row.revoked else ("expired" if row.expired(current) else "active")
        click.echo(
            f"{row.id:<6} {row.prefix + '…':<14} {row.scope:<5} {status:<8} "
            f"expires {local_time(row.expires_at, zone)}  {row.name}"
        )


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.option("--reason", required=True)
@with_appcontext
def tokens_revoke(token_id: int, reason: str) -> None:
    """Revoke API token TOKEN_ID (the id of `cellchain tokens list`) for good."""
    try:
        row = accounts.revoke_token(
            db.session, actor=None, now=utcnow(), token_id=token_id, reason=_cli_reason(reason)
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise _fail(error) from error
    click.echo(f"Revoked token {row.id} ({row.prefix}…).")


# --- backup and restore ---------------------------------------------------------------------


def _database_url() -> str:
    return str(current_app.config["SQLALCHEMY_DATABASE_URI"])


def _keyring() -> audit_keys.Keyring:
    """The app's audit keys, or a one-line refusal saying what is wrong with the key file."""
    try:
        return audit_keys.current_keyring()
    except audit_keys.AuditKeyError as error:
        raise click.ClickException(str(error)) from error


def _checkpoint_dir() -> str | None:
    directory = current_app.config.get("AUDIT_CHECKPOINT_DIR")
    return str(directory) if directory else None


@main.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup_command(destination: Path) -> None:
    """Write a backup of the database to DESTINATION (a SQLite copy or a pg_dump archive)."""
    keyring = _keyring()
    db.session.remove()
    try:
        summary = backup.backup(_database_url(), destination, keyring)
    except backup.BackupFailed as error:
        raise _fail(error) from error
    click.echo(
        f"Backup written to {destination}: {summary.audit_entries} audit entries, chain "
        + ("intact." if summary.chain.intact else f"BROKEN ({summary.chain.problem}).")
    )


@main.command("restore")
@click.argument("source", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the database.")
@click.option(
    "--accept-older",
    is_flag=True,
    help="The backup is older than the last audit checkpoint and going back to it is meant: "
    "the entries after it are lost, which is recorded in the audit trail.",
)
@click.option(
    "--app-role",
    envvar="CELLCHAIN_APP_DB_ROLE",
    default=DEFAULT_ROLE,
    show_default=True,
    help="PostgreSQL: the app's login role (as `cellchain db roles`), whose grants are put back.",
)
@with_appcontext
def restore_command(source: Path, yes: bool, accept_older: bool, app_role: str) -> None:
    """Replace the database with the backup SOURCE, then verify its audit chain and compare it
    with the last audit checkpoint (stop the app first). Exits 1 if the restored chain is
    broken or does not match the checkpoints: do not work on that database. A backup that
    ends before the last checkpoint is refused (exit 1) unless --accept-older is given."""
    keyring = _keyring()
    directory = _checkpoint_dir()
    if not yes:
        click.confirm(f"Replace every record in the database with {source}?", abort=True)
    db.session.remove()
    db.engine.dispose()
    try:
        summary = backup.restore(_database_url(), source, keyring, directory, app_role)
    except backup.BackupFailed as error:
        raise _fail(error) from error
    app_role_fit = _report_app_role(summary.app_role)
    if not summary.chain.intact:
        click.echo(
            f"Restored from {source}, but its audit chain is BROKEN at entry "
            f"#{summary.chain.first_broken_seq}: {summary.chain.problem}. "
            "Do not use this database; restore another backup.",
            err=True,
        )
        sys.exit(1)
    anchoring = summary.anchoring
    if anchoring is not None and not anchoring.intact:
        for problem in anchoring.problems:
            click.echo(f"Audit checkpoint: {problem}.", err=True)
        click.echo(
            f"Restored from {source}, but it does not match the audit checkpoints in "
            f"{anchoring.log.path}. Do not use this database; restore another backup.",
            err=True,
        )
        sys.exit(1)
    if anchoring is not None and anchoring.older is not None:
        if not accept_older:
            click.echo(
                f"Restored from {source}: its audit chain is intact, but {anchoring.older}. "
                "If going back to this backup is meant, run the restore again with "
                "--accept-older (it is recorded in the audit trail); otherwise restore a "
                "newer backup.",
                err=True,
            )
            sys.exit(1)
        _record_older_restore(source, anchoring)
        click.echo(f"Warning: {anchoring.older}; accepted (--accept-older) and recorded.")
    if directory is not None:
        checkpoint = audit_checkpoints.write_head(
            db.session, directory, keyring, at=utcnow(), event="restore"
        )
        click.echo(f"Audit checkpoint written: entry #{checkpoint.seq}.")
    click.echo(f"Restored from {source}: {summary.audit_entries} audit entries, chain intact.")
    if not app_role_fit:
        sys.exit(1)


def _report_app_role(grants: backup.AppRoleGrants | None) -> bool:
    """Say what the restore did for the app's PostgreSQL login role; False if it can still
    do what it must not (the restore then exits 1)."""
    if grants is None:
        return True
    if not grants.exists:
        click.echo(
            f"There is no role {grants.role} on this server: run `cellchain db roles` (with "
            "the owner's URL) before starting the app."
        )
    elif grants.problems:
        click.echo(
            f"The app role {grants.role} can do what it must not: {'; '.join(grants.problems)}. "
            "Run `cellchain db roles` (with the owner's URL) to put it right.",
            err=True,
        )
        return False
    else:
        click.echo(
            f"The app role {grants.role}'s grants were put back as `cellchain db roles` makes "
            "them (the restored tables are the owner's)."
        )
    return True


def _record_older_restore(source: Path, anchoring: audit_checkpoints.Anchoring) -> None:
    """Record in the restored trail that an older backup was accepted, and which entries of
    the last checkpoint it lacks."""
    last, restored = anchoring.log.last, anchoring.restored_seq
    assert last is not None  # an older backup is older than some checkpoint
    audit.record(
        db.session,
        actor=None,
        at=utcnow(),
        action="backup.restored_older",
        entity_type="database",
        entity_id=source.name,
        changes={"last_seq": (last.seq, restored)},
        reason=_cli_reason(f"restore --accept-older: {anchoring.older}"),
    )
    db.session.commit()


# --- audit ------------------------------------------------------------------------------------


@main.group("audit")
def audit_group() -> None:
    """Check and export the audit trail; rotate its key; write checkpoints of its head."""


add_records_commands(audit_group)  # `cellchain audit seal-baseline`


def _one_snapshot() -> None:
    """On PostgreSQL, what follows reads one snapshot (REPEATABLE READ): an entry the running
    app commits between the walk and the reading of the head is not taken for a deleted tail.
    (A session already in a transaction, as when the command is invoked from code, keeps it.)"""
    audit_verification.start_one_snapshot(db.session)


@audit_group.command("verify")
@click.option(
    "--records",
    is_flag=True,
    help="Also rebuild every regulated row from the trail and name each row that differs.",
)
@with_appcontext
def audit_verify(records: bool = False) -> None:
    """Compare the database with the last audit checkpoint, walk the keyed hash chain, and
    append a new checkpoint when both are intact; exit 1 naming what is wrong otherwise."""
    keyring = _keyring()
    _one_snapshot()
    records_intact = not records or check_records()
    directory = _checkpoint_dir()
    verified = audit_verification.verify(db.session, keyring=keyring, checkpoint_dir=directory)
    anchoring, report = verified.anchoring, verified.chain
    if anchoring is not None:
        for problem in anchoring.problems:
            click.echo(f"Audit checkpoint: {problem}.", err=True)
    if report.intact and (anchoring is None or anchoring.intact):
        click.echo(f"Audit chain intact: {report.entries_checked} entries verified.")
        if report.legacy_entries:
            click.echo(
                f"Entries #1–#{report.legacy_entries} are legacy (plain SHA-256, from before "
                "the chain was keyed); the key protects the entries after them."
            )
        if directory is not None:
            checkpoint = audit_checkpoints.append(
                directory,
                keyring,
                seq=report.last_seq,
                entry_hash=report.last_hash,
                at=utcnow(),
                event="verify",
            )
            written_to = audit_checkpoints.file_in(directory)
            click.echo(f"Checkpoint written: entry #{checkpoint.seq} to {written_to}.")
        else:
            click.echo("No audit checkpoint folder is configured: the head was not anchored.")
        if not records_intact:
            sys.exit(1)
        return
    if not report.intact:
        click.echo(
            f"Audit chain BROKEN at entry #{report.first_broken_seq}: {report.problem}.",
            err=True,
        )
        click.echo(f"{report.entries_checked} entries before it verified.", err=True)
    sys.exit(1)


@audit_group.command("checkpoint")
@with_appcontext
def audit_checkpoint() -> None:
    """Append the chain's head, signed with the audit key, to the checkpoint file (run it on
    a schedule). Refuses, exit 1, when the database no longer holds what the last
    checkpoint recorded: a checkpoint never makes a deleted tail look normal."""
    keyring = _keyring()
    directory = _checkpoint_dir()
    if directory is None:
        raise click.ClickException(
            "No audit checkpoint folder is configured: set CELLCHAIN_AUDIT_CHECKPOINT_DIR."
        )
    anchoring = audit_checkpoints.check(db.session, directory, keyring)
    if not anchoring.intact:
        for problem in anchoring.problems:
            click.echo(f"Audit checkpoint: {problem}.", err=True)
        click.echo("No checkpoint written; run `cellchain audit verify`.", err=True)
        sys.exit(1)
    try:
        checkpoint = audit_checkpoints.write_head(
            db.session, directory, keyring, at=utcnow(), event="checkpoint"
        )
    except audit_checkpoints.ChainHeadMismatch as error:
        raise click.ClickException(f"No checkpoint written: {error}.") from error
    click.echo(
        f"Checkpoint written: entry #{checkpoint.seq} ({checkpoint.when()}, key "
        f"{checkpoint.key_id}) to {anchoring.log.path}."
    )


@audit_group.command("rotate-key")
@click.option("--reason", required=True, help="Why, e.g. 'yearly rotation'; recorded.")
@with_appcontext
def audit_rotate_key(reason: str) -> None:
    """Add a new random key to the audit key file; new entries are made with it, the old keys
    stay for verifying older entries. The rotation is an audit entry naming the new key's id."""
    keyring = _keyring()
    # a key file older than the chain (the key was rotated on another host) gets no new key:
    # the rotation would be refused, and the file left with a key no entry names
    from sqlalchemy import select

    from cellchain.core.models import AuditChainHead, AuditEntry

    head = db.session.get(AuditChainHead, 1)
    if head is not None and head.last_seq:
        last_key = db.session.scalar(
            select(AuditEntry.key_id).where(AuditEntry.seq == head.last_seq)
        )
        try:
            audit_keys.refuse_outdated(keyring, keyring.current_id, last_key, head.last_seq)
        except audit_keys.KeyFileOutdated as error:
            raise click.ClickException(f"{error.detail} ({keyring.path})") from error
    key_id = audit.rotate_key(db.session, at=utcnow(), reason=_cli_reason(reason), keyring=keyring)
    db.session.commit()
    click.echo(
        f"Audit key {key_id} added to {keyring.path} and in use; the rotation is recorded. "
        "Copy the key file to its safe place again."
    )


@audit_group.command("new-key-file", with_appcontext=False)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def audit_new_key_file(path: Path) -> None:
    """Create the audit key file PATH with one random key (owner-only permissions), for
    CELLCHAIN_AUDIT_KEY_FILE. Never replaces an existing file."""
    try:
        keyring = audit_keys.create_key_file(path)
    except audit_keys.AuditKeyError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"Audit key file {path} created with key {keyring.current_id}. Set "
        f"CELLCHAIN_AUDIT_KEY_FILE={path} and keep a copy of the file in a safe place."
    )


@audit_group.command("export")
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="File to write (default: standard output).",
)
@click.option("--entity-type")
@click.option("--entity-id")
@click.option("--actor")
@click.option("--action")
@with_appcontext
def audit_export(
    output: Any,
    entity_type: str | None,
    entity_id: str | None,
    actor: str | None,
    action: str | None,
) -> None:
    """Export the audit trail (optionally filtered) as CSV."""
    criteria = AuditFilter(
        entity_type=entity_type, entity_id=entity_id, actor_username=actor, action=action
    )
    for line in audit.export_csv_rows(db.session, criteria):
        output.write(line)
