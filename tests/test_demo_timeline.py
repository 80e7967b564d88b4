"""The demo's clinic morning stays on today's date in the site's calendar, even just after
midnight and on a daylight-saving morning (day 0 is today: a step on yesterday would be
outside the day-0 window)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cellchain.demo import _Timeline

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    "local",
    [
        dt.datetime(2025, 3, 30, 3, 10, tzinfo=BERLIN),  # clocks went 02:00 → 03:00
        dt.datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN),  # clocks went 03:00 → 02:00
        dt.datetime(2025, 6, 1, 0, 0, 30, tzinfo=BERLIN),
        dt.datetime(2025, 6, 1, 9, 0, tzinfo=BERLIN),
    ],
)
def test_every_step_of_the_morning_is_today_and_in_order(local: dt.datetime) -> None:
    now = local.astimezone(dt.UTC)
    timeline = _Timeline.today(now, BERLIN)
    steps = [timeline.at(minutes) for minutes in (160, 150, 100, 45, 34, 10, 0)]
    assert steps == sorted(steps) and steps[-1] == now
    assert {step.astimezone(BERLIN).date() for step in steps[1:]} == {local.date()}


@pytest.mark.parametrize("minutes_after_midnight", [0, 3, 8])
def test_the_demo_is_built_just_after_midnight(make_app, minutes_after_midnight: int) -> None:
    """The whole demo seeds in the first minutes of the site's day, when its morning is
    squeezed into those minutes: each dose exists before it is labelled and shipped (a fixed
    30-second step once put the preparation after the dispatch)."""
    from cellchain.core.accounts import AccountPolicy
    from cellchain.demo import seed_demo
    from cellchain.extensions import db

    now = dt.datetime(2026, 12, 7, 0, minutes_after_midnight, 20, tzinfo=dt.UTC)
    # the worker's shared app, its zone set here (``make_app`` puts its config back after the
    # test): an app of its own (``make_app(SITE_TIMEZONE=...)``) cost a build per test
    app = make_app()
    app.config["SITE_TIMEZONE"] = "UTC"
    with app.app_context():
        site = seed_demo(
            db.session,
            now=now,
            facility_code=app.config["FACILITY_CODE"],
            policy=AccountPolicy.from_config(app.config),
            site_zone=ZoneInfo("UTC"),
        )
        db.session.commit()
    assert site.users
