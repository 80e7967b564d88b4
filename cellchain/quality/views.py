"""Pages of the quality package: release specifications, release testing (samples and
results), the release review with QA's disposition, the certificate of analysis, QA queues."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from cellchain.core.i18n import _, lazy
from cellchain.core.roles import Permission
from cellchain.documents.views import add_document_pages
from cellchain.errors import DomainError, InvalidInput
from cellchain.extensions import DbSession, db
from cellchain.http import AuditedRefusal, now, requires, site_zone, unit_of_work
from cellchain.manufacturing.models import Lot
from cellchain.manufacturing.processing import processing
from cellchain.quality import disposition, results
from cellchain.quality.commands import (
    REJECTION_REFUSED,
    RELEASE_REFUSED,
    RESULTS_REFUSED,
    SAMPLES_REFUSED,
    barred_from_disposing,
    certificate_response,
    invalidate_as_user,
    invalidation_refused,
    lot_act_refused,
    may_dispose,
    record_results_as_user,
    reject_as_user,
    release_as_user,
    take_samples_as_user,
)
from cellchain.quality.evaluation import criterion_text
from cellchain.quality.schemas import InvalidateIn, RejectIn, ReleaseIn, SampleIn
from cellchain.quality.service import SPECIFICATIONS
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form

blueprint = Blueprint("quality", __name__)


@blueprint.app_template_filter("criterion")
def criterion(test: dict[str, object]) -> str:
    """A specification line's acceptance criterion in words."""
    return criterion_text(test)


@blueprint.app_template_filter("qc_value")
def qc_value(result: Any) -> str:
    """A QC result's value as printed, with its unit."""
    return results.format_value(result)


add_document_pages(
    blueprint,
    SPECIFICATIONS,
    name="specification",
    heading=lazy("Release specifications"),
    what=lazy("specification"),
    template="quality/specification.html",
)


# --- release testing (QC) -------------------------------------------------------------------------


@blueprint.app_template_global("out_of_specification_lots")
def out_of_specification_lots() -> set[int]:
    """The ids of lots holding a valid OOS result, read once per request, so that every page
    showing a lot can flag it red."""
    if "oos_lot_ids" not in g:
        g.oos_lot_ids = results.out_of_specification_lot_ids(db.session)
    return cast(set[int], g.oos_lot_ids)


@blueprint.app_template_global("lot_of_unit")
def lot_of_unit(unit: Any) -> Lot | None:
    """The lot a bag belongs to or a QC sample was drawn from, if any (for the unit page)."""
    return results.lot_of_unit(db.session, unit)


@blueprint.get("/lots/<int:lot_id>/testing")
@requires(Permission.READ_RECORDS)
def testing(lot_id: int) -> ResponseReturnValue:
    return _testing_page(processing.get_lot(db.session, lot_id))


def _testing_page(lot: Lot, refused: Refused | None = None) -> ResponseReturnValue:
    """The lot's QC page: samples, every result, the form for new results."""
    found = disposition.review(db.session, lot, now=now(), zone=site_zone())
    usable = [s for s in found.samples if s.unit.status not in ("consumed", "discarded")]
    listed = results.results_of(db.session, lot)
    return _render(
        "quality/testing.html",
        refused,
        review=found,
        actions=results.qc_actions(lot, found.specification),
        results=listed,
        result_actions={r.id: results.result_actions(r) for r in listed},
        bags=[b for b in processing.bags_of(db.session, lot) if b.status == "quarantine"],
        sample_codes=[s.unit.code for s in usable],
        instruments=results.instruments_offered(db.session),
        today=now().astimezone(site_zone()).date().isoformat(),
        invalidation_meaning=results.INVALIDATION_MEANING,
    )


@blueprint.post("/lots/<int:lot_id>/samples")
@requires(Permission.TAKE_QC_SAMPLES)
def take_samples(lot_id: int) -> ResponseReturnValue:
    def act(session: DbSession) -> Message:
        data = load_form(SampleIn(), _checkbox(request.form, "bag_used_up"))
        taken = take_samples_as_user(session, processing.get_lot(session, lot_id), data)
        codes = ", ".join(sample.unit.code for sample in taken)
        return _("Sample tube(s) labelled: %(codes)s.", codes=codes), "success"

    return _submit(lot_id, "samples", _testing_page, act, lot_act_refused(SAMPLES_REFUSED, lot_id))


@blueprint.post("/lots/<int:lot_id>/results")
@requires(Permission.RECORD_QC_RESULTS)
def record_results(lot_id: int) -> ResponseReturnValue:
    def act(session: DbSession) -> Message:
        recorded = record_results_as_user(
            session,
            processing.get_lot(session, lot_id),
            request.form.get("sample", ""),
            _result_entries(request.form),
        )
        failing = [r.test_name for r in recorded if not r.passes]
        if failing:
            return (
                _(
                    "%(count)s result(s) recorded. OUT OF SPECIFICATION: %(tests)s; an "
                    "investigation (deviation) was opened on the lot.",
                    count=len(recorded),
                    tests=", ".join(failing),
                ),
                "error",
            )
        return (
            _("%(count)s result(s) recorded, all within specification.", count=len(recorded)),
            "success",
        )

    return _submit(lot_id, "results", _testing_page, act, lot_act_refused(RESULTS_REFUSED, lot_id))


@blueprint.post("/results/<int:result_id>/invalidate")
@requires(Permission.INVALIDATE_QC_RESULTS)
def invalidate(result_id: int) -> ResponseReturnValue:
    lot_id = results.get_result(db.session, result_id).lot_id

    def act(session: DbSession) -> Message:
        data = load_form(InvalidateIn(), request.form)
        invalidate_as_user(session, results.get_result(session, result_id), data)
        return (
            _("Result #%(id)s invalidated; a retest may now be recorded.", id=result_id),
            "success",
        )

    return _submit(
        lot_id,
        "invalidate",
        _testing_page,
        act,
        invalidation_refused(result_id),
        result_id=str(result_id),
    )


# --- release review and disposition (QA) ----------------------------------------------------------


@blueprint.get("/lots/<int:lot_id>/review")
@requires(Permission.READ_RECORDS)
def review(lot_id: int) -> ResponseReturnValue:
    return _review_page(processing.get_lot(db.session, lot_id))


def _review_page(lot: Lot, refused: Refused | None = None) -> ResponseReturnValue:
    """The release review: the preconditions, every test, and QA's decision or its forms."""
    may = may_dispose()
    return _render(
        "quality/review.html",
        refused,
        review=disposition.review(db.session, lot, now=now(), zone=site_zone()),
        may_dispose=may,
        barred=barred_from_disposing(db.session, lot) if may else [],
        release_meaning=disposition.RELEASE_MEANING,
        reject_meaning=disposition.REJECT_MEANING,
    )


@blueprint.post("/lots/<int:lot_id>/release")
@requires(Permission.DISPOSE_LOTS)
def release(lot_id: int) -> ResponseReturnValue:
    def act(session: DbSession) -> Message:
        data = load_form(ReleaseIn(), request.form)
        release_as_user(session, processing.get_lot(session, lot_id), data)
        return _("Lot released for clinical use; its bags are now available."), "success"

    return _submit(lot_id, "release", _review_page, act, lot_act_refused(RELEASE_REFUSED, lot_id))


@blueprint.post("/lots/<int:lot_id>/reject")
@requires(Permission.DISPOSE_LOTS)
def reject(lot_id: int) -> ResponseReturnValue:
    def act(session: DbSession) -> Message:
        data = load_form(RejectIn(), request.form)
        reject_as_user(session, processing.get_lot(session, lot_id), data)
        return _("Lot rejected; its bags are rejected for good."), "success"

    return _submit(lot_id, "reject", _review_page, act, lot_act_refused(REJECTION_REFUSED, lot_id))


# --- one use case per form ------------------------------------------------------------------------

#: A flash message and its category.
Message = tuple[str, str]


@dataclass(frozen=True)
class Refused:
    """Why a form was refused, what was typed, and which form on the page it was."""

    error: DomainError
    form: dict[str, Any]
    which: str


def _submit(
    lot_id: int,
    which: str,
    page: Callable[[Lot, Refused], ResponseReturnValue],
    act: Callable[[DbSession], Message],
    refusal: AuditedRefusal,
    **remember: str,
) -> ResponseReturnValue:
    """Run ``act`` in one transaction. Done: flash its message and go back to the page.
    Refused: the refusal on record (``refusal``, in English), then the page again, with the
    reason, the field errors and what was typed (plus ``remember``), under the status of the
    error."""
    try:
        with unit_of_work(refusal) as session:
            message, category = act(session)
    except DomainError as error:
        typed = {**request.form.to_dict(), **remember}
        return page(processing.get_lot(db.session, lot_id), Refused(error, typed, which))
    flash(message, category)
    return redirect(url_for(PAGE_ENDPOINTS[page], lot_id=lot_id))


#: Where a form goes back to when its use case is done.
PAGE_ENDPOINTS: dict[Callable[..., ResponseReturnValue], str] = {
    _testing_page: "quality.testing",
    _review_page: "quality.review",
}


def _render(template: str, refused: Refused | None, **context: Any) -> ResponseReturnValue:
    return (
        render_template(
            template,
            error=refused.error if refused else None,
            which=refused.which if refused else None,
            errors=refused.error.errors if refused else {},
            form=refused.form if refused else {},
            **context,
        ),
        refused.error.status if refused else 200,
    )


@blueprint.get("/lots/<int:lot_id>/certificate.pdf")
@requires(Permission.READ_RECORDS)
def certificate(lot_id: int) -> ResponseReturnValue:
    """The certificate of analysis (PDF)."""
    return certificate_response(processing.get_lot(db.session, lot_id))


@blueprint.get("/qa")
@requires(Permission.READ_RECORDS)
def queues() -> ResponseReturnValue:
    """QA's work: lots awaiting review, lots with OOS results, open deviations."""
    awaiting = disposition.awaiting_review(db.session, now=now(), zone=site_zone())
    oos = disposition.lots_with_oos(db.session)
    deviations = disposition.open_deviations(db.session)
    lots = [r.lot.id for r in awaiting] + [lot.id for lot, _ in oos]
    return render_template(
        "quality/queues.html",
        awaiting=awaiting,
        oos=oos,
        deviations=deviations,
        recalls=recalls_naming(db.session, lots=lots + [d.lot.id for d in deviations if d.lot]),
    )


# --- form input -----------------------------------------------------------------------------------


def _checkbox(form: Any, name: str) -> MultiDict[str, Any]:
    """The form, with an unticked checkbox sent as false (browsers omit it)."""
    data = {key: value for key, value in form.items() if key != "csrf_token"}
    data[name] = name in form
    return MultiDict(data)


def _result_entries(form: Any) -> list[results.ResultEntry]:
    """One entry per test row with a value; the service judges each (type, unit, dates).

    A row's fields are ``value-<CODE>``, ``unit-<CODE>``, ``instrument-<CODE>`` and
    ``tested_on-<CODE>``; a number typed for a numeric test is read as a number, anything
    else is passed on as typed so that the refusal can say what is wrong with it.
    """
    entries = []
    for key in form:
        if not key.startswith("value-") or not form[key].strip():
            continue
        code = key.removeprefix("value-")
        typed = form[key].strip()
        entries.append(
            results.ResultEntry(
                test_code=code,
                value=_number_or_text(typed, numeric=form.get(f"numeric-{code}") == "1"),
                unit=(form.get(f"unit-{code}") or "").strip() or None,
                instrument=form.get(f"instrument-{code}", ""),
                tested_on=_date(form.get(f"tested_on-{code}", ""), code),
            )
        )
    return entries


def _number_or_text(typed: str, *, numeric: bool) -> float | str:
    if not numeric:
        return typed
    try:
        return float(typed.replace(",", "."))
    except ValueError:
        return typed


def _date(typed: str, code: str) -> dt.date:
    try:
        return dt.date.fromisoformat(typed.strip())
    except ValueError:
        raise InvalidInput(
            _(
                "%(test)s: the test date %(typed)s is not a date (YYYY-MM-DD).",
                test=code,
                typed=repr(typed),
            ),
            errors={f"{code}.tested_on": [_("A date is required.")]},
        ) from None
