"""What happened to a dose after the lab, for its page: the shipment, the thaw, the post-thaw
count it is judged by, every bedside check (stops too) and the infusion."""

from __future__ import annotations

from dataclasses import dataclass

from cellchain.clinic.bedside import bedside, infusions, post_thaw, thaw
from cellchain.clinic.bedside.thaw import ThawState
from cellchain.clinic.models import BedsideCheck, Infusion, Shipment
from cellchain.clinic.shipments import shipments
from cellchain.dosing.models import DoseOrder
from cellchain.extensions import DbSession


@dataclass(frozen=True)
class DoseAtClinic:
    shipment: Shipment | None
    thaw: ThawState
    checks: list[BedsideCheck]
    infusion: Infusion | None
    #: the count the dose is judged by (post-thaw or release at fill) and its working
    post_thaw: post_thaw.DoseCount


def dose_at_clinic(session: DbSession, order: DoseOrder) -> DoseAtClinic:
    return DoseAtClinic(
        shipment=shipments.shipment_of(session, order),
        thaw=thaw.thaw_state(session, order),
        checks=bedside.checks_of_order(session, order),
        infusion=infusions.infusion_of(session, order),
        post_thaw=post_thaw.dose_count(session, order),
    )
