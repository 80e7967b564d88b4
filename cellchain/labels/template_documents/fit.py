""" "Nothing cut" as a check of a label template (issue 21's rule, issue 22's check).

A template version is laid out, before it is written or signed, with the longest values the
records take and every status marking a unit of its kind can carry, in English and, where the
Chinese font is installed, in English and Chinese (``CELLCHAIN_LABEL_LANGUAGES=en,zh_Hans``):
a field whose text would be cut refuses the template. Every unit kind the template lists is
laid out, the prepared dose too: its label (study ID, COI, visit, cells, volume, bags) is
composed by ``content.dose_label_of`` from a dose order, patient and protocol at their longest.
The records are plain objects carrying those values (as ``tests/labels/test_label_fit.py``
builds them), so no database is read. A case is named in the reader's language (``Cut``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from cellchain.chain.models import UNIT_KIND_NAMES, UnitKind, UnitStatus
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.identifiers import make_coi, make_din, make_unit_code
from cellchain.core.pdf import cjk_font_path
from cellchain.donors.models import Eligibility
from cellchain.labels import content
from cellchain.labels.content import IsbtSettings, wristband_for
from cellchain.labels.layout import lay_out
from cellchain.labels.templates import LabelTemplate
from cellchain.manufacturing.defaults import UC_MSC_TITLE

ZONE = ZoneInfo("Asia/Shanghai")  # +08:00: as long as any offset
ENGLISH = ("en",)
BILINGUAL = ("en", "zh_Hans")
#: the longest values the records take: a six-digit donation sequence, unit 9999, lot 99,
#: passage 12, two recalls, a study ID and a protocol code at their longest
DIN = make_din("X9999", 26, 123456)
LOT_NUMBER = f"{DIN.canonical}-L99"
COI = make_coi("X9999", 26, 123456)
STUDY_ID = "NCT01420432-SHANGHAI-RJH-00127"
PROTOCOL_CODE = "NCT01420432-UCMSC-GVHD-PHASE2-CHINA-2026"
RECALLS = "RC-2026-0001, RC-2026-0012"
WHEN = dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)
SITE = "Shanghai First Maternity and Infant Hospital, L&D 3"
#: a dose order at its longest: a visit code of 10 characters, 9.99e9 cells 99.9 % off target,
#: 999.9 mL from 99 bags, a 999-minute thaw-to-infusion limit
VISIT = "M12-INF-99"
PLANNED = dt.date(2026, 12, 31)


@dataclass(frozen=True)
class _Status:
    name: LazyText
    unit_status: str
    eligibility: str
    recalls: str = ""

    def marking(self) -> Any:
        ineligible = self.eligibility == Eligibility.INELIGIBLE
        if self.unit_status == UnitStatus.BLOCKED:
            if self.recalls:
                first, others = content._RECALLED_INELIGIBLE if ineligible else content._RECALLED
                return content._Marking(first, others, {"recalls": self.recalls})
            text = content.INELIGIBLE_DONOR if ineligible else content.BLOCKED
            return content._Marking(text, text, {})
        text = content._STATUS_MARKING.get(self.unit_status, "")
        return content._Marking(text, text, {})


#: every marking a unit can carry, with the eligibility warning it goes with
STATUSES = (
    _Status(lazy("released"), UnitStatus.AVAILABLE, Eligibility.ELIGIBLE),
    _Status(lazy("quarantine"), UnitStatus.QUARANTINE, Eligibility.ELIGIBLE),
    _Status(lazy("quarantine, eligibility pending"), UnitStatus.QUARANTINE, Eligibility.PENDING),
    _Status(lazy("rejected"), UnitStatus.REJECTED, Eligibility.PENDING),
    _Status(lazy("blocked"), UnitStatus.BLOCKED, Eligibility.PENDING),
    _Status(lazy("blocked, ineligible donor"), UnitStatus.BLOCKED, Eligibility.INELIGIBLE),
    _Status(lazy("recalled"), UnitStatus.BLOCKED, Eligibility.ELIGIBLE, RECALLS),
    _Status(
        lazy("recalled, ineligible donor"), UnitStatus.BLOCKED, Eligibility.INELIGIBLE, RECALLS
    ),
)


def _records(kind: str, status: _Status) -> tuple[Any, Any]:
    """A unit of ``kind`` with ``status`` and the records its label prints, at their longest."""
    product = SimpleNamespace(
        code="UC-MSC",
        version=12,
        title=UC_MSC_TITLE,
        parameters={"storage_max_temperature_c": -135},
    )
    donation = SimpleNamespace(
        din=DIN.canonical,
        eligibility=status.eligibility,
        product_definition=product,
        collected_at=WHEN,
        collection_site=SITE,
    )
    unit = SimpleNamespace(
        id=1,
        code=make_unit_code(DIN.canonical, UnitKind(kind).letter, 9999).canonical,
        kind=kind,
        kind_label=UnitKind(kind).label,
        status=status.unit_status,
        donation=donation,
    )
    lot = SimpleNamespace(id=7, lot_number=LOT_NUMBER, expires_at=WHEN, product_definition=product)
    cell_records: dict[int, Any] = {}
    samples: dict[int, Any] = {}
    if kind in {UnitKind.BANK_VIAL, UnitKind.CULTURE_VESSEL, UnitKind.CRYOBAG}:
        bag = kind == UnitKind.CRYOBAG
        cell_records[1] = SimpleNamespace(
            passage=12,
            made_at=WHEN,
            cells=9.99e8 if bag else 1.0e8,
            total_cells_per_ml=4.99999e6 if bag else None,
            viability_percent=93.5 if bag else None,
            volume_ml=20.0 if bag else 1.8,
            lot_id=lot.id if kind != UnitKind.CULTURE_VESSEL else None,
        )
    if kind == UnitKind.SAMPLE_TUBE:
        samples[1] = SimpleNamespace(purpose=None, lot_id=lot.id)
    records = content._Records(
        cell_records=cell_records,
        samples=samples,
        lots={lot.id: lot},  # type: ignore[dict-item]  # a lot's fields, at their longest
        markings={1: status.marking()},
        loaded=(),
    )
    return unit, records


def _dose_label(
    unit: Any, records: Any, status: _Status, template: LabelTemplate, languages: tuple[str, ...]
) -> Any:
    """The prepared dose ``unit``'s label, its order, patient and protocol at their longest."""
    lot = next(iter(records.lots.values()))
    order: Any = SimpleNamespace(
        patient=SimpleNamespace(study_id=STUDY_ID, coi=COI.canonical),
        visit=VISIT,
        planned_on=PLANNED,
        delivered_cells=9.99e9,
        deviation_percent=-99.9,
        volume_ml=999.9,
        bags=[None] * 99,
        protocol=SimpleNamespace(code=PROTOCOL_CODE, parameters={"thaw_to_infusion_minutes": 999}),
    )
    return content.dose_label_of(unit, order, lot, status.marking(), template, ZONE, languages)


@dataclass(frozen=True)
class Cut:
    """One case whose label would cut text: the unit kind (None: the wristband), the status
    marking, the languages printed and the fields cut. ``str()`` names it in the reader's
    language ("冻存袋，已召回，en+zh_Hans：status")."""

    kind: str | None
    status: _Status | None
    languages: tuple[str, ...]
    fields: tuple[str, ...]

    def __str__(self) -> str:
        said = "+".join(self.languages)
        fields = ", ".join(self.fields)
        if self.kind is None:
            return _("wristband, %(languages)s: %(fields)s", languages=said, fields=fields)
        return _(
            "%(kind)s, %(status)s, %(languages)s: %(fields)s",
            kind=str(UNIT_KIND_NAMES.get(self.kind, self.kind)),
            status=str(self.status.name) if self.status is not None else "",
            languages=said,
            fields=fields,
        )


def _languages() -> list[tuple[str, ...]]:
    """English, and English with Chinese where the Chinese font is installed."""
    return [ENGLISH, BILINGUAL] if cjk_font_path().is_file() else [ENGLISH]


def cut_fields(template: LabelTemplate) -> list[Cut]:
    """What ``template`` would cut, one ``Cut`` per case, for every unit kind it lists (the
    prepared dose included); empty when every label prints whole."""
    problems: list[Cut] = []
    templates = {template.label_type: template}
    for languages in _languages():
        if template.label_type == "wristband":
            patient = SimpleNamespace(
                status="enrolled",
                study_id=STUDY_ID,
                coi=COI.canonical,
                protocol=SimpleNamespace(code=PROTOCOL_CODE),
            )
            band = wristband_for(patient, templates=templates, languages=languages)  # type: ignore[arg-type]
            cut = lay_out(template, band.content).cut
            if cut:
                problems.append(Cut(None, None, languages, cut))
            continue
        for kind in template.unit_kinds:
            for status in STATUSES:
                unit, records = _records(kind, status)
                if kind == UnitKind.PREPARED_DOSE:
                    label = _dose_label(unit, records, status, template, languages)
                else:
                    label = content._label(
                        None,  # type: ignore[arg-type]  # read only for a prepared dose
                        unit,
                        records,
                        templates,
                        ZONE,
                        IsbtSettings({}),
                        languages,
                    )
                cut = lay_out(template, label.content).cut
                if cut:
                    problems.append(Cut(kind, status, languages, cut))
    return problems
