"""The clinic: the NCT01420432 protocol in force, a clinician, an investigator and the trial
statistician, and a helper that enrols a patient who meets every criterion, randomized by a
signed list the test chooses (``Clinic.randomize``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from cellchain.core.types import utcnow
from cellchain.dosing import patients, randomization, service
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.scenes import scene

UTC = ZoneInfo("UTC")


def all_met(**changes: patients.ChecklistAnswer) -> dict[str, patients.ChecklistAnswer]:
    """Every inclusion item met (numeric ones with a passing value), no exclusion item."""
    answers: dict[str, patients.ChecklistAnswer] = {}
    for item in NCT01420432_PARAMETERS["inclusion"]:
        measure = item.get("measure")
        if measure:
            if measure["operator"] == ">":
                value = measure["limit"] + 10
            elif "min" in measure:  # a bounded score, lower is better (ECOG): its best
                value = measure["min"]
            else:
                value = measure["limit"] - 50
            answers[item["code"]] = patients.ChecklistAnswer(True, float(value))
        else:
            answers[item["code"]] = patients.ChecklistAnswer(True)
    for item in NCT01420432_PARAMETERS["exclusion"]:
        answers[item["code"]] = patients.ChecklistAnswer(False)
    answers.update(changes)
    return answers


def enrolment(**changes: Any) -> patients.Enrolment:
    today = utcnow().date()
    values: dict[str, Any] = {
        "study_id": "AS-001",
        "date_of_birth": today.replace(year=today.year - 40),
        "sex": "female",
        "day0": today,
        "answers": all_met(),
    }
    values.update(changes)
    return patients.Enrolment(**values)


def randomization_list(*arms: str) -> str:
    """A CSV randomization list whose first slots give ``arms`` in order, filled up to the
    planned enrolment with the arms the ratio still owes (MSC first): R-001, R-002…"""
    owed = Counter(
        {"MSC": PLANNED // 2, "CONTROL": PLANNED // 2}  # NCT01420432: 10 patients, 1:1
    )
    owed.subtract(arms)
    if any(n < 0 for n in owed.values()):
        raise AssertionError(f"{arms} does not fit 1:1 over {PLANNED} patients")
    sequence = [*arms, *(["MSC"] * owed["MSC"]), *(["CONTROL"] * owed["CONTROL"])]
    return "\n".join(f"R-{n:03d},{arm}" for n, arm in enumerate(sequence, 1))


PLANNED = int(NCT01420432_PARAMETERS["randomization"]["planned_enrolment"])


@dataclass
class Clinic:
    lab: Any
    clinician: Any
    investigator: Any
    protocol: Any
    statistician: Any

    def randomize(self, *arms: str) -> Any:
        """The statistician imports and signs a list whose next slots give ``arms`` (then
        the rest of the ratio): how a test chooses the arms its patients are randomized to
        (replacing an unused schedule, as the statistician may)."""
        schedule = randomization.import_list(
            db.session,
            self.protocol,
            text=randomization_list(*arms),
            user=self.statistician,
            password=TEST_PASSWORD,
            now=utcnow(),
        )
        db.session.commit()
        return schedule

    def next_arm(self) -> str | None:
        """The arm the next enrolment will draw (test support: a test knows its schedule)."""
        schedule = randomization.active_schedule(db.session, self.protocol.code)
        if schedule is None:
            return None
        unused = [slot for slot in schedule.slots if slot.patient_id is None]
        return unused[0].arm if unused else None

    def enrol(self, arm: str = "MSC", **changes: Any) -> Any:
        """Enrol a patient who meets every criterion and expect the randomization to give
        them ``arm``: a schedule is imported for it when none is signed (or none of its slots
        is used yet); otherwise the test declares its arms first with ``randomize``."""
        changes.pop("randomization_number", None)  # drawn from the schedule
        schedule = randomization.active_schedule(db.session, self.protocol.code)
        if schedule is None or (
            self.next_arm() != arm and randomization.used_slots(db.session, schedule) == 0
        ):
            self.randomize(arm)
        if self.next_arm() != arm:
            raise AssertionError(
                f"the randomization's next slot is {self.next_arm()}, not {arm}: declare the "
                "arms of the test's patients first with clinic.randomize(...)"
            )
        patient = patients.enrol(
            db.session,
            self.protocol,
            enrolment(**changes),
            facility_code="X9999",
            actor=self.clinician,
            now=utcnow(),
            zone=UTC,
        )
        db.session.commit()
        return patient

    def weigh(self, patient: Any, weight_kg: float, *, hours_ago: float = 1.0) -> Any:
        """A weight measured ``hours_ago``, but never on a day before enrolment (a patient
        enrolled just after midnight is weighed that day, in the same order; a weight before
        is refused)."""
        enrolled_day = patient.enrolled_at.astimezone(UTC).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        # just after midnight the weights of a test all fall before enrolment day: they are
        # moved to its first seconds, still in the order their hours_ago give
        in_order = dt.timedelta(seconds=24 - min(hours_ago, 24))
        weight = patients.record_weight(
            db.session,
            patient,
            weight_kg=weight_kg,
            measured_at=max(utcnow() - dt.timedelta(hours=hours_ago), enrolled_day + in_order),
            source="calibrated clinic scale",
            actor=self.clinician,
            now=utcnow(),
            zone=UTC,
        )
        db.session.commit()
        return weight

    def recheck(
        self, patient: Any, visit: str = "M3", *, now: dt.datetime | None = None, **changes: Any
    ) -> Any:
        """A pre-infusion re-check of ``visit`` recorded by the clinician, every item met
        unless ``changes`` replace an answer (``rechecks.RecheckAnswer``)."""
        from cellchain.dosing.rechecks import rechecks

        recheck = rechecks.record_recheck(
            db.session,
            patient,
            visit=visit,
            answers={**all_rechecked(), **changes},
            note=None,
            actor=self.clinician,
            now=now or utcnow(),
        )
        db.session.commit()
        return recheck


def all_rechecked() -> dict[str, Any]:
    """Every item of the protocol's pre-infusion re-check met: a negative pregnancy test,
    yes to each yes/no item, and a measured value within each limit."""
    from cellchain.dosing.rechecks.rechecks import RecheckAnswer

    values = {"creatinine": 80.0, "ejection_fraction": 60.0, "ecog": 1.0}
    answers: dict[str, Any] = {}
    for item in NCT01420432_PARAMETERS["pre_infusion_recheck"]["items"]:
        if item.get("measure"):
            answers[item["code"]] = RecheckAnswer(value=values[item["code"]])
        elif item.get("options"):
            answers[item["code"]] = RecheckAnswer(option="negative")
        else:
            answers[item["code"]] = RecheckAnswer(answer=True)
    return answers


@scene
def clinic(lab: Any, make_user: Any) -> Clinic:
    protocol = service.PROTOCOLS.load_default(db.session, actor=lab.qa, now=utcnow())
    service.PROTOCOLS.approve(
        db.session, protocol, user=lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    return Clinic(
        lab=lab,
        clinician=make_user("cleo", "clinician"),
        investigator=make_user("ivan", "investigator"),
        protocol=protocol,
        statistician=make_user("stella", "statistician"),
    )


@scene
def released(desk: Any) -> Any:
    """The desk's lot released: 9 bags of 20 mL at 5 × 10⁶ total cells/mL, viability 93 %,
    endotoxin 0.12 EU/mL (the tenth bag went to QC)."""
    from cellchain.quality import disposition

    desk.full_panel()
    disposition.release_lot(
        db.session, desk.lot, user=desk.lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    return desk.lot
