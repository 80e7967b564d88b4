"""API of the bedside, for bedside devices: thaw, the bedside check and its sign-off, the
infusion."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import jsonify
from flask_smorest import Blueprint

from cellchain.clinic.bedside import bedside, infusions, post_thaw
from cellchain.clinic.bedside.commands import (
    acknowledge_as_user,
    count_as_user,
    decide_as_user,
    end_as_user,
    sign_as_user,
    start_as_user,
    thaw_as_user,
    verify_with_facts_as_user,
)
from cellchain.clinic.bedside.schemas import (
    BedsideCheckOut,
    BedsideIn,
    DoseCountOut,
    InfusionDetailOut,
    InfusionEndIn,
    InfusionOut,
    PostThawCountIn,
    PostThawCountOut,
    PostThawDecisionIn,
    ScanIn,
    SignOffIn,
    ThawOut,
    TimeFlagAcknowledgementIn,
    bedside_check_answer,
)
from cellchain.core.i18n import Translated, _
from cellchain.core.roles import Permission
from cellchain.dosing import orders, patients
from cellchain.errors import Conflict
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, now, requires, unit_of_work
from cellchain.traceability.notices import WithRecalls, recalls_naming

bedside_api = Blueprint(
    "bedside_api",
    __name__,
    url_prefix="/api/v1",
    description="Thaw, bedside verification, two-person sign-off and infusions",
)
blueprints = (bedside_api,)


@bedside_api.post("/thaw")
@requires(Permission.THAW_DOSES)
@bedside_api.arguments(ScanIn)
@bedside_api.response(200, ThawOut)
def thaw_scan(data: dict[str, Any]) -> Any:
    """Scan a bag (or the dose label for every bag): starts its thaw, or completes it."""
    with unit_of_work(AuditedRefusal("thaw.refused", "scan", "thaw")) as session:
        result = thaw_as_user(session, data["scan"])
    return result


@bedside_api.post("/bedside/checks")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(BedsideIn)
@bedside_api.response(201, BedsideCheckOut)
def verify(data: dict[str, Any]) -> Any:
    """Wristband and label scanned together: the verdict (go/stop) and every check. A stop is
    recorded like a go; 201 either way — read ``verdict``."""
    with (
        _kept_loaded(),
        unit_of_work(AuditedRefusal("bedside.scan_refused", "bedside_check", "new")) as session,
    ):
        check, facts = verify_with_facts_as_user(session, data)
    # the answer is built from what was gathered, not read again after the commit, and dumped
    # by hand (``bedside_check_answer``: what ``BedsideCheckOut`` dumps)
    return jsonify(bedside_check_answer(bedside.summary_of_new(check, facts, now=now()))), 201


@contextmanager
def _kept_loaded() -> Iterator[None]:
    """The commit of this use case leaves what it loaded and wrote in memory (the check just
    recorded, its clinician, patient and dose unit), so the answer does not read them back."""
    session = db.session()
    kept = session.expire_on_commit
    session.expire_on_commit = False
    try:
        yield
    finally:
        session.expire_on_commit = kept


@bedside_api.get("/bedside/checks/<int:check_id>")
@requires(Permission.READ_RECORDS)
@bedside_api.response(200, BedsideCheckOut)
def get_check(check_id: int) -> Any:
    return bedside.summary(db.session, bedside.get_check(db.session, check_id), now=now())


@bedside_api.post("/bedside/checks/<int:check_id>/signatures")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(SignOffIn)
@bedside_api.response(200, BedsideCheckOut)
def sign(data: dict[str, Any], check_id: int) -> Any:
    """Two clinicians sign a go: the acting one and a second one, each with their password."""
    with unit_of_work(AuditedRefusal("bedside.sign_refused", "bedside_check", check_id)) as session:
        check = sign_as_user(session, check_id, data)
    return bedside.summary(db.session, check, now=now())


@bedside_api.post("/bedside/checks/<int:check_id>/start")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.response(201, InfusionOut)
def start(check_id: int) -> Any:
    """Start the infusion from a go signed by two clinicians. Every check is made again now;
    if one fails a stop is recorded and the answer is 409 naming it."""
    with unit_of_work(
        AuditedRefusal("infusion.start_refused", "bedside_check", check_id)
    ) as session:
        started = start_as_user(session, check_id)
    if started.stop is not None:
        raise Conflict(
            _(
                "Stopped: bedside check %(check)s failed %(failures)s",
                check=started.stop.id,
                failures=_failures(started.stop),
            ),
            title=_("Stopped at the start"),
        )
    return started.infusion


def _failures(stop: Any) -> str:
    """The failed checks of a stop, "title: detail; …", in the reader's language (the checks'
    kept wording) and, for the record, in English (as stored)."""
    shown = Translated(
        "; ".join(f"{c['title']}: {c['detail']}" for c in stop.checks_shown if not c["passed"])
    )
    shown.english = "; ".join(f"{c['title']}: {c['detail']}" for c in stop.failed)
    return shown


@bedside_api.get("/infusions/<int:infusion_id>")
@requires(Permission.READ_RECORDS)
@bedside_api.response(200, InfusionDetailOut)
def get_infusion(infusion_id: int) -> Any:
    """One infusion, with the recalls that name its dose."""
    infusion = infusions.get_infusion(db.session, infusion_id)
    found = recalls_naming(db.session, doses=[infusion.dose_order_id])
    return WithRecalls(infusion, found.dose(infusion.dose_order_id))


@bedside_api.post("/infusions/<int:infusion_id>/end")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(InfusionEndIn)
@bedside_api.response(200, InfusionOut)
def end(data: dict[str, Any], infusion_id: int) -> Any:
    """The end: time, volume infused, rate, any reaction (stopped early needs the reason)."""
    with unit_of_work(AuditedRefusal("infusion.end_refused", "infusion", infusion_id)) as session:
        infusion = end_as_user(session, infusion_id, data)
    return infusion


@bedside_api.post("/infusions/<int:infusion_id>/acknowledge")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(TimeFlagAcknowledgementIn)
@bedside_api.response(200, InfusionOut)
def acknowledge(data: dict[str, Any], infusion_id: int) -> Any:
    """A second clinician (not whoever recorded the end) confirms flagged times as recorded,
    with a note and their own password; until then the patient's next dose is not ordered."""
    with unit_of_work(
        AuditedRefusal("infusion.acknowledge_refused", "infusion", infusion_id)
    ) as session:
        infusion = acknowledge_as_user(session, infusion_id, data)
    return infusion


@bedside_api.get("/patients/<int:patient_id>/infusions")
@requires(Permission.READ_RECORDS)
@bedside_api.response(200, InfusionOut(many=True))
def patient_infusions(patient_id: int) -> Any:
    return infusions.infusions_of(db.session, patients.get_patient(db.session, patient_id))


@bedside_api.get("/doses/<int:order_id>/post-thaw-counts")
@requires(Permission.READ_RECORDS)
@bedside_api.response(200, DoseCountOut)
def dose_counts(order_id: int) -> Any:
    """Which count the dose is judged by ("post-thaw count" or "release count at fill"), its
    working, and every post-thaw count with its decision."""
    return post_thaw.dose_count(db.session, orders.get_order(db.session, order_id))


@bedside_api.post("/doses/<int:order_id>/post-thaw-counts")
@requires(Permission.THAW_DOSES)
@bedside_api.arguments(PostThawCountIn)
@bedside_api.response(201, PostThawCountOut)
def record_count(data: dict[str, Any], order_id: int) -> Any:
    """Record a post-thaw count of a thawed dose (total cells per mL and viability): the dose
    is recomputed with it. Refused (409) on an unthawed, infused or cancelled dose; 422 for a
    value out of range."""
    with unit_of_work(AuditedRefusal("post_thaw.count_refused", "dose_order", order_id)) as session:
        count = count_as_user(session, order_id, data)
    return count


@bedside_api.post("/doses/<int:order_id>/post-thaw-decision")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(PostThawDecisionIn)
@bedside_api.response(200, PostThawCountOut)
def decide(data: dict[str, Any], order_id: int) -> Any:
    """An investigator's signed decision on the dose's latest post-thaw count (``count_id``)
    outside tolerance: proceed (a deviation is recorded) or do_not_infuse. Anyone else: 403;
    a count that is no longer the latest: 409."""
    with unit_of_work(
        AuditedRefusal("post_thaw.decision_refused", "dose_order", order_id)
    ) as session:
        count = decide_as_user(session, order_id, data)
    return count
