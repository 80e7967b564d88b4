"""The shapes of ``GET /api/v1/worklist``: the acting user's queues, role by role."""

from __future__ import annotations

import marshmallow as ma


class QueueItemOut(ma.Schema):
    key = ma.fields.String(
        required=True, metadata={"description": "the line's stable name, e.g. lots_to_review"}
    )
    label = ma.fields.String(required=True, metadata={"description": "what is counted, in words"})
    count = ma.fields.Integer(required=True, metadata={"description": "how many wait now"})
    path = ma.fields.String(
        required=True, metadata={"description": "the page that lists them (a site path)"}
    )


class RoleQueueOut(ma.Schema):
    role = ma.fields.String(required=True, metadata={"description": "the role's name"})
    role_label = ma.fields.String(required=True)
    items = ma.fields.List(ma.fields.Nested(QueueItemOut), required=True)


class WorklistOut(ma.Schema):
    queues = ma.fields.List(
        ma.fields.Nested(RoleQueueOut),
        required=True,
        metadata={"description": "one per role of the user that has a queue, in role order"},
    )
