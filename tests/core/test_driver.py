"""``core/driver.DriverStatement`` sends what ``Connection.execute`` would send: every
parameter goes through its type's conversion (independent review of issue 20's scan, F1: the
last use of a token was stored on SQLite as '… +00:00' text where the ORM stores naive UTC,
and a naive time was not refused)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, select, text, update

from cellchain.core.driver import DriverStatement, autocommit
from cellchain.core.models import User
from cellchain.extensions import db

AT = dt.datetime(2026, 12, 7, 1, 45, 16, 692980, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _stored(user_id: int) -> str:
    return db.session.execute(
        text("SELECT CAST(locked_at AS TEXT) FROM users WHERE id = :id"), {"id": user_id}
    ).scalar_one()


def _set_locked_at():
    return update(User).where(User.id == bindparam("user_id")).values(locked_at=bindparam("at"))


def test_a_time_is_stored_as_connection_execute_stores_it(app, make_user):
    first, second = make_user("driver-one"), make_user("driver-two")
    db.session.commit()
    with db.engine.connect() as connection:
        connection.execute(_set_locked_at(), {"user_id": first.id, "at": AT})
        connection.commit()
        with autocommit(connection):
            DriverStatement(_set_locked_at()).execute(connection, {"user_id": second.id, "at": AT})
    assert _stored(second.id) == _stored(first.id)
    reread = db.session.execute(select(User.locked_at).where(User.id == second.id)).scalar_one()
    assert reread == AT


def test_a_naive_time_is_refused(app, make_user):
    user = make_user("driver-naive")
    db.session.commit()
    refused = pytest.raises(Exception, match="naive datetime refused")
    with db.engine.connect() as connection, autocommit(connection), refused:
        DriverStatement(_set_locked_at()).execute(
            connection, {"user_id": user.id, "at": AT.replace(tzinfo=None)}
        )
