"""The default UC-MSC release specification (DOMAIN.md §5; ISCT minimal criteria, Dominici
2006). Takes effect only when QA signs it; a site reviews every line."""

from __future__ import annotations

from typing import Any

UC_MSC_SPEC_CODE = "UC-MSC"
UC_MSC_SPEC_TITLE = "Release specification, UC-MSC drug product"


def _marker(
    code: str, name: str, *, at_least: float | None = None, at_most: float | None = None
) -> dict[str, Any]:
    criterion: dict[str, Any] = {}
    if at_least is not None:
        criterion["min"] = at_least
    if at_most is not None:
        criterion["max"] = at_most
    return {
        "code": code,
        "name": f"{name} positive",
        "method": "Flow cytometry",
        "result_type": "numeric",
        "unit": "%",
        "criterion": criterion,
    }


UC_MSC_TESTS: list[dict[str, Any]] = [
    {
        "code": "STERILITY",
        "name": "Sterility",
        "method": "Ph. Eur. 2.6.27 / USP <71>",
        "result_type": "categorical",
        "categories": ["no growth", "growth"],
        "criterion": {"accept": ["no growth"]},
    },
    {
        "code": "MYCOPLASMA",
        "name": "Mycoplasma",
        "method": "NAT (Ph. Eur. 2.6.7)",
        "result_type": "categorical",
        "categories": ["negative", "positive"],
        "criterion": {"accept": ["negative"]},
    },
    {
        "code": "ENDOTOXIN",
        "name": "Bacterial endotoxin",
        "method": "LAL kinetic chromogenic",
        "result_type": "numeric",
        "unit": "EU/mL",
        "criterion": {"max": 0.5, "max_exclusive": True},
    },
    {
        "code": "VIABILITY",
        "name": "Viability",
        "method": "7-AAD flow cytometry",
        "result_type": "numeric",
        "unit": "%",
        "criterion": {"min": 80},
    },
    {
        "code": "VIABLE-CELLS",
        "name": "Viable cells per bag",
        "method": "Automated count",
        "result_type": "numeric",
        "unit": "cells",
        "criterion": {"within_labelled_percent": 20},
    },
    _marker("CD73", "CD73", at_least=95),
    _marker("CD90", "CD90", at_least=95),
    _marker("CD105", "CD105", at_least=95),
    _marker("CD34", "CD34", at_most=2),
    _marker("CD45", "CD45", at_most=2),
    _marker("CD14", "CD14 or CD11b", at_most=2),
    _marker("CD19", "CD19 or CD79a", at_most=2),
    _marker("HLA-DR", "HLA-DR", at_most=2),
    {
        "code": "KARYOTYPE",
        "name": "Karyotype",
        "method": "G-banding",
        "result_type": "categorical",
        "categories": ["normal", "abnormal"],
        "criterion": {"accept": ["normal"]},
    },
    {
        "code": "POTENCY",
        "name": "Potency (PBMC proliferation suppression)",
        "method": "Mixed lymphocyte co-culture",
        "result_type": "numeric",
        "unit": "%",
        "criterion": {"min": 20},
    },
]

UC_MSC_SPECIFICATION: dict[str, Any] = {"tests": UC_MSC_TESTS}

#: The release specification of the demo's placenta-derived product (issue 22): the UC-MSC
#: tests with a tighter viability limit (≥ 85 %); its own document, code PL-MSC.
PL_MSC_SPEC_CODE = "PL-MSC"
PL_MSC_SPEC_TITLE = "Release specification, PL-MSC drug product (demo)"
PL_MSC_SPECIFICATION: dict[str, Any] = {
    "tests": [
        {**test, "criterion": {"min": 85}} if test["code"] == "VIABILITY" else test
        for test in UC_MSC_TESTS
    ]
}
