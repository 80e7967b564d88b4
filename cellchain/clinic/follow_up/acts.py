"""The acts an adverse event's page may offer, as the reporting rules allow them for the event
as it is (``reporting.assess`` and ``reporting.record_report`` refuse the others)."""

from __future__ import annotations

from enum import StrEnum

from cellchain.clinic.models import AdverseEvent, Seriousness


class AdverseEventAct(StrEnum):
    """An act on a recorded adverse event."""

    ASSESS = "assess"  #: the investigator's signed causality and expectedness
    REPORT_INITIAL = "report_initial"  #: the initial sponsor report of a serious event
    REPORT_FOLLOW_UP = "report_follow_up"  #: the follow-up report, after the initial one


def adverse_event_actions(event: AdverseEvent) -> frozenset[AdverseEventAct]:
    """The acts allowed on ``event``: assessed once; a serious event's initial report, then
    its follow-up report, each once."""
    acts: set[AdverseEventAct] = set()
    if event.causality is None:
        acts.add(AdverseEventAct.ASSESS)
    if event.seriousness == Seriousness.SERIOUS:
        if event.initial_reported_at is None:
            acts.add(AdverseEventAct.REPORT_INITIAL)
        elif event.follow_up_reported_at is None:
            acts.add(AdverseEventAct.REPORT_FOLLOW_UP)
    return frozenset(acts)
