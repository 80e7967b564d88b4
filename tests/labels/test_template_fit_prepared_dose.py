"""The prepared dose's label, the one carrying the patient's study ID and COI, prints whole
(review 2, items 5 and 12): its template is laid out by the template check like every other
kind (``fit.cut_fields``), a version whose study-ID box would cut the study ID is refused when
drafted, with the case named in the reader's language, and, as a second line, a print whose
layout would cut text is refused before anything is recorded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.i18n import using_language
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.labels import service, template_documents
from cellchain.labels.models import LabelPrint, LabelTemplateDocument
from cellchain.labels.template_documents import fit
from cellchain.labels.templates import parse_template
from cellchain.resources import resource_path
from tests.support.labels import SETTINGS

KIND = template_documents.LABEL_TEMPLATES


def _text(label_type: str) -> str:
    return (resource_path("labels") / f"{label_type}.toml").read_text(encoding="utf-8")


def _narrow_study_id(text: str, width_mm: int = 8) -> str:
    """``text`` with the ``patient_study_id`` box ``width_mm`` wide."""
    narrow, count = re.subn(
        r'(name = "patient_study_id"\nx_mm = [\d.]+\ny_mm = [\d.]+\nwidth_mm = )[\d.]+',
        rf"\g<1>{width_mm}",
        text,
    )
    assert count == 1
    return narrow


def _template(text: str) -> Any:
    return parse_template(text, Path("template.toml"), version=1)


def _counts() -> tuple[int, int]:
    prints = db.session.scalar(select(func.count()).select_from(LabelPrint))
    entries = db.session.scalar(select(func.count()).select_from(AuditEntry))
    return prints or 0, entries or 0


def test_the_shipped_prepared_dose_template_passes_and_is_laid_out() -> None:
    template = _template(_text("prepared_dose"))
    assert template.unit_kinds == ("prepared_dose",) or list(template.unit_kinds) == [
        "prepared_dose"
    ]
    assert fit.cut_fields(template) == []
    template_documents.check_template({"toml": _text("prepared_dose")})
    # laid out, not skipped: the same template with a narrow study-ID box cuts in every case
    cut = fit.cut_fields(_template(_narrow_study_id(_text("prepared_dose"))))
    assert cut and {case.fields for case in cut} == {("patient_study_id",)}
    assert {case.status for case in cut} == set(fit.STATUSES)


def test_every_unit_kind_a_template_lists_is_checked() -> None:
    """A version listing two kinds, the dose second, is checked for the dose too (not only for
    its first kind)."""
    text = _text("prepared_dose").replace(
        'unit_kinds = ["prepared_dose"]', 'unit_kinds = ["cryobag", "prepared_dose"]'
    )
    cut = fit.cut_fields(_template(_narrow_study_id(text)))
    assert {case.kind for case in cut if "patient_study_id" in case.fields} == {"prepared_dose"}


def test_a_prepared_dose_version_with_an_8_mm_study_id_box_is_refused_at_draft(lab: Any) -> None:
    before = db.session.execute(select(LabelTemplateDocument.id)).all()
    with pytest.raises(InvalidInput, match="cut off the label") as refused:
        KIND.draft(
            db.session,
            actor=lab.qa,
            now=utcnow(),
            code="PREPARED_DOSE",
            title="Narrow study ID",
            parameters={"toml": _narrow_study_id(_text("prepared_dose"))},
        )
    assert "prepared dose, released, en: patient_study_id" in str(refused.value)
    db.session.rollback()
    assert db.session.execute(select(LabelTemplateDocument.id)).all() == before


def test_the_refusal_names_its_cases_in_the_readers_language() -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidInput) as refused:
        template_documents.check_template({"toml": _narrow_study_id(_text("prepared_dose"))})
    said = str(refused.value)
    assert "已制备剂量，已放行，en：patient_study_id" in said
    assert "已召回，供者不合格" in said
    for english in ("prepared dose", "released", "quarantine", "recalled", "ineligible"):
        assert english not in said
    # the cached cases still read in English for an English reader
    with pytest.raises(InvalidInput, match="prepared dose, recalled, ineligible donor, en"):
        template_documents.check_template({"toml": _narrow_study_id(_text("prepared_dose"))})


def _settings(label_type: str, text: str) -> service.LabelSettings:
    templates = dict(SETTINGS.templates)
    templates[label_type] = _template(text)
    return service.LabelSettings(templates=templates, zone=SETTINGS.zone, isbt=SETTINGS.isbt)


def test_a_dose_label_whose_study_id_would_be_cut_is_not_printed_nor_recorded(
    ward: Any,
) -> None:
    """A template that never passed the check (a row written outside the application, a file
    changed on the server): the print is refused, naming the dose and the field."""
    order = ward.prepared(labelled=False)
    dose = order.dose_unit
    before = _counts()
    settings = _settings("prepared_dose", _narrow_study_id(_text("prepared_dose")))
    with pytest.raises(InvalidInput, match="would be cut off") as refused:
        service.print_labels(
            db.session,
            [dose],
            output_format="pdf",
            copies=1,
            reason=None,
            settings=settings,
            actor=ward.lab.tech,
            now=utcnow(),
            name="dose",
        )
    assert f"{dose.code}: patient_study_id" in str(refused.value)
    assert _counts() == before
    with using_language("zh_Hans"), pytest.raises(InvalidInput) as in_chinese:
        service.print_labels(
            db.session,
            [dose],
            output_format="png",
            copies=1,
            reason=None,
            settings=settings,
            actor=ward.lab.tech,
            now=utcnow(),
            name="dose",
        )
    assert "不予打印" in str(in_chinese.value) and "patient_study_id" in str(in_chinese.value)
    assert _counts() == before
    # the shipped template prints it, and records the print
    service.print_labels(
        db.session,
        [dose],
        output_format="png",
        copies=1,
        reason=None,
        settings=SETTINGS,
        actor=ward.lab.tech,
        now=utcnow(),
        name="dose",
    )
    assert _counts()[0] == before[0] + 1
    db.session.rollback()


def test_a_wristband_whose_study_id_would_be_cut_is_not_printed(ward: Any) -> None:
    patient = ward.patient()
    db.session.commit()
    before = _counts()
    with pytest.raises(InvalidInput, match="patient_study_id"):
        service.print_wristband(
            db.session,
            patient,
            output_format="zpl",
            copies=1,
            reason=None,
            settings=_settings("wristband", _narrow_study_id(_text("wristband"))),
            actor=ward.lab.tech,
            now=utcnow(),
        )
    assert _counts() == before
    db.session.rollback()
