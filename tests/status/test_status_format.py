"""What the page shows for measures and times (api/status/format.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from api.status.format import (
    NO_VALUE,
    format_age,
    format_ms,
    format_percent,
    local_time,
    utc_offset,
)


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_missing_measures_show_a_dash_never_zero_or_nan(missing: float | None) -> None:
    assert format_ms(missing) == NO_VALUE == "\u2014"
    assert format_percent(missing) == NO_VALUE


def test_seconds_are_shown_in_milliseconds() -> None:
    assert format_ms(0.00035) == "0.35"
    assert format_ms(0.0123) == "12.3"
    assert format_ms(0.6) == "600"
    assert format_ms(0.0) == "0.00"


def test_loss_ratio_is_shown_as_a_percentage() -> None:
    assert format_percent(0.0) == "0"
    assert format_percent(0.025) == "2.5"
    assert format_percent(1.0) == "100"


def test_times_are_shown_in_the_site_zone() -> None:
    instant = datetime(2024, 5, 1, 23, 30, 5, tzinfo=UTC)
    assert local_time(instant, "Asia/Vientiane") == "2024-05-02 06:30:05"
    assert utc_offset(instant, "Asia/Vientiane") == "UTC+07:00"
    assert local_time(None, "Asia/Vientiane") == NO_VALUE


def test_age_is_rounded_down_to_a_readable_unit() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)

    def identity(message: str) -> str:
        return message

    assert format_age(now, now - timedelta(seconds=45), identity) == "45 s ago"
    assert format_age(now, now - timedelta(minutes=5), identity) == "5 min ago"
    assert format_age(now, now - timedelta(hours=3), identity) == "3 h ago"
    assert format_age(now, now - timedelta(days=4), identity) == "4 d ago"
    assert format_age(now, now + timedelta(seconds=5), identity) == "just now"
    assert format_age(now, None, identity) == NO_VALUE
