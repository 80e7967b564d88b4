"""The chain-of-identity report of a patient as a PDF document (A4), for the file and for an
inspector.

The PDF prints what :func:`cellchain.traceability.coi.coi.patient_report` prepared and decides
nothing itself; the web page shows the same report. It is built from the blocks of
:mod:`cellchain.core.pdf` (embedded fonts, codes with the check character boxed, times in the
site's zone, "Page N of M"), so it reads like the batch record and the certificate.

What is its own:

* Every page names the patient by study ID and chain-of-identity identifier (never a name or
  a record number) and says whether every signature in the report still holds, so a page
  taken out of the file still says whose it is and whether it can be trusted.
* Every signature is a row of printed name, date and time, meaning and status; a signature
  whose signed content changed since signing is printed ``INVALID — signed content changed``
  on a red ground.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Spacer,
)

from cellchain.core.i18n import _, ngettext
from cellchain.core.pdf import (
    ALERT,
    ALERT_FILL,
    CONTENT_WIDTH,
    Fonts,
    NumberedCanvas,
    PageHeader,
    Styles,
    build_document,
    document_fonts,
    field_table,
    format_number,
    format_time,
    grid_table,
    make_styles,
    paragraph,
)
from cellchain.traceability.coi.coi import (
    Code,
    CoiInfusion,
    CoiReport,
    DonationPart,
    DosePart,
    InfusionPart,
    LotPart,
    ManifestedSignature,
    Moment,
    ShipmentPart,
    ThawLine,
)

__all__ = ["render_coi_report_pdf"]

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_POWER = re.compile(r"10([⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+)")
LABEL_WIDTH = 34 * mm


# --- the running header and footer --------------------------------------------------------------


@dataclass(frozen=True)
class CoiRunning:
    """What every page of the report shows around the content."""

    site_name: str
    study_id: str
    coi: str  #: display form, check character boxed
    signatures: str  #: "all signatures valid" or "N signatures INVALID"
    alert: bool
    generated: str
    zone_name: str
    fonts: Fonts


class CoiCanvas(NumberedCanvas):
    """The shared numbered canvas with the report's own header: the patient, not a lot."""

    def header(self) -> PageHeader:
        # build_document hands this canvas the report's CoiRunning in place of a lot's Running
        run: CoiRunning = self._running  # type: ignore[assignment]
        return PageHeader(
            label=_(
                "Chain-of-identity report · patient %(study_id)s · COI ", study_id=run.study_id
            ),
            code=run.coi,
            title=run.study_id,
            status=run.signatures,
            alert=run.alert,
        )


# --- pieces ------------------------------------------------------------------------------------


def _text(value: str, fonts: Fonts) -> str:
    """Counts prepared with superscript powers (``7.02 × 10⁷``) as the fonts can print them:
    the built-in fonts have no superscript digits, so they get ``10^7``."""
    if fonts.unicode:
        return value
    return _POWER.sub(lambda m: "10^" + m.group(1).translate(_SUPERSCRIPTS), value)


def _when(moment: Moment | None) -> str:
    return "—" if moment is None else moment.text


def _code(code: Code | None, styles: Styles) -> Flowable | str:
    return "—" if code is None else paragraph(code.display, styles.field_code)


def _signatures(
    title: str, signatures: Sequence[ManifestedSignature], styles: Styles
) -> list[Flowable]:
    """The signatures on one record, manifested; an invalid one on a red ground."""
    head = paragraph(title, styles.small)
    if not signatures:
        return [head, paragraph(_("Not signed."), styles.body)]
    invalid = ParagraphStyle("invalid", parent=styles.head, fontSize=8, textColor=ALERT)
    extra: list[tuple[Any, ...]] = []
    rows = []
    for index, sig in enumerate(signatures, start=1):
        rows.append(
            [
                paragraph(f"{sig.printed_name} ({sig.username})", styles.cell),
                paragraph(sig.signed_at.text, styles.cell),
                paragraph(sig.meaning, styles.cell),
                paragraph(sig.status, styles.head if sig.valid else invalid),
            ]
        )
        if not sig.valid:
            extra.append(("BACKGROUND", (0, index), (-1, index), ALERT_FILL))
    widths = [0.22, 0.24, 0.31, 0.23]
    return [
        head,
        grid_table(
            [_("Printed name"), _("Date and time"), _("Meaning"), _("Status")],
            rows,
            [CONTENT_WIDTH * w for w in widths],
            styles,
            extra=extra,
        ),
    ]


def _section(title: str, body: list[Flowable], styles: Styles) -> Flowable:
    """A titled part of an infusion, kept on one page where it fits."""
    return KeepTogether([paragraph(title, styles.h2), Spacer(1, 1 * mm), *body])


def _fields(pairs: Sequence[tuple[str, Any]], styles: Styles) -> Flowable:
    return field_table(pairs, CONTENT_WIDTH, styles, label_width=LABEL_WIDTH)


def _summary(report: CoiReport, styles: Styles) -> list[Flowable]:
    patient = report.patient
    return [
        paragraph(_("Chain-of-identity report"), styles.title),
        paragraph(
            _(
                "From each infusion back to the donor: the bags and the lot, the release, the "
                "donation and the donor's eligibility, the dose and its second check, the "
                "shipment, the thaw, the bedside verification and the infusion."
            ),
            styles.small,
        ),
        Spacer(1, 3 * mm),
        field_table(
            [
                (_("Study ID"), paragraph(patient.study_id, styles.field_code)),
                (_("COI identifier"), paragraph(patient.coi.display, styles.field_code)),
                (_("Protocol"), paragraph(patient.protocol, styles.body)),
                (
                    _("Arm"),
                    paragraph(
                        f"{patient.arm_name} ({patient.arm})" if patient.arm else patient.arm_name,
                        styles.body,
                    ),
                ),
                (_("Status"), paragraph(patient.status, styles.body)),
                (
                    _("Report"),
                    paragraph(report.summary, styles.alert if report.alert else styles.body),
                ),
            ],
            CONTENT_WIDTH,
            styles,
            label_width=LABEL_WIDTH,
        ),
    ]


def _infusion(part: CoiInfusion, count: int, styles: Styles) -> Iterator[Flowable]:
    """One infusion, read from the bedside back to the donor and on to the infusion record."""
    yield paragraph(
        _(
            "Infusion %(number)s of %(count)s · visit %(visit)s · started %(started)s",
            number=part.number,
            count=count,
            visit=part.visit,
            started=part.infusion.started_at.text,
        ),
        styles.h1,
    )
    for recall in part.recalls:
        yield paragraph(
            _(
                "RECALL %(recall)s (%(link)s)",
                recall=recall.text,
                link="/recalls/" + str(recall.id),
            ),
            styles.alert,
        )
    yield _bags(part, styles)
    for lot in part.lots:
        yield _lot(lot, styles)
    yield _donation(part.donation, styles)
    yield _dose(part.dose, styles)
    yield _shipment(part.shipment, styles)
    yield _thaws(part.thaws, styles)
    yield from _verification(part, styles)
    yield _infusion_record(part.infusion, styles)


def _bags(part: CoiInfusion, styles: Styles) -> Flowable:
    rows = [
        [
            bag.code.display,
            bag.lot_number or "—",
            format_number(bag.volume_ml),
            _text(bag.cells_text, styles.fonts),
            _("whole bag") if bag.whole_bag else _("part"),
        ]
        for bag in part.bags
    ]
    return _section(
        _("Dose unit and bags"),
        [
            _fields([(_("Prepared dose"), _code(part.dose_unit, styles))], styles),
            Spacer(1, 1.5 * mm),
            grid_table(
                [_("Bag"), _("Lot"), _("Volume drawn (mL)"), _("Viable cells"), _("Drawn")],
                rows,
                [CONTENT_WIDTH * w for w in (0.34, 0.28, 0.14, 0.14, 0.10)],
                styles,
                mono_columns=[0, 1],
                right_columns=[2, 3],
            ),
        ],
        styles,
    )


def _lot(lot: LotPart, styles: Styles) -> Flowable:
    disposition = _("none on record")
    if lot.decision and lot.decided_at:
        disposition = _(
            "%(decision)s %(when)s by %(person)s",
            decision=lot.decision,
            when=lot.decided_at.text,
            person=lot.decided_by,
        )
    pairs = [
        (_("Lot status"), lot.status),
        (_("Expires"), _when(lot.expires_at)),
        (_("QA disposition"), disposition),
    ]
    if lot.reason:
        pairs.append((_("Reason"), lot.reason))
    return _section(
        _("Lot %(number)s and its release", number=lot.lot_number),
        [
            _fields([(label, paragraph(value, styles.body)) for label, value in pairs], styles),
            *_signatures(_("QA release signature"), lot.signatures, styles),
        ],
        styles,
    )


def _donation(donation: DonationPart, styles: Styles) -> Flowable:
    eligibility = donation.eligibility
    if donation.determined_at:
        eligibility += _(
            ", determined %(when)s by %(person)s",
            when=donation.determined_at.text,
            person=donation.determined_by,
        )
    pairs: list[tuple[str, Any]] = [
        (_("Donation (DIN)"), paragraph(donation.din.display, styles.field_code)),
        (_("Donor"), paragraph(donation.donor_code, styles.field_code)),
        (_("Collected"), paragraph(donation.collected_at.text, styles.body)),
        (_("Eligibility"), paragraph(eligibility, styles.body)),
    ]
    if donation.eligibility_reason:
        pairs.append((_("Reason"), paragraph(donation.eligibility_reason, styles.body)))
    if donation.reopened_at:
        pairs.append(
            (
                _("Re-opened"),
                paragraph(f"{donation.reopened_at.text}: {donation.reopened_reason}", styles.alert),
            )
        )
    return _section(
        _("Donation and donor eligibility"),
        [
            _fields(pairs, styles),
            *_signatures(_("Eligibility determination signature"), donation.signatures, styles),
        ],
        styles,
    )


def _dose(dose: DosePart, styles: Styles) -> Flowable:
    fonts = styles.fonts
    pairs: list[tuple[str, Any]] = [
        (
            _("Weight used"),
            paragraph(
                _(
                    "%(weight)s kg, measured %(when)s",
                    weight=format_number(dose.weight_kg),
                    when=dose.weight_measured_at.text,
                ),
                styles.body,
            ),
        ),
        (_("Target cells"), paragraph(_text(dose.target_cells_text, fonts), styles.body)),
        (_("Delivered cells"), paragraph(_text(dose.delivered_cells_text, fonts), styles.body)),
        (_("Volume"), paragraph(f"{dose.volume_ml:.1f} mL", styles.body)),
        (_("Deviation"), paragraph(dose.deviation_text, styles.body)),
        (
            _("Ordered"),
            paragraph(
                _(
                    "%(when)s by %(person)s",
                    when=dose.ordered_at.text,
                    person=dose.ordered_by,
                ),
                styles.body,
            ),
        ),
    ]
    if dose.override_reason:
        pairs.append((_("Override"), paragraph(dose.override_reason, styles.alert)))
    return _section(
        _("Dose arithmetic and second check"),
        [
            _fields(pairs, styles),
            paragraph(_("Working"), styles.small),
            *[paragraph(f"{n}. {line}", styles.code) for n, line in enumerate(dose.working, 1)],
            Spacer(1, 1.5 * mm),
            *_signatures(_("Second-check signature"), dose.signatures, styles),
        ],
        styles,
    )


def _shipment(shipment: ShipmentPart | None, styles: Styles) -> Flowable:
    title = _("Shipment and receipt")
    if shipment is None:
        return _section(
            title, [paragraph(_("No shipment is on record for this dose."), styles.body)], styles
        )
    received = _("not received")
    if shipment.received_at:
        received = _(
            "%(when)s by %(person)s",
            when=shipment.received_at.text,
            person=shipment.received_by,
        )
        if shipment.arrival_temperature_c is not None:
            received += f", {shipment.arrival_temperature_c:.1f} °C"
        if shipment.condition:
            received += f", {shipment.condition}"
        if shipment.logger_excursion is not None:
            received += ", " + (
                _("logger excursion") if shipment.logger_excursion else _("no excursion")
            )
    pairs = [
        (
            _("Shipment"),
            _(
                "#%(number)s, dry shipper %(shipper)s, logger %(logger)s, to %(destination)s "
                "(%(status)s)",
                number=shipment.id,
                shipper=shipment.shipper_id,
                logger=shipment.logger_id,
                destination=shipment.destination,
                status=shipment.status,
            ),
        ),
        (
            _("Dispatched"),
            _(
                "%(when)s by %(person)s",
                when=shipment.dispatched_at.text,
                person=shipment.dispatched_by,
            ),
        ),
        (_("Received"), received),
    ]
    if shipment.hold_reason:
        pairs.append((_("Held"), shipment.hold_reason))
    if shipment.decision_reason:
        pairs.append((_("QA decision"), shipment.decision_reason))
    body = [_fields([(label, paragraph(value, styles.body)) for label, value in pairs], styles)]
    if shipment.signatures:
        body += _signatures(_("QA decision on the held shipment"), shipment.signatures, styles)
    return _section(title, body, styles)


def _thaws(thaws: Sequence[ThawLine], styles: Styles) -> Flowable:
    if not thaws:
        return _section(_("Thaw"), [paragraph(_("No thaw is on record."), styles.body)], styles)
    rows = [
        [
            thaw.code.display,
            paragraph(
                _("%(when)s by %(person)s", when=thaw.started_at.text, person=thaw.started_by),
                styles.cell,
            ),
            paragraph(
                _(
                    "%(when)s by %(person)s",
                    when=thaw.completed_at.text,
                    person=thaw.completed_by,
                )
                if thaw.completed_at
                else "—",
                styles.cell,
            ),
        ]
        for thaw in thaws
    ]
    return _section(
        _("Thaw"),
        [
            grid_table(
                [_("Bag"), _("Started"), _("Thawed")],
                rows,
                [CONTENT_WIDTH * w for w in (0.34, 0.33, 0.33)],
                styles,
                mono_columns=[0],
            )
        ],
        styles,
    )


def _infusion_record(infusion: InfusionPart, styles: Styles) -> Flowable:
    given = "—"
    if infusion.volume_infused_ml is not None:
        given = f"{infusion.volume_infused_ml:.1f} mL"
        if infusion.rate_ml_per_h is not None:
            given = _(
                "%(volume)s at %(rate)s mL/h",
                volume=given,
                rate=format_number(infusion.rate_ml_per_h),
            )
    pairs = [
        (_("Status"), infusion.status),
        (_("Started"), infusion.started_at.text),
        (_("Ended"), _when(infusion.ended_at)),
        (_("Volume and rate"), given),
        (_("Administered by"), infusion.administered_by),
        (_("Reaction"), infusion.reaction),
    ]
    return _section(
        _("Infusion record"),
        [_fields([(label, paragraph(value, styles.body)) for label, value in pairs], styles)],
        styles,
    )


def _verification(part: CoiInfusion, styles: Styles) -> Iterator[Flowable]:
    """The go the infusion started from, each check behind it and the two signatures; then
    the dose's other checks (stops stay on record)."""
    title = _("Bedside verification")
    verification = part.verification
    if verification is None:
        yield _section(
            title,
            [paragraph(_("The signed bedside check is not on record."), styles.alert)],
            styles,
        )
        return
    extra: list[tuple[Any, ...]] = []
    rows = []
    for index, check in enumerate(verification.checks, start=1):
        rows.append(
            [
                check.result,
                paragraph(check.title, styles.cell),
                paragraph(check.detail, styles.cell),
            ]
        )
        if not check.passed:
            extra.append(("TEXTCOLOR", (0, index), (0, index), ALERT))
    verdict = _(
        "%(verdict)s, %(when)s, scanned by %(person)s",
        verdict=verification.verdict,
        when=verification.checked_at.text,
        person=verification.checked_by,
    )
    yield _section(
        title,
        [
            _fields([(_("Verdict"), paragraph(verdict, styles.body))], styles),
            Spacer(1, 1.5 * mm),
            grid_table(
                [_("Result"), _("Check"), _("As seen")],
                rows,
                [CONTENT_WIDTH * w for w in (0.09, 0.36, 0.55)],
                styles,
                extra=extra,
            ),
            Spacer(1, 1.5 * mm),
            *_signatures(_("Bedside signatures (two people)"), verification.signatures, styles),
        ],
        styles,
    )
    if not verification.others:
        return
    others = [
        [
            paragraph(other.checked_at.text, styles.cell),
            paragraph(other.label, styles.cell),
            paragraph(other.checked_by, styles.cell),
            paragraph(other.failed or "—", styles.cell),
        ]
        for other in verification.others
    ]
    yield _section(
        _("Other bedside checks of this dose"),
        [
            grid_table(
                [_("When"), _("Check"), _("By"), _("What failed")],
                others,
                [CONTENT_WIDTH * w for w in (0.2, 0.18, 0.2, 0.42)],
                styles,
            )
        ],
        styles,
    )


def _story(report: CoiReport, styles: Styles) -> Iterator[Flowable]:
    yield from _summary(report, styles)
    if report.empty:
        yield Spacer(1, 4 * mm)
        yield paragraph(
            _(
                "No infusion is recorded for %(study_id)s: there is nothing to trace.",
                study_id=report.patient.study_id,
            ),
            styles.body,
        )
    for part in report.infusions:
        yield from _infusion(part, len(report.infusions), styles)
    yield Spacer(1, 4 * mm)
    yield paragraph(_("End of chain-of-identity report."), styles.small)


# --- the document ------------------------------------------------------------------------------


def render_coi_report_pdf(
    report: CoiReport,
    *,
    site_name: str,
    zone: ZoneInfo,
    generated_at: dt.datetime,
    generated_by: str,
) -> bytes:
    """The report as an A4 PDF. ``generated_at`` (aware) and ``generated_by`` (a printed name)
    are printed on every page: a printout is a copy of the record as it stood then."""
    fonts = document_fonts()
    styles = make_styles(fonts)
    invalid = report.invalid_count
    state = (
        ngettext("%(num)d signature INVALID", "%(num)d signatures INVALID", invalid)
        if invalid
        else _("All signatures valid")
    )
    if report.recalls:  # valid signatures are not the whole story under a recall
        numbers = ", ".join(recall.number for recall in report.recalls)
        state = _("RECALL %(numbers)s", numbers=numbers) + " · " + state
    running = CoiRunning(
        site_name=site_name,
        study_id=report.patient.study_id,
        coi=report.patient.coi.display,
        signatures=state,
        alert=report.alert,
        generated=_(
            "%(when)s by %(person)s", when=format_time(generated_at, zone), person=generated_by
        ),
        zone_name=zone.key,
        fonts=fonts,
    )
    return build_document(
        list(_story(report, styles)),
        running,  # type: ignore[arg-type]  # read by CoiCanvas, not by the lot header
        title=_("Chain-of-identity report %(study_id)s", study_id=report.patient.study_id),
        author=site_name,
        canvas=CoiCanvas,
    )
