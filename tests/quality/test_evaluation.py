"""Judging QC results against each kind of specification line (DOMAIN.md §5)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellchain.errors import InvalidInput
from cellchain.quality.defaults import UC_MSC_SPECIFICATION, UC_MSC_TESTS
from cellchain.quality.evaluation import (
    check_specification,
    criterion_text,
    evaluate,
    read_value,
)

TESTS = {test["code"]: test for test in UC_MSC_TESTS}
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


def numeric(**criterion):
    return {"code": "X", "name": "X", "result_type": "numeric", "unit": "%", "criterion": criterion}


@given(finite, finite)
def test_an_inclusive_minimum_accepts_the_boundary_and_above(limit, value):
    verdict = evaluate(numeric(min=limit), value)
    assert verdict.passes == (value >= limit)
    assert evaluate(numeric(min=limit), limit).passes


@given(finite, finite)
def test_an_exclusive_maximum_refuses_the_boundary(limit, value):
    verdict = evaluate(numeric(max=limit, max_exclusive=True), value)
    assert verdict.passes == (value < limit)
    assert not evaluate(numeric(max=limit, max_exclusive=True), limit).passes


@given(finite, finite, finite)
def test_a_range_needs_both_limits(a, b, value):
    low, high = min(a, b), max(a, b)
    assert evaluate(numeric(min=low, max=high), value).passes == (low <= value <= high)


@given(st.floats(min_value=1, max_value=1e10), st.floats(min_value=0, max_value=1e11))
def test_within_the_labelled_value(labelled, value):
    test = numeric(within_labelled_percent=20)
    assert evaluate(test, value, labelled=labelled).passes == (
        abs(value - labelled) <= labelled * 0.2
    )


def test_the_default_specification_reads_as_domain_md_says():
    check_specification(UC_MSC_SPECIFICATION)
    assert criterion_text(TESTS["ENDOTOXIN"]) == "< 0.5 EU/mL"
    assert criterion_text(TESTS["VIABILITY"]) == "≥ 80 %"
    assert criterion_text(TESTS["CD73"]) == "≥ 95 %"
    assert criterion_text(TESTS["HLA-DR"]) == "≤ 2 %"
    assert criterion_text(TESTS["STERILITY"]) == "no growth"
    assert (
        not evaluate(TESTS["ENDOTOXIN"], 0.5).passes and evaluate(TESTS["ENDOTOXIN"], 0.49).passes
    )
    assert (
        evaluate(TESTS["VIABILITY"], 80.0).passes and not evaluate(TESTS["VIABILITY"], 79.9).passes
    )
    assert evaluate(TESTS["KARYOTYPE"], "normal").passes
    assert not evaluate(TESTS["MYCOPLASMA"], "positive").passes


@pytest.mark.parametrize(
    ("code", "value", "unit", "field"),
    [
        ("STERILITY", 0.0, None, "value"),  # a number for a qualitative test
        ("MYCOPLASMA", "maybe", None, "value"),  # not one of its categories
        ("ENDOTOXIN", "negative", None, "value"),  # words for a numeric test
        ("ENDOTOXIN", 0.2, "EU/kg", "unit"),  # the wrong unit
        ("VIABILITY", math.nan, None, "value"),
        ("VIABILITY", True, None, "value"),
        ("KARYOTYPE", "normal", "%", "unit"),
    ],
)
def test_values_that_do_not_fit_the_test_are_refused(code, value, unit, field):
    with pytest.raises(InvalidInput) as refused:
        read_value(TESTS[code], value, unit)
    assert field in refused.value.errors


def test_values_are_normalised():
    assert read_value(TESTS["STERILITY"], "  No Growth ") == "no growth"
    assert read_value(TESTS["ENDOTOXIN"], 1, "EU/mL") == 1.0


@pytest.mark.parametrize(
    "broken",
    [
        {"tests": []},
        {"tests": [numeric()]},
        {"tests": [{**numeric(min=1), "result_type": "weird"}]},
        {"tests": [numeric(min=1), numeric(max=2)]},  # the same code twice
        {
            "tests": [
                {
                    "code": "Y",
                    "name": "Y",
                    "result_type": "categorical",
                    "categories": ["a"],
                    "criterion": {"accept": ["b"]},
                }
            ]
        },
    ],
)
def test_a_specification_that_cannot_be_judged_is_refused(broken):
    with pytest.raises(InvalidInput):
        check_specification(broken)
