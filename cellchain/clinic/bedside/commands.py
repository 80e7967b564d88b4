"""Acting-user glue of thaw, the bedside check and its sign-off, and infusions, shared by the API
and the pages: the loaded input, the acting user, the time and the site's zone from the
request, then the service."""

from __future__ import annotations

from typing import Any

from cellchain.clinic.bedside import bedside, infusions, post_thaw, thaw
from cellchain.clinic.models import BedsideCheck, Infusion, PostThawCount
from cellchain.core import accounts
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.dosing.orders import get_order
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone


def thaw_as_user(session: DbSession, scan: str) -> dict[str, Any]:
    """Thaw by scan; what it did and the dose's deadline."""
    try:
        step = thaw.scan_thaw(session, scan, actor=acting_user(), now=now())
    except InvalidIdentifier as problem:  # never repeat an unreadable scan (it may be an MRN)
        raise bedside.unreadable(problem, "scan") from problem
    state = thaw.thaw_state(session, step.order)
    return {
        "dose_order_id": step.order.id,
        "started": [t.unit.code for t in step.started],
        "completed": [t.unit.code for t in step.completed],
        "expires_at": state.expires_at,
        "window_minutes": state.window_minutes,
    }


def verify_as_user(session: DbSession, data: dict[str, Any]) -> BedsideCheck:
    return bedside.verify(
        session, data["wristband"], data["label"], actor=acting_user(), now=now(), zone=site_zone()
    )


def verify_with_facts_as_user(
    session: DbSession, data: dict[str, Any]
) -> tuple[BedsideCheck, bedside.BedsideFacts]:
    """``verify_as_user``, and the facts the verdict was made from."""
    return bedside.verify_with_facts(
        session, data["wristband"], data["label"], actor=acting_user(), now=now(), zone=site_zone()
    )


def sign_as_user(session: DbSession, check_id: int, data: dict[str, Any]) -> BedsideCheck:
    """The acting clinician and a second clinician (by username) sign the check."""
    second = accounts.user_named(session, data["second_username"], strip=True)
    return bedside.sign_off(
        session,
        bedside.get_check(session, check_id),
        first=bedside.Signer(acting_user(), data["password"]),
        second=bedside.Signer(second, data["second_password"]),
        now=now(),
    )


def start_as_user(session: DbSession, check_id: int) -> infusions.Started:
    return infusions.start(
        session,
        bedside.get_check(session, check_id),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def end_as_user(session: DbSession, infusion_id: int, data: dict[str, Any]) -> Infusion:
    return infusions.end(
        session,
        infusions.get_infusion(session, infusion_id),
        infusions.InfusionEnd(**data),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def acknowledge_as_user(session: DbSession, infusion_id: int, data: dict[str, Any]) -> Infusion:
    """The acting clinician acknowledges an infusion's time flag with their own password."""
    return infusions.acknowledge_time_flag(
        session,
        infusions.get_infusion(session, infusion_id),
        user=acting_user(),
        password=data["password"],
        note=data["note"],
        now=now(),
    )


def count_as_user(session: DbSession, order_id: int, data: dict[str, Any]) -> PostThawCount:
    """The acting user records a post-thaw count of the dose."""
    return post_thaw.record_count(
        session,
        get_order(session, order_id),
        post_thaw.CountInput(**data),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def decide_as_user(session: DbSession, order_id: int, data: dict[str, Any]) -> PostThawCount:
    """The acting investigator signs a decision on the dose's post-thaw count (the one they
    saw, named by its id) outside tolerance."""
    return post_thaw.decide(
        session,
        post_thaw.count_of_dose(session, get_order(session, order_id), data["count_id"]),
        investigator=acting_user(),
        password=data["password"],
        decision=data["decision"],
        reason=data["reason"],
        now=now(),
    )
