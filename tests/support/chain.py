"""Units and lineage made through the chain service for tests: a donation's container, derived
units, a status put straight into a row, a fixed tree and randomly grown ones."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from cellchain.chain import service as chain
from cellchain.chain.models import LineageOperation, Unit, UnitKind, UnitStatus
from cellchain.core.identifiers import ALPHABET
from cellchain.core.types import utcnow
from tests.support.tamper import outside_the_trail


def derive(
    lab,
    parents,
    *,
    kind: UnitKind = UnitKind.CULTURE_VESSEL,
    operation: LineageOperation = LineageOperation.ISOLATE,
    count: int = 1,
    location: str = "BSC-1",
    consume: bool = False,
    now: dt.datetime | None = None,
) -> list[Unit]:
    """Derive and commit, as a request would."""
    children = chain.derive_units(
        lab.session,
        parents=list(parents),
        kind=kind,
        operation=operation,
        count=count,
        location=location,
        actor=lab.tech,
        now=now or utcnow(),
        consume_parents=consume,
    )
    lab.session.commit()
    return children


def container_of(lab, **overrides) -> Unit:
    """The one donation container of a new cord-only donation."""
    donation = lab.register(placenta=False, **overrides)
    [container] = donation.units
    return container


def set_status(session, unit: Unit, status: UnitStatus) -> None:
    """Put the unit's row straight into ``status`` (test set-up, not a transition)."""
    session.execute(
        outside_the_trail(update(Unit).where(Unit.id == unit.id).values(status=status.value))
    )
    session.commit()
    session.refresh(unit)


def other_check_character(code: str) -> str:
    """``code`` with its check character replaced by a different, valid-looking one."""
    wrong = next(c for c in ALPHABET[:36] if c != code[-1])
    return code[:-1] + wrong


@dataclass
class Tree:
    """container → isolate 2 vessels → passage from both → split into 3 → fill 2 bags."""

    container: Unit
    v1: Unit
    v2: Unit
    harvest: Unit
    s1: Unit
    s2: Unit
    s3: Unit
    b1: Unit
    b2: Unit


def build_tree(lab) -> Tree:
    container = container_of(lab)
    v1, v2 = derive(lab, [container], operation=LineageOperation.ISOLATE, count=2)
    [harvest] = derive(lab, [v1, v2], operation=LineageOperation.PASSAGE)
    s1, s2, s3 = derive(lab, [harvest], operation=LineageOperation.SPLIT, count=3)
    b1, b2 = derive(lab, [s1], kind=UnitKind.CRYOBAG, operation=LineageOperation.FILL, count=2)
    return Tree(container, v1, v2, harvest, s1, s2, s3, b1, b2)


def grow(lab: Any, *, rng: random.Random, steps: int) -> tuple[Unit, list[Unit]]:
    """A donation's container and ``steps`` derivations from random usable units of it: a tree
    of many branches, with merges (several parents) where the dice say so."""
    container = container_of(lab)
    units = [container]
    for _ in range(steps):
        parents = rng.sample(units, k=min(len(units), rng.choice((1, 1, 1, 2))))
        units += derive(lab, parents, operation=LineageOperation.SPLIT, count=rng.randint(1, 3))
    return container, units
