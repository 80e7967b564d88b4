"""Four more queue lines of issue 21, each counted by the package that owns its rule (beside
the listing the line links to), and added to the roles' queues by ``service``:

- clinician: doses to thaw today (``clinic.bedside.queues.count_to_thaw_on``, the site's day);
- investigator: post-thaw counts outside tolerance waiting for a signed decision
  (``clinic.bedside.queues.count_decisions_awaited``). A dose order outside tolerance never
  waits for its override: ``dosing.orders.order_dose`` refuses it unless the investigator's
  signed override comes with it;
- technician: labels printed, not yet applied nor destroyed
  (``labels.outstanding.count_outstanding_prints``).

Vessels due for a passage or harvest are not counted: nothing records when a vessel is due
(no culture schedule, no window of days in culture in the product definition, whose limits
are the passage number and cumulative doublings a harvest may reach, not a date).

Each count is one statement, whatever the data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from cellchain.clinic.bedside import queues as bedside_queues
from cellchain.core.i18n import LazyText, lazy
from cellchain.core.roles import Permission, Role
from cellchain.extensions import DbSession
from cellchain.labels import outstanding


class _At(Protocol):
    @property
    def today(self) -> dt.date: ...


class Counting(Protocol):
    """What a count reads: the session and the moment (``service._Counting``)."""

    @property
    def session(self) -> DbSession: ...

    @property
    def at(self) -> _At: ...


#: Each line's count, by key.
COUNTS: dict[str, Callable[[Counting], int]] = {
    "doses_to_thaw_today": lambda c: bedside_queues.count_to_thaw_on(c.session, c.at.today),
    "post_thaw_decisions": lambda c: bedside_queues.count_decisions_awaited(c.session),
    "labels_to_apply": lambda c: outstanding.count_outstanding_prints(c.session),
}

#: Each role's added lines, after its others: key, label, endpoint, permission.
LINES: dict[Role, tuple[tuple[str, LazyText, str, Permission], ...]] = {
    Role.TECHNICIAN: (
        (
            "labels_to_apply",
            lazy("labels printed, not yet applied"),
            "labels.outstanding",
            Permission.RECONCILE_LABELS,
        ),
    ),
    Role.CLINICIAN: (
        (
            "doses_to_thaw_today",
            lazy("doses to thaw today"),
            "bedside.to_thaw_today",
            Permission.THAW_DOSES,
        ),
    ),
    Role.INVESTIGATOR: (
        (
            "post_thaw_decisions",
            lazy("doses outside tolerance after thaw waiting for your decision"),
            "bedside.decisions_awaited",
            Permission.ADMINISTER_DOSES,
        ),
    ),
}
