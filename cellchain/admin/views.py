"""Pages of administration: identifiers, audit review, users, your account.

The blueprint is ``admin``: the other features' templates and the navigation link here with
``url_for("admin.…")``. The rules the pages call stay in the kernel (``core``).
"""

from __future__ import annotations

from typing import Any, cast

import marshmallow as ma
from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue

from cellchain.admin import blinding, commands
from cellchain.admin.schemas import (
    AuditQueryIn,
    DinReserveIn,
    PasswordChangeIn,
    ReasonIn,
    RolesIn,
    TokenCreateIn,
    UserCreateIn,
)
from cellchain.core import accounts, audit, numbering, record_state
from cellchain.core.i18n import _
from cellchain.core.identifiers import parse_identifier
from cellchain.core.listing import PageRequest
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.roles import Permission, Role, conflict_explanation, role_conflict
from cellchain.errors import DomainError, InvalidInput
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, unit_of_work
from cellchain.sites import scope
from cellchain.sites.service import list_sites, sites_of
from cellchain.web.forms import load_form
from cellchain.web.listing import page_query

blueprint = Blueprint("admin", __name__)


# --- identifiers ------------------------------------------------------------------------


@blueprint.get("/identifiers")
@requires(Permission.READ_RECORDS)
def identifiers() -> ResponseReturnValue:
    return render_template(
        "admin/identifiers.html", issued=numbering.recent_issued(db.session, limit=50)
    )


@blueprint.post("/identifiers/reserve")
@requires(Permission.ALLOCATE_IDENTIFIERS)
def reserve_dins() -> ResponseReturnValue:
    try:
        data = load_form(DinReserveIn(), request.form)
        with unit_of_work() as session:
            issued = commands.reserve_dins(session, data)
            codes = [row.code for row in issued]
    except DomainError as error:
        flash(f"{error.detail} {_messages(error)}", "error")
        return redirect(url_for("admin.identifiers"))
    flash(
        _("Reserved %(count)s DIN(s): %(codes)s", count=len(codes), codes=", ".join(codes)),
        "success",
    )
    return redirect(url_for("admin.identifiers"))


@blueprint.get("/identifiers/<code>")
@requires(Permission.READ_RECORDS)
def identifier(code: str) -> ResponseReturnValue:
    issued = numbering.lookup(db.session, code)
    parsed = parse_identifier(issued.code)
    return render_template("admin/identifier.html", issued=issued, parsed=parsed)


# --- audit trail ------------------------------------------------------------------------

#: The page's paging parameters (page, page_size, sort, direction, q).
_PAGING = frozenset(ListQueryIn().fields)


def _audit_args(notes: list[str] | None = None) -> dict[str, Any]:
    # ``states`` (show the record-state entries) is the page's own box, not an audit filter
    data: dict[str, Any] = {
        key: value for key, value in request.args.items() if value and key != "states"
    }
    if notes is not None:  # the page: a bad page value is dropped with a note, not refused
        paging = {key: value for key, value in data.items() if key in _PAGING}
        loaded, dropped = page_query(ListQueryIn(), paging)
        notes.extend(dropped)
        data = {key: value for key, value in data.items() if key not in _PAGING} | loaded
    try:
        return cast(dict[str, Any], AuditQueryIn().load(data))  # no post_load: a dict
    except ma.ValidationError as error:
        raise InvalidInput(
            _(
                "The filter is not valid: a time is a date and a time of day in the site's "
                "time, e.g. 2026-11-24 08:00 (or with an offset, 2026-11-24T08:00+08:00)."
            ),
            errors={str(k): [str(m) for m in v] for k, v in error.normalized_messages().items()},
        ) from error


@blueprint.get("/audit")
@requires(Permission.READ_AUDIT)
def audit_review() -> ResponseReturnValue:
    """The audit trail, newest first, a page at a time (``core.listing``); ``limit`` and
    ``offset`` (the earlier paging, oldest first) still work. A bad page value is corrected
    with a note; a bad time filter is refused (422) as before."""
    page = None
    notes: list[str] = []
    show_states = bool(request.args.get("states"))
    try:
        args = _audit_args(notes)
        error = None
        criteria = commands.audit_filter(args)
        if "limit" in args or "offset" in args:
            args.setdefault("limit", 200)
            args.setdefault("offset", 0)
            entries = record_state.review_entries(
                db.session,
                criteria,
                show_states=show_states,
                limit=args["limit"],
                offset=args["offset"],
            )
        else:
            page = record_state.review_page(
                db.session,
                criteria,
                show_states=show_states,
                request=PageRequest.of(args, correct=True),
            )
            entries = page.items
    except InvalidInput as invalid:
        error, entries, args = invalid.detail, [], {"limit": 200, "offset": 0}
    roles = acting_user().roles
    return render_template(
        "admin/audit.html",
        entries=[blinding.ShownEntry(entry, roles) for entry in entries],
        page=page,
        notes=notes,
        args=args,
        filters=request.args,
        error=error,
    ), (422 if error else 200)


@blueprint.get("/audit/export.csv")
@requires(Permission.READ_AUDIT)
def audit_export() -> ResponseReturnValue:
    roles = acting_user().roles
    rows = audit.export_csv_rows(
        db.session,
        commands.audit_filter(_audit_args()),
        lambda entry: blinding.shown_changes(entry, roles),
    )
    return Response(
        stream_with_context(scope.carried(rows)),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=cellchain-audit.csv"},
    )


@blueprint.post("/audit/verify")
@requires(Permission.VERIFY_AUDIT)
def audit_verify() -> ResponseReturnValue:
    verified = commands.verify_audit(db.session)
    report, compared_with = verified.chain, verified.compared_with
    for problem in verified.checkpoint_problems:
        flash(_("Audit checkpoint: %(problem)s.", problem=problem), "error")
    if not report.intact:
        flash(_("Audit chain BROKEN: %(problem)s.", problem=report.problem), "error")
    elif verified.intact:
        flash(
            _("Audit chain intact: %(count)s entries verified.", count=report.entries_checked),
            "success",
        )
    else:
        flash(
            _(
                "Audit chain does NOT match the checkpoints: %(count)s entries verified, but the "
                "trail lacks what a checkpoint recorded.",
                count=report.entries_checked,
            ),
            "error",
        )
    if compared_with is not None:
        flash(
            _(
                "Compared with the checkpoint of %(when)s (entry #%(seq)s). No checkpoint is "
                "written from here: `cellchain audit verify` and the scheduled `cellchain audit "
                "checkpoint` write them.",
                when=compared_with.when(),
                seq=compared_with.seq,
            ),
            "info",
        )
    elif verified.checkpoints_configured:
        flash(
            _(
                "There is no valid audit checkpoint to compare with yet: `cellchain audit "
                "verify` writes the first one."
            ),
            "info",
        )
    else:
        flash(
            _(
                "No audit checkpoint folder is configured: the trail was not compared with a "
                "checkpoint outside the database."
            ),
            "info",
        )
    return redirect(url_for("admin.audit_review"))


# --- users --------------------------------------------------------------------------------


def _messages(error: DomainError) -> str:
    return " ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.errors.items())


@blueprint.get("/users")
@requires(Permission.MANAGE_USERS)
def users() -> ResponseReturnValue:
    found = accounts.list_users(db.session)
    return render_template(
        "admin/users.html",
        users=found,
        suspended={user.id: _labels(role_conflict(user.roles)) for user in found},
    )


def _labels(roles: frozenset[Role]) -> str:
    return ", ".join(sorted(role.label for role in roles))


@blueprint.route("/users/new", methods=["GET", "POST"])
@requires(Permission.MANAGE_USERS)
def new_user() -> ResponseReturnValue:
    form: dict[str, Any] = {"roles": []}
    if request.method == "POST":
        form = {k: v for k, v in request.form.items() if k != "password"}
        form["roles"] = request.form.getlist("roles")
        try:
            data = load_form(UserCreateIn(), request.form, lists=("roles",))
            with unit_of_work() as session:
                user_id = commands.create_user(session, data).id
        except DomainError as error:
            return render_template(
                "admin/user_new.html",
                form=form,
                error=error.detail,
                errors=error.errors,
                roles=list(Role),
            ), error.status
        flash(_("Account %(username)s created.", username=form["username"]), "success")
        return redirect(url_for("admin.user", user_id=user_id))
    return render_template("admin/user_new.html", form=form, errors={}, roles=list(Role))


@blueprint.get("/users/<int:user_id>")
@requires(Permission.MANAGE_USERS)
def user(user_id: int) -> ResponseReturnValue:
    found = accounts.get_user(db.session, user_id)
    return render_template(
        "admin/user.html",
        user=found,
        roles=list(Role),
        suspended=_labels(role_conflict(found.roles)),
        conflict=conflict_explanation(found.roles),
        own_account=found.id == acting_user().id,
        tokens=accounts.list_tokens(db.session, found),
        now=now(),
        sites=list_sites(db.session),
        member_of={site.id for site in sites_of(db.session, found)},
    )


def _user_action(user_id: int, action: str) -> ResponseReturnValue:
    """One change to an account from its page. The user is loaded before the form, inside
    the transaction: a role change refused for any reason, the form's included, is audited."""
    try:
        with unit_of_work(
            commands.account_refused(user_id) if action == "roles" else None
        ) as session:
            target = accounts.get_user(session, user_id)
            if action == "roles":
                data = load_form(RolesIn(), request.form, lists=("roles",))
                commands.set_roles(session, target, data)
            else:
                data = load_form(ReasonIn(), request.form)
                command = (
                    commands.deactivate_user if action == "deactivate" else commands.unlock_user
                )
                command(session, target, data)
    except DomainError as error:
        flash(f"{error.detail} {_messages(error)}", "error")
    else:
        flash(_("Saved."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@blueprint.post("/users/<int:user_id>/deactivate")
@requires(Permission.MANAGE_USERS)
def deactivate_user(user_id: int) -> ResponseReturnValue:
    return _user_action(user_id, "deactivate")


@blueprint.post("/users/<int:user_id>/unlock")
@requires(Permission.MANAGE_USERS)
def unlock_user(user_id: int) -> ResponseReturnValue:
    return _user_action(user_id, "unlock")


@blueprint.post("/users/<int:user_id>/roles")
@requires(Permission.MANAGE_USERS)
def set_roles(user_id: int) -> ResponseReturnValue:
    return _user_action(user_id, "roles")


@blueprint.post("/users/<int:user_id>/tokens/<int:token_id>/revoke")
@requires(Permission.MANAGE_USERS)
def revoke_user_token(user_id: int, token_id: int) -> ResponseReturnValue:
    """An administrator revokes one of an account's API tokens from the account's page."""
    return _revoke_token(token_id, url_for("admin.user", user_id=user_id))


def _revoke_token(token_id: int, back_to: str) -> ResponseReturnValue:
    """Revoke a token (the command checks who may), say so, and go back to ``back_to``."""
    try:
        with unit_of_work() as session:
            commands.revoke_token(session, token_id)
    except DomainError as error:
        flash(error.detail, "error")
    else:
        flash(_("Token revoked."), "success")
    return redirect(back_to)


# --- your account -------------------------------------------------------------------------


@blueprint.get("/account")
@requires(Permission.USE_APP)
def account() -> ResponseReturnValue:
    return render_template(
        "admin/account.html", tokens=commands.my_tokens(db.session), new_token=None, now=now()
    )


@blueprint.post("/account/tokens")
@requires(Permission.USE_APP)
def create_token() -> ResponseReturnValue:
    try:
        data = load_form(TokenCreateIn(), request.form)
        with unit_of_work() as session:
            _row, token = commands.create_token(session, data)
    except DomainError as error:
        flash(f"{error.detail} {_messages(error)}", "error")
        return redirect(url_for("admin.account"))
    # Rendered, not redirected: the token is shown this once and never stored.
    return render_template(
        "admin/account.html", tokens=commands.my_tokens(db.session), new_token=token, now=now()
    )


@blueprint.post("/account/tokens/<int:token_id>/revoke")
@requires(Permission.USE_APP)
def revoke_token(token_id: int) -> ResponseReturnValue:
    return _revoke_token(token_id, url_for("admin.account"))


@blueprint.post("/account/password")
@requires(Permission.USE_APP)
def change_password() -> ResponseReturnValue:
    try:
        data = load_form(PasswordChangeIn(), request.form)
        with unit_of_work() as session:
            commands.change_password(session, data)
    except DomainError as error:
        flash(_("Password not changed: %(error)s", error=error.detail), "error")
    else:
        flash(_("Password changed."), "success")
    return redirect(url_for("admin.account"))
