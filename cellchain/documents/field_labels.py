"""What the field editor calls each parameter of each kind of controlled document, in words a
person reads (issue 22), with a short hint giving its unit where that helps; the raw path
(``dose_viable_cells_per_kg``) is still shown beside it, small, for the expert.

A kind's labels are keyed by the kind's signature type (``protocol``, ``product_definition``,
``specification``, ``donor_test_panel``, ``label_template``) and, within it, by a parameter's
path with each row of a list written ``[]`` (``arms[].code``, ``tests[].criterion.min``) and
a key chosen by the document's author (a vessel format's name) written ``*``
(``vessel_formats.*``), whose label names the key (``%(key)s``). Every parameter of every
version the app ships and the demo records has one (``tests/documents/test_field_labels.py``
fails on a parameter added without); a parameter QA adds by hand in the TOML editor shows
its path alone.

This module imports nothing of the features (they import ``documents``): the kinds are
named by their signature type, a string.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from cellchain.core.i18n import LazyText, lazy


@dataclass(frozen=True)
class FieldLabel:
    #: what the field is, in words ("Dose"); may name the key of a free key (``%(key)s``)
    label: LazyText
    #: its unit or what it takes, short ("viable cells per kg of body weight")
    hint: LazyText | None = None


def _measure(prefix: str) -> dict[str, FieldLabel]:
    """The measured value of an inclusion or exclusion criterion, or of a recheck item."""
    return {
        f"{prefix}.measure": FieldLabel(lazy("Measured value")),
        f"{prefix}.measure.unit": FieldLabel(lazy("Unit of the measured value")),
        f"{prefix}.measure.operator": FieldLabel(
            lazy("Comparison with the limit"), lazy("<, <=, >, >= or =")
        ),
        f"{prefix}.measure.limit": FieldLabel(lazy("Limit"), lazy("in the measured value's unit")),
        f"{prefix}.measure.min": FieldLabel(
            lazy("Lowest value that may be entered"), lazy("in the measured value's unit")
        ),
        f"{prefix}.measure.max": FieldLabel(
            lazy("Highest value that may be entered"), lazy("in the measured value's unit")
        ),
        f"{prefix}.measure.integer": FieldLabel(lazy("Whole numbers only")),
    }


def _criteria(key: str, group: LazyText) -> dict[str, FieldLabel]:
    """An inclusion or exclusion list: each criterion's code, text and measured value."""
    return {
        key: FieldLabel(group),
        f"{key}[].code": FieldLabel(lazy("Criterion code"), lazy("stored with the answers")),
        f"{key}[].text": FieldLabel(lazy("Criterion as the investigator reads it")),
        **_measure(f"{key}[]"),
    }


def _visits(key: str, group: LazyText) -> dict[str, FieldLabel]:
    """The infusion or follow-up visits: code, name, day and window."""
    return {
        key: FieldLabel(group),
        f"{key}[].code": FieldLabel(lazy("Visit code"), lazy("like D0 or M6")),
        f"{key}[].name": FieldLabel(lazy("Visit name")),
        f"{key}[].day": FieldLabel(lazy("Day of the visit"), lazy("days after day 0")),
        f"{key}[].window_days": FieldLabel(
            lazy("Visit window"), lazy("days before or after the visit's day")
        ),
        f"{key}[].reschedule_within_days": FieldLabel(
            lazy("Reschedule within"), lazy("days: a missed visit may be moved this far")
        ),
    }


_PROTOCOL: dict[str, FieldLabel] = {
    "products": FieldLabel(lazy("Products the protocol allows"), lazy("product codes, a list")),
    "arms": FieldLabel(lazy("Arms")),
    "arms[].code": FieldLabel(lazy("Arm code")),
    "arms[].name": FieldLabel(lazy("Arm name")),
    "arms[].type": FieldLabel(lazy("Arm type"), lazy("as the protocol names it")),
    "arms[].receives_cells": FieldLabel(
        lazy("The arm receives cells"), lazy("its patients are dosed")
    ),
    "randomization": FieldLabel(lazy("Randomization")),
    "randomization.ratio": FieldLabel(
        lazy("Allocation ratio"), lazy("between the arms in their order, like 1:1")
    ),
    "randomization.planned_enrolment": FieldLabel(
        lazy("Planned enrolment"), lazy("number of patients")
    ),
    "age_years": FieldLabel(lazy("Age at enrolment")),
    "age_years.min": FieldLabel(lazy("Youngest"), lazy("years")),
    "age_years.max": FieldLabel(lazy("Oldest"), lazy("years")),
    **_criteria("inclusion", lazy("Inclusion criteria")),
    **_criteria("exclusion", lazy("Exclusion criteria")),
    "dose_viable_cells_per_kg": FieldLabel(
        lazy("Dose"), lazy("viable cells per kg of body weight")
    ),
    **_visits("infusions", lazy("Infusion visits")),
    **_visits("follow_up", lazy("Follow-up visits")),
    "pre_infusion_recheck": FieldLabel(lazy("Recheck before an infusion")),
    "pre_infusion_recheck.visits": FieldLabel(
        lazy("Visits rechecked"), lazy("visit codes, a list")
    ),
    "pre_infusion_recheck.valid_days": FieldLabel(
        lazy("A recheck is valid for"), lazy("days before the infusion")
    ),
    "pre_infusion_recheck.items": FieldLabel(lazy("Recheck items")),
    "pre_infusion_recheck.items[].code": FieldLabel(
        lazy("Item code"), lazy("stored with the answers")
    ),
    "pre_infusion_recheck.items[].text": FieldLabel(lazy("Item as the clinician reads it")),
    "pre_infusion_recheck.items[].options": FieldLabel(lazy("Answers to choose from")),
    "pre_infusion_recheck.items[].options[].value": FieldLabel(lazy("Answer as stored")),
    "pre_infusion_recheck.items[].options[].label": FieldLabel(lazy("Answer as shown")),
    "pre_infusion_recheck.items[].options[].passes": FieldLabel(
        lazy("The answer passes the recheck")
    ),
    "pre_infusion_recheck.items[].options[].needs_reason": FieldLabel(
        lazy("The answer needs a reason")
    ),
    **_measure("pre_infusion_recheck.items[]"),
    "dose_tolerance_percent": FieldLabel(
        lazy("Dose tolerance"), lazy("percent of the prescribed dose, either way")
    ),
    "weight_recency_days": FieldLabel(
        lazy("A weight is recent for"), lazy("days: an older one is measured again")
    ),
    "weight_change_flag_percent": FieldLabel(
        lazy("Weight change flagged above"), lazy("percent since the previous weight")
    ),
    "plausible_weight_kg": FieldLabel(lazy("Plausible body weight")),
    "plausible_weight_kg.min": FieldLabel(lazy("Lowest"), lazy("kg")),
    "plausible_weight_kg.max": FieldLabel(lazy("Highest"), lazy("kg")),
    "infusion_rate_tolerance_percent": FieldLabel(
        lazy("Infusion rate tolerance"), lazy("percent of the planned rate, either way")
    ),
    "thaw_to_infusion_minutes": FieldLabel(lazy("From thaw to infusion, at most"), lazy("minutes")),
    "dmso_ceiling_g_per_kg": FieldLabel(
        lazy("DMSO per infusion, at most"), lazy("g per kg of body weight")
    ),
    "dmso_density_g_per_ml": FieldLabel(lazy("Density of DMSO"), lazy("g/mL")),
    "endotoxin_ceiling_eu_per_kg_per_h": FieldLabel(
        lazy("Endotoxin, at most"), lazy("EU per kg of body weight per hour")
    ),
    "syringe_graduation_ml": FieldLabel(
        lazy("Syringe graduation"), lazy("mL: a volume drawn is rounded to it")
    ),
}

_PRODUCT: dict[str, FieldLabel] = {
    "donor_test_panel_code": FieldLabel(
        lazy("Donor test panel"), lazy("the code of the panel document its donations follow")
    ),
    "source": FieldLabel(
        lazy("Tissue the product is made from"), lazy("as a donation registers it")
    ),
    "specimen_window_days": FieldLabel(
        lazy("Mother's specimen window"), lazy("days before or after the recovery")
    ),
    "max_hours_birth_to_processing": FieldLabel(
        lazy("From birth to processing, at most"), lazy("hours")
    ),
    "max_passage": FieldLabel(lazy("Highest passage"), lazy("passage number")),
    "max_cumulative_population_doublings": FieldLabel(
        lazy("Cumulative population doublings, at most")
    ),
    "dmso_percent": FieldLabel(lazy("DMSO in the final product")),
    "dmso_percent.min": FieldLabel(lazy("Lowest"), lazy("% (v/v)")),
    "dmso_percent.max": FieldLabel(lazy("Highest"), lazy("% (v/v)")),
    "storage_max_temperature_c": FieldLabel(lazy("Storage temperature, at most"), lazy("°C")),
    "shelf_life_days": FieldLabel(lazy("Shelf life"), lazy("days after the fill")),
    "fill_volume_ml": FieldLabel(lazy("Volume filled per cryobag"), lazy("mL")),
    "target_concentration_cells_per_ml": FieldLabel(
        lazy("Target concentration"), lazy("total cells per mL")
    ),
    "vessel_formats": FieldLabel(lazy("Culture vessel formats")),
    "vessel_formats.*": FieldLabel(lazy("Growth area of %(key)s"), lazy("cm²")),
    "max_harvest_cells_per_cm2": FieldLabel(
        lazy("Cells harvested, at most"), lazy("cells per cm² of the vessels harvested")
    ),
    "min_thaw_minutes": FieldLabel(lazy("Thawing, at least"), lazy("minutes in the 37 °C bath")),
    "min_doubling_time_hours": FieldLabel(lazy("Doubling time, at least"), lazy("hours")),
    "harvest_due_days": FieldLabel(lazy("Harvest due after seeding")),
    "harvest_due_days.primary": FieldLabel(lazy("Primary vessels (P0, from tissue)"), lazy("days")),
    "harvest_due_days.subculture": FieldLabel(
        lazy("Subcultured vessels (a passage or a bank vial)"), lazy("days")
    ),
}

_SPECIFICATION: dict[str, FieldLabel] = {
    "tests": FieldLabel(lazy("Release tests")),
    "tests[].code": FieldLabel(lazy("Test code")),
    "tests[].name": FieldLabel(lazy("Test name")),
    "tests[].method": FieldLabel(lazy("Method")),
    "tests[].result_type": FieldLabel(
        lazy("Kind of result"), lazy("a number, one of the possible results, or pass or fail")
    ),
    "tests[].categories": FieldLabel(
        lazy("Possible results"), lazy("a list, for a categorical result")
    ),
    "tests[].unit": FieldLabel(lazy("Unit of the result")),
    "tests[].criterion": FieldLabel(lazy("Acceptance criterion")),
    "tests[].criterion.accept": FieldLabel(
        lazy("Results accepted"), lazy("a list of the possible results")
    ),
    "tests[].criterion.min": FieldLabel(lazy("Lowest accepted"), lazy("in the result's unit")),
    "tests[].criterion.max": FieldLabel(lazy("Highest accepted"), lazy("in the result's unit")),
    "tests[].criterion.min_exclusive": FieldLabel(lazy("The lowest itself fails")),
    "tests[].criterion.max_exclusive": FieldLabel(lazy("The highest itself fails")),
    "tests[].criterion.within_labelled_percent": FieldLabel(
        lazy("Within the labelled value"), lazy("± percent of it")
    ),
}

_PANEL: dict[str, FieldLabel] = {
    "tests": FieldLabel(lazy("Tests of the birth mother")),
    "tests[].code": FieldLabel(lazy("Test code"), lazy("as results are recorded")),
    "tests[].name": FieldLabel(lazy("Test name")),
}

_LABEL_TEMPLATE: dict[str, FieldLabel] = {
    "toml": FieldLabel(
        lazy("Label template"), lazy("the layout as TOML: its fields, fonts and positions")
    ),
}

#: the kind's signature type → path pattern → label
LABELS: dict[str, dict[str, FieldLabel]] = {
    "protocol": _PROTOCOL,
    "product_definition": _PRODUCT,
    "specification": _SPECIFICATION,
    "donor_test_panel": _PANEL,
    "label_template": _LABEL_TEMPLATE,
}


def pattern_of(path: tuple[str | int, ...]) -> str:
    """``("tests", 3, "criterion", "min")`` → ``tests[].criterion.min``."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += "[]"
        else:
            text += f".{step}" if text else step
    return text


def label_for(kind: str | None, path: tuple[str | int, ...]) -> tuple[str, str]:
    """The words and the hint (each "" when there is none) of the parameter at ``path`` of a
    document of ``kind``, in the language of the moment; words naming a free key are HTML
    (``Markup``), the key in an element of ``translate="no"``."""
    labels = LABELS.get(kind or "", {})
    pattern = pattern_of(path)
    found = labels.get(pattern)
    key = ""
    if found is None and path and isinstance(path[-1], str):
        key = path[-1]
        found = labels.get(pattern_of((*path[:-1], "*")))
    if found is None:
        return "", ""
    words: str = str(found.label)
    if "%(key)s" in found.label.message:  # the key as the author wrote it, kept as it is
        words = Markup(escape(words)) % {"key": Markup('<span translate="no">%s</span>') % key}
    return words, str(found.hint) if found.hint is not None else ""
