"""Controlled documents drafted, compared, signed into force on a date, never changed once
signed, and moved between sites as files (issue 22)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.cli_documents import documents_group
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.documents import texts, versioning
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.dosing.service import PROTOCOLS
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.defaults import UC_MSC_PARAMETERS
from cellchain.manufacturing.service import PRODUCTS
from cellchain.quality.defaults import UC_MSC_SPECIFICATION
from cellchain.quality.service import SPECIFICATIONS
from tests.conftest import TEST_PASSWORD


def _signed_spec(session: Any, qa: Any, *, at: dt.datetime | None = None) -> Any:
    spec = SPECIFICATIONS.load_default(session, actor=qa, now=at or utcnow())
    SPECIFICATIONS.approve(session, spec, user=qa, password=TEST_PASSWORD, now=at or utcnow())
    session.commit()
    return spec


def _tighter(parameters: dict[str, Any], viability_min: float) -> dict[str, Any]:
    changed = copy.deepcopy(parameters)
    for test in changed["tests"]:
        if test["code"] == "VIABILITY":
            test["criterion"] = {"min": viability_min}
    return changed


# --- text and differences -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameters", [UC_MSC_SPECIFICATION, NCT01420432_PARAMETERS, UC_MSC_PARAMETERS]
)
def test_parameters_read_back_from_toml_as_they_were(parameters: dict[str, Any]) -> None:
    text = texts.to_toml(parameters)
    assert tomllib.loads(text) == json.loads(json.dumps(parameters))


def test_differences_name_each_changed_added_and_removed_parameter() -> None:
    old = {"tests": [{"code": "A", "criterion": {"min": 80}}, {"code": "B"}], "days": 3, "x": 1}
    new = {"tests": [{"code": "A", "criterion": {"min": 85}}, {"code": "C"}], "days": 3, "y": 2}
    rows = {(d.path, d.change): (d.old, d.new) for d in texts.differences(old, new)}
    assert rows == {
        ("tests[A].criterion.min", "changed"): (80, 85),
        ("tests[B]", "removed"): ({"code": "B"}, None),
        ("tests[C]", "added"): (None, {"code": "C"}),
        ("x", "removed"): (1, None),
        ("y", "added"): (None, 2),
    }
    assert texts.differences(old, copy.deepcopy(old)) == []


# --- the protocol's check -----------------------------------------------------------------------


def test_a_protocol_with_overlapping_windows_or_a_bad_dose_is_refused_field_by_field(
    session: Any, make_user: Any
) -> None:
    qa = make_user("alex", "qa")
    bad = copy.deepcopy(NCT01420432_PARAMETERS)
    bad["dose_viable_cells_per_kg"] = "one million"
    bad["follow_up"][0]["day"] = 100  # M6 at day 100 ± 14 overlaps M3 at day 91 ± 14
    with pytest.raises(InvalidInput) as refused:
        PROTOCOLS.draft_change(
            session,
            actor=qa,
            now=utcnow(),
            code="NCT01420432",
            title="t",
            parameters=bad,
            reason="test",
        )
    errors = refused.value.errors
    assert "dose_viable_cells_per_kg" in errors
    assert any("M3" in m and "M6" in m for m in errors["follow_up[M6].window_days"])
    for dose in (0, -1.0e6, True):
        bad = {**NCT01420432_PARAMETERS, "dose_viable_cells_per_kg": dose}
        with pytest.raises(InvalidInput, match="positive number"):
            PROTOCOLS.check(bad)
    PROTOCOLS.check(NCT01420432_PARAMETERS)


def test_a_draft_without_a_title_or_reason_is_refused_naming_both(
    session: Any, make_user: Any
) -> None:
    qa = make_user("alex", "qa")
    with pytest.raises(InvalidInput) as refused:
        SPECIFICATIONS.draft_change(
            session,
            actor=qa,
            now=utcnow(),
            code="UC-MSC",
            title=" ",
            parameters=UC_MSC_SPECIFICATION,
            reason="",
        )
    assert set(refused.value.errors) == {"title", "reason"}


# --- signed into force on a date ----------------------------------------------------------------


def test_a_version_signed_for_later_is_in_force_only_from_then(
    session: Any, make_user: Any
) -> None:
    qa = make_user("alex", "qa")
    start = utcnow()
    v1 = _signed_spec(session, qa, at=start)
    v2 = SPECIFICATIONS.draft_change(
        session,
        actor=qa,
        now=start,
        code="UC-MSC",
        title=v1.title,
        parameters=_tighter(v1.parameters, 85),
        reason="Tighter viability limit",
    )
    monday = start + dt.timedelta(days=3)
    SPECIFICATIONS.approve(
        session, v2, user=qa, password=TEST_PASSWORD, now=start, effective_at=monday
    )
    session.commit()
    assert SPECIFICATIONS.in_force(session, "UC-MSC", at=start + dt.timedelta(days=1)).id == v1.id
    assert SPECIFICATIONS.in_force(session, "UC-MSC", at=monday).id == v2.id
    with pytest.raises(Conflict):
        SPECIFICATIONS.in_force(session, "UC-MSC", at=start - dt.timedelta(hours=1))
    in_force = versioning.in_force_ids(session, v1.__class__, at=start + dt.timedelta(hours=1))
    assert versioning.standing(v1, in_force, start).value == "in_force"
    assert versioning.standing(v2, in_force, start).value == "signed"
    assert versioning.change_reason(session, v2) == "Tighter viability limit"


def test_an_effective_time_before_the_signing_or_an_earlier_signed_version_is_refused(
    session: Any, make_user: Any
) -> None:
    qa = make_user("alex", "qa")
    now = utcnow()
    v1 = _signed_spec(session, qa, at=now)
    v2 = SPECIFICATIONS.draft_change(
        session, actor=qa, now=now, code="UC-MSC", title="t", parameters=v1.parameters, reason="r"
    )
    session.commit()
    with pytest.raises(InvalidInput) as past:
        SPECIFICATIONS.approve(
            session,
            v2,
            user=qa,
            password=TEST_PASSWORD,
            now=now,
            effective_at=now - dt.timedelta(days=1),
        )
    assert "effective_at" in past.value.errors
    session.rollback()
    later = now + dt.timedelta(days=10)
    SPECIFICATIONS.approve(
        session, v2, user=qa, password=TEST_PASSWORD, now=now, effective_at=later
    )
    session.commit()
    v3 = SPECIFICATIONS.draft_change(
        session, actor=qa, now=now, code="UC-MSC", title="t", parameters=v1.parameters, reason="r"
    )
    with pytest.raises(InvalidInput, match="already signed"):
        SPECIFICATIONS.approve(
            session,
            v3,
            user=qa,
            password=TEST_PASSWORD,
            now=now,
            effective_at=now + dt.timedelta(days=1),
        )


# --- a signed version is never changed in place ------------------------------------------------


def test_every_edit_path_of_a_signed_version_is_refused(
    session: Any, make_user: Any, clients: Any
) -> None:
    qa = make_user("alex", "qa")
    spec = _signed_spec(session, qa)
    before = spec.parameters_json
    api = clients.api(qa)
    change = {"reason": "sneaky", "parameters": _tighter(spec.parameters, 50)}
    for method in (api.patch, api.put):
        response = method(f"/api/v1/specifications/{spec.id}", json=change)
        assert response.status_code == 409, response.get_json()
        assert "never changed in place" in response.get_json()["detail"]
    web = clients.web(qa)
    form = {"title": "x", "reason": "sneaky", "parameters": texts.to_toml(change["parameters"])}
    posted = web.post(f"/specifications/{spec.id}/edit", data=form)
    assert posted.status_code == 409
    assert "never changed in place" in posted.get_data(as_text=True)
    assert web.get(f"/specifications/{spec.id}/edit").status_code == 302
    db.session.expire_all()
    assert SPECIFICATIONS.get(db.session, spec.id).parameters_json == before


def test_a_signed_version_changed_through_the_orm_is_refused_at_the_flush(
    session: Any, make_user: Any
) -> None:
    qa = make_user("alex", "qa")
    spec = _signed_spec(session, qa)
    spec.parameters_json = spec.parameters_json.replace('"min":80', '"min":70')
    with pytest.raises(Conflict, match="never changed in place"):
        session.flush()
    session.rollback()
    assert '"min":80' in SPECIFICATIONS.get(session, spec.id).parameters_json


def test_a_draft_is_changed_through_the_api_and_checked_again(
    session: Any, make_user: Any, clients: Any
) -> None:
    qa = make_user("alex", "qa")
    spec = _signed_spec(session, qa)
    api = clients.api(qa)
    created = api.post(
        "/api/v1/specifications",
        json={
            "code": "UC-MSC",
            "title": spec.title,
            "reason": "Tighter viability",
            "parameters": _tighter(spec.parameters, 85),
        },
    )
    assert created.status_code == 201, created.get_json()
    draft = created.get_json()
    assert (draft["status"], draft["version"], draft["change_reason"]) == (
        "draft",
        2,
        "Tighter viability",
    )
    refused = api.patch(
        f"/api/v1/specifications/{draft['id']}",
        json={"reason": "oops", "parameters": {"tests": []}},
    )
    assert refused.status_code == 422
    changed = api.patch(
        f"/api/v1/specifications/{draft['id']}",
        json={"reason": "Even tighter", "parameters": _tighter(spec.parameters, 90)},
    )
    assert changed.status_code == 200, changed.get_json()
    diff = api.get(f"/api/v1/specifications/{draft['id']}/differences").get_json()
    assert diff["against_version"] == 1
    assert diff["differences"] == [
        {
            "path": "tests[VIABILITY].criterion.min",
            "change": "changed",
            "old": 80,
            "new": 90,
            "lines": None,  # a number, not a text of several lines
            "unified": None,
        }
    ]
    tech = clients.api(make_user("tina", "technician"))
    assert tech.post("/api/v1/specifications", json={}).status_code == 403
    with_null = {**_tighter(spec.parameters, 85), "note": None}
    refused = api.post(
        "/api/v1/specifications",
        json={"code": "UC-MSC", "title": "t", "reason": "r", "parameters": with_null},
    )
    assert refused.status_code == 422 and "note" in refused.get_json()["errors"]


def test_qa_signs_a_draft_into_force_later_through_the_api(
    session: Any, make_user: Any, clients: Any
) -> None:
    qa = make_user("alex", "qa")
    spec = _signed_spec(session, qa)
    draft = SPECIFICATIONS.draft_change(
        session,
        actor=qa,
        now=utcnow(),
        code="UC-MSC",
        title=spec.title,
        parameters=_tighter(spec.parameters, 85),
        reason="r",
    )
    session.commit()
    api = clients.api(qa)
    when = (utcnow() + dt.timedelta(days=2)).replace(microsecond=0)
    past = api.post(
        f"/api/v1/specifications/{draft.id}/approve",
        json={"password": TEST_PASSWORD, "effective_at": "2020-01-01T00:00:00+00:00"},
    )
    assert past.status_code == 422
    signed = api.post(
        f"/api/v1/specifications/{draft.id}/approve",
        json={"password": TEST_PASSWORD, "effective_at": when.isoformat()},
    )
    assert signed.status_code == 200, signed.get_json()
    assert dt.datetime.fromisoformat(signed.get_json()["effective_at"]) == when
    assert SPECIFICATIONS.in_force(db.session, "UC-MSC", at=utcnow()).id == spec.id
    page = clients.web(qa).get(f"/specifications/{draft.id}").get_data(as_text=True)
    assert 'data-standing="signed"' in page


# --- the draft form -----------------------------------------------------------------------------


def test_a_bad_draft_in_the_form_is_refused_with_everything_typed_kept(
    session: Any, make_user: Any, clients: Any
) -> None:
    qa = make_user("alex", "qa")
    protocol = PROTOCOLS.load_default(session, actor=qa, now=utcnow())
    PROTOCOLS.approve(session, protocol, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    web = clients.web(qa)
    form = web.get(f"/protocols/{protocol.id}/draft?editor=toml").get_data(as_text=True)
    assert "dose_viable_cells_per_kg = 1000000.0" in form
    typed = texts.to_toml({**protocol.parameters, "dose_viable_cells_per_kg": -5})
    refused = web.post(
        f"/protocols/{protocol.id}/draft",
        data={"title": "My new title", "reason": "Lower dose", "parameters": typed},
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert 'id="field-errors"' in page and "dose_viable_cells_per_kg" in page
    assert 'value="My new title"' in page and 'value="Lower dose"' in page
    assert "dose_viable_cells_per_kg = -5" in page
    broken = web.post(
        f"/protocols/{protocol.id}/draft",
        data={"title": "t", "reason": "r", "parameters": "arms = [unclosed"},
    )
    assert broken.status_code == 422
    assert "not valid TOML" in broken.get_data(as_text=True)
    assert "arms = [unclosed" in broken.get_data(as_text=True)
    assert len(PROTOCOLS.versions(db.session)) == 1


# --- export and import --------------------------------------------------------------------------


def test_a_version_moves_between_sites_as_a_file_and_arrives_as_a_draft(
    app: Any, session: Any, make_user: Any, tmp_path: Path
) -> None:
    qa = make_user("alex", "qa")
    product = PRODUCTS.load_default(session, actor=qa, now=utcnow())
    PRODUCTS.approve(session, product, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    runner = app.test_cli_runner()
    for fmt in ("toml", "json"):
        exported = runner.invoke(documents_group, ["export", "product", "uc-msc", "--format", fmt])
        assert exported.exit_code == 0, exported.output
        file = tmp_path / f"product.{fmt}"
        file.write_text(exported.output, encoding="utf-8")
        imported = runner.invoke(
            documents_group, ["import", "product", str(file), "--user", "alex"]
        )
        assert imported.exit_code == 0, imported.output
        assert "Imported as DRAFT" in imported.output
    db.session.expire_all()
    versions = sorted(PRODUCTS.versions(db.session), key=lambda d: d.version)
    assert [(d.version, d.status) for d in versions] == [
        (1, "effective"),
        (2, "draft"),
        (3, "draft"),
    ]
    assert versions[1].parameters == versions[0].parameters == versions[2].parameters
    assert PRODUCTS.in_force(db.session, "UC-MSC", at=utcnow()).id == product.id

    mismatch = runner.invoke(
        documents_group, ["import", "specification", str(file), "--user", "alex"]
    )
    assert mismatch.exit_code != 0 and "not a specification" in mismatch.output
    data = json.loads(file.read_text(encoding="utf-8"))
    data["parameters"]["harvest_due_days"] = {"primary": "ten"}
    file.write_text(json.dumps(data), encoding="utf-8")
    failing = runner.invoke(documents_group, ["import", "product", str(file), "--user", "alex"])
    assert failing.exit_code != 0 and "nothing imported" in failing.output
    make_user("tess", "technician")
    nobody = runner.invoke(documents_group, ["import", "product", str(file), "--user", "tess"])
    assert nobody.exit_code != 0 and "tess may not draft a product" in nobody.output
    db.session.expire_all()
    assert len(PRODUCTS.versions(db.session)) == 3
    drafted = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "product_definition.drafted")
    ).all()
    assert [entry.actor_username for entry in drafted[-2:]] == ["alex", "alex"]
