"""Label templates (labels/*.toml) are controlled documents: all seven label types load, carry
what DOMAIN.md §9 requires, fit on their label, and are identified by version and hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellchain.labels.templates import (
    ALWAYS,
    REQUIRED,
    TemplateError,
    load_template,
    load_templates,
)

GOOD = """
label_type = "sample_tube"
title = "QC sample tube"
version = 2
unit_kinds = ["sample_tube"]
width_mm = 38
height_mm = 19
[qr]
x_mm = 1
y_mm = 2
size_mm = 15
"""


def fields(*names: str, y: float = 1) -> str:
    return "".join(
        f'[[fields]]\nname = "{name}"\nx_mm = 17\ny_mm = {y}\nwidth_mm = 20\n'
        "height_mm = 3\ntext_mm = 1.8\n"
        for name in names
    )


def test_every_label_type_has_one_template_with_its_required_fields() -> None:
    templates = load_templates()
    assert set(templates) == set(REQUIRED)
    for label_type, template in templates.items():
        assert template.version >= 1
        assert len(template.content_hash) == 64
        assert ALWAYS | REQUIRED[label_type] <= template.field_names
    assert {"patient_study_id", "coi"} <= templates["wristband"].field_names
    assert "caution" in templates["cryobag"].field_names


def test_the_hash_identifies_the_exact_file(tmp_path: Path) -> None:
    body = GOOD + fields("identifier", "status", "eligibility", "lot", "test")
    one, two = tmp_path / "a.toml", tmp_path / "b.toml"
    one.write_text(body)
    two.write_text(body + "# reviewed\n")
    first, second = load_template(one), load_template(two)
    assert first.version == second.version == 2
    assert first.content_hash != second.content_hash


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GOOD + fields("identifier", "status", "eligibility", "lot"), "must print test"),
        (GOOD + fields("identifier", "status", "eligibility", "lot", "test", "name"), "unknown"),
        (
            GOOD.replace("size_mm = 15", "size_mm = 40")
            + fields("identifier", "status", "eligibility", "lot", "test"),
            "qr does not fit",
        ),
        (GOOD.replace("version = 2", "version = 0"), "version"),
        (GOOD.replace('"sample_tube"\ntitle', '"ticket"\ntitle'), "unknown label type"),
        (GOOD + fields("identifier", "status", "eligibility", "lot", "test", y=17), "not fit"),
        ("label_type = [", "not a readable TOML file"),
    ],
)
def test_a_template_that_cannot_be_used_is_refused(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(TemplateError, match=message):
        load_template(path)
