"""The certificate of analysis of a lot as a PDF document (A4) (DOMAIN.md §5, §6).

The certificate says what was made (product, lot, the donation's DIN), what it was tested for
(each test of the specification with its acceptance criterion, the result and the verdict) and
what QA decided, with the disposition's electronic signature manifested: printed name, date
and time, meaning, and whether the signed content is still what was signed. It shows what
:func:`cellchain.quality.disposition.review` assembled and decides nothing itself: verdicts are
the ones stored with each result, validity is the one the signature manifest computed.

It is built from the blocks of :mod:`cellchain.core.pdf`, as the batch record is (fonts, styles,
code display, counts and times, the running header and footer with "Page N of M"), so the two
read alike. What is the certificate's own:

* A lot QA has not decided on still prints, as a draft for review, under a banner that says
  it is not released and not for clinical use.
* An invalidated result is printed under its test, greyed and marked "invalidated: <reason>":
  a result is never hidden, and the reader sees it does not count.
* Every page's header names the document as "Certificate of analysis".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy.orm import object_session

from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.pdf import (
    ALERT,
    ALERT_FILL,
    CAUTION_FILL,
    CONTENT_WIDTH,
    HEADER_FILL,
    INK,
    MUTED,
    Running,
    Styles,
    build_document,
    display_code,
    document_fonts,
    field_table,
    format_doublings,
    format_passage,
    format_person,
    format_time,
    format_when_by,
    grid_table,
    make_styles,
    markup,
    paragraph,
    recall_box,
)
from cellchain.core.signatures import SignatureManifest
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.processing.batch_record_pdf import STATUS_WORDS, header_status
from cellchain.quality.disposition import Review, TestLine
from cellchain.quality.evaluation import criterion_text
from cellchain.quality.models import Decision, LotDisposition, QcResult, Specification
from cellchain.quality.results import format_value

__all__ = ["NOT_RELEASED", "render_certificate_pdf"]

#: the banner of a lot QA has not decided on
NOT_RELEASED = lazy("NOT RELEASED — NO QA DISPOSITION; NOT FOR CLINICAL USE")
PASS = lazy("Pass")
FAIL = lazy("FAIL – out of specification")
NOT_TESTED = lazy("Not tested")
SIGNATURE_VALID = lazy("VALID")
SIGNATURE_BROKEN = lazy("NO LONGER VALID — signed content changed")
DECISION_WORDS: dict[str, LazyText] = {
    Decision.RELEASED.value: lazy("RELEASED for clinical use"),
    Decision.REJECTED.value: lazy("REJECTED"),
}

#: the results table: test, method, criterion, result, tested on, verdict (fractions of width)
RESULT_HEADER = (
    lazy("Test"),
    lazy("Method"),
    lazy("Acceptance criterion"),
    lazy("Result"),
    lazy("Tested on"),
    lazy("Verdict"),
)
RESULT_WIDTHS = (0.2, 0.17, 0.2, 0.12, 0.12, 0.19)
#: the signatures table
SIGNATURE_HEADER = (
    lazy("Printed name"),
    lazy("User ID"),
    lazy("Signed"),
    lazy("Meaning"),
    lazy("Signature"),
)
SIGNATURE_WIDTHS = (0.2, 0.12, 0.24, 0.22, 0.22)

#: characters the built-in (non-Unicode) fonts lack, and how they are written instead
_ASCII_FALLBACK = str.maketrans({"≥": ">=", "≤": "<="})


# --- styles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Look:
    """The shared document styles and the few the certificate adds."""

    base: Styles
    #: a cell of a result that counts against the lot, or a broken signature
    alarm: ParagraphStyle
    #: a cell of an invalidated result: shown, visibly not counting
    muted: ParagraphStyle
    #: a cell that states something plainly in bold (a pass, a valid signature)
    strong: ParagraphStyle
    #: the disposition banner at the top
    banner: ParagraphStyle
    subtitle: ParagraphStyle


def _look() -> _Look:
    base = make_styles(document_fonts())
    bold = base.fonts.bold
    return _Look(
        base=base,
        alarm=ParagraphStyle("alarm", parent=base.cell, fontName=bold, textColor=ALERT),
        muted=ParagraphStyle("muted", parent=base.cell, textColor=MUTED),
        strong=ParagraphStyle("strong", parent=base.cell, fontName=bold),
        banner=ParagraphStyle(
            "banner", parent=base.body, fontName=bold, fontSize=12, leading=15, textColor=INK
        ),
        subtitle=ParagraphStyle("subtitle", parent=base.body, fontSize=11, leading=14),
    )


def _text(value: str, look: _Look) -> str:
    """Text as the fonts in use can print it: ``≥`` becomes ``>=`` in the built-in fonts."""
    return value if look.base.fonts.unicode else value.translate(_ASCII_FALLBACK)


def _cell(value: str | LazyText, look: _Look, style: ParagraphStyle | None = None) -> Paragraph:
    """A table cell of plain text (escaped), in the cell style unless told otherwise."""
    return paragraph(_text(str(value), look), style or look.base.cell)


# --- the head: what was made, and what QA decided -----------------------------------------------


def _spec_label(spec: Specification | None) -> str:
    return _("none") if spec is None else f"{spec.code} v{spec.version} — {spec.title}"


def _bags(review: Review) -> str | None:
    """How many bags the lot was filled into, when the lot is attached to a session."""
    session = object_session(review.lot)
    if session is None:
        return None
    return _("%(count)s filled", count=len(processing.bags_of(session, review.lot)))


def _summary(review: Review, zone: ZoneInfo, look: _Look) -> Flowable:
    """Product, lot, DIN, status, dates and the lot's manufacturing figures."""
    lot, styles = review.lot, look.base
    product = lot.product_definition
    bold = ParagraphStyle("status", parent=styles.body, fontName=styles.fonts.bold)
    expiry = _("not set") if lot.expires_at is None else format_time(lot.expires_at, zone)
    pairs: list[tuple[str, Any]] = [
        (
            _("Product"),
            paragraph(f"{product.code} v{product.version} — {product.title}", styles.body),
        ),
        (_("Lot number"), paragraph(lot.lot_number, styles.field_code)),
        (_("Donation (DIN)"), paragraph(display_code(review.donation.din), styles.field_code)),
        (_("Lot status"), paragraph(STATUS_WORDS.get(lot.status, lot.status.upper()), bold)),
        (_("Made"), paragraph(format_time(lot.made_at, zone), styles.body)),
        (_("Expiry"), paragraph(expiry, styles.body)),
    ]
    bags = _bags(review)
    if bags is not None:
        pairs.append((_("Bags"), paragraph(bags, styles.body)))
    pairs += [
        (_("Final passage"), paragraph(format_passage(lot.final_passage), styles.body)),
        (_("Cumulative PD"), paragraph(format_doublings(lot.final_cumulative_pd), styles.body)),
        ("DMSO", paragraph(f"{lot.dmso_percent:g} %", styles.body)),
        (
            _("Specification"),
            paragraph(_spec_label(review.specification), styles.body)
            if review.specification
            else paragraph(_("none in force"), styles.alert),
        ),
    ]
    return field_table(pairs, CONTENT_WIDTH, styles, label_width=32 * mm)


def _banner_lines(review: Review, zone: ZoneInfo) -> list[str]:
    """The disposition in a line or two: the first thing a reader sees."""
    decided = review.disposition
    if decided is None:
        return [str(NOT_RELEASED), _("Printed as a draft for review; it certifies nothing.")]
    lines = [
        str(DECISION_WORDS.get(decided.decision, decided.decision.upper())),
        _(
            "by %(person)s, %(when)s",
            person=format_person(decided.decided_by),
            when=format_time(decided.decided_at, zone),
        ),
    ]
    if not review.signatures:
        lines.append(_("No electronic signature is on record for this disposition."))
    elif any(not manifest.valid for manifest in review.signatures):
        lines.append(_("Disposition signature %(state)s", state=SIGNATURE_BROKEN))
    return lines


def _banner(review: Review, zone: ZoneInfo, look: _Look) -> Table:
    """A boxed banner: red unless the lot is released and signed, every signature still valid."""
    decided = review.disposition
    released = decided is not None and decided.decision == Decision.RELEASED.value
    signed = bool(review.signatures) and all(manifest.valid for manifest in review.signatures)
    calm = released and signed
    first, *rest = _banner_lines(review, zone)
    heading = look.banner if calm else ParagraphStyle("alarm", parent=look.banner, textColor=ALERT)
    rows = [[paragraph(first, heading)]] + [[paragraph(line, look.base.body)] for line in rest]
    box = Table(rows, colWidths=[CONTENT_WIDTH], hAlign="LEFT")
    box.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 1.4, INK if calm else ALERT),
                ("BACKGROUND", (0, 0), (-1, -1), HEADER_FILL if calm else ALERT_FILL),
                ("LEFTPADDING", (0, 0), (-1, -1), 6),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ]
        )
    )
    return box


def _head(
    review: Review, site_name: str, zone: ZoneInfo, look: _Look, recalls: Sequence[Any]
) -> list[Flowable]:
    named = [Spacer(1, 3 * mm), recall_box(recalls, look.base)] if recalls else []
    return [
        paragraph(_("Certificate of analysis"), look.base.title),
        paragraph(site_name, look.subtitle),
        *named,
        Spacer(1, 3 * mm),
        _banner(review, zone, look),
        Spacer(1, 3 * mm),
        _summary(review, zone, look),
    ]


# --- the results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One row of a results table, and how it is shaded: pass, fail, missing or invalidated."""

    cells: list[Any]
    kind: str


_SHADE = {"fail": ALERT_FILL, "missing": CAUTION_FILL}


def _criterion(result: QcResult, spec: Specification | None) -> str:
    """The criterion as it read when the result was judged, naming its version if older."""
    if spec is None or result.specification_id == spec.id:
        return result.criterion
    return _(
        "%(criterion)s (v%(version)s)",
        criterion=result.criterion,
        version=result.specification.version,
    )


def _result_row(
    name: str, method: str, result: QcResult, spec: Specification | None, look: _Look
) -> _Row:
    """A valid result: its value and the verdict stored with it."""
    verdict = _cell(PASS, look, look.strong) if result.passes else _cell(FAIL, look, look.alarm)
    return _Row(
        [
            _cell(name, look),
            _cell(method, look),
            _cell(_criterion(result, spec), look),
            _cell(format_value(result), look),
            _cell(result.tested_on.isoformat(), look),
            verdict,
        ],
        "pass" if result.passes else "fail",
    )


def _missing_row(test: dict[str, Any], look: _Look) -> _Row:
    """A test of the specification with no valid result."""
    return _Row(
        [
            _cell(test["name"], look),
            _cell(test.get("method", ""), look),
            _cell(criterion_text(test), look),
            _cell("—", look),
            _cell("—", look),
            _cell(NOT_TESTED, look, look.alarm),
        ],
        "missing",
    )


def _invalidated_row(result: QcResult, zone: ZoneInfo, look: _Look) -> _Row:
    """An earlier result QA set aside: printed in grey, with why, when and by whom."""
    set_aside = format_when_by(result.invalidated_at, result.invalidated_by, zone)
    invalidated = _("invalidated: %(reason)s", reason=result.invalidation_reason or "—")
    verdict = Paragraph(
        markup(
            escape(_text(invalidated, look)) + f'<br/><font size="7">{escape(set_aside)}</font>',
            look.base.fonts,
        ),
        look.muted,
    )
    return _Row(
        [
            _cell(
                _(
                    "%(test)s: earlier result #%(number)s, does not count",
                    test=result.test_name,
                    number=result.id,
                ),
                look,
                look.muted,
            ),
            _cell(result.method, look, look.muted),
            _cell(result.criterion, look, look.muted),
            _cell(format_value(result), look, look.muted),
            _cell(result.tested_on.isoformat(), look, look.muted),
            verdict,
        ],
        "invalidated",
    )


def _line_rows(line: TestLine, review: Review, zone: ZoneInfo, look: _Look) -> list[_Row]:
    """A test of the specification: its valid result (or none), then the invalidated ones."""
    test, result = line.test, line.result
    first = (
        _missing_row(test, look)
        if result is None
        else _result_row(
            test["name"], test.get("method", result.method), result, review.specification, look
        )
    )
    return [first, *(_invalidated_row(earlier, zone, look) for earlier in line.invalidated)]


def _results_table(rows: Sequence[_Row], look: _Look) -> Table:
    extra = [
        ("BACKGROUND", (0, index), (-1, index), _SHADE[row.kind])
        for index, row in enumerate(rows, start=1)
        if row.kind in _SHADE
    ]
    return grid_table(
        RESULT_HEADER,
        [row.cells for row in rows],
        [CONTENT_WIDTH * width for width in RESULT_WIDTHS],
        look.base,
        extra=extra,
    )


def _tests(review: Review, zone: ZoneInfo, look: _Look) -> list[Flowable]:
    """Each test of the specification in force: criterion, result, date and verdict."""
    lines, styles = review.tests, look.base
    out: list[Flowable] = [paragraph(_("Release tests (%(count)s)", count=len(lines)), styles.h1)]
    if review.specification is None:
        none = _("No release specification is in force for this product.")
        return [*out, paragraph(none, styles.alert)]
    out.append(
        paragraph(
            _(
                "Against specification %(code)s v%(version)s. An invalidated result is shown "
                "under its test in grey; it does not count.",
                code=review.specification.code,
                version=review.specification.version,
            ),
            styles.small,
        )
    )
    rows = [row for line in lines for row in _line_rows(line, review, zone, look)]
    return [*out, _results_table(rows, look)]


def _other_results(review: Review, zone: ZoneInfo, look: _Look) -> list[Flowable]:
    """Results of tests the specification in force does not list, if there are any."""
    found = review.other_results
    if not found:
        return []
    rows = [
        _result_row(r.test_name, r.method, r, review.specification, look)
        if r.valid
        else _invalidated_row(r, zone, look)
        for r in found
    ]
    return [
        paragraph(_("Other results (%(count)s)", count=len(found)), look.base.h1),
        paragraph(
            _("Tests the specification in force does not list; shown for completeness."),
            look.base.small,
        ),
        _results_table(rows, look),
    ]


# --- the disposition and its signatures ---------------------------------------------------------


def _signature_row(manifest: SignatureManifest, zone: ZoneInfo, look: _Look) -> list[Any]:
    status = (
        _cell(SIGNATURE_VALID, look, look.strong)
        if manifest.valid
        else _cell(SIGNATURE_BROKEN, look, look.alarm)
    )
    return [
        _cell(manifest.printed_name, look, look.strong),
        Paragraph(escape(manifest.username), look.base.code),
        _cell(f"{format_time(manifest.signed_at, zone)} ({zone.key})", look),
        _cell(manifest.meaning, look),
        status,
    ]


def _signatures(review: Review, zone: ZoneInfo, look: _Look) -> list[Flowable]:
    """Each signature on the disposition, manifested: printed name, when, meaning, validity."""
    if not review.signatures:
        return [
            paragraph(
                _("No electronic signature is on record for this disposition."), look.base.alert
            )
        ]
    extra = [
        ("BACKGROUND", (0, index), (-1, index), ALERT_FILL)
        for index, manifest in enumerate(review.signatures, start=1)
        if not manifest.valid
    ]
    return [
        grid_table(
            SIGNATURE_HEADER,
            [_signature_row(manifest, zone, look) for manifest in review.signatures],
            [CONTENT_WIDTH * width for width in SIGNATURE_WIDTHS],
            look.base,
            extra=extra,
        ),
        Spacer(1, 1.5 * mm),
        paragraph(
            _(
                "Each signature is checked against the signed record as it stood when this "
                "document was generated."
            ),
            look.base.small,
        ),
    ]


def _decision_fields(decided: LotDisposition, zone: ZoneInfo, look: _Look) -> Table:
    styles = look.base
    words = DECISION_WORDS.get(decided.decision, decided.decision.upper())
    pairs: list[tuple[str, Any]] = [
        (
            _("Decision"),
            paragraph(words, ParagraphStyle("d", parent=styles.body, fontName=styles.fonts.bold)),
        ),
        (
            _("Decided"),
            paragraph(format_when_by(decided.decided_at, decided.decided_by, zone), styles.body),
        ),
    ]
    if decided.reason:
        label = _("Reason") if decided.decision == Decision.REJECTED.value else _("Comment")
        pairs.append((label, paragraph(decided.reason, styles.body)))
    pairs.append(
        (_("Reviewed against"), paragraph(_spec_label(decided.specification), styles.body))
    )
    return field_table(pairs, CONTENT_WIDTH, styles, label_width=32 * mm)


def _disposition(review: Review, zone: ZoneInfo, look: _Look) -> list[Flowable]:
    styles = look.base
    block: list[Flowable] = [paragraph(_("QA disposition"), styles.h1)]
    decided = review.disposition
    if decided is None:
        block += [
            paragraph(NOT_RELEASED, ParagraphStyle("none", parent=look.banner, textColor=ALERT)),
            paragraph(
                _(
                    "QA has not released or rejected this lot. This printout is a draft for "
                    "review and carries no signature; do not sign it."
                ),
                styles.body,
            ),
        ]
    else:
        block += [
            _decision_fields(decided, zone, look),
            paragraph(_("Electronic signatures"), styles.h2),
            Spacer(1, 1.5 * mm),
            *_signatures(review, zone, look),
        ]
    block += [Spacer(1, 4 * mm), paragraph(_("End of certificate of analysis."), styles.small)]
    return [KeepTogether(block)]


def _story(
    review: Review, site_name: str, zone: ZoneInfo, look: _Look, recalls: Sequence[Any]
) -> Iterator[Flowable]:
    yield from _head(review, site_name, zone, look, recalls)
    yield from _tests(review, zone, look)
    yield from _other_results(review, zone, look)
    yield from _disposition(review, zone, look)


# --- the document ------------------------------------------------------------------------------


def render_certificate_pdf(
    review: Review,
    *,
    site_name: str,
    zone: ZoneInfo,
    generated_at: dt.datetime,
    generated_by: str,
    recalls: Sequence[Any] = (),
) -> bytes:
    """The lot's certificate of analysis as an A4 PDF: the lot, each test with its criterion,
    result and verdict, and QA's disposition with its signatures manifested.

    A lot without a disposition prints as a draft marked not released. ``generated_at``
    (aware) and ``generated_by`` (a printed name) are printed on every page. A lot named by
    ``recalls`` says so first, in red, and in every page's header (issue 16, item 9).
    """
    look = _look()
    lot = review.lot
    running = Running.for_lot(
        _("Certificate of analysis"),
        site_name=site_name,
        lot_number=lot.lot_number,
        din=review.donation.din,
        lot_status=header_status(lot.status, recalls),
        zone=zone,
        generated_at=generated_at,
        generated_by=generated_by,
        fonts=look.base.fonts,
    )
    return build_document(
        list(_story(review, site_name, zone, look, recalls)),
        running,
        title=_("Certificate of analysis %(lot)s", lot=lot.lot_number),
        author=site_name,
    )
