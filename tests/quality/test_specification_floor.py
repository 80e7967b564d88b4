"""A release specification holds DOMAIN.md §5's rules (review 1, item 8): viability accepted
at 70 % or more (the FDA floor) and every test §5 lists for release, each refusal named by
field, through the check, the API draft and the draft form; the demo specifications pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cellchain.core.types import utcnow
from cellchain.errors import InvalidInput
from cellchain.quality.defaults import PL_MSC_SPECIFICATION, UC_MSC_SPECIFICATION
from cellchain.quality.evaluation import REQUIRED_TESTS, check_specification
from cellchain.quality.service import SPECIFICATIONS
from tests.conftest import TEST_PASSWORD
from tests.documents.test_field_editor import _name, _posted

VIABILITY_MIN = "tests[VIABILITY].criterion.min"


def with_viability(minimum: Any) -> dict[str, Any]:
    spec = copy.deepcopy(UC_MSC_SPECIFICATION)
    for test in spec["tests"]:
        if test["code"] == "VIABILITY":
            test["criterion"] = {"min": minimum}
    return spec


def without(code: str) -> dict[str, Any]:
    spec = copy.deepcopy(UC_MSC_SPECIFICATION)
    spec["tests"] = [test for test in spec["tests"] if test["code"] != code]
    return spec


@pytest.mark.parametrize("spec", [UC_MSC_SPECIFICATION, PL_MSC_SPECIFICATION])
def test_both_demo_specifications_pass(spec: dict[str, Any]) -> None:
    check_specification(copy.deepcopy(spec))


@pytest.mark.parametrize("minimum", [10, 69.9, None, "eighty"])
def test_a_viability_below_the_fda_floor_is_refused_by_field(minimum: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_specification(with_viability(minimum))
    assert VIABILITY_MIN in (refused.value.errors or {})
    assert "70" in str(refused.value)


def test_a_viability_at_the_floor_passes() -> None:
    check_specification(with_viability(70))


@pytest.mark.parametrize("code", REQUIRED_TESTS)
def test_a_specification_without_a_test_domain_requires_is_refused(code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_specification(without(code))
    assert code in (refused.value.errors or {})["tests"][0]


def test_the_sterility_mycoplasma_endotoxin_and_viability_tests_are_required() -> None:
    assert {"STERILITY", "MYCOPLASMA", "ENDOTOXIN", "VIABILITY"} <= set(REQUIRED_TESTS)


def test_the_api_draft_is_refused_below_the_floor_or_without_sterility(
    make_user: Any, clients: Any
) -> None:
    api = clients.api(make_user("alex", "qa"))
    body = {"code": "UC-MSC", "title": "Release specification", "reason": "Looser"}
    low = api.post("/api/v1/specifications", json={**body, "parameters": with_viability(10)})
    assert low.status_code == 422, low.get_json()
    assert VIABILITY_MIN in str(low.get_json())
    bare = api.post("/api/v1/specifications", json={**body, "parameters": without("STERILITY")})
    assert bare.status_code == 422, bare.get_json()
    assert "STERILITY" in str(bare.get_json())
    good = api.post("/api/v1/specifications", json={**body, "parameters": with_viability(75)})
    assert good.status_code == 201, good.get_json()


def test_the_draft_form_names_the_viability_floor_beside_its_field(
    session: Any, make_user: Any, clients: Any
) -> None:
    qa = make_user("alex", "qa")
    spec = SPECIFICATIONS.load_default(session, actor=qa, now=utcnow())
    SPECIFICATIONS.approve(session, spec, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    form = _posted(spec.parameters)
    form[_name(spec.parameters, VIABILITY_MIN)] = "10"
    form.update({"editor": "fields", "title": spec.title, "reason": "Looser"})
    refused = clients.web(qa).post(f"/specifications/{spec.id}/draft", data=form)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "FDA" in page and 'value="10"' in page
