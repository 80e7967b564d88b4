"""Unbound extension singletons; ``create_app`` binds them to an app."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Integer, MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, scoped_session

#: Constraint names are fixed so migrations can address them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every cellchain table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


class Recorded:
    """Mixin of every regulated table: its rows are checked against the audit trail.

    ``audit_seq`` is the ``seq`` of the ``records.state`` audit entry holding the row's
    values as of its last change, set in the same transaction by ``core/record_state.py``;
    ``cellchain audit verify --records`` rebuilds each row from that entry and names any
    row that differs. Null on a row no application transaction wrote (inserted by SQL);
    0 on a row that existed before migration 0023 until ``cellchain audit seal-baseline``.
    """

    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)


# The base of every model class. At run time it is ``db.Model``: Flask-SQLAlchemy builds it
# from ``Base`` (same metadata and registry) with its own mixins, none of which cellchain
# uses. A type checker cannot follow a base class made at run time, so it sees ``Base``.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
#: The session a service works in: a plain Session (a script, a test) or ``db.session``, the
#: request's scoped proxy, which forwards every Session method to the current session.
DbSession: TypeAlias = Session | scoped_session[FlaskSession]

migrate = Migrate()
login_manager = LoginManager()
api = Api()
csrf = CSRFProtect()
