"""The read replica (``CELLCHAIN_READ_DATABASE_URL``, core/read_replica.py): traces and
reports read through a second engine that cannot write.

The "replica" here is the test's own database opened a second time, read-only: on
PostgreSQL with ``default_transaction_read_only=on``, on SQLite the same file with
``mode=ro``; a real site points the variable at a hot standby (docs/deployment.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy.exc import DBAPIError

from cellchain.config import load_config
from cellchain.core import read_replica
from cellchain.core.models import User
from cellchain.extensions import db
from cellchain.manufacturing.processing import processing


@pytest.fixture
def app(make_app: Callable[..., Flask], database_url: str) -> Iterator[Flask]:
    """The test's app, its reads of traces and reports going to the same database opened
    read-only: the replica."""
    app = make_app(READ_DATABASE_URI=database_url)
    with app.app_context():
        yield app
    read_replica.dispose(app)


class Statements:
    """The statements an engine runs, counted."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def taken(self) -> int:
        count, self.count = self.count, 0
        return count


def test_traces_and_reports_are_read_from_the_replica(
    app: Flask, clients: Any, clinic: Any, released: Any
) -> None:
    engine = read_replica.read_engine(app)
    assert engine is not None
    replica = Statements(engine)
    patient = clinic.enrol(study_id="RR-001")
    bag = processing.bags_of(db.session, released)[0]
    db.session.commit()
    web = clients.web(clinic.lab.qa)
    api = clients.api(clinic.statistician)
    pages = [
        (web, f"/trace/forward/lot/{released.id}"),
        (web, f"/api/v1/trace/forward/lot/{released.id}"),
        (web, f"/patients/{patient.id}/coi-report"),
        (web, f"/api/v1/patients/{patient.id}/coi-report"),
        (api, "/api/v1/trial-data/dsmb-summary"),
        (web, f"/trace/back/unit/{bag.id}"),
        (web, f"/api/v1/trace/back/unit/{bag.id}"),
    ]
    for client, path in pages:
        replica.taken()
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:500])
        assert replica.taken() > 0, f"{path} read nothing from the replica"
    # a page that writes (or must see its own writes at once) stays on the primary
    replica.taken()
    assert web.get(f"/patients/{patient.id}").status_code == 200
    assert replica.taken() == 0


def test_a_write_through_the_replica_engine_is_impossible(app: Flask, clinic: Any) -> None:
    engine = read_replica.read_engine(app)
    assert engine is not None
    with engine.connect() as connection:
        assert connection.scalar(select(User.username).where(User.id == clinic.lab.qa.id))
        with pytest.raises(DBAPIError, match=r"read-only|readonly"):
            connection.execute(update(User).values(full_name="Written on the replica"))
    with app.test_request_context():
        session = read_replica.reads()
        assert session is not db.session
        user = session.get(User, clinic.lab.qa.id)
        assert user is not None
        user.full_name = "Changed through the replica's session"
        with pytest.raises(read_replica.ReplicaWrite):
            session.flush()
    db.session.expire_all()
    assert "replica" not in db.session.get(User, clinic.lab.qa.id).full_name.lower()


def test_the_replica_engine_refuses_plain_sql_writes_too(app: Flask) -> None:
    engine = read_replica.read_engine(app)
    assert engine is not None
    with engine.connect() as connection, pytest.raises(DBAPIError, match=r"read-only|readonly"):
        connection.execute(text("CREATE TABLE written_on_the_replica (x integer)"))


def test_without_a_replica_the_reads_go_to_the_primary(make_app: Callable[..., Flask]) -> None:
    primary_only = make_app(READ_DATABASE_URI=None)
    assert read_replica.read_engine(primary_only) is None
    with primary_only.test_request_context():
        assert read_replica.reads() is db.session


def test_the_variable_names_the_replica(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, database_url: str
) -> None:
    overrides = {"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": database_url}
    monkeypatch.setenv("CELLCHAIN_READ_DATABASE_URL", database_url)
    assert load_config(str(tmp_path), overrides)["READ_DATABASE_URI"] == database_url
    monkeypatch.delenv("CELLCHAIN_READ_DATABASE_URL")
    assert load_config(str(tmp_path), overrides)["READ_DATABASE_URI"] is None


def test_a_sqlite_replica_is_opened_read_only() -> None:
    url = read_replica.read_only_url("sqlite:////srv/cellchain/replica.sqlite")
    assert url.startswith("sqlite:///file:") or url.startswith("sqlite:///file%3A")
    assert "mode=ro" in url and "uri=true" in url
    postgres = "postgresql+psycopg://reader@standby/cellchain"
    assert read_replica.read_only_url(postgres) == postgres
    options = read_replica.engine_options(postgres)["connect_args"]["options"]
    assert "default_transaction_read_only=on" in options and "jit=off" in options


@pytest.mark.parametrize(
    ("replica", "refusal"),
    [
        ("postgresql+psycopg://reader@standby/cellchain", "names a postgresql database"),
        ("a standby somewhere", "is not a database URL"),
    ],
)
def test_a_replica_that_is_no_copy_of_a_sqlite_primary_stops_the_app(
    tmp_path: Any, replica: str, refusal: str
) -> None:
    from cellchain.config import ConfigurationError

    overrides = {
        "ENV_NAME": "testing",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'primary.sqlite'}",
        "READ_DATABASE_URI": replica,
    }
    with pytest.raises(ConfigurationError, match=refusal):
        load_config(str(tmp_path), overrides)
