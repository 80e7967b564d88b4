"""Equipment in date (issue 22): registered with a calibration interval and a passing
calibration long enough ago that every past date a test uses is covered."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.manufacturing.equipment import service as equipment
from cellchain.manufacturing.models import Equipment, EquipmentEventKind, EquipmentKind

#: The fixtures' calibration interval, and how long before "now" their calibration was done:
#: it covers uses from 200 days ago to 165 days ahead.
INTERVAL_DAYS = 365
CALIBRATED_DAYS_AGO = 200


def register_in_date(
    session: Any,
    *,
    code: str,
    kind: EquipmentKind,
    name: str,
    actor: Any,
    now: dt.datetime,
    maintenance_interval_days: int | None = None,
) -> Equipment:
    item = equipment.register_equipment(
        session,
        equipment.EquipmentInput(
            code=code,
            kind=kind,
            name=name,
            calibration_interval_days=INTERVAL_DAYS,
            maintenance_interval_days=maintenance_interval_days,
        ),
        actor=actor,
        now=now,
    )
    calibrate(session, item, actor=actor, now=now, days_ago=CALIBRATED_DAYS_AGO)
    return item


def calibrate(
    session: Any,
    item: Equipment,
    *,
    actor: Any,
    now: dt.datetime,
    days_ago: int = 0,
    passed: bool = True,
    kind: EquipmentEventKind = EquipmentEventKind.CALIBRATION,
) -> Any:
    return equipment.record_event(
        session,
        item,
        equipment.EventInput(
            kind=kind,
            performed_on=now.date() - dt.timedelta(days=days_ago),
            performed_by="Calibration Services Ltd (test)",
            passed=passed,
            certificate_ref=f"CERT-{item.code}-{days_ago}",
        ),
        actor=actor,
        now=now,
        today=now.date(),
    )
