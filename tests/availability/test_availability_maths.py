"""The availability arithmetic over periods: pure functions, checked against brute force."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta

from monitor.availability.maths import Period, account, combine, day_window, month_window
from monitor.state import TargetState

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STATES = (TargetState.UP, TargetState.DEGRADED, TargetState.DOWN, TargetState.UNKNOWN)


def _at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


def test_the_parts_add_up_and_maintenance_is_taken_out_whatever_the_state() -> None:
    periods = [
        Period(_at(0), _at(100), TargetState.UP),
        Period(_at(100), _at(160), TargetState.DOWN),
        Period(_at(200), _at(300), TargetState.DEGRADED),
    ]
    got = account(periods, [(_at(150), _at(210)), (_at(205), _at(220))], _at(50), _at(250))
    assert (got.up_s, got.down_s, got.degraded_s) == (50, 50, 30)
    assert (got.maintenance_s, got.unknown_s) == (70, 0)
    assert got.up_s + got.down_s + got.degraded_s + got.maintenance_s + got.unknown_s == 200
    assert got.availability == 80 / 130


def test_no_known_time_is_no_data() -> None:
    unknown = [Period(_at(0), _at(100), TargetState.UNKNOWN)]
    assert account(unknown, [], _at(0), _at(100)).availability is None
    assert account([], [], _at(0), _at(100)).availability is None


def _brute_force(
    timelines: list[tuple[list[Period], list[tuple[datetime, datetime]]]], end_s: int
) -> dict[str, float]:
    totals = dict.fromkeys(("up", "degraded", "down", "unknown", "maintenance"), 0.0)
    for second in range(end_s):
        t = _at(second)
        states = []
        for periods, maint in timelines:
            if any(s <= t < e for s, e in maint):
                continue
            found = [p.state for p in periods if p.start <= t < p.end]
            states.append(found[0] if found else TargetState.UNKNOWN)
        if not states:
            totals["maintenance"] += 1
        elif TargetState.DOWN in states:
            totals["down"] += 1
        elif TargetState.DEGRADED in states:
            totals["degraded"] += 1
        elif TargetState.UP in states:
            totals["up"] += 1
        else:
            totals["unknown"] += 1
    return totals


def test_a_site_combines_its_targets_as_the_rule_says_checked_second_by_second() -> None:
    rng = random.Random(7)
    for _ in range(150):
        timelines = []
        for _target in range(rng.randint(1, 4)):
            cuts = sorted(rng.sample(range(1, 120), rng.randint(2, 10)))
            periods = [
                Period(_at(a), _at(b), rng.choice(STATES))
                for a, b in itertools.pairwise(cuts)
                if rng.random() < 0.8
            ]
            maint = []
            for _m in range(rng.randint(0, 2)):
                a = rng.randint(0, 110)
                maint.append((_at(a), _at(a + rng.randint(1, 30))))
            timelines.append((periods, maint))
        got = combine(timelines, _at(0), _at(120))
        expected = _brute_force(timelines, 120)
        assert (got.up_s, got.degraded_s, got.down_s, got.unknown_s, got.maintenance_s) == (
            expected["up"],
            expected["degraded"],
            expected["down"],
            expected["unknown"],
            expected["maintenance"],
        )


def test_local_days_are_23_or_25_hours_when_the_clocks_change() -> None:
    def hours(day: date, zone: str) -> float:
        a, b = day_window(day, zone)
        return (b - a).total_seconds() / 3600

    assert hours(date(2025, 3, 30), "Europe/Berlin") == 23
    assert hours(date(2025, 10, 26), "Europe/Berlin") == 25
    assert hours(date(2025, 3, 30), "Asia/Vientiane") == 24
    assert day_window(date(2025, 8, 6), "Asia/Vientiane")[0] == datetime(2025, 8, 5, 17, tzinfo=UTC)


def test_a_month_is_the_calendar_month_in_the_sites_zone() -> None:
    start, end = month_window(2026, 10, "Asia/Vientiane")
    assert (start, end) == (
        datetime(2026, 9, 30, 17, tzinfo=UTC),
        datetime(2026, 10, 31, 17, tzinfo=UTC),
    )
    assert month_window(2026, 12, "UTC")[1] == datetime(2027, 1, 1, tzinfo=UTC)
