"""Availability from stored periods, over real storage: the handed cases C22-C28 exactly.

Results go in through the server's ingest function, the evaluator turns them into
periods, and the availability functions read them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alerting_testkit import World, WorldFactory, icmp, result, site_config
from sqlalchemy import func, select

from monitor.availability.queries import availability, daily_availability
from monitor.storage.models import Result

DAY = 86_400.0
VIENTIANE = ZoneInfo("Asia/Vientiane")


def _load(world: World, site: str, rounds: Sequence[tuple[str, datetime, str]]) -> None:
    """Upload ``(target, measured_at, obs)`` rounds in batches, then evaluate them all."""
    world.clock.set(max(at for _, at, _ in rounds) + timedelta(seconds=5))
    results = [result(target, at, obs) for target, at, obs in rounds]
    for i in range(0, len(results), 5000):
        world.upload(site, results[i : i + 5000])
    world.run_until_caught_up()


def _series(
    start: datetime, count: int, step_s: float, obs: str | Sequence[str], target: str = "gw"
) -> list[tuple[str, datetime, str]]:
    return [
        (target, start + timedelta(seconds=i * step_s), obs if isinstance(obs, str) else obs[i])
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("ups", "downs", "expected"),
    [(70, 30, 0.70), (50, 50, 0.50)],
)
def test_uptime_is_the_share_of_known_time_not_100_minus_failures_over_successes(
    make_world: WorldFactory, ups: int, downs: int, expected: float
) -> None:
    # C22: a 24 h window, 100 checks (one every 864 s): 70 up then 30 down gives 70.00 %
    # (the bug gives 57.14 %); 50/50 gives 50.00 % (the bug gives 0.00 %).
    config = site_config({"s": [icmp("gw", interval_s=864)]})
    start = datetime(2025, 5, 1, tzinfo=UTC)
    with make_world(config) as world:
        _load(world, "s", _series(start, 100, 864, ["up"] * ups + ["down"] * downs))
        with world.sessions() as session:
            got = availability(
                session, "s", "gw", start, start + timedelta(days=1), now=start + timedelta(days=2)
            )
        assert got.availability == pytest.approx(expected)
        assert round((got.availability or 0) * 100, 2) == expected * 100
        assert got.unknown_s == 0


def test_scattered_failures_count_by_the_time_each_stands_for_with_threshold_one(
    make_world: WorldFactory,
) -> None:
    # C22 again, failures spread out: with 1 round to go DOWN and 1 to recover each failed
    # check is DOWN for its own 864 s.
    config = site_config(
        {"s": [icmp("gw", interval_s=864, failures_to_down=1, successes_to_recover=1)]}
    )
    start = datetime(2025, 5, 1, tzinfo=UTC)
    pattern = (["up"] * 7 + ["down"] * 3) * 10
    with make_world(config) as world:
        _load(world, "s", _series(start, 100, 864, pattern))
        with world.sessions() as session:
            got = availability(
                session, "s", "gw", start, start + timedelta(days=1), now=start + timedelta(days=2)
            )
        assert round((got.availability or 0) * 100, 2) == 70.00


def test_a_window_without_checks_is_no_data_not_100_percent(make_world: WorldFactory) -> None:
    config = site_config({"s": [icmp("gw")]})
    start = datetime(2025, 5, 1, tzinfo=UTC)
    with make_world(config) as world:
        with world.sessions() as session:
            got = availability(
                session, "s", "gw", start, start + timedelta(days=1), now=start + timedelta(days=2)
            )
            site = availability(
                session, "s", None, start, start + timedelta(days=1), now=start + timedelta(days=2)
            )
        assert got.availability is None and site.availability is None
        assert got.unknown_s == DAY


def test_a_slower_interval_later_does_not_outweigh_the_time_it_was_down(
    make_world: WorldFactory,
) -> None:
    # C24: days 1-15 every minute, all up (21,600 checks); days 16-30 every 5 minutes
    # (4,320 checks) with 3 whole days down (864 checks). Time-weighted: 27/30 = 90.00 %
    # (count-weighted would be 25,056/25,920 = 96.67 %).
    config = site_config({"s": [icmp("gw", interval_s=300)]})
    start = datetime(2025, 6, 1, tzinfo=UTC)
    later = start + timedelta(days=15)
    down = {later + timedelta(days=4, seconds=300 * i) for i in range(864)}
    rounds = _series(start, 21_600, 60, "up") + [
        ("gw", at, "down" if at in down else "up")
        for at in (later + timedelta(seconds=300 * i) for i in range(4_320))
    ]
    with make_world(config, scan_limit=30_000, target_limit=30_000) as world:
        _load(world, "s", rounds)
        with world.sessions() as session:
            got = availability(
                session,
                "s",
                "gw",
                start,
                start + timedelta(days=30),
                now=start + timedelta(days=31),
            )
            stored = session.scalar(select(func.count()).select_from(Result))
        assert stored == 25_920
        assert got.down_s == 3 * DAY
        assert round((got.availability or 0) * 100, 2) == 90.00


def test_a_failed_check_whose_retry_succeeds_leaves_uptime_at_100_percent(
    make_world: WorldFactory,
) -> None:
    # C25: 1-minute checks for 24 h, 2 retries (failures_to_down = 3); the 03:00 check fails
    # and its retry 20 s later succeeds. State-based accounting: 100.0000 %, and the failed
    # sample is stored (it shows in the loss statistics and the check log).
    config = site_config({"s": [icmp("gw", failures_to_down=3)]})
    start = datetime(2025, 7, 1, tzinfo=UTC)
    at_three = start + timedelta(hours=3)
    rounds = [*_series(start, 1440, 60, "up"), ("gw", at_three + timedelta(seconds=20), "up")]
    rounds = [(t, at, "down" if at == at_three else obs) for t, at, obs in rounds]
    with make_world(config) as world:
        _load(world, "s", sorted(rounds, key=lambda r: r[1]))
        with world.sessions() as session:
            got = availability(
                session, "s", "gw", start, start + timedelta(days=1), now=start + timedelta(days=2)
            )
            failed = session.scalar(select(func.count()).where(Result.status == "down"))
        assert f"{(got.availability or 0) * 100:.4f}" == "100.0000"
        assert failed == 1
        assert world.incidents() == []


def test_time_before_a_target_existed_is_no_data_not_uptime(make_world: WorldFactory) -> None:
    # C27 (a): created at 14:00 (Vientiane), unreachable the whole time, read at 23:59:
    # 0.00 % over the monitored hours; the 14 h before are "no data" (not 58.33 %).
    config = site_config({"s": [icmp("gw")]})
    day = date(2025, 8, 4)
    created = datetime(2025, 8, 4, 14, 0, tzinfo=VIENTIANE)
    with make_world(config) as world:
        _load(world, "s", _series(created, 599, 60, "down"))
        now = datetime(2025, 8, 4, 23, 59, tzinfo=VIENTIANE)
        with world.sessions() as session:
            (today,) = daily_availability(session, "s", "gw", day, 1, "Asia/Vientiane", now=now)
        got = today.availability
        assert got.availability == 0.0
        assert got.unknown_s == 14 * 3600
        assert got.down_s == 9 * 3600 + 59 * 60


def test_hours_the_probe_was_offline_are_a_gap_left_out_of_both_sides(
    make_world: WorldFactory,
) -> None:
    # C27 (b): site 2's probe is offline 01:00-06:00, the target fine all day: 100 % over
    # the observed hours (not 79.17 %). The last round before the gap stands for at most
    # 1.5 intervals, so the gap starts 30 s after 01:00.
    config = site_config({"site2": [icmp("gw")]})
    midnight = datetime(2025, 8, 5, tzinfo=VIENTIANE)
    rounds = _series(midnight, 60, 60, "up") + _series(
        midnight + timedelta(hours=6), 18 * 60, 60, "up"
    )
    with make_world(config) as world:
        _load(world, "site2", rounds)
        with world.sessions() as session:
            (today,) = daily_availability(
                session,
                "site2",
                None,
                date(2025, 8, 5),
                1,
                "Asia/Vientiane",
                now=midnight + timedelta(days=2),
            )
        got = today.availability
        assert got.availability == 1.0
        assert got.up_s == 19 * 3600 + 30
        assert got.unknown_s == 5 * 3600 - 30


def test_an_outage_from_11_30_to_12_30_is_one_hour_whatever_the_clock_format(
    make_world: WorldFactory,
) -> None:
    # C28: down at 11:30, up at 12:30 the same (local) day: 1 h down, 23/24 = 95.8333 %.
    config = site_config({"s": [icmp("gw")]})
    midnight = datetime(2025, 8, 6, tzinfo=VIENTIANE)
    down_from, up_from = midnight + timedelta(hours=11.5), midnight + timedelta(hours=12.5)
    rounds = [
        ("gw", at, "down" if down_from <= at < up_from else "up")
        for at in (midnight + timedelta(minutes=i) for i in range(24 * 60))
    ]
    with make_world(config) as world:
        _load(world, "s", rounds)
        with world.sessions() as session:
            (today,) = daily_availability(
                session,
                "s",
                "gw",
                date(2025, 8, 6),
                1,
                "Asia/Vientiane",
                now=midnight + timedelta(days=2),
            )
        got = today.availability
        assert got.down_s == 3600
        assert f"{(got.availability or 0) * 100:.4f}" == "95.8333"


def test_an_outage_across_midnight_is_clipped_to_each_day_never_dropped(
    make_world: WorldFactory,
) -> None:
    config = site_config({"s": [icmp("gw")]})
    midnight = datetime(2025, 8, 7, tzinfo=VIENTIANE)
    rounds = [
        (
            "gw",
            at,
            "down" if midnight - timedelta(hours=1) <= at < midnight + timedelta(hours=2) else "up",
        )
        for at in (midnight - timedelta(hours=3) + timedelta(minutes=i) for i in range(6 * 60))
    ]
    with make_world(config) as world:
        _load(world, "s", rounds)
        with world.sessions() as session:
            before, after = daily_availability(
                session,
                "s",
                "gw",
                date(2025, 8, 6),
                2,
                "Asia/Vientiane",
                now=midnight + timedelta(days=2),
            )
        assert before.availability.down_s == 3600
        assert after.availability.down_s == 2 * 3600
