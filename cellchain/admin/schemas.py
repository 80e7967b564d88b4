"""Marshmallow schemas of administration: input (…In) and output (…Out).

The API and the HTML forms load input through these same schemas, so the shape rules are
written once. Unknown fields are refused (marshmallow's default), never silently dropped.
The kernel's shapes that every feature uses (signatures, identifiers, site date-times) stay
in ``cellchain.core.schemas``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import marshmallow as ma
from marshmallow import validate

from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.roles import Role, role_conflict
from cellchain.core.schemas import SiteDateTime, WholeNumber

if TYPE_CHECKING:  # annotations only: schemas do not reach the database
    from cellchain.core.models import AuditEntry, User

ROLE_CHOICES = [role.value for role in Role]


class ReasonIn(ma.Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class UserCreateIn(ma.Schema):
    username = ma.fields.String(required=True, validate=validate.Length(min=2, max=40))
    full_name = ma.fields.String(required=True, validate=validate.Length(min=1, max=120))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(max=200))
    roles = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ROLE_CHOICES)),
        required=True,
        validate=validate.Length(min=1),
    )


class RolesIn(ReasonIn):
    roles = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ROLE_CHOICES)),
        required=True,
        validate=validate.Length(min=1),
    )


class UserOut(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    full_name = ma.fields.String()
    roles = ma.fields.Method("dump_roles")
    active = ma.fields.Boolean()
    locked = ma.fields.Boolean()
    failed_attempts = ma.fields.Integer()
    created_at = ma.fields.AwareDateTime()
    deactivated_at = ma.fields.AwareDateTime(allow_none=True)

    suspended_roles = ma.fields.Method(
        "dump_suspended_roles",
        metadata={
            "description": "Roles held in a combination never allowed (admin with a signing "
            "role; the statistician with a role that enrols): they grant nothing and the "
            "account signs nothing until an administrator removes one of the two"
        },
    )

    def dump_roles(self, user: User) -> list[str]:
        return sorted(role.value for role in user.roles)

    def dump_suspended_roles(self, user: User) -> list[str]:
        return sorted(role.value for role in role_conflict(user.roles))


class PasswordChangeIn(ma.Schema):
    current_password = ma.fields.String(required=True, load_only=True)
    new_password = ma.fields.String(required=True, load_only=True)


class TokenCreateIn(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=80))
    scope = ma.fields.String(
        load_default="full",
        validate=validate.OneOf(["read", "full"]),
        metadata={"description": "read: GET, HEAD and OPTIONS only (integrations); full: devices"},
    )
    days = WholeNumber(
        load_default=None,
        validate=validate.Range(min=1, max=36_500),
        metadata={
            "description": "Lifetime in days; the site's default (API_TOKEN_DAYS) when not "
            "given, at most API_TOKEN_MAX_DAYS"
        },
    )


class TokenOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    prefix = ma.fields.String(metadata={"description": "First characters of the token"})
    scope = ma.fields.String(metadata={"description": "read or full"})
    created_at = ma.fields.AwareDateTime()
    expires_at = ma.fields.AwareDateTime(
        metadata={"description": "After this the token authenticates nothing"}
    )
    last_used_at = ma.fields.AwareDateTime(allow_none=True)
    revoked_at = ma.fields.AwareDateTime(allow_none=True)


class TokenCreatedOut(TokenOut):
    token = ma.fields.String(
        metadata={"description": "The bearer token. Shown this once; only its hash is kept."}
    )


class AuditQueryIn(ListQueryIn):
    """The audit trail's filters and page (``core.listing``: newest first by default; sort by
    seq, at, actor, action or record; ``q`` searches the record id, user, action and record
    type). ``limit``/``offset`` are the earlier paging, kept for existing clients: given
    either, the entries come oldest first from ``offset``, as before."""

    entity_type = ma.fields.String(validate=validate.Length(max=60))
    entity_id = ma.fields.String(validate=validate.Length(max=80))
    actor = ma.fields.String(validate=validate.Length(max=40))
    action = ma.fields.String(validate=validate.Length(max=60))
    since = SiteDateTime(
        metadata={"description": "ISO 8601, inclusive; without an offset, the site's time"}
    )
    until = SiteDateTime(
        metadata={"description": "ISO 8601, exclusive; without an offset, the site's time"}
    )
    limit = WholeNumber(
        validate=validate.Range(min=1, max=1000),
        metadata={"description": "Deprecated (use page and page_size): oldest first"},
    )
    offset = WholeNumber(
        validate=validate.Range(min=0),
        metadata={"description": "Deprecated (use page and page_size): oldest first"},
    )


class AuditEntryOut(ma.Schema):
    seq = ma.fields.Integer()
    at = ma.fields.AwareDateTime()
    actor = ma.fields.String(attribute="actor_username")
    action = ma.fields.String()
    entity_type = ma.fields.String()
    entity_id = ma.fields.String()
    changes = ma.fields.Method("dump_changes")
    reason = ma.fields.String(allow_none=True)
    prev_hash = ma.fields.String()
    entry_hash = ma.fields.String()

    def dump_changes(self, entry: AuditEntry) -> object:
        import json

        return json.loads(entry.changes)


class CheckpointOut(ma.Schema):
    seq = ma.fields.Integer(metadata={"description": "The last entry the checkpoint recorded"})
    at = ma.fields.DateTime()
    event = ma.fields.String(metadata={"description": "verify, checkpoint, restore, …"})


class ChainReportOut(ma.Schema):
    """A ``core.audit_verification.Verification``: the chain walked, and compared with the
    last checkpoint."""

    intact = ma.fields.Boolean(
        metadata={"description": "The chain is whole and holds what the last checkpoint recorded"}
    )
    entries_checked = ma.fields.Integer(attribute="chain.entries_checked")
    first_broken_seq = ma.fields.Integer(allow_none=True, attribute="chain.first_broken_seq")
    problem = ma.fields.String(
        allow_none=True,
        attribute="chain.problem",
        metadata={"description": "What breaks the chain itself, if anything"},
    )
    checkpoints_configured = ma.fields.Boolean(
        metadata={"description": "False: no checkpoint folder, nothing compared with"}
    )
    checkpoint_problems = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "What does not fit the checkpoint file, in words"},
    )
    compared_with = ma.fields.Nested(CheckpointOut, allow_none=True)


class DinReserveIn(ma.Schema):
    count = WholeNumber(required=True, validate=validate.Range(min=1, max=100))
    purpose = ma.fields.String(
        load_default="reserved for pre-printed label stock",
        validate=validate.Length(min=1, max=200),
    )
