"""Pages of the donors package: donation list and detail, registration, receipt, tests,
eligibility determination, the QA queue and donor pages.

Each form posts to its own view; on a refusal the page is shown again with the message, the
fields to fix and what the person typed, and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.chain import service as chain
from cellchain.core import audit, signatures
from cellchain.core.i18n import _, lazy
from cellchain.core.roles import Permission
from cellchain.donors import service
from cellchain.donors.commands import (
    correct_result_as_user,
    correct_screening_as_user,
    determine_as_user,
    donations_page,
    eligibility_queue_page,
    receive_as_user,
    record_result_as_user,
    register_as_user,
    result_of,
    start_processing_as_user,
)
from cellchain.donors.models import (
    ContainerCondition,
    Donation,
    DonationStatus,
    Eligibility,
    InfectiousResult,
    ScreeningOutcome,
)
from cellchain.donors.schemas import (
    DeterminationIn,
    DonationQueryIn,
    DonationRegisterIn,
    EligibilityQueueIn,
    ReceiptIn,
    ResultCorrectionIn,
    ResultIn,
    ScreeningCorrectionIn,
)
from cellchain.errors import DomainError, InvalidInput, NotFound
from cellchain.extensions import db
from cellchain.http import now, requires, unit_of_work
from cellchain.manufacturing.terms import term
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form
from cellchain.web.listing import page_query
from cellchain.web.resolve import register_record_page

blueprint = Blueprint("donors", __name__)

register_record_page(
    "donation", lambda entity_id: url_for("donors.donation", donation_id=entity_id)
)
register_record_page("donor", lambda entity_id: url_for("donors.donor", donor_id=entity_id))

#: Choices the forms offer, in the order shown.
CHOICES: dict[str, list[Any]] = {
    "statuses": list(DonationStatus),
    "eligibilities": list(Eligibility),
    "conditions": list(ContainerCondition),
    "results": list(InfectiousResult),
    "screening_outcomes": list(ScreeningOutcome),
}


def _typed(exclude: tuple[str, ...] = ("password", "csrf_token")) -> dict[str, str]:
    """What the person typed, to show again after a refusal (never the password)."""
    return {key: value for key, value in request.form.items() if key not in exclude}


# --- list and registration ------------------------------------------------------------------


@blueprint.get("/donations")
@requires(Permission.READ_RECORDS)
def donations() -> ResponseReturnValue:
    """Donations, newest first, a page at a time; a bad filter or page value is ignored
    with a note (``core.listing``)."""
    query, notes = page_query(DonationQueryIn(), request.args)
    page = donations_page(db.session, query, correct=True)
    return render_template(
        "donors/donations.html",
        page=page,
        notes=notes,
        query=query,
        recalls=recalls_naming(db.session, donations=[d.id for d in page.items]),
        **CHOICES,
    )


#: The tissue a product definition's ``source`` parameter names, as the form shows it.
TISSUES = {"placenta": lazy("Placenta"), "umbilical_cord": lazy("Umbilical cord")}


def _product_choices() -> dict[str, Any]:
    """The product definitions in force now (the form's choice), each with the tissue it is
    made from when its definition names one."""
    products = service.products_for_registration(db.session, at=now())
    return {
        "products": [
            (product, TISSUES.get(str(product.parameters.get("source", "")).replace(" ", "_")))
            for product in products
        ]
    }


@blueprint.route("/donations/new", methods=["GET", "POST"])
@requires(Permission.REGISTER_DONATIONS)
def register() -> ResponseReturnValue:
    if request.method == "GET":
        choices = _product_choices()
        form = {"umbilical_cord": "on", "placenta": "on"}
        if len(choices["products"]) == 1:  # the only product, chosen already
            form["product_code"] = choices["products"][0][0].code
        return render_template(
            "donors/register.html", form=form, errors={}, **choices, **CHOICES
        )
    try:
        # the page always sends its choice: left on "choose" is refused, never a default
        if "product_code" in request.form and not request.form["product_code"].strip():
            message = _("Choose the product this donation is for.")
            raise InvalidInput(message, errors={"product_code": [message]})
        registration = load_form(DonationRegisterIn(), request.form)
        with unit_of_work() as session:
            donation = register_as_user(session, registration)
            donation_id, din = donation.id, donation.din
    except DomainError as error:
        return render_template(
            "donors/register.html",
            form=_typed(),
            error=error.detail,
            errors=error.errors,
            **_product_choices(),
            **CHOICES,
        ), error.status
    flash(
        _(
            "Donation registered with DIN %(din)s; it is in quarantine until QA determines the "
            "donor eligible.",
            din=din,
        ),
        "success",
    )
    return redirect(url_for("donors.donation", donation_id=donation_id))


# --- the donation page and its forms ----------------------------------------------------------


def _donation_page(
    donation: Donation,
    *,
    status: int = 200,
    failed: str | None = None,
    error: DomainError | None = None,
) -> ResponseReturnValue:
    session = db.session
    context: dict[str, Any] = {
        "donation": donation,
        "actions": service.donation_actions(donation),
        "clock": service.processing_clock(donation, now()),
        "panel": service.panel_of(donation),
        "review": service.review_eligibility(donation),
        "events": chain.events_of_donation(session, donation.id),
        "audit_entries": audit.list_entries(
            session, audit.AuditFilter(entity_type="donation", entity_id=str(donation.id))
        ),
        "determination_signatures": signatures.manifest(session, donation.determination)
        if donation.determination
        else [],
        "reopened": [
            (earlier, signatures.manifest(session, earlier))
            for earlier in donation.determinations
            if earlier.reopened_at is not None
        ],
        "recalls": recalls_naming(session, donations=[donation.id]).donation(donation.id),
        "failed": failed,
        "form": _typed() if failed else {},
        "error": error.detail if error else None,
        "errors": error.errors if error else {},
        **CHOICES,
    }
    return render_template("donors/donation.html", **context), status


@blueprint.get("/donations/<int:donation_id>")
@requires(Permission.READ_RECORDS)
def donation(donation_id: int) -> ResponseReturnValue:
    return _donation_page(service.get_donation(db.session, donation_id))


def _post_on_donation(
    donation_id: int, form_name: str, action: Any, done: str
) -> ResponseReturnValue:
    """Run ``action(session, donation)`` in one transaction; on refusal show the page again."""
    try:
        with unit_of_work() as session:
            found = service.get_donation(session, donation_id)
            consequence = action(session, found)
    except NotFound:
        raise
    except DomainError as error:
        db.session.rollback()
        return _donation_page(
            service.get_donation(db.session, donation_id),
            status=error.status,
            failed=form_name,
            error=error,
        )
    flash(done, "success")
    if consequence:  # what the change did beyond itself (a lookback), said loudly
        flash(consequence, "error")
    return redirect(url_for("donors.donation", donation_id=donation_id) + f"#{form_name}")


@blueprint.post("/donations/<int:donation_id>/receipt")
@requires(Permission.REGISTER_DONATIONS)
def receive(donation_id: int) -> ResponseReturnValue:
    def act(session: Any, found: Donation) -> None:
        receive_as_user(session, found, load_form(ReceiptIn(), request.form))

    done = (
        _("Receipt recorded: donation accepted.")
        if request.form.get("decision") == "accept"
        else _("Receipt recorded: donation rejected.")
    )
    return _post_on_donation(donation_id, "receipt", act, done)


@blueprint.post("/donations/<int:donation_id>/processing")
@requires(Permission.REGISTER_DONATIONS)
def start_processing(donation_id: int) -> ResponseReturnValue:
    def act(session: Any, found: Donation) -> None:
        start_processing_as_user(session, found)

    return _post_on_donation(donation_id, "processing", act, _("Processing started."))


@blueprint.post("/donations/<int:donation_id>/results")
@requires(Permission.RECORD_DONOR_TESTS)
def record_result(donation_id: int) -> ResponseReturnValue:
    def act(session: Any, found: Donation) -> str:
        entry = load_form(ResultIn(), request.form)
        return record_result_as_user(session, found, entry).summary()

    code = request.form.get("test_code", "").upper()
    return _post_on_donation(
        donation_id, "results", act, _("Result for %(code)s recorded.", code=code)
    )


@blueprint.post("/donations/<int:donation_id>/results/<int:result_id>/correction")
@requires(Permission.RECORD_DONOR_TESTS)
def correct_result(donation_id: int, result_id: int) -> ResponseReturnValue:
    def act(session: Any, found: Donation) -> str:
        data = load_form(ResultCorrectionIn(), request.form)
        original = result_of(session, found.id, result_id)
        return correct_result_as_user(session, original, data).summary()

    return _post_on_donation(
        donation_id, f"correct-{result_id}", act, _("Result corrected; the original stays visible.")
    )


# --- eligibility --------------------------------------------------------------------------------


@blueprint.get("/donations/<int:donation_id>/eligibility")
@requires(Permission.READ_RECORDS)
def eligibility(donation_id: int) -> ResponseReturnValue:
    """The determination page: every check with a tick or the reason it fails, and the form."""
    return _eligibility_page(service.get_donation(db.session, donation_id))


@blueprint.post("/donations/<int:donation_id>/eligibility")
@requires(Permission.DETERMINE_ELIGIBILITY)
def determine(donation_id: int) -> ResponseReturnValue:
    service.get_donation(db.session, donation_id)  # 404 before anything else
    try:
        data = load_form(DeterminationIn(), request.form)
        with unit_of_work() as session:
            determine_as_user(session, service.get_donation(session, donation_id), data)
    except DomainError as error:
        db.session.rollback()
        found = service.get_donation(db.session, donation_id)
        return _eligibility_page(found, error=error), error.status
    outcome = service.get_donation(db.session, donation_id).eligibility
    flash(_("Signed: donor determined %(outcome)s.", outcome=term(outcome)), "success")
    return redirect(url_for("donors.donation", donation_id=donation_id))


def _eligibility_page(found: Donation, error: DomainError | None = None) -> str:
    return render_template(
        "donors/eligibility.html",
        donation=found,
        review=service.review_eligibility(found),
        meaning=service.DETERMINATION_MEANING,
        determination_signatures=signatures.manifest(db.session, found.determination)
        if found.determination
        else [],
        form=_typed() if error else {},
        error=error.detail if error else None,
        errors=error.errors if error else {},
    )


@blueprint.get("/eligibility")
@requires(Permission.READ_RECORDS)
def eligibility_queue() -> ResponseReturnValue:
    """The donations awaiting QA's determination, longest waiting first, a page at a time."""
    query, notes = page_query(EligibilityQueueIn(), request.args)
    page = eligibility_queue_page(db.session, query, correct=True)
    return render_template(
        "donors/queue.html",
        queue=page.items,
        page=page,
        notes=notes,
        status_options=[(status.value, term(status)) for status in DonationStatus],
        recalls=recalls_naming(db.session, donations=[donation.id for donation, _ in page.items]),
    )


# --- donors ------------------------------------------------------------------------------------


@blueprint.get("/donors/<int:donor_id>")
@requires(Permission.READ_RECORDS)
def donor(donor_id: int) -> ResponseReturnValue:
    return _donor_page(service.get_donor(db.session, donor_id))


def _donor_page(found: Any, error: DomainError | None = None) -> str:
    return render_template(
        "donors/donor.html",
        donor=found,
        audit_entries=audit.list_entries(
            db.session, audit.AuditFilter(entity_type="donor", entity_id=str(found.id))
        ),
        form=_typed() if error else {},
        error=error.detail if error else None,
        errors=error.errors if error else {},
        **CHOICES,
    )


@blueprint.post("/donors/<int:donor_id>/screening")
@requires(Permission.REGISTER_DONATIONS)
def correct_screening(donor_id: int) -> ResponseReturnValue:
    try:
        data = load_form(ScreeningCorrectionIn(), request.form)
        with unit_of_work() as session:
            correct_screening_as_user(session, service.get_donor(session, donor_id), data)
    except NotFound:
        raise
    except DomainError as error:
        db.session.rollback()
        return _donor_page(service.get_donor(db.session, donor_id), error), error.status
    flash(_("Screening outcome corrected; the earlier value stays in the audit trail."), "success")
    return redirect(url_for("donors.donor", donor_id=donor_id))
