"""The DSMB summary as an A4 PDF, built from the blocks of :mod:`cellchain.core.pdf` (embedded
fonts, "Page N of M", who generated it and when on every page), printing the tables
:func:`cellchain.trial_data.dsmb.summary_tables` prepared. Every page says it is unblinded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Spacer

from cellchain.core.i18n import _
from cellchain.core.pdf import (
    CONTENT_WIDTH,
    Fonts,
    NumberedCanvas,
    PageHeader,
    build_document,
    document_fonts,
    field_table,
    format_time,
    grid_table,
    make_styles,
    paragraph,
)
from cellchain.trial_data.dsmb import TrialSummary, summary_tables

__all__ = ["render_dsmb_pdf"]


@dataclass(frozen=True)
class DsmbRunning:
    """What every page shows around the content."""

    site_name: str
    protocol_code: str
    generated: str
    zone_name: str
    fonts: Fonts


class DsmbCanvas(NumberedCanvas):
    """The shared numbered canvas with the summary's own header: the trial, unblinded."""

    def header(self) -> PageHeader:
        run: DsmbRunning = self._running  # type: ignore[assignment]
        return PageHeader(
            label=_("DSMB summary · trial "),
            code=run.protocol_code,
            title=run.protocol_code,
            status=_("UNBLINDED: counts by arm"),
            alert=True,
        )


def render_dsmb_pdf(
    summary: TrialSummary,
    *,
    site_name: str,
    zone: ZoneInfo,
    generated_at: dt.datetime,
    generated_by: str,
) -> bytes:
    """The summary as an A4 PDF, with who generated it (a printed name) and when."""
    fonts = document_fonts()
    styles = make_styles(fonts)
    planned = "—" if summary.planned_enrolment is None else str(summary.planned_enrolment)
    randomization = (
        summary.schedule.describe(format_time(summary.schedule.signed_at, zone))
        if summary.schedule
        else _("no schedule signed")
    )
    story: list[Flowable] = [
        paragraph(_("DSMB summary"), styles.title),
        paragraph(
            _(
                "Enrolment, doses, deviations and adverse events by arm. Unblinded: for the "
                "Data and Safety Monitoring Board only. Counts only; no subject is named."
            ),
            styles.small,
        ),
        Spacer(1, 3 * mm),
        field_table(
            [
                (
                    _("Trial"),
                    paragraph(f"{summary.protocol_code}: {summary.protocol_title}", styles.body),
                ),
                (_("Planned enrolment"), paragraph(planned, styles.body)),
                (_("Enrolled"), paragraph(str(summary.enrolled), styles.body)),
                (_("Ratio"), paragraph(summary.ratio or "—", styles.body)),
                (_("Randomization"), paragraph(randomization, styles.body)),
                (_("As of"), paragraph(format_time(summary.as_of, zone), styles.body)),
            ],
            CONTENT_WIDTH,
            styles,
            label_width=40 * mm,
        ),
    ]
    for table in summary_tables(summary):
        columns = len(table.header)
        first = 0.28 if columns > 3 else 0.5
        widths = [CONTENT_WIDTH * first] + [CONTENT_WIDTH * (1 - first) / (columns - 1)] * (
            columns - 1
        )
        rows = table.rows or ((_("No subject enrolled."), *([""] * (columns - 1))),)
        story.append(
            KeepTogether(
                [
                    paragraph(table.title, styles.h1),
                    grid_table(
                        list(table.header),
                        [list(row) for row in rows],
                        widths,
                        styles,
                        right_columns=range(1, columns),
                    ),
                ]
            )
        )
    running = DsmbRunning(
        site_name=site_name,
        protocol_code=summary.protocol_code,
        generated=_(
            "%(when)s by %(person)s", when=format_time(generated_at, zone), person=generated_by
        ),
        zone_name=zone.key,
        fonts=fonts,
    )
    return build_document(
        story,
        running,  # type: ignore[arg-type]  # read by DsmbCanvas, not by the lot header
        title=_("DSMB summary %(protocol)s", protocol=summary.protocol_code),
        author=site_name,
        canvas=DsmbCanvas,
    )
