"""What else makes a protocol version usable when several protocols and products run at once
(issue 22), beside ``protocol_check`` (a positive dose, visit windows that do not overlap).

A protocol's parameters are data a QA person drafts; enrolment, the dose arithmetic, the
schedule, allocation and the bedside read them as they are. ``check`` (``PROTOCOLS.check``)
refuses, each problem named by its parameter, a version that would leave them unable to:

- ``products``: the product definition codes a dose may come from, at least one;
- ``arms``: at least one, codes unique, one that receives cells; several arms need a
  ``randomization`` (a ratio of one whole number per arm and a planned enrolment it
  divides), one arm (open label) has none;
- ``age_years``: whole years, min no more than max;
- the limits the arithmetic divides by or compares with: numbers more than 0;
- DOMAIN.md §7's rules, which a protocol may make stricter, never looser: the DMSO ceiling at
  most 1 g/kg, the endotoxin ceiling at most 5 EU/kg/h (USP <85>), the weight-change flag at
  most 10 %; the dose tolerance more than 0 and at most 20 %; the DMSO density is the
  physical constant 1.10 g/mL, nothing else;
- ``inclusion``, ``exclusion`` and ``pre_infusion_recheck.items``: each item's code once (an
  enrolment's and a re-check's answers are keyed by it);
- ``infusions``: at least one, the first on day 0;
- and whatever ``protocol_check.check_protocol`` refuses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from cellchain.core.i18n import _
from cellchain.core.wording import joined_text
from cellchain.dosing.protocol_check import check_protocol
from cellchain.errors import InvalidInput

#: the limits every dose computation reads: each a number more than 0
POSITIVE_LIMITS = (
    "dose_tolerance_percent",
    "weight_recency_days",
    "weight_change_flag_percent",
    "syringe_graduation_ml",
    "dmso_density_g_per_ml",
    "dmso_ceiling_g_per_kg",
    "endotoxin_ceiling_eu_per_kg_per_h",
)


#: DOMAIN.md §7's ceilings (no *(protocol)* marker: rules): a protocol may set a lower one
RULE_CEILINGS = {
    "dmso_ceiling_g_per_kg": 1.0,
    "endotoxin_ceiling_eu_per_kg_per_h": 5.0,
    "weight_change_flag_percent": 10.0,
    # DOMAIN.md §7's default is ± 10 % *(protocol)*; beyond ± 20 % is no longer a dose check
    "dose_tolerance_percent": 20.0,
}
#: DMSO's density (g/mL), a physical constant the DMSO arithmetic reads (DOMAIN.md §7)
DMSO_DENSITY_G_PER_ML = 1.10
#: the lists of items whose answers are keyed by the item's code, and where the list is
CODED_ITEMS = (
    ("inclusion", ("inclusion",)),
    ("exclusion", ("exclusion",)),
    ("pre_infusion_recheck.items", ("pre_infusion_recheck", "items")),
)


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float; a boolean or a text is not a number here."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any, least: int = 0) -> TypeGuard[int | float]:
    return is_number(value) and float(value) == int(value) and int(value) >= least


def protocol_errors(parameters: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every problem of a protocol's parameters, by parameter; empty when it is usable."""
    errors: dict[str, list[str]] = {}
    try:
        check_protocol(parameters)
    except InvalidInput as refused:
        for name, messages in (refused.errors or {}).items():
            errors.setdefault(name, []).extend(messages)

    def add(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    products = parameters.get("products")
    if (
        not isinstance(products, list)
        or not products
        or not all(isinstance(code, str) and code.strip() for code in products)
    ):
        add(
            "products",
            _(
                "Name the product definition(s) a dose may come from, as a list of product"
                " codes (e.g. UC-MSC)."
            ),
        )
    _check_arms(parameters, add)
    ages = parameters.get("age_years")
    if not (
        isinstance(ages, Mapping)
        and _whole(ages.get("min"))
        and _whole(ages.get("max"))
        and ages["min"] <= ages["max"]
    ):
        add("age_years", _("The age range is whole years, min no more than max."))
    for name in POSITIVE_LIMITS:
        value = parameters.get(name)
        if not is_number(value) or value <= 0:
            add(
                name,
                _(
                    "%(name)s is a number more than 0, not %(value)s.",
                    name=name,
                    value=repr(value),
                ),
            )
        elif name in RULE_CEILINGS and value > RULE_CEILINGS[name]:
            add(
                name,
                _(
                    "%(name)s may be at most %(limit)s (DOMAIN.md's rule; a protocol may only"
                    " make it stricter), not %(value)s.",
                    name=name,
                    limit=format(RULE_CEILINGS[name], "g"),
                    value=repr(value),
                ),
            )
    density = parameters.get("dmso_density_g_per_ml")
    if is_number(density) and density > 0 and not math.isclose(density, DMSO_DENSITY_G_PER_ML):
        add(
            "dmso_density_g_per_ml",
            _(
                "DMSO's density is %(density)s g/mL, a physical constant, not %(value)s.",
                density=format(DMSO_DENSITY_G_PER_ML, ".2f"),
                value=repr(density),
            ),
        )
    _check_unique_codes(parameters, add)
    infusions = parameters.get("infusions")
    days = (
        [item.get("day") for item in infusions if isinstance(item, Mapping)]
        if isinstance(infusions, list)
        else []
    )
    if not days or 0 not in days:
        add("infusions", _("A protocol has at least one infusion, the first on day 0."))
    return errors


def check(parameters: dict[str, Any]) -> None:
    """Refuse a protocol version the system could not apply (``PROTOCOLS.check``), every
    problem named by its parameter."""
    errors = protocol_errors(parameters)
    if errors:
        raise InvalidInput(
            _(
                "The protocol cannot be used: %(problems)s",
                problems=joined_text(
                    message for messages in errors.values() for message in messages
                ),
            ),
            errors=errors,
        )


def _check_unique_codes(parameters: Mapping[str, Any], add: Any) -> None:
    """Each item of the inclusion, exclusion and re-check lists once by its code, refused at
    the repeated row's code (``exclusion[msc_contraindication].code``) as a visit is."""
    for label, path in CODED_ITEMS:
        items: Any = parameters
        for key in path:
            items = items.get(key) if isinstance(items, Mapping) else None
        if not isinstance(items, list):
            continue
        seen: set[str] = set()
        for item in items:
            code = item.get("code") if isinstance(item, Mapping) else None
            if not isinstance(code, str):
                continue
            if code in seen:
                add(
                    f"{label}[{code}].code",
                    _(
                        "The code %(code)s appears twice in %(list)s: each item has a code of"
                        " its own.",
                        code=code,
                        list=label,
                    ),
                )
            seen.add(code)


def _check_arms(parameters: Mapping[str, Any], add: Any) -> None:
    arms = parameters.get("arms")
    if not isinstance(arms, list) or not arms or not all(isinstance(a, Mapping) for a in arms):
        add("arms", _("A protocol has at least one arm."))
        return
    codes = [arm.get("code") for arm in arms]
    named = all(isinstance(code, str) and code.strip() for code in codes)
    if not named or len(set(codes)) != len(codes):
        add("arms", _("Each arm has a code of its own."))
    if not any(arm.get("receives_cells") is True for arm in arms):
        add("arms", _("At least one arm receives cells."))
    design = parameters.get("randomization")
    if len(arms) == 1:
        if design is not None:
            add(
                "randomization",
                _("A protocol of one arm is not randomized: remove its randomization."),
            )
        return
    if not isinstance(design, Mapping):
        add(
            "randomization",
            _("A protocol of several arms gives its randomization (ratio, planned enrolment)."),
        )
        return
    parts = str(design.get("ratio", "")).split(":")
    planned = design.get("planned_enrolment")
    if len(parts) != len(arms) or not all(part.strip().isdigit() for part in parts):
        add("randomization", _("The ratio gives one whole number per arm (e.g. 1:1)."))
    elif not _whole(planned, 1) or int(planned) % sum(int(part) for part in parts):
        add("randomization", _("The planned enrolment is a whole number the ratio divides."))
