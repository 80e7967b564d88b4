"""A key rotation with several app servers (issue 22): two Flask apps on one database, each
with its own copy of the audit key file, as two hosts have. After `cellchain audit rotate-key`
on host A, server B (its copy still the old one) refuses to write an audit entry (503, naming
both key ids and the docs' section; nothing saved) instead of writing one `verify` would
report as made with a retired key; once the new file is copied to B it writes again, and the
chain verifies intact. Both databases; the rotation racing a waiting writer on PostgreSQL."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from cellchain.cli import main
from cellchain.core import audit, audit_keys
from cellchain.core.accounts import AccountPolicy
from cellchain.core.models import AuditChainHead, AuditEntry
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD, DatabaseFactory, build_test_app, user_maker


@dataclass
class Host:
    """One app server: its app and its own copy of the key file."""

    app: Flask
    key_file: Path

    def keyring(self) -> audit_keys.Keyring:
        return audit_keys.load(self.key_file)

    def note(self, what: str) -> None:
        """Write one audit entry through this server, as any use case does."""
        with self.app.app_context():
            try:
                audit.record_many(
                    db.session,
                    [audit.Draft("test.noted", "thing", what, {}, None)],
                    actor=None,
                    at=utcnow(),
                )
                db.session.commit()
            finally:
                db.session.rollback()

    def rotate(self) -> Any:
        runner = self.app.test_cli_runner()
        return runner.invoke(main, ["audit", "rotate-key", "--reason", "yearly rotation"])


@pytest.fixture
def hosts(databases: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[Host, Host]]:
    """Servers A and B on one database of their own, with identical key files."""
    url = databases.create()
    key_a, key_b = tmp_path / "host-a" / "audit-keys", tmp_path / "host-b" / "audit-keys"
    audit_keys.create_key_file(key_a)
    key_b.parent.mkdir()
    shutil.copy2(key_a, key_b)
    made = [Host(build_test_app(url, AUDIT_KEY_FILE=str(key)), key) for key in (key_a, key_b)]
    try:
        yield made[0], made[1]
    finally:
        for host in made:
            with host.app.app_context():
                db.session.remove()
                db.engine.dispose()
        databases.drop(url)


def entries(host: Host) -> list[tuple[int, str, str | None]]:
    with host.app.app_context():
        rows = db.session.execute(
            select(AuditEntry.seq, AuditEntry.entity_id, AuditEntry.key_id).order_by(AuditEntry.seq)
        ).all()
        db.session.rollback()
        return [tuple(row) for row in rows]  # type: ignore[misc]


def verified(host: Host) -> audit.ChainReport:
    with host.app.app_context():
        report = audit.verify_chain(db.session)
        db.session.rollback()
        return report


def test_a_server_with_the_old_key_file_refuses_to_write_until_the_new_file_is_copied(
    hosts: tuple[Host, Host],
) -> None:
    a, b = hosts
    first = a.keyring().current_id
    a.note("by A")
    b.note("by B")  # the same file: both write
    rotated = a.rotate()
    assert rotated.exit_code == 0, rotated.output
    second = a.keyring().current_id
    assert second != first and list(a.keyring().keys) == [first, second]
    before = entries(a)
    assert before[-1][2] == second  # the rotation entry, the first made with the new key

    with pytest.raises(audit_keys.KeyFileOutdated) as refused:
        b.note("by B with the retired key")
    problem = refused.value.to_problem()
    assert problem["status"] == 503
    assert first in problem["detail"] and second in problem["detail"]
    assert "Rotation with several servers" in problem["detail"]
    assert f"#{before[-1][0]}" in problem["detail"]
    assert entries(a) == before  # nothing saved
    with b.app.app_context():
        assert db.session.get(AuditChainHead, 1).last_seq == before[-1][0]  # type: ignore[union-attr]

    a.note("by A after the rotation")  # the host with the new file writes on
    shutil.copy2(a.key_file, b.key_file)  # the administrator copies the file to B
    b.note("by B with the new file")
    after = entries(a)
    assert [entity for _seq, entity, _key in after[len(before) :]] == [
        "by A after the rotation",
        "by B with the new file",
    ]
    assert {key for _seq, _entity, key in after[len(before) - 1 :]} == {second}
    report = verified(a)
    assert report.intact, report.problem
    assert verified(b).intact


def test_a_rotation_on_a_host_whose_file_is_old_is_refused_and_leaves_the_file(
    hosts: tuple[Host, Host],
) -> None:
    a, b = hosts
    b.note("first")
    assert a.rotate().exit_code == 0
    before = b.key_file.read_text()
    again = b.rotate()
    assert again.exit_code == 1
    assert a.keyring().current_id in again.output and "Nothing was saved" in again.output
    assert b.key_file.read_text() == before
    assert verified(a).intact


def test_a_request_on_the_server_with_the_old_file_is_answered_503(
    hosts: tuple[Host, Host],
) -> None:
    """A login (it records ``login.succeeded``) on B after the rotation on A: a 503 page
    naming the keys and the docs, and no session; after the copy, the login works."""
    a, b = hosts
    with b.app.app_context():
        user_maker(AccountPolicy.from_config(b.app.config))("rosa", Role.QA)
    assert a.rotate().exit_code == 0
    form = {"username": "rosa", "password": TEST_PASSWORD}
    answer = b.app.test_client().post("/login", data=form)
    assert answer.status_code == 503, answer.status_code
    page = answer.get_data(as_text=True)
    assert a.keyring().current_id in page and b.keyring().current_id in page
    assert "Rotation with several servers" in page
    shutil.copy2(a.key_file, b.key_file)
    again = b.app.test_client().post("/login", data=form)
    assert again.status_code == 302, again.status_code
    assert verified(a).intact


@pytest.mark.postgres_only
def test_a_writer_waiting_for_the_head_while_the_rotation_commits_is_refused(
    hosts: tuple[Host, Host],
) -> None:
    """B's writer waits for the chain head's lock that A's rotation holds; the rotation's
    entry commits while it waits, outside the snapshot of B's locking statement: B still
    sees it (read again) and refuses."""
    a, b = hosts
    b.note("first")
    outcome: list[BaseException | None] = []
    with a.app.app_context():
        url = db.engine.url
        rotating = Session(db.engine)
        audit.rotate_key(rotating, at=utcnow(), reason="race", keyring=a.keyring())

        def write_on_b() -> None:
            try:
                b.note("waited")
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)

        writer = threading.Thread(target=write_on_b)
        writer.start()
        watcher = create_engine(url)
        try:
            deadline = time.monotonic() + 30
            waiting = 0
            while not waiting and time.monotonic() < deadline:
                with watcher.connect() as conn:
                    waiting = conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock' "
                            "AND query LIKE '%FROM audit_chain_head%FOR UPDATE%'"
                        )
                    )
                time.sleep(0.01)
            assert waiting, "B's writer never waited for the head"
        finally:
            watcher.dispose()
        rotating.commit()
        rotating.close()
        writer.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], audit_keys.KeyFileOutdated), outcome
    assert [entity for _s, entity, _k in entries(a)][-1] == a.keyring().current_id
    assert verified(a).intact
