"""Scenes: chain fixtures built once per worker into a database snapshot, then copied.

A *scene* is a fixture that builds records through the services (a lab with its users and
product, a bench with materials, a released lot, a ward with a protocol in force…) and
returns them. Built per test, scenes were most of the suite's time. Now, the first test of
a worker that needs a given set of scenes builds them on the live database, in the order
pytest would, and the database is copied as a snapshot; every test needing the same scenes
starts from a copy of that snapshot and gets the same values, reloaded from it.

What a scene may return: ORM objects (reloaded by primary key), the app (the test's),
dataclasses and plain objects, dicts, lists, tuples, sets and scalars. Each test gets its
own copy of everything but the ORM objects (so a counter in a scene's helper object starts
from where the build left it, every time).

Rules a scene must follow, checked where they can be:
- it depends only on other scenes and on ``app``, ``make_user``, ``policy`` and ``session``;
- it commits what it builds, and its result depends on nothing but its dependencies and the
  clock (snapshots are rebuilt when older than ``MAX_AGE`` or from another day).

A test whose database is not the default one (a module that overrides ``database_url``, for
instance to run on the demo site) builds its scenes as before, on its own database.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import inspect as orm_inspect
from sqlalchemy.orm import InstanceState

from cellchain.extensions import db

#: A snapshot older than this is rebuilt: scenes are made "now" (a donation collected five
#: hours ago, a thaw window open), and a test must not see them age.
MAX_AGE = dt.timedelta(minutes=20)
#: What a scene may depend on besides other scenes.
INFRASTRUCTURE = frozenset({"app", "make_user", "policy", "session"})
_MARK = "_cellchain_scene"


@dataclass(frozen=True)
class Scene:
    """A registered scene: its builder and the fixtures it asks for."""

    name: str
    builder: Callable[..., Any]
    params: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.builder.__module__}.{self.builder.__qualname__}"


def scene(builder: Callable[..., Any]) -> Any:
    """Declare ``builder`` a scene fixture of the same name (use instead of ``@pytest.fixture``).

    The fixture returns the value reloaded from the worker's snapshot when the test runs on
    it, and otherwise builds it by calling ``builder`` with its fixtures."""
    registered = Scene(
        name=builder.__name__,
        builder=builder,
        params=tuple(inspect.signature(builder).parameters),
    )

    def fixture(request: pytest.FixtureRequest, scene_values: dict[str, Any] | None) -> Any:
        if scene_values is not None and registered.key in scene_values:
            return scene_values[registered.key]
        return builder(**{name: request.getfixturevalue(name) for name in registered.params})

    fixture.__name__ = registered.name
    fixture.__qualname__ = builder.__qualname__
    fixture.__module__ = builder.__module__
    fixture.__doc__ = builder.__doc__
    setattr(fixture, _MARK, registered)
    return pytest.fixture(name=registered.name)(fixture)


# --- which scenes a test needs, in pytest's order ---------------------------------------------


#: Fixtures that touch the database but write nothing when set up: a test may ask for them
#: before its scenes without changing what the scenes build.
QUIET = frozenset(
    {"database_url", "make_app", "app", "shared_app", "session", "policy", "make_user"}
    | {"clients", "scene_values", "snapshots", "databases"}
)


class _Unknown(Exception):
    """pytest's internals do not say which fixture a name resolves to."""


def _definition(request: pytest.FixtureRequest, name: str) -> Any:
    """The fixture definition ``name`` resolves to for this test (None for ``request``)."""
    try:
        defs = request._fixturemanager.getfixturedefs(name, request.node)
    except Exception as error:  # pragma: no cover - a pytest without this internal
        raise _Unknown from error
    return defs[-1] if defs else None


def _scene_of(definition: Any) -> Scene | None:
    func = definition.func
    return getattr(func, _MARK, None) or getattr(getattr(func, "__wrapped__", None), _MARK, None)


def _dependencies(definition: Any) -> tuple[str, ...]:
    found = _scene_of(definition)
    return found.params if found else tuple(definition.argnames)


def plan_of(request: pytest.FixtureRequest) -> tuple[Scene, ...]:
    """The scenes to build ahead for this test: those pytest would build before any other
    fixture that may write to the database, in the order it would build them (the test's
    fixtures first to last, each fixture's arguments first, depth first).

    Scenes after such a fixture are built by the test itself, as they always were: a
    fixture that labels a lot's bags before a scene samples one must still find them all."""
    try:
        order = _instantiation_order(request)
        touches_database = _touches_database(request)
    except _Unknown:
        return ()
    plan: list[Scene] = []
    for name, definition in order:
        found = _scene_of(definition)
        if found is not None:
            if any(
                param not in INFRASTRUCTURE and param not in {s.name for s in plan}
                for param in found.params
            ):
                break  # a dependency was left to the test: so is this scene
            plan.append(found)
        elif name not in QUIET and touches_database(name):
            break
    return tuple(plan)


def _instantiation_order(request: pytest.FixtureRequest) -> list[tuple[str, Any]]:
    order: list[tuple[str, Any]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        definition = _definition(request, name)
        if definition is None:
            return
        for dependency in _dependencies(definition):
            visit(dependency)
        order.append((name, definition))

    for name in request.fixturenames:
        visit(name)
    return order


def _touches_database(request: pytest.FixtureRequest) -> Callable[[str], bool]:
    """Whether a fixture depends, directly or not, on this test's database."""
    memo: dict[str, bool] = {}

    def touches(name: str) -> bool:
        if name == "database_url":
            return True
        if name not in memo:
            memo[name] = False  # a cycle cannot reach the database through itself
            definition = _definition(request, name)
            memo[name] = definition is not None and any(
                touches(dependency) for dependency in _dependencies(definition)
            )
        return memo[name]

    return touches


# --- freezing values to reload them from another copy of the database ----------------------


@dataclass(frozen=True)
class _Row:
    """An ORM object, by class and primary key."""

    cls: type
    identity: tuple[Any, ...]


class _App:
    """The test's app."""


_APP = _App()
_ATOMS = (str, bytes, int, float, bool, type(None), dt.date, dt.time, dt.timedelta, dt.tzinfo)
_ATOMS += (decimal.Decimal, enum.Enum, ZoneInfo, type)


def _walk(value: Any, leaf: Callable[[Any], Any], memo: dict[int, Any]) -> Any:
    """A copy of ``value`` with ``leaf(v)`` in place of each ORM object and app, shared
    objects copied once."""
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, _ATOMS):
        return value
    replaced = leaf(value)
    if replaced is not value:
        memo[key] = replaced
        return replaced
    if isinstance(value, dict):
        result: Any = {}
        memo[key] = result
        for k, v in value.items():
            result[_walk(k, leaf, memo)] = _walk(v, leaf, memo)
        return result
    if isinstance(value, list):
        result = []
        memo[key] = result
        result.extend(_walk(v, leaf, memo) for v in value)
        return result
    if isinstance(value, (tuple, set, frozenset)):
        result = type(value)(_walk(v, leaf, memo) for v in value)
        memo[key] = result
        return result
    if dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
        if callable(value) and not dataclasses.is_dataclass(value):
            raise TypeError(f"a scene cannot hold {value!r}: return records and data")
        result = object.__new__(type(value))
        memo[key] = result
        for attribute, item in vars(value).items():
            object.__setattr__(result, attribute, _walk(item, leaf, memo))
        return result
    raise TypeError(f"a scene cannot hold a {type(value).__name__}: return records and data")


def freeze(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ORM objects as class and key, the app as a marker."""

    def leaf(value: Any) -> Any:
        if isinstance(value, Flask):
            return _APP
        state = orm_inspect(value, raiseerr=False)
        if isinstance(state, InstanceState):
            if state.identity is None:
                raise TypeError(f"a scene returned {value!r} before it was committed")
            return _Row(type(value), tuple(state.identity))
        return value

    return _walk(values, leaf, {})


def thaw(frozen: dict[str, Any], app: Flask) -> dict[str, Any]:
    """A fresh copy of frozen values, ORM objects loaded from this test's database."""

    def leaf(value: Any) -> Any:
        if isinstance(value, _App):
            return app
        if isinstance(value, _Row):
            loaded = db.session.get(value.cls, value.identity)
            if loaded is None:
                raise LookupError(f"{value.cls.__name__} {value.identity} is not in the snapshot")
            return loaded
        return value

    return _walk(frozen, leaf, {})


# --- snapshots per worker -----------------------------------------------------------------


@dataclass
class Snapshot:
    url: str
    frozen: dict[str, Any]
    built_at: float
    built_on: dt.date

    def fresh(self) -> bool:
        age = dt.timedelta(seconds=time.monotonic() - self.built_at)
        return age < MAX_AGE and self.built_on == dt.datetime.now(dt.UTC).date()


class Snapshots:
    """The worker's snapshots, one per ordered set of scenes."""

    def __init__(self, databases: Any) -> None:
        self.databases = databases
        self.by_plan: dict[tuple[str, ...], Snapshot] = {}
        self.made: list[str] = []

    def prepare(self, plan: tuple[Scene, ...], shared_app: Flask, user_maker: Any) -> Snapshot:
        """The live database restored to the snapshot of ``plan``, built first if needed."""
        key = tuple(s.key for s in plan)
        snapshot = self.by_plan.get(key)
        if snapshot is not None and snapshot.fresh():
            self.databases.restore(snapshot.url)
            return snapshot
        self.databases.restore()
        with shared_app.app_context():
            try:
                frozen = freeze(self._build(plan, shared_app, user_maker))
                db.session.commit()
            finally:
                db.session.remove()
                db.engine.dispose()
        url = self.databases.snapshot()
        self.made.append(url)
        snapshot = Snapshot(url, frozen, time.monotonic(), dt.datetime.now(dt.UTC).date())
        self.by_plan[key] = snapshot
        return snapshot

    @staticmethod
    def _build(plan: tuple[Scene, ...], app: Flask, user_maker: Any) -> dict[str, Any]:
        from cellchain.core.accounts import AccountPolicy

        policy = AccountPolicy.from_config(app.config)
        infrastructure = {
            "app": app,
            "policy": policy,
            "session": db.session,
            "make_user": user_maker(policy),
        }
        built: dict[str, Any] = {}
        by_name: dict[str, Any] = {}
        for each in plan:
            arguments = {
                name: infrastructure[name] if name in INFRASTRUCTURE else by_name[name]
                for name in each.params
            }
            value = each.builder(**arguments)
            built[each.key] = value
            by_name[each.name] = value
        return built

    def close(self) -> None:
        for url in self.made:
            self.databases.drop(url)


@pytest.fixture(scope="session")
def snapshots(databases: Any) -> Iterator[Snapshots]:
    made = Snapshots(databases)
    yield made
    made.close()


_FROZEN = pytest.StashKey[dict[str, Any]]()


def restore_for(request: pytest.FixtureRequest, databases: Any) -> str:
    """The live database for this test: the snapshot of its scenes, or the empty template."""
    plan = plan_of(request)
    if not plan:
        return databases.restore()
    from tests.conftest import user_maker

    snapshot = request.getfixturevalue("snapshots").prepare(
        plan, request.getfixturevalue("shared_app"), user_maker
    )
    request.node.stash[_FROZEN] = snapshot.frozen
    return databases.live_url


@pytest.fixture
def scene_values(request: pytest.FixtureRequest, app: Flask) -> dict[str, Any] | None:
    """This test's scenes, reloaded from its database; None when it was not restored from a
    snapshot (its scenes are built as it asks for them)."""
    frozen = request.node.stash.get(_FROZEN, None)
    if frozen is None:
        return None
    return thaw(copy.copy(frozen), app)
