"""How times and counts read (core.display, issue 21): the site's local time with its UTC
offset, never an abbreviation; counts as 5.00 × 10⁶, never 5e+06."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cellchain.core.display import local_date, local_time, power_of_ten, scientific, utc_offset

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = dt.datetime(2026, 12, 5, 9, 13, 5, tzinfo=dt.UTC)


def test_a_time_reads_in_the_site_zone_with_its_offset_not_an_ambiguous_abbreviation():
    assert local_time(AT, SHANGHAI) == "2026-12-05 17:13 +08:00"
    assert local_time(AT, SHANGHAI, seconds=True) == "2026-12-05 17:13:05 +08:00"
    assert "CST" not in local_time(AT, SHANGHAI)


def test_utc_and_offsets_west_of_it_and_of_half_hours():
    assert local_time(AT, ZoneInfo("UTC")) == "2026-12-05 09:13 +00:00"
    assert local_time(AT, ZoneInfo("America/St_Johns")) == "2026-12-05 05:43 -03:30"
    assert local_time(AT, ZoneInfo("Asia/Kolkata")) == "2026-12-05 14:43 +05:30"


def test_the_offset_follows_daylight_saving_time_on_the_day():
    zurich = ZoneInfo("Europe/Zurich")
    assert local_time(dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC), zurich).endswith("+01:00")
    assert local_time(dt.datetime(2026, 7, 10, 12, 0, tzinfo=dt.UTC), zurich).endswith("+02:00")


def test_the_date_is_the_site_calendar_date_across_midnight():
    late = dt.datetime(2026, 12, 5, 16, 30, tzinfo=dt.UTC)  # 00:30 the next day in Shanghai
    assert local_time(late, SHANGHAI) == "2026-12-06 00:30 +08:00"


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="naive"):
        local_time(dt.datetime(2026, 12, 5, 9, 13), SHANGHAI)
    with pytest.raises(ValueError, match="naive"):
        utc_offset(dt.datetime(2026, 12, 5, 9, 13))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5e6, "5.00 × 10⁶"),
        (1.0e6, "1.00 × 10⁶"),
        (7.02e7, "7.02 × 10⁷"),
        (4.65e6, "4.65 × 10⁶"),
        (2.5e5, "2.50 × 10⁵"),
        (9.996e8, "1.00 × 10⁹"),  # rounds up into the next power
        (0.5, "5.00 × 10⁻¹"),
        (-3.2e-5, "-3.20 × 10⁻⁵"),
        (0, "0"),
    ],
)
def test_a_count_has_three_figures_and_a_power_of_ten(value, text):
    assert scientific(value) == text


def test_without_superscripts_the_power_is_written_with_a_caret():
    assert scientific(1.6e8, superscript=False) == "1.60 × 10^8"
    assert power_of_ten(-3, superscript=False) == "10^-3"
    assert power_of_ten(12) == "10¹²"


def test_a_date_is_the_site_calendar_date_not_the_utc_one():
    late = dt.datetime(2026, 12, 5, 16, 30, tzinfo=dt.UTC)
    assert local_date(late, SHANGHAI) == "2026-12-06"
    assert local_date(late, ZoneInfo("UTC")) == "2026-12-05"


def test_no_page_template_or_module_prints_a_zone_abbreviation_or_a_raw_exponent():
    """One rule each: a time is printed by core.display.local_time (``%Z`` gives CST for
    Shanghai, Cuba and Chicago alike) and a count by scientific (``%.3g`` gives 5e+06)."""
    root = Path(__file__).resolve().parents[2]
    found = []
    for path in [*root.joinpath("cellchain").rglob("*.py"), *root.joinpath("templates").rglob("*")]:
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"%Z|:\.3g\}|'%\.3g'|'%\.1e'|\d \} UTC|\} UTC\"", line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert found == []
