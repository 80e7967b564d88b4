"""Evaluating a QC result against its specification line (DOMAIN.md §5). Pure functions.

A specification line (a dict in the specification's parameters) has a ``result_type``:

* ``numeric``: a number in ``unit``; the criterion has ``min`` and/or ``max`` (inclusive unless
  ``min_exclusive`` / ``max_exclusive``), or ``within_labelled_percent`` (the value must be
  within ± that percentage of the bag's labelled viable cells: its total cells × its viability
  at fill, the one labelled value a result is judged against);
* ``pass_fail``: ``pass`` or ``fail``; only ``pass`` is accepted;
* ``categorical``: one of ``categories``; the criterion lists the accepted ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cellchain.core.i18n import _
from cellchain.core.wording import joined_text
from cellchain.errors import InvalidInput

RESULT_TYPES = ("numeric", "pass_fail", "categorical")
PASS_FAIL = ("pass", "fail")


@dataclass(frozen=True)
class Verdict:
    """Whether a result meets its criterion, and the criterion in words."""

    passes: bool
    criterion: str


def categories(test: dict[str, Any]) -> list[str]:
    if test["result_type"] == "pass_fail":
        return list(PASS_FAIL)
    return list(test.get("categories", []))


def read_value(test: dict[str, Any], value: Any, unit: str | None = None) -> float | str:
    """The value as the test expects it, or ``InvalidInput`` saying why it does not fit.

    A numeric test takes a finite number in its own unit (a unit given must be that unit); a
    pass/fail or categorical test takes one of its categories, never a number.
    """
    name = test["name"]
    if test["result_type"] == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(
                _(
                    "%(test)s is a numeric test: give a number in %(unit)s, not %(value)s.",
                    test=name,
                    unit=test["unit"],
                    value=repr(value),
                ),
                errors={"value": [_("A number is required.")]},
            )
        if not math.isfinite(value):
            raise InvalidInput(
                _("%(value)s is not a result.", value=value),
                errors={"value": [_("Not finite.")]},
            )
        if unit is not None and unit.strip() != test["unit"]:
            raise InvalidInput(
                _(
                    "%(test)s is reported in %(unit)s, not %(given)s.",
                    test=name,
                    unit=test["unit"],
                    given=repr(unit.strip()),
                ),
                errors={"unit": [_("Must be %(unit)s.", unit=test["unit"])]},
            )
        return float(value)
    allowed = categories(test)
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text not in allowed:
        raise InvalidInput(
            _(
                "%(test)s is reported as one of: %(allowed)s; %(value)s is not one of them.",
                test=name,
                allowed=", ".join(allowed),
                value=repr(value),
            ),
            errors={"value": [_("One of: %(allowed)s.", allowed=", ".join(allowed))]},
        )
    if unit:
        raise InvalidInput(
            _("%(test)s has no unit.", test=name),
            errors={"unit": [_("No unit for this test.")]},
        )
    return text


def criterion_text(test: dict[str, Any]) -> str:
    """The acceptance criterion in words, as printed on the certificate of analysis.

    English, never translated here: it is stored with each result (``QcResult.criterion``)
    and in the audit trail, and is the specification's (a controlled document's) wording.
    """
    criterion = test["criterion"]
    if test["result_type"] != "numeric":
        accepted = criterion.get("accept", ["pass"])
        return " or ".join(accepted)
    unit = test["unit"]
    if "within_labelled_percent" in criterion:
        return (
            f"within ± {criterion['within_labelled_percent']:g} % of the labelled viable cells "
            "(total × viability at fill)"
        )
    parts = []
    if "min" in criterion:
        parts.append(
            f"{'>' if criterion.get('min_exclusive') else '≥'} {criterion['min']:g} {unit}"
        )
    if "max" in criterion:
        parts.append(
            f"{'<' if criterion.get('max_exclusive') else '≤'} {criterion['max']:g} {unit}"
        )
    return " and ".join(parts)


def evaluate(test: dict[str, Any], value: float | str, *, labelled: float | None = None) -> Verdict:
    """Whether ``value`` (as returned by :func:`read_value`) meets the test's criterion."""
    criterion = test["criterion"]
    text = criterion_text(test)
    if test["result_type"] != "numeric":
        return Verdict(passes=value in criterion.get("accept", ["pass"]), criterion=text)
    number = float(value)
    if "within_labelled_percent" in criterion:
        if labelled is None or labelled <= 0:
            raise InvalidInput(
                _("%(test)s needs the labelled value to be judged.", test=test["name"])
            )
        tolerance = labelled * float(criterion["within_labelled_percent"]) / 100
        return Verdict(passes=abs(number - labelled) <= tolerance, criterion=text)
    passes = True
    if "min" in criterion:
        low = float(criterion["min"])
        passes &= number > low if criterion.get("min_exclusive") else number >= low
    if "max" in criterion:
        high = float(criterion["max"])
        passes &= number < high if criterion.get("max_exclusive") else number <= high
    return Verdict(passes=passes, criterion=text)


def check_specification(parameters: dict[str, Any]) -> None:
    """Refuse a specification whose lines could not be evaluated (before QA signs it)."""
    tests = parameters.get("tests")
    if not isinstance(tests, list) or not tests:
        raise InvalidInput(_("A specification lists at least one test."))
    codes = [test.get("code") for test in tests]
    if len(set(codes)) != len(codes):
        raise InvalidInput(_("Each test appears once in a specification."))
    for test in tests:
        kind = test.get("result_type")
        if kind not in RESULT_TYPES:
            raise InvalidInput(
                _(
                    "%(code)s: result type %(kind)s is not known.",
                    code=test.get("code"),
                    kind=repr(kind),
                )
            )
        criterion = test.get("criterion") or {}
        if kind == "numeric" and not (
            "min" in criterion or "max" in criterion or "within_labelled_percent" in criterion
        ):
            raise InvalidInput(_("%(code)s: a numeric test needs a limit.", code=test["code"]))
        if kind != "numeric" and not set(criterion.get("accept", ["pass"])) <= set(
            categories(test)
        ):
            raise InvalidInput(
                _("%(code)s: accepted values must be among its categories.", code=test["code"])
            )
    _check_release_rules(tests)


#: The tests DOMAIN.md §5 lists for release (21 CFR 1271; ISCT minimal criteria): a version
#: of a specification lists each, by code; its limits are the product's
REQUIRED_TESTS = (
    "STERILITY",
    "MYCOPLASMA",
    "ENDOTOXIN",
    "VIABILITY",
    "VIABLE-CELLS",
    "CD73",
    "CD90",
    "CD105",
    "CD34",
    "CD45",
    "CD14",
    "CD19",
    "HLA-DR",
    "KARYOTYPE",
    "POTENCY",
)
#: FDA's floor for a cell product's viability (DOMAIN.md §5): a specification may ask more
VIABILITY_FLOOR_PERCENT = 70.0


def _check_release_rules(tests: list[Any]) -> None:
    """Refuse, by field, a specification without a test DOMAIN.md §5 requires for release or
    whose viability acceptance is below the FDA floor of 70 %."""
    errors: dict[str, list[str]] = {}
    by_code = {test.get("code"): test for test in tests if isinstance(test, dict)}
    missing = [code for code in REQUIRED_TESTS if code not in by_code]
    if missing:
        errors["tests"] = [
            _(
                "A release specification lists every test DOMAIN.md requires; missing:"
                " %(codes)s.",
                codes=", ".join(missing),
            )
        ]
    viability = by_code.get("VIABILITY")
    if viability is not None:
        least = (viability.get("criterion") or {}).get("min")
        if (
            isinstance(least, bool)
            or not isinstance(least, int | float)
            or not least >= VIABILITY_FLOOR_PERCENT
        ):
            errors["tests[VIABILITY].criterion.min"] = [
                _(
                    "Viability is accepted at %(floor)s %% or more (the FDA floor), not"
                    " %(value)s.",
                    floor=format(VIABILITY_FLOOR_PERCENT, "g"),
                    value=repr(least),
                )
            ]
    if errors:
        raise InvalidInput(
            joined_text(message for messages in errors.values() for message in messages),
            errors=errors,
        )
