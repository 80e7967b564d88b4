"""What a record's status lets people do next: the page offers those acts and no others.

A feature names its acts in a ``StrEnum`` and declares, beside its transition table, the
statuses each act starts from. An act that changes the status starts where the transition
table allows every status the act may end in (``leading_to``); an act done within a status
(a hand-off in transit, a QC sample of a lot in quarantine) names its statuses. The service
refuses an act outside them, and the feature's ``*_actions(record)`` gives the view the acts
the record allows; the template shows a form or a button only for an act in them
(``{% if 'receive' in actions %}``), so no template repeats a transition table. Who may do
it stays the permission the route checks (``'receive_shipments' in current_user_permissions``).

A status change itself is refused by the table through ``require_transition``, the one check
of DESIGN.md rule 2: a domain error naming the record, its status and the one attempted.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from cellchain.errors import StateConflict

Status = TypeVar("Status", bound=enum.StrEnum)
Act = TypeVar("Act", bound=enum.StrEnum)


def leading_to(transitions: Mapping[Status, frozenset[Status]], *ends: Status) -> frozenset[Status]:
    """The statuses from which ``transitions`` allows every one of ``ends``.

    An act that ends in one of several statuses (a receipt ends received or held, by what is
    recorded) may start only where each of them is allowed.
    """
    wanted = frozenset(ends)
    return frozenset(status for status, nexts in transitions.items() if wanted <= nexts)


def allowed(status: str, starts: Mapping[Act, frozenset[Status]]) -> frozenset[Act]:
    """The acts whose starting statuses include ``status`` (a stored value or a member)."""
    return frozenset(act for act, statuses in starts.items() if status in statuses)


def require_transition(
    transitions: Mapping[Status, frozenset[Status]], current: Status, target: Status, entity: str
) -> None:
    """Refuse moving ``entity`` from ``current`` to ``target`` unless ``transitions`` allows it:
    ``StateConflict`` ("Unit X is 'infused'; it cannot become 'allocated'.")."""
    if target not in transitions[current]:
        raise StateConflict(entity, current, target)
