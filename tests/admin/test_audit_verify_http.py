"""The audit review page's and the API's "verify the whole chain" are `cellchain audit verify`'s
use case (``core.audit_verification``): the keyed chain compared with the last checkpoint
outside the database, in one snapshot on PostgreSQL, and no checkpoint written from the web
(SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from cellchain.core import audit, audit_checkpoints, audit_keys
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.support.audit_tamper import cut_tail


def head_seq(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT last_seq FROM audit_chain_head")))
    finally:
        engine.dispose()


def checkpoint_lines(directory: Path) -> list[str]:
    return audit_checkpoints.file_in(directory).read_text().splitlines()


@pytest.fixture
def checkpoints(app: Flask, tmp_path: Path) -> Path:
    """This test's checkpoint folder, the app's (the shared app's config is put back after)."""
    directory = tmp_path / "checkpoints"
    app.config["AUDIT_CHECKPOINT_DIR"] = str(directory)
    return directory


def test_a_deleted_tail_is_reported_by_the_page_and_the_api(
    app, clients, make_user, database_url, checkpoints
):
    qa = make_user("quinn", "qa")
    for name in ("rita", "sam", "tom"):
        make_user(name, "technician")
    api, web = clients.api(qa), clients.web(qa)
    # the schedule's checkpoint (`cellchain audit checkpoint`) of the head as it is now
    keyring = audit_keys.current_keyring()
    audit_checkpoints.write_head(db.session, checkpoints, keyring, at=utcnow(), event="checkpoint")
    db.session.rollback()
    recorded = head_seq(database_url)
    assert recorded > 3
    engine = create_engine(database_url)
    with engine.begin() as conn:  # an insider deletes the last entries and moves the head
        cut_tail(conn, 2)
    engine.dispose()

    answer = api.post("/api/v1/audit/verify")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    report = answer.get_json()
    assert report["intact"] is False
    assert report["problem"] is None  # the shortened chain itself is whole
    assert report["checkpoints_configured"] is True
    assert report["compared_with"]["seq"] == recorded
    [problem] = report["checkpoint_problems"]
    assert f"recorded in the checkpoint of {utcnow():%Y-%m-%d}" in problem
    assert "are missing" in problem

    page = web.post("/audit/verify", follow_redirects=True).get_data(as_text=True)
    assert "Audit checkpoint: entries #3–#" in page
    assert "are missing" in page
    assert "does NOT match the checkpoints" in page
    assert "Audit chain intact" not in page
    assert f"(entry #{recorded}). No checkpoint is written from here" in page
    assert len(checkpoint_lines(checkpoints)) == 1  # neither wrote one


def test_an_intact_trail_is_reported_intact_and_no_checkpoint_is_written(
    app, clients, make_user, checkpoints
):
    qa = make_user("quinn", "qa")
    api = clients.api(qa)
    keyring = audit_keys.current_keyring()
    audit_checkpoints.write_head(db.session, checkpoints, keyring, at=utcnow(), event="checkpoint")
    db.session.rollback()
    report = api.post("/api/v1/audit/verify").get_json()
    assert report["intact"] is True and report["checkpoint_problems"] == []
    assert report["entries_checked"] > 0
    web = clients.web(qa)
    page = web.post("/audit/verify", follow_redirects=True).get_data(as_text=True)
    assert "Audit chain intact" in page
    assert len(checkpoint_lines(checkpoints)) == 1


def test_without_a_checkpoint_folder_the_page_says_nothing_was_compared(app, clients, make_user):
    app.config["AUDIT_CHECKPOINT_DIR"] = None
    qa = make_user("quinn", "qa")
    report = clients.api(qa).post("/api/v1/audit/verify").get_json()
    assert report["intact"] is True and report["checkpoints_configured"] is False
    assert report["compared_with"] is None
    page = clients.web(qa).post("/audit/verify", follow_redirects=True).get_data(as_text=True)
    assert "No audit checkpoint folder is configured" in page


@pytest.mark.postgres_only
def test_the_api_is_not_fooled_by_entries_the_app_commits_meanwhile(
    app, clients, make_user, database_url, checkpoints
):
    """The request's session has read the acting user already; the verification still
    reads one snapshot, so an entry committed between the walk and the reading of the head
    is not taken for a deleted tail."""
    qa = make_user("quinn", "qa")
    api = clients.api(qa)
    keyring = audit_keys.current_keyring()
    armed = [True]

    def commit_an_entry_first(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if armed[0] and "FROM audit_chain_head" in statement and "UPDATE" not in statement:
            armed[0] = False
            writer = create_engine(database_url)
            with Session(writer) as session:
                audit.record_many(
                    session, [audit.Draft("test.meanwhile", "thing", 1)],
                    actor=None, at=utcnow(), keyring=keyring,
                )  # fmt: skip
                session.commit()
            writer.dispose()

    event.listen(Engine, "before_cursor_execute", commit_an_entry_first)
    try:
        answer = api.post("/api/v1/audit/verify")
    finally:
        event.remove(Engine, "before_cursor_execute", commit_an_entry_first)
    assert not armed[0], "the head was never read"
    report = answer.get_json()
    assert report["intact"] is True, report
    assert api.post("/api/v1/audit/verify").get_json()["intact"] is True
