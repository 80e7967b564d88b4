"""Infusions: one per dose even when two bedside devices start it at once; the end recorded
with volume, rate and any reaction, checked against what was drawn."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.clinic.bedside import infusions
from cellchain.clinic.bedside.infusions import InfusionEnd
from cellchain.clinic.models import Infusion
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput, StateConflict
from cellchain.extensions import db
from tests.conftest import at_once
from tests.support.clinic import UTC
from tests.support.ward import Ward


def running(ward: Ward) -> Any:
    patient, order = ward.at_bedside()
    started = ward.start(ward.sign(ward.verify(patient, order)))
    assert started.infusion is not None
    return started.infusion


def end(ward: Ward, infusion: Any, **changes: Any) -> Any:
    values: dict[str, Any] = {
        "volume_infused_ml": infusion.dose_order.volume_ml,
        "rate_ml_per_h": 60.0,
    }
    values.update(changes)
    # 15.1 mL at 60 mL/h takes 15 min: recorded 20 min after the start, the times agree
    ended = infusions.end(
        db.session,
        infusion,
        InfusionEnd(**values),
        actor=ward.clinic.clinician,
        now=infusion.started_at + dt.timedelta(minutes=20),
    )
    db.session.commit()
    return ended


def test_the_end_records_time_volume_rate_and_no_reaction(ward: Ward) -> None:
    infusion = running(ward)
    ended = end(ward, infusion)
    assert ended.status == "completed" and ended.reaction is None and ended.time_flag is None
    assert ended.volume_infused_ml == infusion.dose_order.volume_ml
    assert ended.ended_at >= ended.started_at
    assert ended.administered_by.username == "cleo"


def test_stopped_early_needs_the_reaction_and_keeps_the_volume_given(ward: Ward) -> None:
    infusion = running(ward)
    with pytest.raises(InvalidInput, match="stopped early"):
        end(ward, infusion, volume_infused_ml=4.0, stopped_early=True)
    db.session.rollback()
    ended = end(
        ward, infusion, volume_infused_ml=4.0, stopped_early=True, reaction="rigors, fever 38.6 °C"
    )
    assert ended.status == "stopped" and ended.volume_infused_ml == 4.0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"volume_infused_ml": 99.0}, "volume_infused_ml"),
        ({"volume_infused_ml": -1.0}, "volume_infused_ml"),
        ({"rate_ml_per_h": 0.0}, "rate_ml_per_h"),
        ({"ended_at": utcnow() + dt.timedelta(hours=1)}, "ended_at"),
        ({"ended_at": utcnow() - dt.timedelta(hours=1)}, "ended_at"),
    ],
)
def test_an_impossible_end_is_refused_on_its_field(
    ward: Ward, changes: dict[str, Any], field: str
) -> None:
    infusion = running(ward)
    with pytest.raises(InvalidInput) as refused:
        end(ward, infusion, **changes)
    assert field in refused.value.errors


def test_an_infusion_ends_once(ward: Ward) -> None:
    infusion = running(ward)
    end(ward, infusion)
    with pytest.raises(StateConflict):
        end(ward, infusion)


def test_only_one_of_the_signers_starts_the_infusion(ward: Ward, make_user: Any) -> None:
    patient, order = ward.at_bedside()
    check = ward.sign(ward.verify(patient, order))
    outsider = make_user("otto", "clinician")
    with pytest.raises(Conflict, match="one of the two clinicians who signed"):
        infusions.start(db.session, check, actor=outsider, now=utcnow(), zone=UTC)


@pytest.mark.postgres_only
def test_two_bedside_devices_starting_the_same_dose_at_once_give_one_infusion(
    app: Any, ward: Ward
) -> None:
    patient, order = ward.at_bedside()
    check_id = ward.sign(ward.verify(patient, order)).id  # open on two devices
    clinician_id = ward.clinic.clinician.id

    def starting(check_id: int):
        def job() -> str:
            from cellchain.clinic.models import BedsideCheck
            from cellchain.core.models import User

            try:
                started = infusions.start(
                    db.session,
                    db.session.get(BedsideCheck, check_id),
                    actor=db.session.get(User, clinician_id),
                    now=utcnow(),
                    zone=UTC,
                )
                db.session.commit()
                return "started" if started.infusion else "stopped"
            except Conflict:
                db.session.rollback()
                return "conflict"

        return job

    outcomes = at_once(app, [starting(check_id), starting(check_id)])
    # the loser is refused at the insert, or (if it looked after the winner committed) it finds
    # the winner's re-check newer than its check: either way nothing else starts
    assert outcomes.count("started") == 1 and set(outcomes) - {"started"} <= {"conflict", "stopped"}
    db.session.expire_all()
    assert db.session.execute(select(func.count(Infusion.id))).scalar_one() == 1
    assert order.status == "infused"


# --- times that cannot be true (issue 16 item 8) ------------------------------------------------


def test_an_end_at_the_start_is_refused(ward: Ward) -> None:
    infusion = running(ward)
    with pytest.raises(InvalidInput) as refused:
        end(ward, infusion, ended_at=infusion.started_at)
    assert "must be after the start" in refused.value.errors["ended_at"][0]


def test_a_full_dose_at_60_ml_per_h_ended_11_s_after_the_start_is_flagged_for_a_second_clinician(
    ward: Ward, make_user: Any
) -> None:
    from cellchain.core import signatures
    from cellchain.core.accounts import CredentialsRejected
    from cellchain.dosing import orders
    from tests.conftest import TEST_PASSWORD

    infusion = running(ward)
    ended = end(ward, infusion, ended_at=infusion.started_at + dt.timedelta(seconds=11))
    assert ended.status == "completed" and ended.time_flag_open
    assert "in 11 s" in ended.time_flag and "the 60 mL/h recorded" in ended.time_flag
    # the patient is not dosed again until the record is settled
    patient = ended.patient
    # three months on: the first infusion started 91 days ago, so Month 3 is open today
    ended.started_at -= dt.timedelta(days=91)
    ended.ended_at -= dt.timedelta(days=91)  # type: ignore[operator]
    db.session.commit()
    ward.clinic.weigh(patient, 70.5, hours_ago=0)
    ward.clinic.recheck(patient)  # eligibility re-confirmed before month 3
    with pytest.raises(orders.DoseRefused, match="second clinician must acknowledge"):
        orders.plan_dose(db.session, patient, "M3", now=utcnow(), zone=UTC)

    def acknowledge(user: Any, password: str = TEST_PASSWORD, note: str = "pump log: 11 s") -> Any:
        return infusions.acknowledge_time_flag(
            db.session, ended, user=user, password=password, note=note, now=utcnow()
        )

    with pytest.raises(InvalidInput, match="you recorded this end"):
        acknowledge(ward.clinic.clinician)
    db.session.rollback()
    with pytest.raises(InvalidInput, match="Say what you checked"):
        acknowledge(ward.nurse, note=" ")
    db.session.rollback()
    with pytest.raises(CredentialsRejected):
        acknowledge(ward.nurse, password="wrong")
    db.session.rollback()
    assert ended.time_flag_open
    acknowledge(ward.nurse, note="End time typed wrong; pump log says 16 min, as prescribed.")
    db.session.commit()
    assert not ended.time_flag_open and ended.time_flag_acknowledged_by_id == ward.nurse.id
    (signed,) = signatures.manifest(db.session, ended)
    assert signed.meaning == infusions.TIME_FLAG_MEANING and signed.valid
    with pytest.raises(Conflict, match="no flag"):
        acknowledge(ward.nurse)
    db.session.rollback()
    assert orders.plan_dose(db.session, patient, "M3", now=utcnow(), zone=UTC).weight


@pytest.mark.parametrize(
    ("minutes", "flagged"),
    [(15.0, False), (14.1, False), (11.5, False), (10.0, True), (1.0, True)],
)
def test_the_rate_implied_by_volume_and_duration_is_compared_with_the_rate_recorded(
    minutes: float, flagged: bool
) -> None:
    """15 mL at 60 mL/h takes 15 min; an end typed to the minute and a pump a little fast
    (up to 25 % above the rate) are not flagged."""
    start = utcnow()
    flag = infusions.time_flag(start, start + dt.timedelta(minutes=minutes), 15.0, 60.0, 25.0)
    assert (flag is not None) == flagged
