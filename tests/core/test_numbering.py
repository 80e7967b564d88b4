"""Issuing DINs and COI identifiers: sequences, the registry, and lookup of scanned codes."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from cellchain.core import numbering
from cellchain.core.identifiers import InvalidIdentifier, check_character, parse_identifier
from cellchain.core.models import IssuedIdentifier
from cellchain.core.types import utcnow
from cellchain.errors import NotFound
from cellchain.extensions import db

FACILITY = "X9999"


def allocate(session, now=None):
    return numbering.allocate_din(
        session, facility_code=FACILITY, actor=None, now=now or utcnow(), purpose="test"
    )


def test_dins_count_up_within_a_year_and_restart_in_the_next(session):
    now = dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC)
    first, second = allocate(session, now), allocate(session, now)
    next_year = allocate(session, now + dt.timedelta(hours=2))
    session.commit()
    assert [parse_identifier(i.code).sequence for i in (first, second, next_year)] == [1, 2, 1]
    assert parse_identifier(next_year.code).year == "27"
    assert first.code == parse_identifier(first.code).canonical
    assert len(first.code) == 14 and first.code.startswith("X999926000001")


def test_coi_identifiers_have_their_own_sequence(session):
    allocate(session)
    coi = numbering.allocate_coi(
        session, facility_code=FACILITY, actor=None, now=utcnow(), purpose="patient therapy"
    )
    session.commit()
    parsed = parse_identifier(coi.code)
    assert parsed.kind == "COI" and parsed.sequence == 1 and coi.code.startswith("CHX9999")


def test_lookup_accepts_what_people_type(session):
    issued = allocate(session)
    session.commit()
    body, k = issued.code[:-1], issued.code[-1]
    spaced = f"{body[:5]} {body[5:7]} {body[7:]}"
    for typed in (issued.code, issued.code.lower(), f"{spaced} [{k}]", f"CC1.{issued.code}"):
        assert numbering.lookup(session, typed).id == issued.id
    for without_k in (body, spaced, body.lower()):
        with pytest.raises(InvalidIdentifier, match="needs its check character"):
            numbering.lookup(session, without_k)


def test_lookup_says_what_is_wrong(session):
    issued = allocate(session)
    session.commit()
    wrong_check = issued.code[:-1] + ("A" if issued.code[-1] != "A" else "B")
    with pytest.raises(InvalidIdentifier, match=r"[Cc]heck character"):
        numbering.lookup(session, wrong_check)
    with pytest.raises(NotFound, match="not issued"):
        numbering.lookup(session, "X999926999999" + check_character("X999926999999"))


@pytest.mark.postgres_only
def test_parallel_requests_never_get_the_same_din(app):
    workers, per_worker = 8, 10
    barrier = threading.Barrier(workers)
    codes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                for _ in range(per_worker):
                    issued = allocate(db.session)
                    db.session.commit()
                    with lock:
                        codes.append(issued.code)
                db.session.remove()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(codes) == len(set(codes)) == workers * per_worker
    sequences = sorted(parse_identifier(code).sequence for code in codes)
    assert sequences == list(range(1, workers * per_worker + 1))
    assert db.session.scalar(select(db.func.count()).select_from(IssuedIdentifier)) == len(codes)
