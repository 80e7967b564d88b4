"""The shapes of ``/api/v1/notifications``: a user's notifications, marking them read, their
e-mail address, and the outbox."""

from __future__ import annotations

import marshmallow as ma

from cellchain.core.i18n import N_


class NotificationQuery(ma.Schema):
    unread = ma.fields.Boolean(
        load_default=False, metadata={"description": "only the unread notifications"}
    )
    before = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "the page after this notification id (older ones)"},
    )


class InAppNotificationOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, metadata={"description": "e.g. recall_opened"})
    urgent = ma.fields.Boolean(required=True)
    title = ma.fields.String(required=True, metadata={"description": "in the user's language"})
    body = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True, metadata={"description": "UTC"})
    read_at = ma.fields.DateTime(allow_none=True, metadata={"description": "UTC; null: unread"})
    entity_type = ma.fields.String(required=True)
    entity_id = ma.fields.Integer(required=True)
    path = ma.fields.String(allow_none=True, metadata={"description": "the record's page"})


class InAppNotificationsOut(ma.Schema):
    unread = ma.fields.Integer(required=True, metadata={"description": "unread in all"})
    notifications = ma.fields.List(ma.fields.Nested(InAppNotificationOut), required=True)


class MarkReadIn(ma.Schema):
    ids = ma.fields.List(
        ma.fields.Integer(validate=ma.validate.Range(min=1, max=2**31 - 1)),
        validate=ma.validate.Length(min=1, max=500),
        metadata={"description": "the notifications to mark read"},
    )
    all = ma.fields.Boolean(
        load_default=False, metadata={"description": "mark every notification read"}
    )

    @ma.validates_schema
    def one_of(self, data: dict[str, object], **_kwargs: object) -> None:
        if bool(data.get("ids")) == bool(data.get("all")):
            raise ma.ValidationError(N_("Give either ids or all: true."), field_name="ids")


class MarkedOut(ma.Schema):
    marked = ma.fields.Integer(required=True, metadata={"description": "newly marked read"})


class EmailIn(ma.Schema):
    email = ma.fields.String(
        required=True,
        allow_none=True,
        validate=ma.validate.Length(max=254),
        metadata={"description": "where your notifications are e-mailed; null or '' for none"},
    )


class EmailOut(ma.Schema):
    email = ma.fields.String(
        allow_none=True, metadata={"description": "where your notifications are e-mailed now"}
    )
    pending = ma.fields.String(
        allow_none=True, metadata={"description": "the address waiting for its confirmation"}
    )
    problem = ma.fields.String(
        allow_none=True,
        metadata={"description": "why no confirmation link could be e-mailed (None: sent)"},
    )


class EmailConfirmIn(ma.Schema):
    token = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "the secret of the link e-mailed to the address"},
    )


class OutboxEmailOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    notification_id = ma.fields.Integer(required=True)
    to = ma.fields.String(required=True)
    username = ma.fields.String(required=True)
    urgent = ma.fields.Boolean(required=True)
    subject = ma.fields.String(required=True, metadata={"description": "recipient's language"})
    body = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    sent_at = ma.fields.DateTime(allow_none=True)
    attempts = ma.fields.Integer(required=True)
    last_error = ma.fields.String(allow_none=True)
    refused_at = ma.fields.DateTime(
        allow_none=True,
        metadata={"description": "When the mail server refused it for good (never retried)"},
    )


class OutboxOut(ma.Schema):
    smtp_configured = ma.fields.Boolean(required=True)
    emails = ma.fields.List(ma.fields.Nested(OutboxEmailOut), required=True)
    refused = ma.fields.List(
        ma.fields.Nested(OutboxEmailOut),
        required=True,
        metadata={"description": "The last e-mails the mail server refused for good"},
    )
