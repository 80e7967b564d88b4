"""The batch record of a lot as a PDF document (A4), for review, release and the archive.

A batch record is a GMP record (DOMAIN.md §4, §6): every step with who and when, what went in
and came out, the counts, the material lots and the equipment by ID, then the bags and the
deviations. The PDF shows what :func:`cellchain.manufacturing.processing.batch_record.batch_record`
assembled and decides nothing itself.

It is built from the blocks of :mod:`cellchain.core.pdf`, which holds the choices every printed
document shares (embedded fonts, codes with their check character boxed, counts to three
significant figures, times in the site's zone, the running header and footer with "Page N of
M"). What is the batch record's own:

* The steps are read in tree order, numbered, each naming the steps it came from; a branch of
  the step tree is indented.
* Many units of one donation are listed compactly: the DIN once, then each unit.
* The document carries no signatures: QA review and release are electronic signatures added
  at release; a printed form never imitates one.
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
    Indenter,
    KeepTogether,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from cellchain.chain.models import Unit
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.identifiers import Identifier, parse_identifier
from cellchain.core.pdf import (
    ALERT,
    ALERT_FILL,
    CAUTION_FILL,
    CONTENT_WIDTH,
    Fonts,
    Running,
    Styles,
    build_document,
    display_code,
    document_fonts,
    field_table,
    format_count,
    format_days,
    format_doublings,
    format_number,
    format_passage,
    format_percent,
    format_time,
    format_when_by,
    format_words,
    grid_table,
    make_styles,
    markup,
    paragraph,
    recall_box,
)
from cellchain.manufacturing.models import (
    CellRecord,
    DeviationCategory,
    Equipment,
    EquipmentKind,
    LotStatus,
    ProcessingStep,
    StepKind,
)
from cellchain.manufacturing.processing.batch_record import BatchRecord, StepNode

__all__ = ["render_batch_record_pdf"]

#: how far a branch of the step tree is indented, and at most how many times
BRANCH_INDENT = 6 * mm
MAX_BRANCH_INDENT = 4
#: up to this many units are listed one full code per line; more are listed compactly
FULL_CODE_LIST_MAX = 4

#: the lot's status in words, for the summary and every page's header
STATUS_WORDS: dict[str, LazyText] = {
    LotStatus.QUARANTINE.value: lazy("QUARANTINE — not released for use"),
    LotStatus.RELEASED.value: lazy("RELEASED"),
    LotStatus.REJECTED.value: lazy("REJECTED — not for use"),
}
#: the lot's status in a word, for every page's header (printed in capitals)
STATUS_SHORT: dict[str, LazyText] = {
    LotStatus.QUARANTINE.value: lazy("QUARANTINE"),
    LotStatus.RELEASED.value: lazy("RELEASED"),
    LotStatus.REJECTED.value: lazy("REJECTED"),
}

#: a deviation's status in the deviations table (printed in capitals)
DEVIATION_STATUS_WORDS: dict[str, LazyText] = {
    "open": lazy("open"),
    "closed": lazy("closed"),
}


def header_status(status: str, recalls: Sequence[Any]) -> str:
    """The lot's status and every recall naming it, as every page's header prints them."""
    return " · ".join(
        [
            str(STATUS_SHORT.get(status, status)),
            *(_("recall %(number)s", number=r.number) for r in recalls),
        ]
    )


# --- sections ----------------------------------------------------------------------------------


def _summary(record: BatchRecord, zone: ZoneInfo, styles: Styles) -> list[Flowable]:
    lot, donation, fonts = record.lot, record.donation, styles.fonts
    product = lot.product_definition
    total_cells = sum(cell.cells or 0 for _unit, cell in record.bags)
    status = str(STATUS_WORDS.get(lot.status, lot.status.upper()))
    flags = lot.limit_flags
    pairs: list[tuple[str, Any]] = [
        (_("Lot number"), paragraph(lot.lot_number, styles.field_code)),
        (
            _("Product"),
            paragraph(f"{product.code} v{product.version} — {product.title}", styles.body),
        ),
        (_("Donation (DIN)"), paragraph(display_code(donation.din), styles.field_code)),
        (_("Donor"), paragraph(donation.donor.code, styles.field_code)),
        (
            _("Status"),
            paragraph(status, ParagraphStyle("status", parent=styles.body, fontName=fonts.bold)),
        ),
        (
            _("Made"),
            paragraph(format_when_by(lot.made_at, lot.made_by, zone), styles.body),
        ),
        (_("Final passage"), paragraph(format_passage(lot.final_passage), styles.body)),
        (_("Final CPD"), paragraph(format_doublings(lot.final_cumulative_pd), styles.body)),
        ("DMSO", paragraph(f"{lot.dmso_percent:g} %", styles.body)),
        (
            _("Bags"),
            paragraph(
                _(
                    "%(bags)s, %(cells)s total cells in all",
                    bags=len(record.bags),
                    cells=format_count(total_cells, fonts),
                ),
                styles.body,
            ),
        ),
        (
            _("Deviations"),
            paragraph(
                _(
                    "%(recorded)s recorded, %(open)s open",
                    recorded=len(record.deviations),
                    open=len(record.open_deviations),
                ),
                styles.alert if record.open_deviations else styles.body,
            ),
        ),
        (
            _("Limit flags"),
            paragraph(_("%(count)s — release blocked, see below", count=len(flags)), styles.alert)
            if flags
            else paragraph(_("none"), styles.body),
        ),
    ]
    number = f'<font name="{fonts.mono_bold}">{escape(lot.lot_number)}</font>'
    out: list[Flowable] = [
        Paragraph(
            markup(_("Batch record %(lot)s", lot=number), fonts),
            styles.title,
        ),
        Spacer(1, 3 * mm),
        field_table(pairs, CONTENT_WIDTH, styles, label_width=32 * mm),
    ]
    if flags:
        box = Table(
            [[paragraph(_("Product limits exceeded — release is blocked"), styles.alert)]]
            + [[paragraph(f"• {flag}", styles.alert)] for flag in flags]
            + [[paragraph(_excursion_line(e), styles.alert)] for e in record.excursions],
            colWidths=[CONTENT_WIDTH],
            hAlign="LEFT",
        )
        box.setStyle(
            TableStyle(
                [
                    ("BOX", (0, 0), (-1, -1), 1.4, ALERT),
                    ("BACKGROUND", (0, 0), (-1, -1), ALERT_FILL),
                    ("LEFTPADDING", (0, 0), (-1, -1), 6),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ]
            )
        )
        out += [Spacer(1, 3 * mm), box]
    return out


def _excursion_line(excursion: Any) -> str:
    """A step beyond a limit and the QA authorisation it relied on, in one line."""
    step, authorisation = excursion.step, excursion.authorisation
    who = (
        _(
            "authorised %(limits)s by %(person)s: %(justification)s",
            limits=authorisation.limits_text,
            person=authorisation.authorised_by.full_name,
            justification=authorisation.justification,
        )
        if authorisation
        else _("not authorised")
    )
    signature = _("signature VALID") if excursion.signature_valid else _("signature INVALID")
    return "• " + _(
        "%(step)s beyond the limit (%(exceeded)s) under deviation #%(number)s (%(status)s), "
        "%(who)s (%(signature)s)",
        step=str(step.kind_label),
        exceeded="; ".join(excursion.exceeded),
        number=excursion.deviation.id,
        status=excursion.deviation.status,
        who=who,
        signature=signature,
    )


@dataclass(frozen=True)
class _Numbered:
    """A step in reading order: its number, the steps it came from, how far it is indented."""

    number: int
    node: StepNode
    sources: list[int]
    branch_depth: int


def _walk(roots: Sequence[StepNode]) -> Iterator[StepNode]:
    for node in roots:
        yield node
        yield from _walk(node.children)


def _in_order(roots: Sequence[StepNode]) -> list[_Numbered]:
    """The steps depth-first, numbered 1, 2, 3 … in reading order, each naming its sources.

    A step comes after every step that made one of its inputs: a harvest that pools vessels
    passaged in two branches is read after both branches, not in the middle of the first.
    A straight chain (isolation → P1 → P2 → fill) stays at one level; a step that several
    steps went on from indents each branch; a step that pools branches comes back one level.
    No step is ever left out: one the walk did not reach is added at the end.
    """
    nodes = sorted(_walk(roots), key=lambda n: (n.step.performed_at, n.step.id))
    maker = {unit.id: node for node in nodes for unit in node.outputs}
    sources: dict[int, list[StepNode]] = {}
    dependents: dict[int, list[StepNode]] = {id(node): [] for node in nodes}
    for node in nodes:  # in step order, so each list of dependents is too
        found: list[StepNode] = []
        for unit in node.inputs:
            source = maker.get(unit.id)
            if source is not None and source is not node and all(source is not f for f in found):
                found.append(source)
        sources[id(node)] = found
        for source in found:
            dependents[id(source)].append(node)
    numbers: dict[int, int] = {}
    depths: dict[int, int] = {}
    ordered: list[StepNode] = []

    def visit(node: StepNode, depth: int) -> None:
        numbers[id(node)] = len(ordered) + 1
        depths[id(node)] = depth
        ordered.append(node)
        following = dependents[id(node)]
        for step in following:
            came_from = sources[id(step)]
            if id(step) in numbers or any(id(s) not in numbers for s in came_from):
                continue  # done already, or read after its last source
            if len(came_from) > 1:
                visit(step, max(0, min(depths[id(s)] for s in came_from) - 1))
            else:
                visit(step, depth + (1 if len(following) > 1 else 0))

    starts = [node for node in nodes if not sources[id(node)]]
    for node in starts:
        if id(node) not in numbers:
            visit(node, 1 if len(starts) > 1 else 0)
    for node in nodes:
        if id(node) not in numbers:
            visit(node, 0)
    return [
        _Numbered(
            number=numbers[id(node)],
            node=node,
            sources=sorted(numbers[id(s)] for s in sources[id(node)]),
            branch_depth=depths[id(node)],
        )
        for node in ordered
    ]


def _unit_list(units: Sequence[Unit], styles: Styles) -> Flowable | str:
    """Unit codes in display form; many of one donation compactly: DIN once, then each unit."""
    if not units:
        return "—"
    if len(units) <= FULL_CODE_LIST_MAX:
        return Paragraph("<br/>".join(escape(display_code(u.code)) for u in units), styles.code)
    groups: dict[tuple[str, str], list[Identifier]] = {}
    for unit in units:
        ident = parse_identifier(unit.code)
        groups.setdefault((ident.din, unit.kind_name), []).append(ident)
    parts = []
    for (din, kind), idents in groups.items():
        prefix = f'<font name="{styles.fonts.mono}">{din[:5]} {din[5:7]} {din[7:]}</font>'
        # a non-breaking space keeps each unit's number with its check character
        items = ", ".join(f"{i.body[len(din) :]}\u00a0[{i.check}]" for i in idents)
        parts.append(
            _(
                "%(count)s × %(kind)s of %(din)s:",
                count=len(idents),
                kind=escape(str(kind)),
                din=prefix,
            )
            + f'<br/><font name="{styles.fonts.mono}">{escape(items)}</font>'
        )
    return Paragraph(markup("<br/>".join(parts), styles.fonts), styles.cell)


def _seeded(outputs: Sequence[Unit], records: dict[int, CellRecord], fonts: Fonts) -> str | None:
    """What the new culture vessels hold, grouped: ``8 × CS2 at 1.00 × 10⁷ cells``."""
    groups: dict[tuple[str, float | None], int] = {}
    for unit in outputs:
        cell = records.get(unit.id)
        if cell is None or cell.vessel_format is None:
            continue
        key = (cell.vessel_format, cell.cells)
        groups[key] = groups.get(key, 0) + 1
    if not groups:
        return None
    parts = [
        f"{n} × {fmt} "
        + (
            _("(not counted)")
            if cells is None
            else _("at %(cells)s cells each", cells=format_count(cells, fonts))
        )
        for (fmt, cells), n in groups.items()
    ]
    return "; ".join(parts)


def _step_title(step: ProcessingStep) -> str:
    try:
        return str(StepKind(step.kind).label).capitalize()
    except ValueError:
        return format_words(step.kind).capitalize()


def _step(item: _Numbered, record: BatchRecord, zone: ZoneInfo, styles: Styles) -> list[Flowable]:
    node, step, fonts = item.node, item.node.step, styles.fonts
    indent = min(item.branch_depth, MAX_BRANCH_INDENT) * BRANCH_INDENT
    width = CONTENT_WIDTH - indent
    came_from = ""
    if item.sources:
        numbers = ", ".join(str(n) for n in item.sources)
        came_from = " · " + (
            _("from step %(numbers)s", numbers=numbers)
            if len(item.sources) == 1
            else _("from steps %(numbers)s", numbers=numbers)
        )
    heading = Paragraph(
        markup(
            _("Step %(number)s · %(title)s", number=item.number, title=escape(_step_title(step)))
            + f'<font name="{fonts.text}" size="8" color="#555555">{escape(came_from)}</font>',
            fonts,
        ),
        ParagraphStyle("step", parent=styles.h2, spaceAfter=2),
    )
    pairs: list[tuple[str, Any]] = [
        (
            _("Performed"),
            paragraph(format_when_by(step.performed_at, step.performed_by, zone), styles.body),
        ),
        (_("Recorded"), paragraph(format_time(step.recorded_at, zone), styles.body)),
    ]
    if step.method:
        pairs.append((_("Method"), paragraph(step.method, styles.body)))
    pairs.append((_("Passage"), paragraph(format_passage(step.passage), styles.body)))
    pairs.append((_("Inputs (%(count)s)", count=len(node.inputs)), _unit_list(node.inputs, styles)))
    if node.outputs or step.kind != StepKind.FREEZING.value:
        pairs.append(
            (_("Outputs (%(count)s)", count=len(node.outputs)), _unit_list(node.outputs, styles))
        )
    seeded = _seeded(node.outputs, record.records, fonts)
    if seeded:
        pairs.append((_("Seeded"), paragraph(seeded, styles.body)))
    counted = (
        step.cells_seeded_before,
        step.cells_harvested,
        step.viability_percent,
        step.days_in_culture,
        step.population_doublings,
    )
    harvest = any(value is not None for value in counted)
    if not harvest:  # no counts of its own (isolation, freezing): the CPD it carries on
        pairs.append((_("CPD"), paragraph(format_doublings(step.cumulative_pd), styles.body)))
    block: list[Flowable] = [
        heading,
        field_table(pairs, width, styles, label_width=24 * mm),
    ]
    if harvest:
        block += [
            Spacer(1, 1.5 * mm),
            grid_table(
                [
                    _("Cells seeded before"),
                    _("Cells harvested"),
                    _("Viability"),
                    _("Days in culture"),
                    _("PD"),
                    _("CPD after"),
                ],
                [
                    [
                        format_count(step.cells_seeded_before, fonts),
                        format_count(step.cells_harvested, fonts),
                        format_percent(step.viability_percent),
                        format_days(step.days_in_culture),
                        format_doublings(step.population_doublings),
                        format_doublings(step.cumulative_pd),
                    ]
                ],
                [width / 6] * 6,
                styles,
            ),
        ]
    materials = sorted(
        (row.material_lot for row in step.materials), key=lambda m: (m.material, m.lot_number)
    )
    block.append(Spacer(1, 1.5 * mm))
    if materials:
        block.append(
            grid_table(
                [_("Material"), _("Supplier"), _("Lot number"), _("Expiry")],
                [
                    [
                        paragraph(m.material, styles.cell),
                        paragraph(m.supplier, styles.cell),
                        m.lot_number,
                        m.expiry_date.isoformat(),
                    ]
                    for m in materials
                ],
                [width * 0.38, width * 0.27, width * 0.2, width * 0.15],
                styles,
                mono_columns=[2],
            )
        )
    else:
        block.append(paragraph(_("Materials: none recorded."), styles.small))
    block.append(Spacer(1, 1.5 * mm))
    equipment: list[Equipment] = sorted((row.item for row in step.equipment), key=lambda e: e.code)
    if equipment:
        block.append(
            grid_table(
                [_("Equipment ID"), _("Kind"), _("Name")],
                [
                    [e.code, _equipment_kind(e.kind), paragraph(e.name, styles.cell)]
                    for e in equipment
                ],
                [width * 0.25, width * 0.3, width * 0.45],
                styles,
                mono_columns=[0],
            )
        )
    else:
        block.append(paragraph(_("Equipment: none recorded."), styles.small))
    if step.notes:
        block += [
            Spacer(1, 1.5 * mm),
            paragraph(_("Notes: %(notes)s", notes=step.notes), styles.body),
        ]
    block.append(Spacer(1, 3 * mm))
    if indent:
        return [Indenter(left=indent), KeepTogether(block), Indenter(left=-indent)]
    return [KeepTogether(block)]


def _equipment_kind(kind: str) -> str:
    try:
        return str(EquipmentKind(kind).label)
    except ValueError:
        return format_words(kind)


def _bags(record: BatchRecord, styles: Styles) -> list[Flowable]:
    fonts = styles.fonts
    out: list[Flowable] = [paragraph(_("Bags (%(count)s)", count=len(record.bags)), styles.h1)]
    if not record.bags:
        return [*out, paragraph(_("No bags are on record for this lot."), styles.body)]
    rows = [
        [
            str(number),
            display_code(unit.code),
            format_number(cell.volume_ml),
            format_count(cell.total_cells_per_ml, fonts),
            format_count(cell.cells, fonts),
            format_percent(cell.viability_percent),
            format_count(cell.viable_cells_at_fill, fonts),
        ]
        for number, (unit, cell) in enumerate(record.bags, start=1)
    ]
    widths = [0.06, 0.28, 0.1, 0.15, 0.15, 0.11, 0.15]
    out.append(
        grid_table(
            [
                "#",
                _("Bag"),
                _("Volume (mL)"),
                _("Total cells / mL"),
                _("Total cells"),
                _("Viability at fill"),
                _("Viable cells at fill"),
            ],
            rows,
            [CONTENT_WIDTH * w for w in widths],
            styles,
            mono_columns=[1],
            right_columns=[0, 2, 3, 4, 5, 6],
        )
    )
    return out


def _deviations(record: BatchRecord, zone: ZoneInfo, styles: Styles) -> list[Flowable]:
    out: list[Flowable] = [
        paragraph(_("Deviations (%(count)s)", count=len(record.deviations)), styles.h1)
    ]
    if not record.deviations:
        return [*out, paragraph(_("No deviation is recorded against this lot."), styles.body)]
    rows = []
    extra: list[tuple[Any, ...]] = []
    for index, deviation in enumerate(record.deviations, start=1):
        try:
            category = str(DeviationCategory(deviation.category).label)
        except ValueError:
            category = format_words(deviation.category)
        opened = _(
            "Opened %(when_by)s",
            when_by=format_when_by(deviation.opened_at, deviation.opened_by, zone),
        )
        resolution = deviation.resolution or "—"
        if deviation.closed_at is not None:
            closed = _(
                "Closed %(when_by)s",
                when_by=format_when_by(deviation.closed_at, deviation.closed_by, zone),
            )
            resolution = f"{resolution}\n{closed}"
        rows.append(
            [
                str(deviation.id),
                paragraph(category, styles.cell),
                str(DEVIATION_STATUS_WORDS.get(deviation.status, deviation.status)).upper(),
                Paragraph(
                    markup(
                        escape(deviation.description).replace("\n", "<br/>")
                        + f'<br/><font color="#555555" size="7">{escape(opened)}</font>',
                        styles.fonts,
                    ),
                    styles.cell,
                ),
                Paragraph(
                    markup(escape(resolution).replace("\n", "<br/>"), styles.fonts), styles.cell
                ),
            ]
        )
        if deviation.status == "open":
            extra += [
                ("BACKGROUND", (0, index), (-1, index), CAUTION_FILL),
                ("FONT", (2, index), (2, index), styles.fonts.bold, 8),
                ("TEXTCOLOR", (2, index), (2, index), ALERT),
            ]
    widths = [0.07, 0.14, 0.09, 0.38, 0.32]
    out.append(
        grid_table(
            [_("No."), _("Category"), _("Status"), _("Description"), _("Resolution")],
            rows,
            [CONTENT_WIDTH * w for w in widths],
            styles,
            extra=extra,
        )
    )
    return out


def _signatures(styles: Styles) -> list[Flowable]:
    block: list[Flowable] = [
        paragraph(_("Review and release"), styles.h1),
        paragraph(
            _(
                "QA review and release signatures: none on this document. They are electronic "
                "signatures (printed name, date and time, meaning) applied at QA release and "
                "are not part of this record yet; do not sign this printout."
            ),
            styles.body,
        ),
        Spacer(1, 4 * mm),
        paragraph(_("End of batch record."), styles.small),
    ]
    return [KeepTogether(block)]


def _story(
    record: BatchRecord, zone: ZoneInfo, styles: Styles, recalls: Sequence[Any]
) -> Iterator[Flowable]:
    summary = _summary(record, zone, styles)
    if recalls:  # right under the title, before anything else (issue 16, item 9)
        summary[1:1] = [Spacer(1, 3 * mm), recall_box(recalls, styles)]
    yield from summary
    ordered = _in_order(record.roots)
    yield paragraph(_("Processing steps (%(count)s)", count=len(ordered)), styles.h1)
    if not ordered:
        yield paragraph(_("No processing step is on record."), styles.body)
    for item in ordered:
        yield from _step(item, record, zone, styles)
    yield from _bags(record, styles)
    yield from _deviations(record, zone, styles)
    yield from _signatures(styles)


# --- the document ------------------------------------------------------------------------------


def render_batch_record_pdf(
    record: BatchRecord,
    *,
    site_name: str,
    zone: ZoneInfo,
    generated_at: dt.datetime,
    generated_by: str,
    recalls: Sequence[Any] = (),
) -> bytes:
    """The lot's batch record as an A4 PDF: summary, steps in tree order, bags, deviations.

    ``generated_at`` (aware) and ``generated_by`` (a printed name) are printed on every page:
    a printout is a copy of the record as it stood then, not the record itself. A lot named
    by ``recalls`` says so under the title, in red, and in every page's header.
    """
    fonts = document_fonts()
    styles = make_styles(fonts)
    running = Running.for_lot(
        _("Batch record"),
        site_name=site_name,
        lot_number=record.lot.lot_number,
        din=record.donation.din,
        lot_status=header_status(record.lot.status, recalls),
        zone=zone,
        generated_at=generated_at,
        generated_by=generated_by,
        fonts=fonts,
    )
    return build_document(
        list(_story(record, zone, styles, recalls)),
        running,
        title=_("Batch record %(lot)s", lot=record.lot.lot_number),
        author=site_name,
        subject=_("Batch record of lot %(lot)s", lot=record.lot.lot_number),
    )
