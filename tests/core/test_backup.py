"""`cellchain backup` and `cellchain restore`: a backup brings the records back, and a restore
reports success only when the restored audit chain is intact and matches the last audit
checkpoint; a backup older than that checkpoint is restored only when asked to (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cellchain.cli import main
from tests.conftest import FAST_HASH, DatabaseFactory, on_postgres
from tests.support.audit_tamper import cut_tail, plain_sha256, rechain
from tests.support.tamper import triggers_off


@pytest.fixture
def site(
    databases: DatabaseFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """A migrated database of its own (a restore replaces it whole), as the CLI's, with its
    own audit key file and checkpoint folder."""
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


def create_user(name: str) -> None:
    created = cli(
        "users", "create", name, "--full-name", name.title(), "--role", "technician",
        "--password", "a-long-password-1",
    )  # fmt: skip
    assert created.exit_code == 0, created.output


def scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(text(sql))
    finally:
        engine.dispose()


def usernames(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(text("SELECT username FROM users")))
    finally:
        engine.dispose()


def test_a_restore_brings_back_the_records_of_the_backup(site: str, tmp_path: Path):
    create_user("rita")
    entries = scalar(site, "SELECT count(*) FROM audit_entries")
    archive = tmp_path / "site.backup"

    made = cli("backup", str(archive))
    assert made.exit_code == 0, made.output
    assert f"{entries} audit entries, chain intact" in made.output
    assert archive.stat().st_size > 0

    create_user("sam")
    assert usernames(site) == {"rita", "sam"}

    restored = cli("restore", str(archive), "--yes")
    assert restored.exit_code == 0, restored.output
    assert f"{entries} audit entries, chain intact" in restored.output
    assert usernames(site) == {"rita"}
    assert cli("audit", "verify").exit_code == 0


def test_a_restore_asks_first_and_changes_nothing_when_refused(site: str, tmp_path: Path):
    create_user("rita")
    archive = tmp_path / "site.backup"
    assert cli("backup", str(archive)).exit_code == 0
    create_user("sam")
    refused = CliRunner().invoke(main, ["restore", str(archive)], input="n\n")
    assert refused.exit_code == 1  # click's Abort
    assert usernames(site) == {"rita", "sam"}


def tamper_audit_entry(url: str) -> None:
    """Change what an audit entry says, as an insider with the database would."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn, triggers_off(conn):
            conn.execute(text("UPDATE audit_entries SET actor_username = 'mallory' WHERE seq = 1"))
    finally:
        engine.dispose()


def test_a_backup_of_a_tampered_database_is_restored_but_reported_broken(site: str, tmp_path: Path):
    create_user("rita")
    tamper_audit_entry(site)
    archive = tmp_path / "site.backup"
    made = cli("backup", str(archive))
    assert made.exit_code == 0 and "chain BROKEN" in made.output

    restored = cli("restore", str(archive), "--yes")
    assert restored.exit_code == 1
    assert "BROKEN at entry #1" in restored.output
    assert "Do not use this database" in restored.output


@pytest.mark.skipif(on_postgres(), reason="edits the SQLite backup file itself")
def test_a_backup_file_edited_after_it_was_made_is_reported_broken(site: str, tmp_path: Path):
    create_user("rita")
    archive = tmp_path / "site.backup"
    assert cli("backup", str(archive)).exit_code == 0
    engine = create_engine(f"sqlite:///{archive}")
    with engine.begin() as conn, triggers_off(conn):
        conn.execute(text("UPDATE audit_entries SET actor_username = 'mallory' WHERE seq = 1"))
    engine.dispose()
    restored = cli("restore", str(archive), "--yes")
    assert restored.exit_code == 1
    assert "BROKEN at entry #1" in restored.output


def test_a_missing_tool_or_file_is_a_clear_refusal(
    site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    missing = cli("restore", str(tmp_path / "nothing.backup"), "--yes")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    if make_url(site).get_backend_name() == "postgresql":
        monkeypatch.setattr("cellchain.core.backup.shutil.which", lambda _name: None)
        failed = cli("backup", str(tmp_path / "site.backup"))
        assert failed.exit_code == 1 and "pg_dump is not installed" in failed.output


def last_seq(url: str) -> int:
    return int(scalar(url, "SELECT last_seq FROM audit_chain_head"))


def test_a_backup_rewritten_and_rechained_without_the_key_is_reported_broken(
    site: str, tmp_path: Path
):
    """An insider rewrites an entry and recomputes every hash after it (plain SHA-256, as
    anyone can) before the backup is made: the restore finds it."""
    create_user("rita")
    create_user("sam")
    engine = create_engine(site)
    with engine.begin() as conn:
        rechain(conn, 2, plain_sha256(unkeyed=False), actor_username="mallory")
    engine.dispose()
    archive = tmp_path / "site.backup"
    assert "chain BROKEN" in cli("backup", str(archive)).output
    restored = cli("restore", str(archive), "--yes")
    assert restored.exit_code == 1
    assert "BROKEN at entry #2" in restored.output


def test_a_backup_older_than_the_last_checkpoint_is_restored_only_when_accepted(
    site: str, tmp_path: Path
):
    create_user("rita")
    archive = tmp_path / "site.backup"
    assert cli("backup", str(archive)).exit_code == 0
    in_backup = last_seq(site)
    create_user("sam")
    assert cli("audit", "verify").exit_code == 0  # a checkpoint of the later head
    checkpointed = last_seq(site)

    refused = cli("restore", str(archive), "--yes")
    assert refused.exit_code == 1
    assert f"the restored backup ends at entry #{in_backup}, the last checkpoint" in refused.output
    assert (
        f"is #{checkpointed}: entries #{in_backup + 1}–#{checkpointed} are not in this backup"
        in refused.output
    )
    assert "--accept-older" in refused.output
    assert cli("audit", "verify").exit_code == 1  # nobody works on it by mistake

    accepted = cli("restore", str(archive), "--yes", "--accept-older")
    assert accepted.exit_code == 0, accepted.output
    assert "Warning: the restored backup ends at entry" in accepted.output
    assert usernames(site) == {"rita"}
    reason = scalar(site, "SELECT reason FROM audit_entries WHERE action = 'backup.restored_older'")
    assert f"entries #{in_backup + 1}–#{checkpointed} are not in this backup" in reason
    verified = cli("audit", "verify")
    assert verified.exit_code == 0, verified.output


def test_a_restore_that_does_not_hold_the_checkpointed_entry_is_refused(site: str, tmp_path: Path):
    """A backup made after the trail was emptied and written again is longer than the last
    checkpoint but does not hold the entry it recorded."""
    create_user("rita")
    assert cli("audit", "verify").exit_code == 0
    checkpointed = last_seq(site)
    engine = create_engine(site)
    with engine.begin() as conn:
        cut_tail(conn, 0)
    engine.dispose()
    for name in ("mallory", "mike", "max"):
        create_user(name)
    archive = tmp_path / "site.backup"
    assert "chain intact" in cli("backup", str(archive)).output  # the chain alone is whole
    restored = cli("restore", str(archive), "--yes")
    assert restored.exit_code == 1
    assert f"entry #{checkpointed} is not the entry recorded in the checkpoint" in restored.output
    assert "Do not use this database" in restored.output
