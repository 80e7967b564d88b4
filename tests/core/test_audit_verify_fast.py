"""`cellchain audit verify` at site scale (issue 20): the chain is scanned in chunks of Core
rows, the hashed text is written directly instead of through ``json.dumps``, and on
PostgreSQL the chunks are checked by worker processes reading one exported snapshot. None of
that may change what is found: every report here is compared, field for field, with the one
of the one-by-one walk it replaced (``reference_walk``, the code of commit 12e1449 over the
same rows), on generated chains and tampering (hypothesis), and on the tampering of the
existing tests in a real database (SQLite and PostgreSQL, in one process and in parallel)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import multiprocessing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from cellchain.core import audit, audit_keys, audit_verification
from cellchain.core.audit import ChainReport, ChainWalk, scan_chunk
from cellchain.core.audit_keys import Keyring
from cellchain.core.models import AuditChainHead, AuditEntry
from cellchain.core.types import utcnow
from tests.conftest import on_postgres
from tests.support.audit_tamper import plain_sha256, rechain, with_key
from tests.support.statements import counting_statements
from tests.support.tamper import triggers_off

# --- the walk it replaced ---------------------------------------------------------------------


def reference_walk(entries: Iterable[Any], head: Any, keyring: Keyring) -> ChainReport:
    """``audit.verify_chain`` as it was at commit 12e1449, unchanged but for taking the
    entries (objects with the columns as attributes, by seq) and the head row as arguments."""
    macs = {
        key_id: hmac.new(secret, digestmod=hashlib.sha256)
        for key_id, secret in keyring.keys.items()
    }
    order = {key_id: position for position, key_id in enumerate(keyring.keys)}
    oldest_allowed, rotated_at = 0, 0
    first_keyed: int | None = None
    legacy = 0
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    sha256, utc = hashlib.sha256, dt.UTC
    expected_seq = 1
    prev_hash = audit.GENESIS_HASH
    checked = 0

    def broken(seq: int, problem: str) -> ChainReport:
        return ChainReport(checked, seq, problem, expected_seq - 1, prev_hash, legacy)

    for entry in entries:
        seq = entry.seq
        if seq != expected_seq:
            if seq > expected_seq:
                problem = f"entry #{expected_seq} is missing (the next one is #{seq}): deleted"
            else:
                problem = f"entry #{seq} is out of order"
            return broken(expected_seq, problem)
        if entry.prev_hash != prev_hash:
            return broken(
                seq,
                f"entry #{seq} does not link to entry #{seq - 1}: "
                "an entry was inserted, replaced or deleted before it",
            )
        content = {
            "seq": seq,
            "prev_hash": entry.prev_hash,
            "at": entry.at.astimezone(utc).isoformat(),
            "actor_id": entry.actor_id,
            "actor_username": entry.actor_username,
            "action": entry.action,
            "entity_type": entry.entity_type,
            "entity_id": entry.entity_id,
            "changes": entry.changes,
            "reason": entry.reason,
        }
        key_id = entry.key_id
        if key_id is None:
            if first_keyed is not None:
                return broken(
                    seq,
                    f"entry #{seq} has no key although the chain is keyed from entry "
                    f"#{first_keyed}: it was rewritten by someone without the audit key",
                )
            recomputed = sha256(dumps(content).encode()).hexdigest()
            legacy += 1
        else:
            state = macs.get(key_id)
            if state is None:
                return broken(
                    seq,
                    f"entry #{seq} names audit key {key_id!r}, which is not in the key file "
                    f"{keyring.path}: the key file lost it, or the entry was forged",
                )
            if order[key_id] < oldest_allowed:
                return broken(
                    seq,
                    f"entry #{seq} was made with audit key {key_id!r}, retired by the key "
                    f"rotation at entry #{rotated_at}: it was written with an old key",
                )
            content["key_id"] = key_id
            mac = state.copy()
            mac.update(dumps(content).encode())
            recomputed = mac.hexdigest()
            if first_keyed is None:
                first_keyed = seq
        if recomputed != entry.entry_hash:
            return broken(seq, f"entry #{seq} was changed after it was written")
        if entry.action == audit.KEY_ROTATED and key_id is not None:
            if entry.entity_id != key_id:
                return broken(
                    seq,
                    f"entry #{seq} records a rotation to key {entry.entity_id!r} but was made "
                    f"with key {key_id!r}",
                )
            oldest_allowed, rotated_at = order[key_id], seq
        prev_hash = entry.entry_hash
        expected_seq += 1
        checked += 1
    if head is None:
        return ChainReport(checked, None, "the chain head row is missing", checked, prev_hash)
    if head.last_seq > checked:
        return broken(
            checked + 1,
            f"the chain should end at entry #{head.last_seq} but the table ends at #{checked}: "
            "entries at the end were deleted",
        )
    if head.last_seq < checked or head.last_hash != prev_hash:
        return broken(
            head.last_seq + 1,
            f"the chain should end at entry #{head.last_seq} but the table goes on to "
            f"#{checked}: entries were appended outside the application",
        )
    return ChainReport(checked, None, None, checked, prev_hash, legacy)


# --- generated chains and tampering, in memory ------------------------------------------------


@dataclasses.dataclass
class Row:
    seq: Any
    prev_hash: Any
    at: dt.datetime
    actor_id: Any
    actor_username: Any
    action: Any
    entity_type: Any
    entity_id: Any
    changes: Any
    reason: Any
    key_id: Any
    entry_hash: Any

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in audit.VERIFIED_COLUMNS)


@dataclasses.dataclass
class Head:
    last_seq: int
    last_hash: str


#: secrets of the lengths a key file allows, and one longer than SHA-256's block
KEYRING = Keyring(
    Path("/nowhere/audit-keys"),
    {"k1-aaaaaa": bytes(range(16)), "k2-bbbbbb": b"\x07" * 70, "k3-cccccc": b"\xfe" * 32},
)
STRANGER = Keyring(Path("/elsewhere"), {"zz-999999": b"\x01" * 32, "k1-aaaaaa": b"\x02" * 16})
HASHED = (
    *("seq", "prev_hash", "at", "actor_id", "actor_username", "action", "entity_type"),
    *("entity_id", "changes", "reason"),
)

texts = st.text(max_size=8)
zones = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.UTC])
moments = st.datetimes(
    min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2200, 1, 1), timezones=zones
)


def seal(row: Row, keyring: Keyring, key_id: str | None) -> None:
    """Hash ``row`` as the service does (``entry_hash`` / ``keyed_entry_hash``)."""
    fields = {name: getattr(row, name) for name in HASHED}
    row.key_id = key_id
    if key_id is None:
        row.entry_hash = audit.entry_hash(**fields)
    else:
        row.entry_hash = audit.keyed_entry_hash(keyring, key_id, **fields)


@st.composite
def chains(draw: st.DrawFn) -> tuple[list[Row], Head]:
    """A chain as the service writes it: legacy entries first, then keyed ones (rotations
    among them), each hash made by the write side's own functions."""
    size = draw(st.integers(0, 9))
    legacy = draw(st.integers(0, size))
    rows: list[Row] = []
    prev_hash = audit.GENESIS_HASH
    for seq in range(1, size + 1):
        key_id = None if seq <= legacy else draw(st.sampled_from(list(KEYRING.keys)))
        rotation = key_id is not None and draw(st.integers(0, 3)) == 0
        row = Row(
            seq=seq,
            prev_hash=prev_hash,
            at=draw(moments),
            actor_id=draw(st.none() | st.integers(1, 10**9)),
            actor_username=draw(texts),
            action=audit.KEY_ROTATED if rotation else draw(st.sampled_from(["a.b", 'ü"x'])),
            entity_type=draw(texts),
            entity_id=(key_id if draw(st.integers(0, 3)) else "k9") if rotation else draw(texts),
            changes=draw(texts),
            reason=draw(st.none() | texts),
            key_id=None,
            entry_hash="",
        )
        seal(row, KEYRING, key_id)
        rows.append(row)
        prev_hash = row.entry_hash
    return rows, Head(size, prev_hash)


@st.composite
def tampering(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """What an insider does: edit a field, re-hash from an entry on (plainly, unkeyed, with
    a key of the file, with a stranger's key), delete, renumber, or move the head."""
    edit = st.tuples(
        st.just("edit"),
        st.integers(0, 9),
        st.sampled_from(["reason", "actor_username", "changes", "entity_id", "action"]),
        texts,
    )
    retype = st.tuples(
        st.just("retype"), st.integers(0, 9), st.sampled_from(["actor_id", "reason"])
    )
    hashes = st.sampled_from(["plain", "unkeyed", "stranger", *KEYRING.keys])
    again = st.tuples(st.just("rechain"), st.integers(0, 9), hashes, texts)
    delete = st.tuples(st.just("delete"), st.integers(0, 9))
    renumber = st.tuples(st.just("renumber"), st.integers(0, 9), st.integers(-3, 3))
    rekey = st.tuples(
        st.just("rekey"), st.integers(0, 9), st.sampled_from([None, "zz-1", "k1-aaaaaa"])
    )
    head = st.tuples(st.just("head"), st.integers(-2, 2), st.booleans())
    return draw(st.lists(st.one_of(edit, retype, again, delete, renumber, rekey, head), max_size=3))


def tamper_rows(rows: list[Row], head: Head, steps: list[tuple[Any, ...]]) -> Head:
    for step in steps:
        kind = step[0]
        if kind == "head":
            head = Head(head.last_seq + step[1], "f" * 64 if step[2] else head.last_hash)
            continue
        if not rows:
            continue
        index = step[1] % len(rows)
        row = rows[index]
        if kind == "edit":
            setattr(row, step[2], step[3])
        elif kind == "retype":  # SQLite keeps whatever type it is given
            setattr(row, step[2], {"actor_id": "7", "reason": 12}[step[2]])
        elif kind == "rekey":
            row.key_id = step[2]
        elif kind == "delete":
            del rows[index]
        elif kind == "renumber":
            taken = {other.seq for other in rows}
            if row.seq + step[2] not in taken:
                row.seq += step[2]
                rows.sort(key=lambda r: r.seq)
        elif kind == "rechain":
            row.reason = step[3]
            prev_hash = rows[index - 1].entry_hash if index else audit.GENESIS_HASH
            for later in rows[index:]:
                later.prev_hash = prev_hash
                mode = step[2]
                if mode in ("plain", "unkeyed"):
                    keep = later.key_id if mode == "plain" else None
                    seal(later, KEYRING, None)
                    later.key_id = keep
                elif mode == "stranger":
                    seal(later, STRANGER, "zz-999999")
                else:
                    seal(later, KEYRING, mode)
                prev_hash = later.entry_hash
    return head


def walk_in_chunks(
    rows: list[Row], head: Head | None, sizes: list[int], *, typed: bool
) -> ChainReport:
    """The new walk: the rows cut into consecutive chunks of ``sizes`` (repeated), each
    scanned on its own, judged in order."""
    walk = ChainWalk(KEYRING)
    start, turn = 0, 0
    while start < len(rows):
        size = sizes[turn % len(sizes)]
        chunk = [row.values() for row in rows[start : start + size]]
        report = walk.feed(scan_chunk(chunk, KEYRING.keys, typed=typed))
        if report is not None:
            return report
        start, turn = start + size, turn + 1
    return walk.finish(head)  # type: ignore[arg-type]


def plain_types(rows: list[Row]) -> bool:
    return all(
        (row.actor_id is None or type(row.actor_id) is int)
        and (row.reason is None or type(row.reason) is str)
        for row in rows
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), tampering(), st.lists(st.integers(1, 4), min_size=1, max_size=3), st.booleans())
def test_the_chunked_walk_reports_what_the_one_by_one_walk_did(chain, steps, sizes, no_head):
    rows, head = chain
    if not steps:
        report = walk_in_chunks(rows, head, sizes, typed=True)
        # the write side's hashes verify (a generated rotation may break the key rules)
        assert "changed after it was written" not in (report.problem or "")
    head = tamper_rows(rows, head, steps)
    final_head = None if no_head else head
    expected = reference_walk(rows, final_head, KEYRING)
    assert walk_in_chunks(rows, final_head, sizes, typed=False) == expected
    if plain_types(rows):  # what PostgreSQL can hold
        assert walk_in_chunks(rows, final_head, sizes, typed=True) == expected


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(1, 2**31 - 1),
    prev_hash=texts,
    at=moments,
    actor_id=st.none() | st.integers(1, 2**31 - 1),
    names=st.lists(st.text(), min_size=5, max_size=5),
    reason=st.none() | st.text(),
    key_id=st.none() | st.sampled_from(list(KEYRING.keys)),
)
def test_the_text_hashed_by_the_scan_is_canonical_json(
    seq, prev_hash, at, actor_id, names, reason, key_id
):
    """Any content the service can write (``canonical_json`` via ``entry_hash`` or
    ``keyed_entry_hash``) verifies: the scan's hand-written text is byte for byte the same."""
    actor_username, action, entity_type, entity_id, changes = names
    # a rotation to another key ends the scan's run, to be judged in chain order (Hypothesis
    # draws the module's own constants, "audit.key_rotated" among them)
    assume(not (action == audit.KEY_ROTATED and key_id is not None and entity_id != key_id))
    row = Row(seq, prev_hash, at, actor_id, actor_username, action, entity_type, entity_id,
              changes, reason, None, "")  # fmt: skip
    seal(row, KEYRING, key_id)
    for typed in (True, False):
        scan = scan_chunk([row.values()], KEYRING.keys, typed=typed)
        assert scan.count == 1 and not scan.events[0].changed


@given(secret=st.binary(min_size=1, max_size=200), message=st.binary(max_size=300))
def test_the_hmac_pads_make_the_hmac_module_s_hmac(secret, message):
    inner_pad, outer_pad = audit._hmac_pads(secret)
    inner = inner_pad.copy()
    inner.update(message)
    outer = outer_pad.copy()
    outer.update(inner.digest())
    assert outer.hexdigest() == hmac.new(secret, message, hashlib.sha256).hexdigest()


def test_an_intact_chunk_keeps_one_event_per_run_of_one_key_not_its_rows():
    """What a chunk hands back is its count and the few entries where the key changes (a
    chunk of a million entries made with one key: one event), never its rows."""
    rows: list[Row] = []
    prev_hash = audit.GENESIS_HASH
    for seq in range(1, 501):
        row = Row(seq, prev_hash, utcnow(), None, "system", "a.b", "unit", str(seq), "{}",
                  None, None, "")  # fmt: skip
        seal(row, KEYRING, None if seq <= 100 else "k1-aaaaaa" if seq <= 300 else "k3-cccccc")
        rows.append(row)
        prev_hash = row.entry_hash
    scan = scan_chunk([row.values() for row in rows], KEYRING.keys, typed=True)
    assert (scan.count, scan.legacy, scan.last_hash) == (500, 100, prev_hash)
    assert [event.seq for event in scan.events] == [1, 101, 301]


# --- the tampering of the existing tests, in a database ---------------------------------------


@pytest.fixture
def keyring(app: Flask, tmp_path: Path) -> Keyring:
    app.config["AUDIT_KEY_FILE"] = str(tmp_path / "audit-keys")
    return audit_keys.create_key_file(tmp_path / "audit-keys")


def write_entries(session: Any, count: int) -> None:
    for n in range(count):
        audit.record(
            session,
            actor=None,
            at=utcnow(),
            action="test.changed",
            entity_type="thing",
            entity_id=n,
            changes={"value": (n, f"«{n}»")},
            reason=f'correction "{n}"',
        )
    session.commit()


def sql(session: Any, statement: str) -> None:
    with triggers_off(session):
        session.execute(text(statement))
    session.commit()


FORGED = "b" * 64
INSERT = (
    "INSERT INTO audit_entries (seq, at, actor_id, actor_username, action, entity_type, "
    "entity_id, changes, reason, prev_hash, entry_hash) VALUES ({seq}, '2026-01-01 00:00:00', "
    "NULL, 'mallory', 'forged', 'thing', '1', '{{}}', NULL, '{prev}', '{forged}')"
)


def _hash_of(session: Any, seq: int) -> str:
    return session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == seq))


def _inserted(session: Any, keyring: Keyring, tmp: Path) -> None:
    write_entries(session, 3)
    sql(session, "UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 2")
    sql(session, INSERT.format(seq=2, prev=_hash_of(session, 1), forged=FORGED))


def _appended(session: Any, keyring: Keyring, tmp: Path) -> None:
    write_entries(session, 2)
    sql(session, INSERT.format(seq=3, prev=_hash_of(session, 2), forged=FORGED))


def _rechained(hasher: Callable[[Keyring, Path], Any], at: int) -> Callable[..., None]:
    def scenario(session: Any, keyring: Keyring, tmp: Path) -> None:
        write_entries(session, 5)
        rechain(session, at, hasher(keyring, tmp), reason="nothing happened")
        session.commit()

    return scenario


def _stranger(keyring: Keyring, tmp: Path) -> Any:
    stranger = audit_keys.create_key_file(tmp / "stranger-keys")
    return with_key(stranger, stranger.current_id)


def _impostor(keyring: Keyring, tmp: Path) -> Any:
    wrong = audit_keys.create_key_file(tmp / "wrong-keys")
    return with_key(
        Keyring(wrong.path, {keyring.current_id: wrong.current_secret}), keyring.current_id
    )


def _legacy_then_keyed(session: Any, keyring: Keyring, tmp: Path) -> None:
    write_entries(session, 3)
    rechain(session, 1, plain_sha256(unkeyed=True))
    session.commit()
    write_entries(session, 2)


def _rotated(leak: bool) -> Callable[..., None]:
    def scenario(session: Any, keyring: Keyring, tmp: Path) -> None:
        write_entries(session, 2)
        old_id = keyring.current_id
        audit.rotate_key(session, at=utcnow(), reason="yearly rotation", keyring=keyring)
        session.commit()
        write_entries(session, 3)
        if leak:
            leaked = audit_keys.load(keyring.path)
            rechain(session, 4, with_key(leaked, old_id), reason="with the leaked key")
            session.commit()

    return scenario


def _statements(*statements: str, entries: int = 5) -> Callable[..., None]:
    def scenario(session: Any, keyring: Keyring, tmp: Path) -> None:
        write_entries(session, entries)
        for statement in statements:
            sql(session, statement)

    return scenario


SCENARIOS = {
    "untouched": _statements(),
    "empty": _statements(entries=0),
    "edited": _statements("UPDATE audit_entries SET reason = 'nothing happened' WHERE seq = 3"),
    "edited hash": _statements(f"UPDATE audit_entries SET entry_hash = '{FORGED}' WHERE seq = 2"),
    "edited timestamp": _statements(
        "UPDATE audit_entries SET at = '2020-01-01 00:00:00' WHERE seq = 4"
    ),
    "deleted": _statements("DELETE FROM audit_entries WHERE seq = 4"),
    "deleted first": _statements("DELETE FROM audit_entries WHERE seq = 1"),
    "deleted tail": _statements("DELETE FROM audit_entries WHERE seq >= 4"),
    "head moved": _statements("UPDATE audit_chain_head SET last_seq = 3"),
    "head deleted": _statements("DELETE FROM audit_chain_head"),
    "inserted": _inserted,
    "appended": _appended,
    "rechained plainly": _rechained(lambda k, t: plain_sha256(unkeyed=False), 3),
    "rechained as legacy": _rechained(lambda k, t: plain_sha256(unkeyed=True), 3),
    "rechained with a wrong key": _rechained(_impostor, 2),
    "rechained with a stranger's key": _rechained(_stranger, 3),
    "legacy then keyed": _legacy_then_keyed,
    "rotated": _rotated(leak=False),
    "rotated, then a retired key": _rotated(leak=True),
}


def reference(session: Any, keyring: Keyring) -> ChainReport:
    entries = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    return reference_walk(entries, session.get(AuditChainHead, 1), keyring)


@pytest.fixture
def forked_verifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verifier's workers start from a forkserver that has imported the verifier already
    (``START_METHOD``), instead of each spawned interpreter importing it again: the scenarios
    below start about 95 of them on PostgreSQL, about a second of CPU each when spawned. The
    workers still start fresh (never forked from this process and its connections), get the
    snapshot and keys through the pool's initializer and scan the same way; spawning itself is
    tested by the two PostgreSQL-only tests at the end of this module. (The forkserver, once
    started, serves the next tests of this process too.)"""
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(["cellchain.core.audit_verification"])
    monkeypatch.setattr(audit_verification, "START_METHOD", forkserver)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_tampering_is_reported_as_before(session, keyring, tmp_path, name, forked_verifiers):
    """In one process (every database), pages of 1, 2, 3 and 10 000 entries; on PostgreSQL
    also in parallel (two workers, chunks of 1, 2 and 3 entries, in one exported snapshot)."""
    SCENARIOS[name](session, keyring, tmp_path)
    keyring = audit_keys.load(keyring.path)  # with the key a rotation added
    expected = reference(session, keyring)
    assert (expected.intact) == (name in ("untouched", "empty", "legacy then keyed", "rotated"))
    for size in (1, 2, 3, 10_000):
        assert audit.verify_chain(session, keyring=keyring, batch_size=size) == expected
        session.rollback()
    if on_postgres():
        for size in (1, 2, 3):
            parallel = audit_verification.verify_chain(
                session, keyring, workers=2, chunk_entries=size, parallel_from=0
            )
            assert parallel == expected
            session.rollback()


def test_the_walk_reads_pages_of_rows_not_the_whole_table(session, keyring):
    """Memory stays flat: the entries are read in keyset pages (``batch_size`` rows each)."""
    write_entries(session, 7)
    with counting_statements() as statements:
        report = audit.verify_chain(session, keyring=keyring, batch_size=3)
    assert report.intact and report.entries_checked == 7
    pages = [s for s in statements if "FROM audit_entries" in s]
    assert len(pages) == 3  # entries 1–3, 4–6, 7
    assert all("LIMIT" in page for page in pages)


@pytest.mark.postgres_only
def test_parallel_workers_read_the_snapshot_of_the_verifying_transaction(app, session, keyring):
    """Entries committed after the verification started are not seen by its workers, so the
    chain read ends where the head row read in the same snapshot says it does."""
    write_entries(session, 6)
    reading = audit_verification.start_one_snapshot(session)
    assert reading
    session.execute(text("SELECT 1"))  # the snapshot is taken here
    from sqlalchemy.orm import Session

    with Session(bind=session.get_bind()) as other:
        write_entries(other, 4)  # committed meanwhile
    with counting_statements() as statements:
        report = audit_verification.verify_chain(
            session, keyring, workers=2, chunk_entries=2, parallel_from=0
        )
    assert report.intact, report.problem
    assert report.entries_checked == 6
    # the workers read the entries: this session exported its snapshot and read the head only
    assert any("pg_export_snapshot()" in statement for statement in statements)
    assert not any("LIMIT" in statement for statement in statements)
    session.rollback()
    assert (
        audit_verification.verify_chain(
            session, keyring, workers=2, chunk_entries=2, parallel_from=0
        ).entries_checked
        == 10
    )
    session.rollback()


@pytest.mark.postgres_only
def test_workers_that_cannot_connect_fall_back_to_the_walk_in_this_process(session, keyring):
    """A worker that cannot open its connection (too many clients, the network, connection
    settings only the verifying process has) breaks the pool instead of being restarted
    forever: the verification answers, walking the chain itself in the same snapshot."""
    import threading

    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    write_entries(session, 6)
    session.commit()
    url = session.get_bind().engine.url
    # this process connects through connect_args; the workers get the URL only, and fail
    engine = create_engine(url.set(host="nohost.invalid"), connect_args={"host": url.host})
    outcome: dict[str, Any] = {}

    def verify() -> None:
        with Session(engine) as own:
            own.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            try:
                outcome["report"] = audit_verification.verify_chain(
                    own, keyring, workers=2, chunk_entries=2, parallel_from=0
                )
            except Exception as error:
                outcome["error"] = error

    thread = threading.Thread(target=verify, daemon=True)
    thread.start()
    thread.join(timeout=120)
    engine.dispose()
    assert not thread.is_alive(), "the verification hung on workers that could not connect"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].intact and outcome["report"].entries_checked == 6


def test_production_spawns_its_verifiers():
    """The tampering tests start their workers from a forkserver (``tampering_forkserver``),
    only in those tests: the process a site runs spawns them, fresh interpreters that never
    inherit the verifying process's connections (independent review, N4)."""
    assert audit_verification.START_METHOD.get_start_method() == "spawn"
