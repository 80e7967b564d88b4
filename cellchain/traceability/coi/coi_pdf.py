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

from cellchain.core.pdf import (
    ALERT,
    ALERT_FILL,
    CONTENT_WIDTH,
    Fonts,
    NumberedCanvas,
    PageHeader,
    Styles,
    build_document,
    field_table,
    format_number,
    format_time,
    grid_table,
    load_fonts,
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
            label=f"Chain-of-identity report · patient {run.study_id} · COI ",
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
        return [head, paragraph("Not signed.", styles.body)]
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
            ["Printed name", "Date and time", "Meaning", "Status"],
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
        paragraph("Chain-of-identity report", styles.title),
        paragraph(
            "From each infusion back to the donor: the bags and the lot, the release, the "
            "donation and the donor's eligibility, the dose and its second check, the "
            "shipment, the thaw, the bedside verification and the infusion.",
            styles.small,
        ),
        Spacer(1, 3 * mm),
        field_table(
            [
                ("Study ID", paragraph(patient.study_id, styles.field_code)),
                ("COI identifier", paragraph(patient.coi.display, styles.field_code)),
                ("Protocol", paragraph(patient.protocol, styles.body)),
                (
                    "Arm",
                    paragraph(
                        f"{patient.arm_name} ({patient.arm})" if patient.arm else patient.arm_name,
                        styles.body,
                    ),
                ),
                ("Status", paragraph(patient.status, styles.body)),
                (
                    "Report",
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
        f"Infusion {part.number} of {count} · visit {part.visit} · "
        f"started {part.infusion.started_at.text}",
        styles.h1,
    )
    for recall in part.recalls:
        yield paragraph(f"RECALL {recall.text} (/recalls/{recall.id})", styles.alert)
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
            "whole bag" if bag.whole_bag else "part",
        ]
        for bag in part.bags
    ]
    return _section(
        "Dose unit and bags",
        [
            _fields([("Prepared dose", _code(part.dose_unit, styles))], styles),
            Spacer(1, 1.5 * mm),
            grid_table(
                ["Bag", "Lot", "Volume drawn (mL)", "Viable cells", "Drawn"],
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
    disposition = "none on record"
    if lot.decision and lot.decided_at:
        disposition = f"{lot.decision} {lot.decided_at.text} by {lot.decided_by}"
    pairs = [
        ("Lot status", lot.status),
        ("Expires", _when(lot.expires_at)),
        ("QA disposition", disposition),
    ]
    if lot.reason:
        pairs.append(("Reason", lot.reason))
    return _section(
        f"Lot {lot.lot_number} and its release",
        [
            _fields([(label, paragraph(value, styles.body)) for label, value in pairs], styles),
            *_signatures("QA release signature", lot.signatures, styles),
        ],
        styles,
    )


def _donation(donation: DonationPart, styles: Styles) -> Flowable:
    eligibility = donation.eligibility
    if donation.determined_at:
        eligibility += f", determined {donation.determined_at.text} by {donation.determined_by}"
    pairs: list[tuple[str, Any]] = [
        ("Donation (DIN)", paragraph(donation.din.display, styles.field_code)),
        ("Donor", paragraph(donation.donor_code, styles.field_code)),
        ("Collected", paragraph(donation.collected_at.text, styles.body)),
        ("Eligibility", paragraph(eligibility, styles.body)),
    ]
    if donation.eligibility_reason:
        pairs.append(("Reason", paragraph(donation.eligibility_reason, styles.body)))
    if donation.reopened_at:
        pairs.append(
            (
                "Re-opened",
                paragraph(f"{donation.reopened_at.text}: {donation.reopened_reason}", styles.alert),
            )
        )
    return _section(
        "Donation and donor eligibility",
        [
            _fields(pairs, styles),
            *_signatures("Eligibility determination signature", donation.signatures, styles),
        ],
        styles,
    )


def _dose(dose: DosePart, styles: Styles) -> Flowable:
    fonts = styles.fonts
    pairs: list[tuple[str, Any]] = [
        (
            "Weight used",
            paragraph(
                f"{format_number(dose.weight_kg)} kg, measured {dose.weight_measured_at.text}",
                styles.body,
            ),
        ),
        ("Target cells", paragraph(_text(dose.target_cells_text, fonts), styles.body)),
        ("Delivered cells", paragraph(_text(dose.delivered_cells_text, fonts), styles.body)),
        ("Volume", paragraph(f"{dose.volume_ml:.1f} mL", styles.body)),
        ("Deviation", paragraph(dose.deviation_text, styles.body)),
        ("Ordered", paragraph(f"{dose.ordered_at.text} by {dose.ordered_by}", styles.body)),
    ]
    if dose.override_reason:
        pairs.append(("Override", paragraph(dose.override_reason, styles.alert)))
    return _section(
        "Dose arithmetic and second check",
        [
            _fields(pairs, styles),
            paragraph("Working", styles.small),
            *[paragraph(f"{n}. {line}", styles.code) for n, line in enumerate(dose.working, 1)],
            Spacer(1, 1.5 * mm),
            *_signatures("Second-check signature", dose.signatures, styles),
        ],
        styles,
    )


def _shipment(shipment: ShipmentPart | None, styles: Styles) -> Flowable:
    title = "Shipment and receipt"
    if shipment is None:
        return _section(
            title, [paragraph("No shipment is on record for this dose.", styles.body)], styles
        )
    received = "not received"
    if shipment.received_at:
        received = f"{shipment.received_at.text} by {shipment.received_by}"
        if shipment.arrival_temperature_c is not None:
            received += f", {shipment.arrival_temperature_c:.1f} °C"
        if shipment.condition:
            received += f", {shipment.condition}"
        if shipment.logger_excursion is not None:
            received += ", logger excursion" if shipment.logger_excursion else ", no excursion"
    pairs = [
        (
            "Shipment",
            f"#{shipment.id}, dry shipper {shipment.shipper_id}, logger {shipment.logger_id}, "
            f"to {shipment.destination} ({shipment.status})",
        ),
        ("Dispatched", f"{shipment.dispatched_at.text} by {shipment.dispatched_by}"),
        ("Received", received),
    ]
    if shipment.hold_reason:
        pairs.append(("Held", shipment.hold_reason))
    if shipment.decision_reason:
        pairs.append(("QA decision", shipment.decision_reason))
    body = [_fields([(label, paragraph(value, styles.body)) for label, value in pairs], styles)]
    if shipment.signatures:
        body += _signatures("QA decision on the held shipment", shipment.signatures, styles)
    return _section(title, body, styles)


def _thaws(thaws: Sequence[ThawLine], styles: Styles) -> Flowable:
    if not thaws:
        return _section("Thaw", [paragraph("No thaw is on record.", styles.body)], styles)
    rows = [
        [
            thaw.code.display,
            paragraph(f"{thaw.started_at.text} by {thaw.started_by}", styles.cell),
            paragraph(
                f"{thaw.completed_at.text} by {thaw.completed_by}" if thaw.completed_at else "—",
                styles.cell,
            ),
        ]
        for thaw in thaws
    ]
    return _section(
        "Thaw",
        [
            grid_table(
                ["Bag", "Started", "Thawed"],
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
            given += f" at {format_number(infusion.rate_ml_per_h)} mL/h"
    pairs = [
        ("Status", infusion.status),
        ("Started", infusion.started_at.text),
        ("Ended", _when(infusion.ended_at)),
        ("Volume and rate", given),
        ("Administered by", infusion.administered_by),
        ("Reaction", infusion.reaction),
    ]
    return _section(
        "Infusion record",
        [_fields([(label, paragraph(value, styles.body)) for label, value in pairs], styles)],
        styles,
    )


def _verification(part: CoiInfusion, styles: Styles) -> Iterator[Flowable]:
    """The go the infusion started from, each check behind it and the two signatures; then
    the dose's other checks (stops stay on record)."""
    title = "Bedside verification"
    verification = part.verification
    if verification is None:
        yield _section(
            title, [paragraph("The signed bedside check is not on record.", styles.alert)], styles
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
    verdict = (
        f"{verification.verdict}, {verification.checked_at.text}, "
        f"scanned by {verification.checked_by}"
    )
    yield _section(
        title,
        [
            _fields([("Verdict", paragraph(verdict, styles.body))], styles),
            Spacer(1, 1.5 * mm),
            grid_table(
                ["Result", "Check", "As seen"],
                rows,
                [CONTENT_WIDTH * w for w in (0.09, 0.36, 0.55)],
                styles,
                extra=extra,
            ),
            Spacer(1, 1.5 * mm),
            *_signatures("Bedside signatures (two people)", verification.signatures, styles),
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
        "Other bedside checks of this dose",
        [
            grid_table(
                ["When", "Check", "By", "What failed"],
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
            f"No infusion is recorded for {report.patient.study_id}: there is nothing to trace.",
            styles.body,
        )
    for part in report.infusions:
        yield from _infusion(part, len(report.infusions), styles)
    yield Spacer(1, 4 * mm)
    yield paragraph("End of chain-of-identity report.", styles.small)


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
    fonts = load_fonts()
    styles = make_styles(fonts)
    invalid = report.invalid_count
    state = (
        f"{invalid} signature{'s' if invalid != 1 else ''} INVALID"
        if invalid
        else "All signatures valid"
    )
    if report.recalls:  # valid signatures are not the whole story under a recall
        state = "RECALL " + ", ".join(recall.number for recall in report.recalls) + " · " + state
    running = CoiRunning(
        site_name=site_name,
        study_id=report.patient.study_id,
        coi=report.patient.coi.display,
        signatures=state,
        alert=report.alert,
        generated=f"{format_time(generated_at, zone)} by {generated_by}",
        zone_name=zone.key,
        fonts=fonts,
    )
    return build_document(
        list(_story(report, styles)),
        running,  # type: ignore[arg-type]  # read by CoiCanvas, not by the lot header
        title=f"Chain-of-identity report {report.patient.study_id}",
        author=site_name,
        canvas=CoiCanvas,
    )
