"""A forward trace's walk (issue 20: on PostgreSQL a generation at a time, as two arrays'
texts, ``chain.descendants_as_arrays``) reaches exactly the units a breadth-first walk over
every lineage edge reaches, each at its fewest steps, on randomly grown trees with shortcuts
(several paths of different lengths to one unit); and on PostgreSQL the arrays hold exactly
the (unit, distance) rows of the recursive join walk (``lineage_walk``), for any seeds, also
those of the trace's own walk (``trace.walk_arrays``, ids ascending, which stops at seeds
that are all leaves)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import literal, select, union_all

from cellchain.chain import service as chain
from cellchain.chain.models import LineageEdge, Unit
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.traceability.trace import trace
from cellchain.traceability.trace.trace import TraceFrom
from tests.support.chain import grow


def fewest_steps(seeds: set[int]) -> dict[int, int]:
    """Every unit reachable from ``seeds`` with its fewest steps: breadth first, in Python."""
    children: dict[int, set[int]] = {}
    for parent, child in db.session.execute(select(LineageEdge.parent_id, LineageEdge.child_id)):
        children.setdefault(parent, set()).add(child)
    known = set(db.session.execute(select(Unit.id)).scalars())
    found = {seed: 0 for seed in seeds if seed in known}
    level, distance = list(found), 0
    while level:
        distance += 1
        level = [c for u in level for c in children.get(u, ()) if c not in found]
        for child in level:
            found.setdefault(child, distance)
    return found


def with_shortcuts(rng: random.Random, units: list[Unit], count: int) -> None:
    """Edges from a unit to a later one of the same tree that is not its child yet: a second,
    often shorter, path (ids grow with derivation, so no cycle is made)."""
    existing: set[tuple[int, int]] = {
        (parent, child)
        for parent, child in db.session.execute(select(LineageEdge.parent_id, LineageEdge.child_id))
    }
    for _ in range(count):
        parent, child = sorted(rng.sample(units, k=2), key=lambda unit: unit.id)
        if (parent.id, child.id) not in existing:
            existing.add((parent.id, child.id))
            db.session.add(
                LineageEdge(
                    parent_id=parent.id, child_id=child.id, operation="sample", created_at=utcnow()
                )
            )
    db.session.commit()


def reached(kind: str, record_id: int) -> dict[int, int]:
    forward = trace.trace_forward(db.session, kind, record_id)
    ids = [traced.unit.id for traced in forward.units]
    assert len(ids) == len(set(ids))
    assert [(t.distance, t.unit.id) for t in forward.units] == sorted(
        (t.distance, t.unit.id) for t in forward.units
    )
    return {traced.unit.id: traced.distance for traced in forward.units}


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_forward_trace_reaches_every_unit_at_its_fewest_steps(lab: Any, seed: int) -> None:
    rng = random.Random(seed)
    container, units = grow(lab, rng=rng, steps=14)
    grow(lab, rng=rng, steps=3)  # another donation: never reached
    with_shortcuts(rng, units, count=8)

    by_donation = reached(TraceFrom.DONATION, container.donation_id)
    assert by_donation == fewest_steps({container.id})
    assert len(by_donation) == len(units)
    assert max(by_donation.values()) >= 2
    for start in [*rng.sample(units, k=6), units[-1]]:  # the last one: a leaf
        assert reached(TraceFrom.UNIT, start.id) == fewest_steps({start.id})


@pytest.mark.postgres_only  # the arrays' walk is PostgreSQL's
@pytest.mark.parametrize("seed", [21, 22])
def test_the_arrays_hold_the_rows_of_the_recursive_join_walk(lab: Any, seed: int) -> None:
    rng = random.Random(seed)
    _, units = grow(lab, rng=rng, steps=12)
    _, others = grow(lab, rng=rng, steps=6)
    with_shortcuts(rng, units, count=6)
    everyone = units + others
    parents = set(db.session.execute(select(LineageEdge.parent_id)).scalars())
    leaves = [u for u in everyone if u.id not in parents]
    assert len(leaves) >= 2
    seed_sets = [
        [],
        [units[0].id],
        [units[-1].id],
        [u.id for u in rng.sample(everyone, k=7)],
        [u.id for u in rng.sample(everyone, k=4)] * 2,  # the same seeds twice
        [units[0].id, -1],  # and one that is no unit
        [u.id for u in leaves] * 2,  # only leaves, twice: the walk stops at the seeds
        [-1],  # no unit at all
        [u.id for u in everyone],
    ]
    for ids in seed_sets:
        seeds = select(Unit.id).where(Unit.id.in_(ids)) if -1 not in ids else _literal(ids)
        nearest = chain.nearest_of(chain.lineage_walk(seeds, upwards=False))
        joined = dict(db.session.execute(select(nearest.c.unit_id, nearest.c.distance)).all())
        texts = db.session.execute(chain.descendants_as_arrays(seeds)).one()
        assert as_pairs(texts) == joined
        # the trace's walk: the same pairs, the ids ascending, whether it stops at the seeds
        # (the seeds are leaves) or goes on (``trace.walk_arrays``)
        sorted_texts = db.session.execute(trace.walk_arrays(seeds)).all()
        assert len(sorted_texts) == 1
        assert as_pairs(sorted_texts[0]) == joined
        assert list(as_pairs(sorted_texts[0])) == sorted(joined)
        real = {i for i in ids if i > 0}
        assert {k: v for k, v in joined.items() if k > 0} == fewest_steps(real)


def _literal(ids: list[int]) -> Any:
    """Seeds given as values, not read from units: one of them need not be a unit."""
    return union_all(*(select(literal(i)) for i in ids))


def as_pairs(texts: tuple[str | None, str | None]) -> dict[int, int]:
    ids, distances = texts
    if ids is None:
        assert distances is None
        return {}
    pairs = list(
        zip(
            map(int, ids.strip("{}").split(",")),
            map(int, (distances or "").strip("{}").split(",")),
            strict=True,
        )
    )
    assert len(pairs) == len({unit for unit, _ in pairs})
    return dict(pairs)
