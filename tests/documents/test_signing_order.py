"""A version comes into force in the order of its number, its effective time never moves once
signed, and two people drafting or signing one document at once get a clear answer (issue 22
review: a v2 signed after v3 was recorded in force and never applied; a signed effective
time could be moved; two drafts at once were a 500)."""

from __future__ import annotations

import copy
import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy.orm import Session

from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.quality.models import Specification
from cellchain.quality.service import SPECIFICATIONS
from tests.conftest import TEST_PASSWORD, on_postgres


def _signed_spec(session: Any, qa: Any, now: dt.datetime) -> Specification:
    spec = SPECIFICATIONS.load_default(session, actor=qa, now=now)
    SPECIFICATIONS.approve(session, spec, user=qa, password=TEST_PASSWORD, now=now)
    session.commit()
    return spec


def _draft(session: Any, qa: Any, now: dt.datetime, viability: float) -> Specification:
    current = SPECIFICATIONS.in_force(session, "UC-MSC", at=now)
    parameters = copy.deepcopy(current.parameters)
    for test in parameters["tests"]:
        if test["code"] == "VIABILITY":
            test["criterion"] = {"min": viability}
    return SPECIFICATIONS.draft_change(
        session,
        actor=qa,
        now=now,
        code="UC-MSC",
        title=current.title,
        parameters=parameters,
        reason=f"viability {viability}",
    )


def test_a_lower_version_is_not_signed_after_a_higher_one(session: Any, make_user: Any) -> None:
    qa = make_user("alex", "qa")
    now = utcnow()
    _signed_spec(session, qa, now)
    v2 = _draft(session, qa, now, 85)
    v3 = _draft(session, qa, now, 90)
    session.commit()
    SPECIFICATIONS.approve(session, v3, user=qa, password=TEST_PASSWORD, now=now)
    session.commit()

    with pytest.raises(Conflict, match="v3 is already signed: v2 can no longer come into force"):
        SPECIFICATIONS.approve(session, v2, user=qa, password=TEST_PASSWORD, now=now)
    session.rollback()

    assert db.session.get(Specification, v2.id).status == "draft"
    assert SPECIFICATIONS.in_force(session, "UC-MSC", at=now).id == v3.id


def test_a_signed_versions_effective_time_never_moves(session: Any, make_user: Any) -> None:
    qa = make_user("alex", "qa")
    now = utcnow()
    v1 = _signed_spec(session, qa, now)
    v2 = _draft(session, qa, now, 85)
    later = now + dt.timedelta(days=30)
    SPECIFICATIONS.approve(
        session, v2, user=qa, password=TEST_PASSWORD, now=now, effective_at=later
    )
    session.commit()

    v2.effective_at = now - dt.timedelta(days=400)
    with pytest.raises(Conflict, match="never changed in place"):
        session.flush()
    session.rollback()
    v1.status = "draft"
    with pytest.raises(Conflict, match="never changed in place"):
        session.flush()
    session.rollback()

    assert SPECIFICATIONS.in_force(session, "UC-MSC", at=now + dt.timedelta(days=1)).id == v1.id
    assert SPECIFICATIONS.in_force(session, "UC-MSC", at=later).id == v2.id


@pytest.mark.skipif(not on_postgres(), reason="needs CELLCHAIN_TEST_DATABASE_URL (PostgreSQL)")
def test_two_drafts_of_one_document_at_once_give_one_draft_and_one_conflict(
    app: Any, make_user: Any
) -> None:
    """The second draft's insert waits for the first's commit, then is refused as a 409-style
    Conflict, never a 500; nothing of it is saved."""
    qa = make_user("alex", "qa")
    now = utcnow()
    _signed_spec(db.session, qa, now)
    first = Session(db.engine)
    second = Session(db.engine)
    try:
        _draft(first, first.merge(qa), now, 85)  # holds its transaction open
        outcome: dict[str, Any] = {}

        def draft_again() -> None:
            try:
                with app.app_context():
                    _draft(second, second.merge(qa), now, 90)
                    second.commit()
                outcome["second"] = "drafted"
            except Conflict as error:
                second.rollback()
                outcome["second"] = str(error.detail)

        racer = threading.Thread(target=draft_again)
        racer.start()
        racer.join(timeout=1)
        assert racer.is_alive()  # waiting on the first draft's number
        first.commit()
        racer.join(timeout=30)
        assert not racer.is_alive()
    finally:
        first.close()
        second.close()
    assert "was drafted at the same moment" in outcome["second"]
    versions = db.session.query(Specification.version).filter_by(code="UC-MSC").all()
    assert sorted(v for (v,) in versions) == [1, 2]


def test_a_row_added_in_the_field_editor_starts_without_a_code_and_needs_one() -> None:
    """A new row prefilled from the last would keep its code: a new exclusion criterion
    would then share the last one's answer at enrolment (review of issue 22)."""
    from cellchain.documents import fields
    from cellchain.dosing.defaults import NCT01420432_PARAMETERS

    parameters = copy.deepcopy(NCT01420432_PARAMETERS)
    items = list(fields.items(parameters))
    new = {i.label: i for i in items if i.kind == "new"}
    assert new["exclusion[+].code"].value == ""
    assert new["exclusion[+].text"].value != ""  # the other values start from the last row
    form = {i.name: i.value for i in items if i.kind in ("field", "new")}
    form.update({i.type_name: i.value_type for i in items if i.kind in ("field", "new")})
    form[next(i.name for i in items if i.kind == "add" and i.label == "exclusion")] = "1"
    with pytest.raises(InvalidInput) as refused:
        fields.parameters_from_form(parameters, form)
    assert refused.value.errors == {"exclusion[+].code": ["a row added needs a code of its own"]}
