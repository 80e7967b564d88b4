"""The labelled-field editor of a version's parameters: every value a field, rows of a list
removed and added, what is posted read back onto the parameters it was drawn from."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from markupsafe import escape

from cellchain.core.types import utcnow
from cellchain.documents import fields
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.dosing.service import PROTOCOLS
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.quality.defaults import UC_MSC_SPECIFICATION
from cellchain.quality.service import SPECIFICATIONS
from tests.conftest import TEST_PASSWORD


def _posted(parameters: dict[str, Any]) -> dict[str, str]:
    """What the form posts untouched: every value and its type, the new rows' blanks."""
    form: dict[str, str] = {}
    for item in fields.items(parameters):
        if item.kind in ("field", "new"):
            form[item.name] = item.value
            form[item.type_name] = item.value_type
    return form


def _name(parameters: dict[str, Any], label: str, kind: str = "field") -> str:
    return next(i.name for i in fields.items(parameters) if i.label == label and i.kind == kind)


@pytest.mark.parametrize("parameters", [UC_MSC_SPECIFICATION, NCT01420432_PARAMETERS])
def test_an_untouched_form_gives_the_parameters_back(parameters: dict[str, Any]) -> None:
    assert fields.parameters_from_form(parameters, _posted(parameters)) == parameters


def test_values_change_rows_go_and_come_and_a_wrong_type_is_named() -> None:
    spec = copy.deepcopy(UC_MSC_SPECIFICATION)
    # a row the specification may lose (every row of the default is a required test)
    spec["tests"].append({**spec["tests"][5], "code": "CD166", "name": "CD166 positive"})
    labels = {item.label for item in fields.items(spec)}
    assert "tests[VIABILITY].criterion.min" in labels  # a row named by its code
    form = _posted(spec)
    form[_name(spec, "tests[VIABILITY].criterion.min")] = "85.5"
    form[_name(spec, "tests[CD166]", "row")] = "1"
    form[_name(spec, "tests", "add")] = "1"
    new = {i.label: i for i in fields.items(spec) if i.kind == "new"}
    form[new["tests[+].code"].name] = "CD44"
    form[new["tests[+].name"].name] = "CD44 positive"
    changed = fields.parameters_from_form(spec, form)
    codes = [test["code"] for test in changed["tests"]]
    assert "CD166" not in codes and codes[-1] == "CD44"
    viability = next(t for t in changed["tests"] if t["code"] == "VIABILITY")
    assert viability["criterion"] == {"min": 85.5}
    SPECIFICATIONS.check(changed)

    form[_name(spec, "tests[ENDOTOXIN].criterion.max")] = "half"
    with pytest.raises(InvalidInput) as refused:
        fields.parameters_from_form(spec, form)
    assert "tests[ENDOTOXIN].criterion.max" in refused.value.errors


def test_the_draft_form_offers_every_parameter_as_a_labelled_field(
    session: Any, make_user: Any, clients: Any
) -> None:
    qa = make_user("alex", "qa")
    spec = SPECIFICATIONS.load_default(session, actor=qa, now=utcnow())
    SPECIFICATIONS.approve(session, spec, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    web = clients.web(qa)
    page = web.get(f"/specifications/{spec.id}/draft").get_data(as_text=True)
    assert 'id="parameter-fields"' in page and "remove this row" in page
    form = _posted(spec.parameters)  # what a browser posts of the fields the page shows
    for name in form:
        assert f'name="{escape(name)}"' in page, name
    form["editor"] = "fields"
    viability = _name(spec.parameters, "tests[VIABILITY].criterion.min")
    form.update({viability: "eighty-five", "title": spec.title, "reason": "Tighter"})
    refused = web.post(f"/specifications/{spec.id}/draft", data=form)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "tests[VIABILITY].criterion.min" in text and 'value="eighty-five"' in text
    form[viability] = "85"
    written = web.post(f"/specifications/{spec.id}/draft", data=form)
    assert written.status_code == 302, written.get_data(as_text=True)
    db.session.expire_all()
    draft = max(SPECIFICATIONS.versions(db.session), key=lambda d: d.version)
    expected = copy.deepcopy(spec.parameters)
    next(t for t in expected["tests"] if t["code"] == "VIABILITY")["criterion"]["min"] = 85
    assert draft.parameters == expected


def test_an_overlapping_window_is_refused_beside_its_field(
    session: Any, make_user: Any, clients: Any
) -> None:
    qa = make_user("alex", "qa")
    protocol = PROTOCOLS.load_default(session, actor=qa, now=utcnow())
    PROTOCOLS.approve(session, protocol, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    form = _posted(protocol.parameters)
    form[_name(protocol.parameters, "follow_up[M6].day")] = "100"
    form.update({"editor": "fields", "title": protocol.title, "reason": "earlier month 6"})
    refused = clients.web(qa).post(f"/protocols/{protocol.id}/draft", data=form)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    field = page.index(str(escape(_name(protocol.parameters, "follow_up[M6].window_days"))))
    beside = page[field : page.index("</div>", field)]
    assert 'class="field-error"' in beside and "overlap" in beside
    assert 'value="100"' in page
