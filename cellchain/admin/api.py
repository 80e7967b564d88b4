"""API of administration: me, users, tokens, audit trail, identifiers.

Load → command → dump. No rules here. The blueprint names are the kernel's of old
(``account_api``, ``users_api``, …): the OpenAPI tags and every ``url_for`` stay as they were.
"""

from __future__ import annotations

from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from cellchain.admin import blinding, commands
from cellchain.admin.schemas import (
    AuditEntryOut,
    AuditQueryIn,
    ChainReportOut,
    DinReserveIn,
    ReasonIn,
    RolesIn,
    TokenCreatedOut,
    TokenCreateIn,
    TokenOut,
    UserCreateIn,
    UserOut,
)
from cellchain.core import accounts, audit, numbering
from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.core.schemas import IdentifierOut
from cellchain.extensions import db
from cellchain.http import acting_user, requires, unit_of_work
from cellchain.sites import scope
from cellchain.web.listing import PAGINATION_HEADERS, paged

account_api = Blueprint("account_api", __name__, url_prefix="/api/v1", description="Your account")
users_api = Blueprint("users_api", __name__, url_prefix="/api/v1/users", description="Users")
audit_api = Blueprint("audit_api", __name__, url_prefix="/api/v1/audit", description="Audit trail")
identifiers_api = Blueprint(
    "identifiers_api", __name__, url_prefix="/api/v1", description="Identifiers and scanning"
)
blueprints = (account_api, users_api, audit_api, identifiers_api)


# --- account --------------------------------------------------------------------------


@account_api.get("/me")
@requires(Permission.USE_APP)
@account_api.response(200, UserOut)
def me() -> Any:
    """The user the request is authenticated as."""
    return acting_user()


@account_api.route("/tokens")
class Tokens(MethodView):
    @requires(Permission.USE_APP)
    @account_api.response(200, TokenOut(many=True))
    def get(self) -> Any:
        """Your API tokens (never the tokens themselves)."""
        return commands.my_tokens(db.session)

    @requires(Permission.USE_APP)
    @account_api.arguments(TokenCreateIn)
    @account_api.response(201, TokenCreatedOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a token. The response is the only time the token is shown."""
        with unit_of_work() as session:
            row, token = commands.create_token(session, data)
        # shown in this response only (TokenCreatedOut dumps it), never stored: not a column
        row.token = token  # type: ignore[attr-defined]
        return row


@account_api.post("/tokens/<int:token_id>/revoke")
@requires(Permission.USE_APP)
@account_api.response(200, TokenOut)
def revoke_token(token_id: int) -> Any:
    """Revoke one of your tokens (administrators: anyone's)."""
    with unit_of_work() as session:
        token = commands.revoke_token(session, token_id)
    return token


# --- users ----------------------------------------------------------------------------


@users_api.route("")
class Users(MethodView):
    @requires(Permission.MANAGE_USERS)
    @users_api.response(200, UserOut(many=True))
    def get(self) -> Any:
        """All accounts, active or not."""
        return accounts.list_users(db.session)

    @requires(Permission.MANAGE_USERS)
    @users_api.arguments(UserCreateIn)
    @users_api.response(201, UserOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an account. Administrator is never combined with QA, QC analyst or
        Investigator."""
        with unit_of_work() as session:
            user = commands.create_user(session, data)
        return user


@users_api.get("/<int:user_id>")
@requires(Permission.MANAGE_USERS)
@users_api.response(200, UserOut)
def get_user(user_id: int) -> Any:
    return accounts.get_user(db.session, user_id)


@users_api.get("/<int:user_id>/tokens")
@requires(Permission.MANAGE_USERS)
@users_api.response(200, TokenOut(many=True))
def user_tokens(user_id: int) -> Any:
    """An account's API tokens, with their scope and expiry (never the tokens themselves).
    Revoke one with ``POST /api/v1/tokens/{token_id}/revoke``."""
    return commands.user_tokens(db.session, user_id)


@users_api.post("/<int:user_id>/deactivate")
@requires(Permission.MANAGE_USERS)
@users_api.arguments(ReasonIn)
@users_api.response(200, UserOut)
def deactivate_user(data: dict[str, Any], user_id: int) -> Any:
    """Deactivate an account for good; its tokens are revoked. Needs a reason."""
    with unit_of_work() as session:
        user = accounts.get_user(session, user_id)
        commands.deactivate_user(session, user, data)
    return user


@users_api.post("/<int:user_id>/unlock")
@requires(Permission.MANAGE_USERS)
@users_api.arguments(ReasonIn)
@users_api.response(200, UserOut)
def unlock_user(data: dict[str, Any], user_id: int) -> Any:
    """Unlock an account locked by failed attempts. Needs a reason."""
    with unit_of_work() as session:
        user = accounts.get_user(session, user_id)
        commands.unlock_user(session, user, data)
    return user


@users_api.put("/<int:user_id>/roles")
@requires(Permission.MANAGE_USERS)
@users_api.arguments(RolesIn)
@users_api.response(200, UserOut)
def set_roles(data: dict[str, Any], user_id: int) -> Any:
    """Replace an account's roles. Needs a reason; nobody changes their own roles,
    Administrator is never combined with QA, QC analyst, Investigator or Trial statistician,
    nor the Trial statistician with Clinician or Investigator (who enrol). A refusal is
    audited."""
    with unit_of_work(commands.account_refused(user_id)) as session:
        user = accounts.get_user(session, user_id)
        commands.set_roles(session, user, data)
    return user


# --- audit ----------------------------------------------------------------------------


@audit_api.get("")
@requires(Permission.READ_AUDIT)
@audit_api.arguments(AuditQueryIn, location="query")
@audit_api.response(200, AuditEntryOut(many=True), headers=PAGINATION_HEADERS)
def list_audit(args: dict[str, Any]) -> Any:
    """Audit entries, newest first, filtered by record, user, action and time, searched
    (``q``) in the record id, user, action and record type, one page at a time (the
    ``X-Pagination`` header). ``limit``/``offset`` (deprecated) page oldest first, as before.
    A patient's arm and randomization number are masked for a role that does not see arms."""
    roles = acting_user().roles
    criteria = commands.audit_filter(args)
    if "limit" in args or "offset" in args:
        entries = audit.list_entries(
            db.session, criteria, limit=args.get("limit", 200), offset=args.get("offset", 0)
        )
        return [blinding.ShownEntry(entry, roles) for entry in entries]
    page = audit.entries_page(db.session, criteria, PageRequest.of(args))
    return paged(page, [blinding.ShownEntry(entry, roles) for entry in page.items])


@audit_api.get("/export.csv")
@requires(Permission.READ_AUDIT)
@audit_api.arguments(AuditQueryIn, location="query")
@audit_api.response(200, description="CSV, one row per entry", content_type="text/csv")
def export_audit(args: dict[str, Any]) -> Any:
    """The filtered audit trail as CSV (all matching entries; limit/offset are ignored). A
    patient's arm and randomization number are masked for a role that does not see arms."""
    roles = acting_user().roles
    rows = audit.export_csv_rows(
        db.session,
        commands.audit_filter(args),
        lambda entry: blinding.shown_changes(entry, roles),
    )
    return Response(
        stream_with_context(scope.carried(rows)),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=cellchain-audit.csv"},
    )


@audit_api.post("/verify")
@requires(Permission.VERIFY_AUDIT)
@audit_api.response(200, ChainReportOut)
def verify_audit() -> Any:
    """Walk the keyed hash chain and report the first entry edited, deleted or inserted, and
    compare the trail with the last audit checkpoint kept outside the database (entries
    missing at the end, a table emptied and started again); `intact` is false if either
    does not hold. Writes no checkpoint: `cellchain audit verify` and the scheduled
    `cellchain audit checkpoint` do."""
    return commands.verify_audit(db.session)


# --- identifiers ----------------------------------------------------------------------


@identifiers_api.get("/identifiers/<code>")
@requires(Permission.READ_RECORDS)
@identifiers_api.response(200, IdentifierOut)
def get_identifier(code: str) -> Any:
    """One issued identifier and what it identifies."""
    return numbering.lookup(db.session, code)


@identifiers_api.post("/identifiers/din")
@requires(Permission.ALLOCATE_IDENTIFIERS)
@identifiers_api.arguments(DinReserveIn)
@identifiers_api.response(201, IdentifierOut(many=True))
def reserve_dins(data: dict[str, Any]) -> Any:
    """Reserve the next DINs of this year, e.g. for pre-printed label stock."""
    with unit_of_work() as session:
        issued = commands.reserve_dins(session, data)
    return issued
