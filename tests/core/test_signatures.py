"""Electronic signatures: re-authentication, manifestation, binding to content, two persons."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from cellchain.core import accounts, signatures
from cellchain.core.accounts import CredentialsRejected
from cellchain.core.models import AuditEntry, Signature
from cellchain.core.roles import Permission
from cellchain.core.types import utcnow
from cellchain.dosing import service as dosing
from cellchain.dosing.models import Protocol
from cellchain.errors import Conflict
from tests.conftest import TEST_PASSWORD


@pytest.fixture
def protocol(session) -> Protocol:
    found = dosing.PROTOCOLS.load_default(session, actor=None, now=utcnow())
    session.commit()
    return found


def test_signature_records_printed_name_time_meaning_and_content_hash(session, make_user, protocol):
    qa = make_user("alex", "qa", full_name="Alex Quality")
    at = utcnow()
    sig = signatures.sign(
        session,
        record=protocol,
        meaning="approval",
        user=qa,
        password=TEST_PASSWORD,
        now=at,
        permission=Permission.SIGN_PROTOCOL,
    )
    session.commit()
    stored = session.get(Signature, sig.id)
    assert stored.printed_name == "Alex Quality"
    assert stored.signed_at == at
    assert stored.meaning == "approval"
    assert stored.content_hash == signatures.content_hash(protocol)
    assert '"code":"NCT01420432"' in stored.content
    [shown] = signatures.manifest(session, protocol)
    assert shown.valid and shown.printed_name == "Alex Quality" and shown.username == "alex"
    actions = session.scalars(select(AuditEntry.action)).all()
    assert "signature.signed" in actions


def test_a_change_to_the_signed_content_shows_the_signature_invalid(session, make_user, protocol):
    qa = make_user("alex", "qa")
    signatures.sign(
        session,
        record=protocol,
        meaning="approval",
        user=qa,
        password=TEST_PASSWORD,
        now=utcnow(),
        permission=Permission.SIGN_PROTOCOL,
    )
    session.commit()
    # Someone edits the parameters behind the application's back.
    session.execute(
        text(
            "UPDATE protocols SET parameters_json = "
            "replace(parameters_json, '1000000.0', '2000000.0')"
        )
    )
    session.commit()
    session.refresh(protocol)
    assert protocol.parameters["dose_viable_cells_per_kg"] == 2_000_000.0
    [shown] = signatures.manifest(session, protocol)
    assert not shown.valid


@pytest.mark.parametrize("manifest", [2, 3])
def test_a_stored_content_altered_to_name_another_manifest_shows_invalid_not_an_error(
    session, make_user, protocol, manifest
):
    """A signature's content names the manifest it was made by (issue 20); one altered to
    name a manifest the record does not sign by (the protocol signs by manifest 1 only) is
    shown invalid, on every page that lists it, instead of failing the page."""
    qa = make_user("alex", "qa")
    signatures.sign(
        session,
        record=protocol,
        meaning="approval",
        user=qa,
        password=TEST_PASSWORD,
        now=utcnow(),
        permission=Permission.SIGN_PROTOCOL,
    )
    session.commit()
    altered = session.scalars(select(Signature)).one()
    altered.content = altered.content[:-1] + f',"manifest":{manifest}}}'
    session.commit()
    [shown] = signatures.manifest(session, protocol)
    assert not shown.valid


def test_wrong_password_is_refused(session, make_user, protocol):
    qa = make_user("alex", "qa")
    with pytest.raises(CredentialsRejected) as refused:
        signatures.sign(
            session,
            record=protocol,
            meaning="approval",
            user=qa,
            password="wrong",
            now=utcnow(),
            permission=Permission.SIGN_PROTOCOL,
        )
    assert refused.value.purpose == "signature" and refused.value.counts


def test_wrong_signing_passwords_are_audited_and_lock_the_account(
    clients, make_user, protocol, session
):
    qa = make_user("alex", "qa")
    make_user("blair", "qa")  # the only QA is never locked (tests/web/test_login_throttle.py)
    api = clients.api(qa)
    for attempt in range(1, 6):
        response = api.post(f"/api/v1/protocols/{protocol.id}/approve", json={"password": "nope"})
        assert response.status_code == 401
        session.expire_all()
        assert qa.failed_attempts == attempt
    assert qa.locked
    failed = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "signature.failed")
    ).all()
    assert len(failed) == 5
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "user.locked")).one()
    session.refresh(protocol)
    assert protocol.status == "draft"
    assert session.scalars(select(Signature)).all() == []


def test_two_person_signing_needs_two_different_people(session, make_user, protocol):
    first = make_user("one", "clinician")
    second = make_user("two", "clinician")
    with pytest.raises(Conflict):
        signatures.sign_by_two(
            session,
            record=protocol,
            first=(first, TEST_PASSWORD, "verified"),
            second=(first, TEST_PASSWORD, "verified"),
            now=utcnow(),
            permission=Permission.ADMINISTER_DOSES,
        )
    session.rollback()
    one, two = signatures.sign_by_two(
        session,
        record=protocol,
        first=(first, TEST_PASSWORD, "performed"),
        second=(second, TEST_PASSWORD, "verified"),
        now=utcnow(),
        permission=Permission.ADMINISTER_DOSES,
    )
    session.commit()
    assert {one.signer_id, two.signer_id} == {first.id, second.id}
    assert [m.meaning for m in signatures.manifest(session, protocol)] == ["performed", "verified"]


def test_second_person_with_wrong_password_signs_nothing(session, make_user, protocol):
    first = make_user("one", "clinician")
    second = make_user("two", "clinician")
    with pytest.raises(CredentialsRejected) as refused:
        signatures.sign_by_two(
            session,
            record=protocol,
            first=(first, TEST_PASSWORD, "performed"),
            second=(second, "bad", "verified"),
            now=utcnow(),
            permission=Permission.ADMINISTER_DOSES,
        )
    assert refused.value.username == "two"
    session.rollback()
    assert session.scalars(select(Signature)).all() == []


def test_deactivated_user_cannot_sign(session, make_user, protocol):
    qa = make_user("alex", "qa")
    admin = make_user("ada", "admin")
    accounts.deactivate_user(session, actor=admin, now=utcnow(), user=qa, reason="left the site")
    session.commit()
    with pytest.raises(CredentialsRejected, match="deactivated"):
        signatures.sign(
            session,
            record=protocol,
            meaning="approval",
            user=qa,
            password=TEST_PASSWORD,
            now=utcnow(),
            permission=Permission.SIGN_PROTOCOL,
        )
