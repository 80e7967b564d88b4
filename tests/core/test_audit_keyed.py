"""The keyed audit chain and its checkpoints outside the database (issue 18): an insider with
the database but without the key file cannot rewrite an entry and recompute the chain, nor
cut its tail off or empty it and start again, without ``cellchain audit verify`` naming it
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.orm import Session

from cellchain import create_app
from cellchain.cli import main
from cellchain.config import ConfigurationError
from cellchain.core import audit, audit_checkpoints, audit_keys
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from tests.conftest import FAST_HASH, DatabaseFactory
from tests.support.audit_tamper import cut_tail, plain_sha256, rechain, with_key

#: the columns an entry's hash covers (besides its key id)
HASHED = (
    *("seq", "prev_hash", "at", "actor_id", "actor_username", "action"),
    *("entity_type", "entity_id", "changes", "reason"),
)


def write_entries(session: Any, count: int) -> None:
    for n in range(count):
        audit.record(
            session,
            actor=None,
            at=utcnow(),
            action="test.changed",
            entity_type="thing",
            entity_id=n,
            changes={"value": (n, n + 1)},
            reason=f"correction {n}",
        )
    session.commit()


@pytest.fixture
def keyring(app: Flask, tmp_path: Path) -> audit_keys.Keyring:
    """This test's own key file, the app's for the test."""
    app.config["AUDIT_KEY_FILE"] = str(tmp_path / "audit-keys")
    return audit_keys.create_key_file(tmp_path / "audit-keys")


# --- the keyed chain (services) -----------------------------------------------------------------


def test_entries_are_hmacs_with_the_current_key_and_name_it(session, keyring):
    write_entries(session, 2)
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.key_id for e in entries] == [keyring.current_id] * 2
    first = entries[0]
    fields = {name: getattr(first, name) for name in HASHED}
    assert first.entry_hash != audit.entry_hash(**fields)  # not a hash anyone can make
    assert first.entry_hash == audit.keyed_entry_hash(keyring, keyring.current_id, **fields)
    report = audit.verify_chain(session)
    assert report.intact and report.entries_checked == 2 and report.legacy_entries == 0


def test_a_rewrite_rechained_with_plain_sha256_is_found(session, keyring):
    """What an insider without the key does: edit entry 3, recompute every hash after it and
    the head, as the chain was made before keys."""
    write_entries(session, 5)
    rechain(session, 3, plain_sha256(unkeyed=False), reason="nothing happened")
    session.commit()
    report = audit.verify_chain(session)
    assert not report.intact and report.first_broken_seq == 3
    assert "changed after it was written" in report.problem


def test_a_rewrite_passed_off_as_legacy_entries_is_found(session, keyring):
    """The same insider also clears the key ids, so the rewritten entries look like entries
    from before keys: after a keyed entry, an unkeyed one is a rewrite."""
    write_entries(session, 5)
    rechain(session, 3, plain_sha256(unkeyed=True), reason="nothing happened")
    session.commit()
    report = audit.verify_chain(session)
    assert not report.intact and report.first_broken_seq == 3
    assert "has no key although the chain is keyed from entry #1" in report.problem


def test_a_rewrite_rechained_with_the_wrong_key_is_found(session, keyring, tmp_path):
    write_entries(session, 5)
    wrong = audit_keys.create_key_file(tmp_path / "another-site-keys")
    impostor = audit_keys.Keyring(wrong.path, {keyring.current_id: wrong.current_secret})
    rechain(session, 2, with_key(impostor, keyring.current_id), actor_username="mallory")
    session.commit()
    report = audit.verify_chain(session)
    assert not report.intact and report.first_broken_seq == 2
    assert "changed after it was written" in report.problem


def test_an_entry_naming_a_key_the_file_does_not_hold_is_found(session, keyring, tmp_path):
    write_entries(session, 3)
    stranger = audit_keys.create_key_file(tmp_path / "stranger-keys")
    rechain(session, 3, with_key(stranger, stranger.current_id), reason="forged")
    session.commit()
    report = audit.verify_chain(session)
    assert report.first_broken_seq == 3 and "not in the key file" in report.problem


def test_legacy_entries_still_verify_and_the_key_protects_what_follows(session, keyring):
    """Entries from before keys (plain SHA-256, no key id) verify as legacy; keyed entries
        follow them. (Rewriting them all as legacy entries is what the checkpoint catches:
    ``test_everything_rewritten_as_legacy_entries_is_found_by_the_checkpoint``.)"""
    write_entries(session, 3)
    rechain(session, 1, plain_sha256(unkeyed=True))  # as the migration leaves old entries
    session.commit()
    write_entries(session, 2)
    report = audit.verify_chain(session)
    assert report.intact, report.problem
    assert (report.entries_checked, report.legacy_entries) == (5, 3)
    keys = session.scalars(select(AuditEntry.key_id).order_by(AuditEntry.seq)).all()
    assert keys == [None, None, None, keyring.current_id, keyring.current_id]


def test_a_rotation_keeps_old_entries_verifiable_and_records_the_new_key_id(session, keyring, app):
    write_entries(session, 2)
    old_id = keyring.current_id
    new_id = audit.rotate_key(session, at=utcnow(), reason="yearly rotation", keyring=keyring)
    session.commit()
    write_entries(session, 2)
    rotated = audit_keys.load(keyring.path)
    assert list(rotated.keys) == [old_id, new_id] and rotated.current_id == new_id
    assert stat.S_IMODE(keyring.path.stat().st_mode) & 0o077 == 0
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.key_id for e in entries] == [old_id, old_id, new_id, new_id, new_id]
    rotation = entries[2]
    assert (rotation.action, rotation.entity_id) == ("audit.key_rotated", new_id)
    assert json.loads(rotation.changes) == {"key_id": [old_id, new_id]}
    secret = rotated.keys[new_id].hex()
    assert secret not in rotation.changes and secret not in (rotation.reason or "")
    report = audit.verify_chain(session)
    assert report.intact and report.entries_checked == 5


def test_after_a_rotation_an_entry_made_with_the_retired_key_is_found(session, keyring):
    """A rotation retires the old key (it may have leaked): an entry after the rotation made
    with it is refused."""
    write_entries(session, 1)
    old_id = keyring.current_id
    audit.rotate_key(session, at=utcnow(), reason="key may have leaked", keyring=keyring)
    session.commit()
    write_entries(session, 2)
    leaked = audit_keys.load(keyring.path)
    rechain(session, 3, with_key(leaked, old_id), reason="rewritten with the leaked key")
    session.commit()
    report = audit.verify_chain(session)
    assert report.first_broken_seq == 3 and "retired by the key rotation" in report.problem


# --- configuration ------------------------------------------------------------------------------


PRODUCTION = {"ENV_NAME": "production", "SECRET_KEY": "k" * 64, "FACILITY_CODE": "A1234"}


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    for name in ("ENV", "DATABASE_URL", "AUDIT_KEY_FILE", "AUDIT_CHECKPOINT_DIR"):
        monkeypatch.delenv(f"CELLCHAIN_{name}", raising=False)
    monkeypatch.setenv("CELLCHAIN_INSTANCE_PATH", str(tmp_path / "instance"))


def test_production_without_a_key_file_does_not_start(clean_environment, tmp_path):
    config = {**PRODUCTION, "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}
    with pytest.raises(ConfigurationError, match="CELLCHAIN_AUDIT_KEY_FILE is not set"):
        create_app(config)
    with pytest.raises(ConfigurationError, match="does not exist"):
        create_app({**config, "AUDIT_KEY_FILE": str(tmp_path / "missing")})
    assert not (tmp_path / "missing").exists()  # production never makes one up


def test_production_refuses_a_key_file_others_can_read_and_a_missing_checkpoint_folder(
    clean_environment, tmp_path
):
    keys = audit_keys.create_key_file(tmp_path / "audit-keys").path
    with pytest.raises(ConfigurationError, match="CELLCHAIN_AUDIT_CHECKPOINT_DIR"):
        create_app({**PRODUCTION, "AUDIT_KEY_FILE": str(keys)})
    keys.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        create_app(
            {**PRODUCTION, "AUDIT_KEY_FILE": str(keys), "AUDIT_CHECKPOINT_DIR": str(tmp_path)}
        )


def test_a_malformed_key_file_is_refused_with_its_line(clean_environment, tmp_path):
    keys = tmp_path / "audit-keys"
    keys.write_text("# keys\nk1:abc\n")
    keys.chmod(0o600)
    with pytest.raises(ConfigurationError, match="line 2"):
        create_app({**PRODUCTION, "AUDIT_KEY_FILE": str(keys), "AUDIT_CHECKPOINT_DIR": "/x"})


def test_development_makes_its_own_key_file_in_the_instance_folder(clean_environment, tmp_path):
    app = create_app({"ENV_NAME": "development"})
    instance = tmp_path / "instance"
    assert app.config["AUDIT_KEY_FILE"] == str(instance / "audit-keys")
    assert app.config["AUDIT_CHECKPOINT_DIR"] == str(instance / "audit-checkpoints" / "cellchain")
    with app.app_context():
        keyring = audit_keys.current_keyring()
    assert len(keyring.keys) == 1
    assert stat.S_IMODE((instance / "audit-keys").stat().st_mode) == 0o600


# --- checkpoints and the commands ---------------------------------------------------------------


@pytest.fixture
def site(
    databases: DatabaseFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """A migrated database of its own, run by the CLI with its own key file and checkpoint
    folder; yields its URL."""
    url = databases.create()
    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", url)
    monkeypatch.setenv("CELLCHAIN_PASSWORD_HASH_METHOD", FAST_HASH)
    monkeypatch.setenv("CELLCHAIN_AUDIT_KEY_FILE", str(tmp_path / "audit-keys"))
    monkeypatch.setenv("CELLCHAIN_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    yield url
    databases.drop(url)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def add_users(*names: str) -> None:
    for name in names:
        created = cli(
            "users", "create", name, "--full-name", name.title(), "--role", "technician",
            "--password", "a-long-password-1",
        )  # fmt: skip
        assert created.exit_code == 0, created.output


def tamper(url: str, act: Any) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            act(conn)
    finally:
        engine.dispose()


def last_seq(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT last_seq FROM audit_chain_head")))
    finally:
        engine.dispose()


def site_keys(tmp_path: Path) -> str:
    return str(tmp_path / "audit-keys")


def checkpoint_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "checkpoints" / audit_checkpoints.FILE_NAME
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_verify_writes_a_checkpoint_of_the_head_it_verified(site, tmp_path):
    add_users("rita", "sam")
    verified = cli("audit", "verify")
    assert verified.exit_code == 0, verified.output
    head = last_seq(site)
    assert f"Checkpoint written: entry #{head}" in verified.output
    [line] = checkpoint_lines(tmp_path)
    assert line["seq"] == head and line["event"] == "verify" and len(line["mac"]) == 64
    assert stat.S_IMODE(Path(site_keys(tmp_path)).stat().st_mode) == 0o600


def test_a_deleted_tail_is_named_from_the_checkpoint(site, tmp_path):
    add_users("rita", "sam", "tom")
    assert cli("audit", "verify").exit_code == 0
    recorded = last_seq(site)
    tamper(site, lambda conn: cut_tail(conn, 2))
    broken = cli("audit", "verify")
    assert broken.exit_code == 1
    assert f"entries #3–#{recorded} recorded in the checkpoint of " in broken.output
    assert "are missing" in broken.output
    assert "Audit chain intact" not in broken.output  # the shortened chain itself is whole


def test_a_truncated_table_with_its_head_reset_is_named(site, tmp_path):
    add_users("rita", "sam")
    assert cli("audit", "verify").exit_code == 0
    recorded = last_seq(site)
    tamper(site, lambda conn: cut_tail(conn, 0))
    emptied = cli("audit", "verify")
    assert emptied.exit_code == 1
    assert "the audit trail is empty, but the checkpoint of" in emptied.output
    assert f"recorded entries #1–#{recorded}: the table was emptied" in emptied.output
    add_users("mallory")  # and the application writes on as if nothing happened
    restarted = cli("audit", "verify")
    assert restarted.exit_code == 1
    assert "recorded in the checkpoint of" in restarted.output and "missing" in restarted.output
    assert "the trail was emptied and started again" in restarted.output


def test_a_table_written_again_past_the_checkpoint_is_named(site, tmp_path):
    add_users("rita")
    assert cli("audit", "verify").exit_code == 0
    recorded = last_seq(site)
    tamper(site, lambda conn: cut_tail(conn, 0))
    add_users("mallory", "mike", "max", "moe")
    assert last_seq(site) > recorded
    rewritten = cli("audit", "verify")
    assert rewritten.exit_code == 1
    assert f"entry #{recorded} is not the entry recorded in the checkpoint of" in rewritten.output


def test_everything_rewritten_as_legacy_entries_is_found_by_the_checkpoint(site, tmp_path):
    """With no keyed entry left the chain alone looks like one from before keys; the
    checkpoint holds the real hash."""
    add_users("rita", "sam")
    assert cli("audit", "verify").exit_code == 0
    recorded = last_seq(site)
    tamper(site, lambda conn: rechain(conn, 1, plain_sha256(unkeyed=True), reason="rewritten"))
    rewritten = cli("audit", "verify")
    assert rewritten.exit_code == 1
    assert f"entry #{recorded} is not the entry recorded in the checkpoint" in rewritten.output


def test_a_forged_checkpoint_line_is_reported(site, tmp_path):
    add_users("rita", "sam")
    assert cli("audit", "verify").exit_code == 0
    path = tmp_path / "checkpoints" / audit_checkpoints.FILE_NAME
    [line] = checkpoint_lines(tmp_path)
    tamper(site, lambda conn: cut_tail(conn, 1))
    # the insider appends a checkpoint of the shortened chain, without the key
    forged = {**line, "seq": 1, "at": utcnow().isoformat(), "mac": "0" * 64}
    with path.open("a") as handle:
        handle.write(json.dumps(forged) + "\n")
    verified = cli("audit", "verify")
    assert verified.exit_code == 1
    assert "line 2 of" in verified.output and "MAC that does not match" in verified.output
    assert "recorded in the checkpoint of" in verified.output  # compared with line 1 instead


def test_a_scheduled_checkpoint_refuses_to_anchor_a_shortened_chain(site, tmp_path):
    add_users("rita", "sam")
    scheduled = cli("audit", "checkpoint")
    assert scheduled.exit_code == 0, scheduled.output
    assert f"Checkpoint written: entry #{last_seq(site)}" in scheduled.output
    tamper(site, lambda conn: cut_tail(conn, 1))
    refused = cli("audit", "checkpoint")
    assert refused.exit_code == 1
    assert "are missing" in refused.output and "No checkpoint written" in refused.output
    assert len(checkpoint_lines(tmp_path)) == 1
    assert cli("audit", "verify").exit_code == 1  # the next verification still sees it


def test_rotate_key_from_the_command_line(site, tmp_path):
    add_users("rita")
    rotated = cli("audit", "rotate-key", "--reason", "yearly rotation")
    assert rotated.exit_code == 0, rotated.output
    keys = audit_keys.load(Path(site_keys(tmp_path)))
    assert len(keys.keys) == 2 and f"Audit key {keys.current_id} added" in rotated.output
    add_users("sam")
    verified = cli("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert cli("audit", "export", "--action", "audit.key_rotated").output.count("\n") == 2


def test_new_key_file_makes_an_owner_only_file_and_never_replaces_one(tmp_path):
    path = tmp_path / "etc" / "audit-keys"
    made = CliRunner().invoke(main, ["audit", "new-key-file", str(path)])
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    again = CliRunner().invoke(main, ["audit", "new-key-file", str(path)])
    assert again.exit_code == 1 and "exists already" in again.output
    assert path.read_text() == before


@pytest.mark.postgres_only
def test_verify_is_not_fooled_by_entries_the_app_commits_meanwhile(site, tmp_path):
    """The app writes on while the daily verification runs: an entry committed between the
    walk and the reading of the head is not taken for a deleted tail (one snapshot)."""
    add_users("rita", "sam")
    keyring = audit_keys.load(Path(site_keys(tmp_path)))
    armed = [True]

    def commit_an_entry_first(conn, cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if armed[0] and "FROM audit_chain_head" in statement and "UPDATE" not in statement:
            armed[0] = False
            writer = create_engine(site)
            with Session(writer) as session:
                audit.record_many(
                    session, [audit.Draft("test.meanwhile", "thing", 1)],
                    actor=None, at=utcnow(), keyring=keyring,
                )  # fmt: skip
                session.commit()
            writer.dispose()

    event.listen(Engine, "before_cursor_execute", commit_an_entry_first)
    try:
        verified = cli("audit", "verify")
    finally:
        event.remove(Engine, "before_cursor_execute", commit_an_entry_first)
    assert not armed[0], "the head was never read"
    assert verified.exit_code == 0, verified.output
    assert cli("audit", "verify").exit_code == 0  # and the next run sees the new entry
