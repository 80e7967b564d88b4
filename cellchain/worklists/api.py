"""``GET /api/v1/worklist``: the acting user's work queues with counts (issue 21)."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_smorest import Blueprint

from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import requires
from cellchain.worklists.commands import worklist_of_acting_user
from cellchain.worklists.schemas import WorklistOut
from cellchain.worklists.service import QueueItem

worklist_api = Blueprint(
    "worklist_api", __name__, url_prefix="/api/v1", description="Work queues per role"
)
blueprints = (worklist_api,)


def _path(item: QueueItem) -> str:
    args: dict[str, Any] = dict(item.args)
    return url_for(item.endpoint, **args)


@worklist_api.get("/worklist")
@requires(Permission.USE_APP)
@worklist_api.response(200, WorklistOut)
def worklist() -> Any:
    """The acting user's work queues: for each of their roles with a queue, the records
    waiting for it (``count``) and the page that lists them (``path``). A role without a queue
    (the statistician) is absent; a line whose permission the user's roles do not grant is
    absent. The number of SQL statements does not grow with the data."""
    queues = worklist_of_acting_user(db.session)
    return {
        "queues": [
            {
                "role": queue.role.value,
                "role_label": queue.role_label,
                "items": [
                    {
                        "key": item.key,
                        "label": item.label,
                        "count": item.count,
                        "path": _path(item),
                    }
                    for item in queue.items
                ],
            }
            for queue in queues
        ]
    }
