"""Label templates as controlled documents (issue 22): the files of ``labels/`` are the default
versions (under their own version numbers and hashes), a template that fails the check is
refused before it is written or signed, printing uses the version in force and records its id,
version and hash, earlier prints keep theirs, and the pages and the API show every version."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.chain.models import Unit, UnitKind
from cellchain.core.types import utcnow
from cellchain.errors import InvalidInput, PermissionDenied
from cellchain.extensions import db
from cellchain.labels import template_documents
from cellchain.labels.content import IsbtSettings, NotLabellable, label_for
from cellchain.labels.models import LabelPrint, LabelTemplateDocument
from cellchain.labels.templates import TemplateError, load_templates
from cellchain.resources import resource_path
from tests.conftest import TEST_PASSWORD

KIND = template_documents.LABEL_TEMPLATES
FILES = load_templates()


def _text(label_type: str) -> str:
    return (resource_path("labels") / f"{label_type}.toml").read_text(encoding="utf-8")


def _container(lab: Any) -> Unit:
    donation = lab.register()
    return next(u for u in donation.units if u.kind == UnitKind.DONATION_CONTAINER)


def _print(clients: Any, lab: Any, unit: Unit, reason: str | None = None) -> LabelPrint:
    body: dict[str, Any] = {"format": "png"}
    if reason:
        body["reason"] = reason
    response = clients.api(lab.tech).post(f"/api/v1/units/{unit.id}/labels", json=body)
    assert response.status_code == 200, response.get_json()
    [print_id] = response.headers["X-Label-Print-Ids"].split(",")
    return db.session.get(LabelPrint, int(print_id))


def _draft(lab: Any, code: str, text: str) -> LabelTemplateDocument:
    return KIND.draft(
        db.session,
        actor=lab.qa,
        now=utcnow(),
        code=code,
        title="Changed layout",
        parameters={"toml": text},
    )


# --- the check ----------------------------------------------------------------------------------


def test_every_shipped_file_passes_the_check_as_a_document():
    for _version, default in template_documents.default_versions():
        KIND.check(default.parameters)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda t: t.replace('name = "caution"', 'name = "cautionary"'), "unknown fields"),
        (
            lambda t: t.replace('name = "caution"', 'name = "kind"', 1),
            "must print caution",
        ),
        (lambda t: t.replace("width_mm = 102", "width_mm = 50", 1), "does not fit on the label"),
        (lambda t: t.replace("text_mm = 4.2", "text_mm = 40", 1), "taller than its box"),
        (lambda t: t.replace('label_type = "cryobag"', 'label_type = "bottle"'), "unknown label"),
        (lambda t: t + "\n[[[ not toml", "not a readable TOML"),
        (lambda t: "", "needs its text"),
        # the status box half as tall: the longest markings no longer fit (nothing cut)
        (lambda t: t.replace("height_mm = 9.2", "height_mm = 4.6"), "would be cut off"),
    ],
    ids=["unknown field", "required", "outside", "text", "label type", "toml", "empty", "cut"],
)
def test_a_template_that_fails_the_check_is_refused(change, says):
    with pytest.raises(InvalidInput) as refused:
        template_documents.check_template({"toml": change(_text("cryobag"))})
    assert says in refused.value.detail


def test_the_fit_check_names_the_field_and_the_marking_it_would_cut():
    text = _text("cryobag").replace("height_mm = 9.2", "height_mm = 4.6")
    with pytest.raises(InvalidInput) as refused:
        template_documents.check_template({"toml": text})
    assert "cryobag, recalled, ineligible donor, en: status" in refused.value.detail


def test_only_the_text_is_content():
    with pytest.raises(InvalidInput, match="text only"):
        template_documents.check_template({"toml": _text("cryobag"), "version": 4})


def test_a_failing_draft_writes_nothing_and_a_good_one_is_signed_by_qa_only(lab):
    before = db.session.execute(select(LabelTemplateDocument.id)).all()
    with pytest.raises(InvalidInput):
        _draft(lab, "CRYOBAG", _text("cryobag").replace('name = "caution"', 'name = "kind"'))
    db.session.rollback()
    assert db.session.execute(select(LabelTemplateDocument.id)).all() == before
    draft = _draft(lab, "CRYOBAG", _text("cryobag"))
    db.session.commit()
    assert draft.version == 4  # after the file's v3
    with pytest.raises(PermissionDenied):
        KIND.approve(db.session, draft, user=lab.tech, password=TEST_PASSWORD, now=utcnow())
    db.session.rollback()


def test_a_version_whose_text_is_another_label_type_is_refused_and_never_used(lab):
    """A valid template of a dose offered as a cryobag version: refused when drafted (nothing
    saved); a row holding one anyway (written outside the application) prints nothing."""
    before = db.session.execute(select(LabelTemplateDocument.id)).all()
    with pytest.raises(InvalidInput, match="template of prepared_dose, not of cryobag"):
        _draft(lab, "CRYOBAG", _text("prepared_dose"))
    db.session.rollback()
    assert db.session.execute(select(LabelTemplateDocument.id)).all() == before
    stray = LabelTemplateDocument(
        code="CRYOBAG", version=9, parameters_json=json.dumps({"toml": _text("prepared_dose")})
    )
    with pytest.raises(TemplateError, match="not cryobag"):
        template_documents.template_of(stray)


# --- defaults -----------------------------------------------------------------------------------


def test_the_files_are_the_default_versions_under_their_own_numbers_and_hashes(lab):
    """The lab scene loaded and approved them: each label type's version in force is its
    file, with the file's version and SHA-256 (what prints made before issue 22 recorded)."""
    in_force = template_documents.templates_in_force(db.session, at=utcnow())
    assert set(in_force) == set(FILES)
    for label_type, template in in_force.items():
        from_file = FILES[label_type]
        assert (template.version, template.content_hash) == (
            from_file.version,
            from_file.content_hash,
        )
        assert template.content_hash == hashlib.sha256(_text(label_type).encode()).hexdigest()
        assert template.document_id is not None
    loaded_again = template_documents.load_defaults(db.session, actor=lab.qa, now=utcnow())
    assert {d.id for d in loaded_again} == {t.document_id for t in in_force.values()}


def test_the_label_type_and_version_come_from_the_file():
    versions = {d.code: v for v, d in template_documents.default_versions()}
    for label_type, template in FILES.items():
        assert versions[label_type.upper()] == template.version
        assert tomllib.loads(_text(label_type))["label_type"] == label_type


# --- printing -----------------------------------------------------------------------------------


def test_printing_uses_the_version_in_force_and_earlier_prints_keep_theirs(lab, clients):
    unit = _container(lab)
    first = _print(clients, lab, unit)
    v2 = db.session.get(LabelTemplateDocument, first.template_id)
    assert (v2.code, v2.version) == ("DONATION_CONTAINER", FILES["donation_container"].version)
    assert (first.template_version, first.template_hash) == (
        v2.version,
        FILES["donation_container"].content_hash,
    )
    # QA signs a new layout: the identifier's text a little smaller, nothing else
    text = _text("donation_container").replace("text_mm = 3.3\n", "text_mm = 3.2\n", 1)
    assert text != _text("donation_container")
    v3 = _draft(lab, "DONATION_CONTAINER", text)
    KIND.approve(db.session, v3, user=lab.qa, password=TEST_PASSWORD, now=utcnow())
    db.session.commit()
    second = _print(clients, lab, unit, reason="new layout")
    assert second.template_id == v3.id
    assert second.template_version == v3.version == v2.version + 1
    assert second.template_hash == hashlib.sha256(text.encode()).hexdigest()
    db.session.expire_all()
    assert (first.template_id, first.template_version) == (v2.id, v2.version)
    log = clients.api(lab.tech).get(f"/api/v1/units/{unit.id}/labels").get_json()
    assert sorted(p["template_version"] for p in log) == [v2.version, v3.version]


def test_without_a_template_in_force_no_label_is_printed(lab):
    """Before QA signed the templates nothing was in force: a label asked for then is refused,
    naming the unit's kind."""
    unit = _container(lab)
    signed_at = min(
        document.effective_at
        for document in db.session.scalars(select(LabelTemplateDocument))
        if document.effective_at is not None
    )
    before = signed_at - dt.timedelta(seconds=1)
    assert template_documents.templates_in_force(db.session, at=before) == {}
    with pytest.raises(NotLabellable, match="No label template"):
        label_for(db.session, unit, templates={}, zone=dt.UTC, isbt=IsbtSettings({}))


# --- pages and API ------------------------------------------------------------------------------


def test_the_pages_and_the_api_show_the_versions(lab, clients):
    in_force = template_documents.templates_in_force(db.session, at=utcnow())
    cryobag_id = in_force["cryobag"].document_id
    web = clients.web(lab.tech)
    listing = web.get("/labels/templates").get_data(as_text=True)
    assert f"/labels/templates/{cryobag_id}" in listing
    page = web.get(f"/labels/templates/{cryobag_id}").get_data(as_text=True)
    assert 'id="template-text"' in page and "label_type = &#34;cryobag&#34;" in page
    api = clients.api(lab.tech)
    found = api.get(f"/api/v1/label_templates/{cryobag_id}").get_json()
    assert (found["code"], found["version"], found["status"]) == ("CRYOBAG", 3, "effective")
    assert found["parameters"]["toml"] == _text("cryobag")
    assert found["signatures"][0]["meaning"] == "approval: label template in force"
    assert len(api.get("/api/v1/label_templates").get_json()) == len(FILES)
