"""A filled lot in quarantine (the quality desk), the site's label settings, and printing."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.labels import service
from cellchain.labels.content import IsbtSettings
from cellchain.labels.templates import load_templates
from cellchain.quality import disposition
from tests.conftest import TEST_PASSWORD

SETTINGS = service.LabelSettings(
    templates=load_templates(), zone=ZoneInfo("UTC"), isbt=IsbtSettings({})
)


def print_units(
    units: list[Any],
    actor: Any,
    *,
    fmt: str = "pdf",
    copies: int = 1,
    reason: str | None = None,
    settings: Any = SETTINGS,
) -> service.PrintedFile:
    printed = service.print_labels(
        db.session,
        units,
        output_format=fmt,
        copies=copies,
        reason=reason,
        settings=settings,
        actor=actor,
        now=utcnow(),
        name="labels",
    )
    db.session.commit()
    return printed


def label(units: list[Any], actor: Any) -> None:
    """Print each unit's label as its status requires now (a reprint, with its reason, when it
    was printed before) and apply it: scanned on the unit."""
    for unit in units:
        again = bool(service.printed_before(db.session, [unit]))
        (record,) = print_units([unit], actor, reason="relabel" if again else None).prints
        service.record_applied(
            db.session, None, record.payload, actor=actor, now=utcnow(), unit=unit
        )
        db.session.commit()


def release(desk: Any) -> None:
    desk.full_panel()
    disposition.release_lot(
        db.session, desk.lot, user=desk.lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
