"""Infusions: one per dose even when two bedside devices start it at once; the end recorded
with volume, rate and any reaction, checked against what was drawn."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.clinic import infusions
from cellchain.clinic.infusions import InfusionEnd
from cellchain.clinic.models import Infusion
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput, StateConflict
from cellchain.extensions import db
from tests.clinic.conftest import Ward
from tests.conftest import at_once
from tests.dosing.conftest import UTC


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
    ended = infusions.end(
        db.session, infusion, InfusionEnd(**values), actor=ward.clinic.clinician, now=utcnow()
    )
    db.session.commit()
    return ended


def test_the_end_records_time_volume_rate_and_no_reaction(ward: Ward) -> None:
    infusion = running(ward)
    ended = end(ward, infusion)
    assert ended.status == "completed" and ended.reaction is None
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
