"""Who may sign is a rule of the services, not only of the routes (issue 16, item 5).

Each signed act is called here straight through its service, as a CLI, a script or a future
route would, on a copy of the demo site (real records). A user whose roles do not grant the
act's permission, and an administrator who also holds the signing role (an account from before
the rule, whose signing roles are suspended), are refused with ``PermissionDenied`` and nothing
is written: no signature, no audit entry, no change to the record or to any unit. The right
role passing is covered by each package's own tests; the last test here proves one end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.chain.models import Unit
from cellchain.clinic.bedside import bedside, infusions
from cellchain.clinic.models import BedsideCheck, Infusion, Shipment
from cellchain.clinic.shipments import shipments
from cellchain.core import signatures
from cellchain.core.models import AuditEntry, Signature, User, UserRole
from cellchain.core.roles import Permission, Role
from cellchain.core.types import utcnow
from cellchain.documents import versioning
from cellchain.donors import service as donors
from cellchain.donors.models import Donation
from cellchain.dosing import orders, patients
from cellchain.dosing import service as dosing
from cellchain.dosing.models import DoseOrder, Protocol, Weight
from cellchain.errors import PermissionDenied
from cellchain.extensions import db
from cellchain.manufacturing import service as products
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import Deviation, Lot, ProductDefinition
from cellchain.quality import disposition, results
from cellchain.quality import service as quality
from cellchain.quality.models import QcResult, Specification
from cellchain.traceability.models import Recall, RecallTarget
from cellchain.traceability.recalls import recalls
from tests.conftest import TEST_PASSWORD


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    """Every test here runs on a fresh copy of the demo site."""
    return demo_database_url


def first(model: Any) -> Any:
    found = db.session.scalars(select(model).order_by(model.id)).first()
    assert found is not None, f"the demo site has no {model.__name__}"
    return found


def draft_of(model: Any) -> Any:
    """A new draft version of the demo's document in force, for an approval to sign."""
    current = first(model)
    draft = versioning.draft(
        db.session,
        model,
        actor=None,
        now=utcnow(),
        code=current.code,
        title=current.title + " (revised)",
        parameters=current.parameters,
    )
    db.session.commit()
    return draft


def open_recall_as_qa(make_user: Callable[..., User]) -> Recall:
    qa = make_user("rhea", Role.QA)
    opened = recalls.open_recall(
        db.session,
        target=RecallTarget.LOT,
        target_id=first(Lot).id,
        reason="Supplier recalled the culture medium lot used",
        user=qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    return opened.recall


def legacy(make_user: Callable[..., User], username: str, extra: Role) -> User:
    """An administrator who also holds ``extra`` (made before the rule or edited in the
    database; the account service refuses to make one): ``extra`` is suspended."""
    user = make_user(username, Role.ADMIN)
    db.session.add(UserRole(user_id=user.id, role=extra.value))
    db.session.commit()
    db.session.expire_all()
    return db.session.get(User, user.id)


@dataclass(frozen=True)
class SignedAct:
    """One signed act: the record it signs (made or found on the demo site), the service
    call as ``user``, and the roles that lack the act's permission."""

    name: str
    permission: Permission | Role
    record: Callable[[Callable[..., User]], Any]
    act: Callable[[Any, User], Any]
    refused: tuple[Role, ...]  #: plain roles without the permission
    suspended: Role  #: the signing role an admin+signing legacy account holds in vain


def now_kw(user: User) -> dict[str, Any]:
    return {"user": user, "password": TEST_PASSWORD, "now": utcnow()}


ACTS: tuple[SignedAct, ...] = (
    SignedAct(
        "approve protocol",
        Permission.SIGN_PROTOCOL,
        lambda _: draft_of(Protocol),
        lambda doc, u: dosing.PROTOCOLS.approve(db.session, doc, **now_kw(u)),
        (Role.TECHNICIAN, Role.INVESTIGATOR),
        Role.QA,
    ),
    SignedAct(
        "approve product",
        Permission.SIGN_PRODUCT,
        lambda _: draft_of(ProductDefinition),
        lambda doc, u: products.PRODUCTS.approve(db.session, doc, **now_kw(u)),
        (Role.TECHNICIAN, Role.QC_ANALYST),
        Role.QA,
    ),
    SignedAct(
        "approve specification",
        Permission.SIGN_SPECIFICATION,
        lambda _: draft_of(Specification),
        lambda doc, u: quality.SPECIFICATIONS.approve(db.session, doc, **now_kw(u)),
        (Role.TECHNICIAN, Role.QC_ANALYST),
        Role.QA,
    ),
    SignedAct(
        "release lot",
        Permission.DISPOSE_LOTS,
        lambda _: first(Lot),
        lambda lot, u: disposition.release_lot(db.session, lot, **now_kw(u)),
        (Role.TECHNICIAN, Role.QC_ANALYST),
        Role.QA,
    ),
    SignedAct(
        "reject lot",
        Permission.DISPOSE_LOTS,
        lambda _: first(Lot),
        lambda lot, u: disposition.reject_lot(db.session, lot, reason="sterility", **now_kw(u)),
        (Role.TECHNICIAN, Role.CLINICIAN),
        Role.QA,
    ),
    SignedAct(
        "determine eligibility",
        Permission.DETERMINE_ELIGIBILITY,
        lambda _: first(Donation),
        lambda d, u: donors.determine_eligibility(
            db.session, d, eligible=False, reason="reactive HBV", **now_kw(u)
        ),
        (Role.TECHNICIAN, Role.QC_ANALYST),
        Role.QA,
    ),
    SignedAct(
        "close deviation",
        Permission.CLOSE_DEVIATIONS,
        lambda _: first(Deviation),
        lambda d, u: deviations.close_deviation(
            db.session, d, resolution="Investigated; no impact", **now_kw(u)
        ),
        (Role.TECHNICIAN, Role.QC_ANALYST),
        Role.QA,
    ),
    SignedAct(
        "authorise limit excursion",
        Permission.CLOSE_DEVIATIONS,
        lambda _: first(Deviation),
        lambda d, u: deviations.authorise_excursion(
            db.session,
            d,
            max_passage=9,
            max_cumulative_pd=None,
            justification="Compassionate use",
            **now_kw(u),
        ),
        (Role.TECHNICIAN, Role.INVESTIGATOR),
        Role.QA,
    ),
    SignedAct(
        "invalidate QC result",
        Permission.INVALIDATE_QC_RESULTS,
        lambda _: first(QcResult),
        lambda r, u: results.invalidate_result(
            db.session, r, reason="Assay error found by investigation", **now_kw(u)
        ),
        (Role.QC_ANALYST, Role.TECHNICIAN),
        Role.QA,
    ),
    SignedAct(
        "open recall",
        Permission.MANAGE_RECALLS,
        lambda _: first(Lot),
        lambda lot, u: recalls.open_recall(
            db.session,
            target=RecallTarget.LOT,
            target_id=lot.id,
            reason="Supplier recalled the culture medium lot used",
            **now_kw(u),
        ),
        (Role.TECHNICIAN, Role.CLINICIAN),
        Role.QA,
    ),
    SignedAct(
        "close recall",
        Permission.MANAGE_RECALLS,
        open_recall_as_qa,
        lambda r, u: recalls.close_recall(db.session, r, note="All notified", **now_kw(u)),
        (Role.TECHNICIAN, Role.INVESTIGATOR),
        Role.QA,
    ),
    SignedAct(
        "decide shipment hold",
        Permission.DECIDE_HOLDS,
        lambda _: first(Shipment),
        lambda s, u: shipments.decide_hold(
            db.session, s, accept=True, reason="Logger read in range", **now_kw(u)
        ),
        (Role.CLINICIAN, Role.TECHNICIAN),
        Role.QA,
    ),
    SignedAct(
        "second check of a dose",
        Permission.CHECK_DOSES,
        lambda _: first(DoseOrder),
        lambda o, u: orders.second_check(
            db.session,
            o,
            checker=u,
            password=TEST_PASSWORD,
            volume_ml=o.volume_ml,
            bag_codes=[bag.unit.code for bag in o.bags],
            now=utcnow(),
        ),
        (Role.CLINICIAN, Role.QC_ANALYST),
        Role.QA,
    ),
    SignedAct(
        "weight countersign",
        Permission.RECORD_WEIGHTS,
        lambda _: first(Weight),
        lambda w, u: patients.confirm_weight(db.session, w, **now_kw(u)),
        (Role.TECHNICIAN, Role.QA),
        Role.INVESTIGATOR,
    ),
    SignedAct(
        "infusion time-flag acknowledgement",
        Permission.ADMINISTER_DOSES,
        lambda _: first(Infusion),
        lambda i, u: infusions.acknowledge_time_flag(
            db.session, i, note="Pump log checked", **now_kw(u)
        ),
        (Role.TECHNICIAN, Role.QA),
        Role.INVESTIGATOR,
    ),
)


def fingerprint(record: Any) -> tuple[Any, ...]:
    """What a signed act could write, read back through the session (which flushes first, so
    a change made before the refusal shows here even though nothing was committed)."""
    table = type(record).__table__
    row = db.session.execute(select(table).where(table.c.id == record.id)).one()
    units = db.session.execute(
        select(Unit.status, func.count()).group_by(Unit.status).order_by(Unit.status)
    ).all()
    counts = tuple(
        db.session.scalar(select(func.count()).select_from(model))
        for model in (Signature, AuditEntry, Recall, DoseOrder, Deviation)
    )
    return tuple(row), tuple(units), counts


def refused_users(act: SignedAct, make_user: Callable[..., User]) -> list[User]:
    plain = [make_user(f"no{i}", role) for i, role in enumerate(act.refused)]
    return [*plain, legacy(make_user, "both", act.suspended)]


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
def test_the_service_refuses_a_signer_without_the_permission_and_writes_nothing(
    app: Any, make_user: Callable[..., User], act: SignedAct
) -> None:
    record = act.record(make_user)
    users = refused_users(act, make_user)
    before = fingerprint(record)
    for user in users:
        with pytest.raises(PermissionDenied):
            act.act(record, user)
        assert fingerprint(record) == before, f"{act.name} by {sorted(user.roles)} wrote"
        db.session.rollback()


@pytest.mark.parametrize("bad", [Role.TECHNICIAN, Role.QA], ids=str)
@pytest.mark.parametrize("position", ["first", "second"])
def test_both_bedside_signers_need_to_be_clinic_staff(
    app: Any, make_user: Callable[..., User], bad: Role, position: str
) -> None:
    check = first(BedsideCheck)
    nurse = bedside.Signer(make_user("cora", Role.CLINICIAN), TEST_PASSWORD)
    outsiders = (make_user("out", bad), legacy(make_user, "both", Role.INVESTIGATOR))
    before = fingerprint(check)
    for outsider in outsiders:
        other = bedside.Signer(outsider, TEST_PASSWORD)
        pair = (nurse, other) if position == "second" else (other, nurse)
        with pytest.raises(PermissionDenied):
            bedside.sign_off(db.session, check, first=pair[0], second=pair[1], now=utcnow())
        assert fingerprint(check) == before
        db.session.rollback()


def test_sign_by_two_checks_the_second_person_before_either_signs(
    app: Any, make_user: Callable[..., User]
) -> None:
    check = first(BedsideCheck)
    cora = make_user("cora", Role.CLINICIAN)
    tess = make_user("tess", Role.TECHNICIAN, full_name="Tess Tech")
    before = fingerprint(check)
    with pytest.raises(PermissionDenied, match="Tess Tech"):
        signatures.sign_by_two(
            db.session,
            record=check,
            first=(cora, TEST_PASSWORD, "verified"),
            second=(tess, "x", "verified"),
            now=utcnow(),
            permission=Permission.ADMINISTER_DOSES,
        )
    assert fingerprint(check) == before


def test_a_signature_names_who_may_make_it(app: Any, make_user: Callable[..., User]) -> None:
    """``signatures.sign`` itself refuses, so a new signed act cannot forget the check: the
    permission is a required argument and the wrong role is refused before the password."""
    protocol = draft_of(Protocol)
    tech = make_user("tess", Role.TECHNICIAN, full_name="Tess Tech")
    with pytest.raises(TypeError):
        signatures.sign(  # type: ignore[call-arg]
            db.session,
            record=protocol,
            meaning="approval",
            user=tech,
            password=TEST_PASSWORD,
            now=utcnow(),
        )
    with pytest.raises(PermissionDenied, match=r"Only Quality assurance may do this"):
        signatures.sign(
            db.session,
            record=protocol,
            meaning="approval",
            user=tech,
            password="not even checked",
            now=utcnow(),
            permission=Permission.SIGN_PROTOCOL,
        )
    db.session.expire_all()
    assert tech.failed_attempts == 0  # refused for the role, not counted as a bad password
    signed = signatures.sign(
        db.session,
        record=protocol,
        meaning="approval",
        user=make_user("quinn", Role.QA),
        password=TEST_PASSWORD,
        now=utcnow(),
        permission=Permission.SIGN_PROTOCOL,
    )
    assert signed.id is not None
