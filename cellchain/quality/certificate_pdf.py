"""The certificate of analysis of a lot as a PDF document (A4) (DOMAIN.md §5, §6).

The certificate says what was made (product, lot, the donation's DIN), what it was tested for
(each test of the specification with its acceptance criterion, the result and the verdict) and
what QA decided, with the disposition's electronic signature manifested: printed name, date
and time, meaning, and whether the signed content is still what was signed. It shows what
:func:`cellchain.quality.disposition.review` assembled and decides nothing itself: verdicts are
the ones stored with each result, validity is the one the signature manifest computed.

It follows the batch record's conventions (:mod:`cellchain.manufacturing.batch_record_pdf`)
and reuses its fonts, styles, code display and page furniture:

* A lot QA has not decided on still prints, as a draft for review, under a banner that says
  it is not released and not for clinical use.
* An invalidated result is printed under its test, greyed and marked "invalidated: <reason>":
  a result is never hidden, and the reader sees it does not count.
* Every page carries the site, the lot number, its status, "Page N of M" and who generated
  the document when; times are in the site's zone, which each page names.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy.orm import object_session

from cellchain.core.signatures import SignatureManifest
from cellchain.manufacturing import processing
from cellchain.manufacturing.batch_record_pdf import (
    ALERT,
    ALERT_FILL,
    CAUTION_FILL,
    CONTENT_WIDTH,
    FOOTER_HEIGHT,
    HEADER_FILL,
    HEADER_HEIGHT,
    INK,
    MARGIN,
    MUTED,
    PAGE_HEIGHT,
    PAGE_WIDTH,
    RULE,
    STATUS_WORDS,
    _display,
    _doublings,
    _fields,
    _fonts,
    _grid,
    _NumberedCanvas,
    _p,
    _passage,
    _person,
    _Running,
    _Styles,
    _styles,
    _time,
)
from cellchain.quality.disposition import Review, TestLine
from cellchain.quality.evaluation import criterion_text
from cellchain.quality.models import Decision, LotDisposition, QcResult, Specification
from cellchain.quality.results import format_value

__all__ = ["NOT_RELEASED", "render_certificate_pdf"]

#: the banner of a lot QA has not decided on
NOT_RELEASED = "NOT RELEASED — NO QA DISPOSITION; NOT FOR CLINICAL USE"
PASS = "Pass"
FAIL = "FAIL – out of specification"
NOT_TESTED = "Not tested"
SIGNATURE_VALID = "VALID"
SIGNATURE_BROKEN = "NO LONGER VALID — signed content changed"
DECISION_WORDS: dict[str, str] = {
    Decision.RELEASED.value: "RELEASED for clinical use",
    Decision.REJECTED.value: "REJECTED",
}

#: the results table: test, method, criterion, result, tested on, verdict (fractions of width)
RESULT_HEADER = ("Test", "Method", "Acceptance criterion", "Result", "Tested on", "Verdict")
RESULT_WIDTHS = (0.2, 0.17, 0.2, 0.12, 0.12, 0.19)
#: the signatures table
SIGNATURE_HEADER = ("Printed name", "User ID", "Signed", "Meaning", "Signature")
SIGNATURE_WIDTHS = (0.2, 0.12, 0.24, 0.22, 0.22)

#: characters the built-in (non-Unicode) fonts lack, and how they are written instead
_ASCII_FALLBACK = str.maketrans({"≥": ">=", "≤": "<="})


# --- styles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Look:
    """The batch record's styles and the few the certificate adds."""

    base: _Styles
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
    base = _styles(_fonts())
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


def _cell(value: str, look: _Look, style: ParagraphStyle | None = None) -> Paragraph:
    """A table cell of plain text (escaped), in the cell style unless told otherwise."""
    return _p(_text(value, look), style or look.base.cell)


# --- the running header and footer --------------------------------------------------------------


class _CertificateCanvas(_NumberedCanvas):
    """The batch record's numbered canvas, with the certificate's name in the running header."""

    def _draw_running(self, number: int, total: int) -> None:
        run, fonts = self._running, self._running.fonts
        label = "Certificate of analysis · donation "
        top = PAGE_HEIGHT - MARGIN + 2 * mm
        left, right = MARGIN, PAGE_WIDTH - MARGIN
        self.saveState()
        self.setFillColor(INK)
        self.setFont(fonts.bold, 9)
        self.drawString(left, top, run.site_name)
        self.setFont(fonts.text, 8)
        self.drawString(left, top - 4.2 * mm, label)
        self.setFont(fonts.mono, 8)
        self.drawString(left + self.stringWidth(label, fonts.text, 8), top - 4.2 * mm, run.din)
        self.setFont(fonts.mono_bold, 9)
        self.drawRightString(right, top, f"Lot {run.lot_number}")
        self.setFont(fonts.bold, 8)
        self.drawRightString(right, top - 4.2 * mm, run.status)
        self.setStrokeColor(RULE)
        self.setLineWidth(0.6)
        self.line(left, top - 6.5 * mm, right, top - 6.5 * mm)
        bottom = MARGIN - 4 * mm
        self.line(left, bottom + 4 * mm, right, bottom + 4 * mm)
        self.setFillColor(MUTED)
        self.setFont(fonts.text, 7.5)
        self.drawString(left, bottom, f"Generated {run.generated}. Times in {run.zone_name}.")
        self.setFillColor(INK)
        self.setFont(fonts.bold, 8)
        self.drawRightString(right, bottom, f"Page {number} of {total}")
        self.restoreState()


# --- the head: what was made, and what QA decided -----------------------------------------------


def _spec_label(spec: Specification | None) -> str:
    return "none" if spec is None else f"{spec.code} v{spec.version} — {spec.title}"


def _bags(review: Review) -> str | None:
    """How many bags the lot was filled into, when the lot is attached to a session."""
    session = object_session(review.lot)
    if session is None:
        return None
    return f"{len(processing.bags_of(session, review.lot))} filled"


def _summary(review: Review, zone: ZoneInfo, look: _Look) -> Flowable:
    """Product, lot, DIN, status, dates and the lot's manufacturing figures."""
    lot, styles = review.lot, look.base
    product = lot.product_definition
    bold = ParagraphStyle("status", parent=styles.body, fontName=styles.fonts.bold)
    expiry = "not set" if lot.expires_at is None else _time(lot.expires_at, zone)
    pairs: list[tuple[str, Any]] = [
        ("Product", _p(f"{product.code} v{product.version} — {product.title}", styles.body)),
        ("Lot number", _p(lot.lot_number, styles.field_code)),
        ("Donation (DIN)", _p(_display(review.donation.din), styles.field_code)),
        ("Lot status", _p(STATUS_WORDS.get(lot.status, lot.status.upper()), bold)),
        ("Made", _p(_time(lot.made_at, zone), styles.body)),
        ("Expiry", _p(expiry, styles.body)),
    ]
    bags = _bags(review)
    if bags is not None:
        pairs.append(("Bags", _p(bags, styles.body)))
    pairs += [
        ("Final passage", _p(_passage(lot.final_passage), styles.body)),
        ("Cumulative PD", _p(_doublings(lot.final_cumulative_pd), styles.body)),
        ("DMSO", _p(f"{lot.dmso_percent:g} %", styles.body)),
        (
            "Specification",
            _p(_spec_label(review.specification), styles.body)
            if review.specification
            else _p("none in force", styles.alert),
        ),
    ]
    return _fields(pairs, CONTENT_WIDTH, styles, label_width=32 * mm)


def _banner_lines(review: Review, zone: ZoneInfo) -> list[str]:
    """The disposition in a line or two: the first thing a reader sees."""
    decided = review.disposition
    if decided is None:
        return [NOT_RELEASED, "Printed as a draft for review; it certifies nothing."]
    lines = [
        DECISION_WORDS.get(decided.decision, decided.decision.upper()),
        f"by {_person(decided.decided_by)}, {_time(decided.decided_at, zone)}",
    ]
    if not review.signatures:
        lines.append("No electronic signature is on record for this disposition.")
    elif any(not manifest.valid for manifest in review.signatures):
        lines.append(f"Disposition signature {SIGNATURE_BROKEN}")
    return lines


def _banner(review: Review, zone: ZoneInfo, look: _Look) -> Table:
    """A boxed banner: red unless the lot is released and signed, every signature still valid."""
    decided = review.disposition
    released = decided is not None and decided.decision == Decision.RELEASED.value
    signed = bool(review.signatures) and all(manifest.valid for manifest in review.signatures)
    calm = released and signed
    first, *rest = _banner_lines(review, zone)
    heading = look.banner if calm else ParagraphStyle("alarm", parent=look.banner, textColor=ALERT)
    rows = [[_p(first, heading)]] + [[_p(line, look.base.body)] for line in rest]
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


def _head(review: Review, site_name: str, zone: ZoneInfo, look: _Look) -> list[Flowable]:
    return [
        _p("Certificate of analysis", look.base.title),
        _p(site_name, look.subtitle),
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
    return f"{result.criterion} (v{result.specification.version})"


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
    set_aside = f"{_time(result.invalidated_at, zone)} by {_person(result.invalidated_by)}"
    verdict = Paragraph(
        escape(_text(f"invalidated: {result.invalidation_reason or '—'}", look))
        + f'<br/><font size="7">{escape(set_aside)}</font>',
        look.muted,
    )
    return _Row(
        [
            _cell(
                f"{result.test_name}: earlier result #{result.id}, does not count", look, look.muted
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
    return _grid(
        RESULT_HEADER,
        [row.cells for row in rows],
        [CONTENT_WIDTH * width for width in RESULT_WIDTHS],
        look.base,
        extra=extra,
    )


def _tests(review: Review, zone: ZoneInfo, look: _Look) -> list[Flowable]:
    """Each test of the specification in force: criterion, result, date and verdict."""
    lines, styles = review.tests, look.base
    out: list[Flowable] = [_p(f"Release tests ({len(lines)})", styles.h1)]
    if review.specification is None:
        return [*out, _p("No release specification is in force for this product.", styles.alert)]
    out.append(
        _p(
            f"Against specification {review.specification.code} "
            f"v{review.specification.version}. An invalidated result is shown under its test "
            "in grey; it does not count.",
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
        _p(f"Other results ({len(found)})", look.base.h1),
        _p(
            "Tests the specification in force does not list; shown for completeness.",
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
        _cell(f"{_time(manifest.signed_at, zone)} ({zone.key})", look),
        _cell(manifest.meaning, look),
        status,
    ]


def _signatures(review: Review, zone: ZoneInfo, look: _Look) -> list[Flowable]:
    """Each signature on the disposition, manifested: printed name, when, meaning, validity."""
    if not review.signatures:
        return [_p("No electronic signature is on record for this disposition.", look.base.alert)]
    extra = [
        ("BACKGROUND", (0, index), (-1, index), ALERT_FILL)
        for index, manifest in enumerate(review.signatures, start=1)
        if not manifest.valid
    ]
    return [
        _grid(
            SIGNATURE_HEADER,
            [_signature_row(manifest, zone, look) for manifest in review.signatures],
            [CONTENT_WIDTH * width for width in SIGNATURE_WIDTHS],
            look.base,
            extra=extra,
        ),
        Spacer(1, 1.5 * mm),
        _p(
            "Each signature is checked against the signed record as it stood when this document "
            "was generated.",
            look.base.small,
        ),
    ]


def _decision_fields(decided: LotDisposition, zone: ZoneInfo, look: _Look) -> Table:
    styles = look.base
    words = DECISION_WORDS.get(decided.decision, decided.decision.upper())
    pairs: list[tuple[str, Any]] = [
        (
            "Decision",
            _p(words, ParagraphStyle("d", parent=styles.body, fontName=styles.fonts.bold)),
        ),
        (
            "Decided",
            _p(f"{_time(decided.decided_at, zone)} by {_person(decided.decided_by)}", styles.body),
        ),
    ]
    if decided.reason:
        label = "Reason" if decided.decision == Decision.REJECTED.value else "Comment"
        pairs.append((label, _p(decided.reason, styles.body)))
    pairs.append(("Reviewed against", _p(_spec_label(decided.specification), styles.body)))
    return _fields(pairs, CONTENT_WIDTH, styles, label_width=32 * mm)


def _disposition(review: Review, zone: ZoneInfo, look: _Look) -> list[Flowable]:
    styles = look.base
    block: list[Flowable] = [_p("QA disposition", styles.h1)]
    decided = review.disposition
    if decided is None:
        block += [
            _p(NOT_RELEASED, ParagraphStyle("none", parent=look.banner, textColor=ALERT)),
            _p(
                "QA has not released or rejected this lot. This printout is a draft for review "
                "and carries no signature; do not sign it.",
                styles.body,
            ),
        ]
    else:
        block += [
            _decision_fields(decided, zone, look),
            _p("Electronic signatures", styles.h2),
            Spacer(1, 1.5 * mm),
            *_signatures(review, zone, look),
        ]
    block += [Spacer(1, 4 * mm), _p("End of certificate of analysis.", styles.small)]
    return [KeepTogether(block)]


def _story(review: Review, site_name: str, zone: ZoneInfo, look: _Look) -> Iterator[Flowable]:
    yield from _head(review, site_name, zone, look)
    yield from _tests(review, zone, look)
    yield from _other_results(review, zone, look)
    yield from _disposition(review, zone, look)


# --- the document ------------------------------------------------------------------------------


def _build(story: list[Flowable], running: _Running, *, title: str, author: str) -> bytes:
    """Lay ``story`` out on A4 pages framed as the batch record's, each with the running head."""
    buffer = io.BytesIO()
    top = MARGIN + HEADER_HEIGHT - 4 * mm
    bottom = MARGIN + FOOTER_HEIGHT - 4 * mm
    # A frame without padding: the tables' widths are exactly the text's width.
    frame = Frame(
        MARGIN,
        bottom,
        CONTENT_WIDTH,
        PAGE_HEIGHT - top - bottom,
        leftPadding=0,
        rightPadding=0,
        topPadding=0,
        bottomPadding=0,
        id="content",
    )
    document = BaseDocTemplate(
        buffer,
        pagesize=A4,
        pageTemplates=[PageTemplate(id="certificate", frames=[frame])],
        title=title,
        author=author,
        subject=title,
        creator="cellchain",
    )
    document.build(story, canvasmaker=functools.partial(_CertificateCanvas, running=running))
    return buffer.getvalue()


def render_certificate_pdf(
    review: Review,
    *,
    site_name: str,
    zone: ZoneInfo,
    generated_at: dt.datetime,
    generated_by: str,
) -> bytes:
    """The lot's certificate of analysis as an A4 PDF: the lot, each test with its criterion,
    result and verdict, and QA's disposition with its signatures manifested.

    A lot without a disposition prints as a draft marked not released. ``generated_at``
    (aware) and ``generated_by`` (a printed name) are printed on every page.
    """
    look = _look()
    lot = review.lot
    running = _Running(
        site_name=site_name,
        lot_number=lot.lot_number,
        din=_display(review.donation.din),
        status=f"Status: {lot.status.upper()}",
        generated=f"{_time(generated_at, zone)} by {generated_by}",
        zone_name=zone.key,
        fonts=look.base.fonts,
    )
    return _build(
        list(_story(review, site_name, zone, look)),
        running,
        title=f"Certificate of analysis {lot.lot_number}",
        author=site_name,
    )
