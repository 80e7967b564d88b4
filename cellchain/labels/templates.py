"""Label templates: controlled documents, one TOML file per label type in ``labels/``.

Each file declares its label type, a version, the unit kinds it labels, its physical size in
millimetres, where the QR code goes and where each field is printed. Every printed label will
record the template's version and the SHA-256 of the file's bytes (``content_hash``), so a
label can always be traced to the exact layout it came from (DOMAIN.md §9). A template is
checked when it is loaded: known fields only, the fields its label type must carry (21 CFR
1271.370, 312.6; DOMAIN.md §9), and everything inside the label.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cellchain.resources import resource_path

#: What a field can print (filled from the unit, its lot and, for doses, the patient).
FIELD_NAMES: frozenset[str] = frozenset(
    {
        "identifier",  #: the unit code, check character in a box
        "kind",  #: what the unit is ("Cryobag")
        "product",  #: product description and version
        "lot",  #: lot number
        "cells",  #: cells, saying which: a bag's total cells and viability at fill, a dose's viable
        "volume",  #: volume
        "concentration",  #: a bag's TOTAL cells per mL as counted at fill (never viable)
        "expiry",  #: expiry date and time
        "storage",  #: storage temperature
        "caution",  #: the investigational-use caution (21 CFR 312.6)
        "status",  #: "QUARANTINE — NOT FOR CLINICAL USE" while not released
        "eligibility",  #: donor-eligibility warning where due (1271.65)
        "collected",  #: collection date and site of a donation container
        "passage",  #: passage and date of a culture vessel or vial
        "test",  #: the test a QC sample is for
        "patient_study_id",  #: the patient's study ID (never a name or MRN)
        "coi",  #: the patient's chain-of-identity identifier
        "visit",  #: the infusion visit of a prepared dose
    }
)

#: Every label carries these.
ALWAYS: frozenset[str] = frozenset({"identifier", "status", "eligibility"})

#: What each label type must carry besides (DOMAIN.md §9).
REQUIRED: dict[str, frozenset[str]] = {
    "donation_container": frozenset({"collected"}),
    "culture_vessel": frozenset({"passage"}),
    "bank_vial": frozenset({"passage", "cells", "storage"}),
    "cryobag": frozenset(
        {
            "product",
            "lot",
            "cells",
            "volume",
            "concentration",
            "expiry",
            "storage",
            "caution",
        }
    ),
    "sample_tube": frozenset({"lot", "test"}),
    "prepared_dose": frozenset(
        {"product", "lot", "cells", "volume", "expiry", "caution", "patient_study_id", "coi"}
    ),
    "wristband": frozenset({"patient_study_id", "coi"}),
}


class TemplateError(ValueError):
    """A label template file that cannot be used, and why (a programming or document error)."""


@dataclass(frozen=True)
class Box:
    """A rectangle on the label, in millimetres from its top-left corner."""

    x_mm: float
    y_mm: float
    width_mm: float
    height_mm: float


@dataclass(frozen=True)
class FieldLayout:
    """Where one field is printed and how tall its text is."""

    name: str
    box: Box
    #: text height in millimetres; the text wraps within the box
    text_mm: float
    bold: bool = False


@dataclass(frozen=True)
class LabelTemplate:
    """One version of one label type's layout."""

    label_type: str
    title: str
    version: int
    unit_kinds: tuple[str, ...]
    width_mm: float
    height_mm: float
    qr: Box
    fields: tuple[FieldLayout, ...]
    #: SHA-256 of the template file's bytes, recorded with every printed label
    content_hash: str
    path: Path
    #: where the ISBT 128 Data Matrix goes in ISBT mode; None: the label type carries none
    datamatrix: Box | None = None
    #: the controlled document's version (``label_templates.id``) it was read from; None for
    #: a file read directly (tests, the check of a draft)
    document_id: int | None = None

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(field.name for field in self.fields)


def load_template(path: Path) -> LabelTemplate:
    """Read and check one template file."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TemplateError(f"{path.name}: not a readable TOML file ({error}).") from error
    return parse_template(text, path)


def parse_template(
    text: str, path: Path, *, version: int | None = None, document_id: int | None = None
) -> LabelTemplate:
    """Read and check one template's text (``path`` names it in errors). A controlled
    document's version gives its ``version`` and ``document_id``; the text's own ``version``
    line is then not read. The content hash is the SHA-256 of the text's UTF-8 bytes, the
    same as the file's."""
    raw = text.encode("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TemplateError(f"{path.name}: not a readable TOML file ({error}).") from error
    template = LabelTemplate(
        label_type=_text(data, "label_type", path),
        title=_text(data, "title", path),
        version=version if version is not None else _positive_int(data, "version", path),
        unit_kinds=tuple(data.get("unit_kinds", ())),
        width_mm=_positive(data, "width_mm", path),
        height_mm=_positive(data, "height_mm", path),
        qr=_box(data.get("qr"), f"{path.name} [qr]"),
        fields=tuple(_field(item, path) for item in data.get("fields", ())),
        content_hash=hashlib.sha256(raw).hexdigest(),
        path=path,
        datamatrix=(
            _box(data["datamatrix"], f"{path.name} [datamatrix]") if "datamatrix" in data else None
        ),
        document_id=document_id,
    )
    _check(template)
    return template


def load_templates(directory: Path | None = None) -> dict[str, LabelTemplate]:
    """Every template in ``directory`` (the ``labels/`` folder by default), by label type."""
    folder = directory or resource_path("labels")
    templates: dict[str, LabelTemplate] = {}
    for path in sorted(folder.glob("*.toml")):
        template = load_template(path)
        if template.label_type in templates:
            raise TemplateError(f"{path.name}: a second template for {template.label_type}.")
        templates[template.label_type] = template
    return templates


# --- checks -------------------------------------------------------------------------------------


def _check(template: LabelTemplate) -> None:
    name = template.path.name
    if template.label_type not in REQUIRED:
        raise TemplateError(f"{name}: unknown label type {template.label_type!r}.")
    unknown = sorted(template.field_names - FIELD_NAMES)
    if unknown:
        raise TemplateError(f"{name}: unknown fields {', '.join(unknown)}.")
    missing = sorted((ALWAYS | REQUIRED[template.label_type]) - template.field_names)
    if missing:
        raise TemplateError(
            f"{name}: a {template.label_type} label must print {', '.join(missing)}."
        )
    if len(template.field_names) != len(template.fields):
        raise TemplateError(f"{name}: a field is placed twice.")
    boxes = [("qr", template.qr), *((f.name, f.box) for f in template.fields)]
    if template.datamatrix is not None:
        boxes.append(("datamatrix", template.datamatrix))
    for label, box in boxes:
        if box.x_mm + box.width_mm > template.width_mm + 1e-9 or (
            box.y_mm + box.height_mm > template.height_mm + 1e-9
        ):
            raise TemplateError(f"{name}: {label} does not fit on the label.")
    for field in template.fields:
        if field.text_mm > field.box.height_mm:
            raise TemplateError(f"{name}: the text of {field.name} is taller than its box.")


def _text(data: dict[str, Any], key: str, path: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise TemplateError(f"{path.name}: {key} is required.")
    return value


def _positive(data: dict[str, Any], key: str, where: Path | str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        name = where.name if isinstance(where, Path) else where
        raise TemplateError(f"{name}: {key} must be a positive number of millimetres.")
    return float(value)


def _positive_int(data: dict[str, Any], key: str, path: Path) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TemplateError(f"{path.name}: {key} must be a whole number from 1.")
    return value


def _box(data: Any, where: str) -> Box:
    if not isinstance(data, dict):
        raise TemplateError(f"{where}: a box with x_mm, y_mm, width_mm and height_mm is required.")
    x, y = data.get("x_mm"), data.get("y_mm")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in (x, y)):
        raise TemplateError(f"{where}: x_mm and y_mm must be numbers from 0.")
    if "size_mm" in data:  # a square (the QR code)
        side = _positive(data, "size_mm", where)
        return Box(float(cast(float, x)), float(cast(float, y)), side, side)  # numbers, checked
    return Box(
        float(cast(float, x)),  # numbers, checked above
        float(cast(float, y)),
        _positive(data, "width_mm", where),
        _positive(data, "height_mm", where),
    )


def _field(data: Any, path: Path) -> FieldLayout:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise TemplateError(f"{path.name}: each [[fields]] entry needs a name.")
    where = f"{path.name} field {data['name']}"
    return FieldLayout(
        name=data["name"],
        box=_box(data, where),
        text_mm=_positive(data, "text_mm", where),
        bold=bool(data.get("bold", False)),
    )
