"""Maintenance windows: local wall-clock time across DST (C30), computed on demand (C37)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alerting_testkit import WorldFactory, icmp, site_config
from pydantic import ValidationError

from monitor.alerting.events import AlertKind
from monitor.alerting.maintenance import (
    MaintenanceError,
    Repeat,
    Window,
    WindowIn,
    add_window,
    delete_window,
    list_windows,
    resolve_local,
)

BERLIN_DAILY = Window(
    id=1,
    site_id=None,
    target_id=None,
    title="nightly reboot",
    zone="Europe/Berlin",
    repeat=Repeat.DAILY,
    start_local=datetime(2025, 1, 15, 2, 30),  # created in January
    end_local=datetime(2025, 1, 15, 3, 30),
)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _on(window: Window, day: date) -> list[tuple[datetime, datetime]]:
    start = datetime.combine(day, datetime.min.time(), UTC) - timedelta(hours=3)
    return window.occurrences(start, start + timedelta(hours=24))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 3, 29), [(_utc(2025, 3, 29, 1, 30), _utc(2025, 3, 29, 2, 30))]),
        # 02:00-03:00 does not exist: the window opens at 03:00 CEST, the skipped part dropped.
        (date(2025, 3, 30), [(_utc(2025, 3, 30, 1, 0), _utc(2025, 3, 30, 1, 30))]),
        (date(2025, 3, 31), [(_utc(2025, 3, 31, 0, 30), _utc(2025, 3, 31, 1, 30))]),
        # 02:00-03:00 happens twice: from the first 02:30 (CEST) to the only 03:30 (CET).
        (date(2025, 10, 26), [(_utc(2025, 10, 26, 0, 30), _utc(2025, 10, 26, 2, 30))]),
    ],
)
def test_a_daily_berlin_window_follows_the_wall_clock_across_dst(
    day: date, expected: list[tuple[datetime, datetime]]
) -> None:
    assert _on(BERLIN_DAILY, day) == expected


def test_a_skipped_local_time_resolves_to_the_end_of_the_gap_without_error() -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    assert resolve_local(datetime(2025, 3, 30, 2, 0), berlin) == _utc(2025, 3, 30, 1, 0)
    assert resolve_local(datetime(2025, 3, 30, 2, 59, 59), berlin) == _utc(2025, 3, 30, 1, 0)
    assert resolve_local(datetime(2025, 10, 26, 2, 0), berlin) == _utc(2025, 10, 26, 0, 0)


def test_a_weekly_window_repeats_on_its_weekday_until_its_last_date() -> None:
    window = Window(
        id=2,
        site_id="bridge1",
        target_id=None,
        title="Sunday patching",
        zone="Asia/Vientiane",
        repeat=Repeat.WEEKLY,
        start_local=datetime(2025, 6, 1, 23, 0),  # a Sunday, across midnight
        end_local=datetime(2025, 6, 2, 1, 0),
        until=date(2025, 6, 15),
    )
    found = window.occurrences(_utc(2025, 5, 1), _utc(2025, 8, 1))
    assert found == [
        (_utc(2025, 6, 1, 16, 0), _utc(2025, 6, 1, 18, 0)),
        (_utc(2025, 6, 8, 16, 0), _utc(2025, 6, 8, 18, 0)),
        (_utc(2025, 6, 15, 16, 0), _utc(2025, 6, 15, 18, 0)),
    ]
    assert window.covers("bridge1", "gw") and window.covers("bridge1")
    assert not window.covers("wattay", "gw")


def test_a_window_repeating_forever_is_computed_for_the_span_asked_only() -> None:
    # C37: a daily window over 60 simulated days (or 10 years) is never materialised; asking
    # for one day gives one occurrence.
    ten_years_later = datetime(2035, 1, 15, tzinfo=UTC)
    assert len(_on(BERLIN_DAILY, ten_years_later.date())) == 1
    assert len(BERLIN_DAILY.occurrences(_utc(2025, 1, 1), _utc(2025, 3, 1))) == 45


def test_a_window_given_with_an_offset_or_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValidationError, match="without an offset"):
        WindowIn(title="x", start=_utc(2025, 1, 1, 2), end=datetime(2025, 1, 1, 3))
    with pytest.raises(ValidationError, match="end must be after start"):
        WindowIn(title="x", start=datetime(2025, 1, 1, 3), end=datetime(2025, 1, 1, 2))
    with pytest.raises(ValidationError, match="longer than its period"):
        WindowIn(
            title="x", repeat=Repeat.DAILY, start=datetime(2025, 1, 1), end=datetime(2025, 1, 3)
        )


def test_windows_are_stored_listed_and_deleted(make_world: WorldFactory) -> None:
    config = site_config({"bridge1": [icmp("gw")], "wattay": [icmp("gw")]})
    given = WindowIn(
        site_id="bridge1",
        title="fibre works",
        repeat=Repeat.DAILY,
        start=datetime(2025, 3, 1, 2, 30),
        end=datetime(2025, 3, 1, 3, 30),
    )
    with make_world(config) as world:
        with world.sessions() as session, session.begin():
            stored = add_window(session, config, given, world.clock())
            with pytest.raises(
                MaintenanceError, match=r"^target: site 'bridge1' has no target 'nope'$"
            ):
                add_window(
                    session, config, given.model_copy(update={"target_id": "nope"}), world.clock()
                )
            with pytest.raises(MaintenanceError, match=r"^site: there is no site 'elsewhere'"):
                add_window(
                    session,
                    config,
                    given.model_copy(update={"site_id": "elsewhere"}),
                    world.clock(),
                )
        assert stored.zone == "Asia/Vientiane"
        with world.sessions() as session:
            assert [w.id for w in list_windows(session, "bridge1")] == [stored.id]
            assert list_windows(session, "wattay") == []
        with world.sessions() as session, session.begin():
            assert delete_window(session, stored.id)
            assert not delete_window(session, stored.id)
        with world.sessions() as session:
            assert list_windows(session) == []


def test_alerts_are_held_exactly_inside_a_window_and_sent_after_it_if_still_down(
    make_world: WorldFactory,
) -> None:
    config = site_config({"bridge1": [icmp("gw", failures_to_down=1)]})
    start = datetime(2025, 3, 30, 0, 40, tzinfo=UTC)  # Berlin window today: 01:00-01:30 UTC
    with make_world(config) as world:
        with world.sessions() as session, session.begin():
            add_window(
                session,
                config,
                WindowIn(
                    title="nightly reboot",
                    zone="Europe/Berlin",
                    repeat=Repeat.DAILY,
                    start=datetime(2025, 1, 15, 2, 30),
                    end=datetime(2025, 1, 15, 3, 30),
                ),
                world.clock(),
            )
        # Up until 01:05, down 01:05-01:25 (inside), up, then down from 01:40 (outside).
        minutes = range(0, 70)
        obs = ["down" if 25 <= m < 45 or m >= 60 else "up" for m in minutes]
        sent = world.play("bridge1", "gw", obs, start, 60.0)
        down_pages = [
            i for i, p in enumerate(sent) for e in p.events if e.kind is AlertKind.TARGET_DOWN
        ]
        assert down_pages == [60]  # 01:40, the outage outside the window; none inside
        first, second = world.incidents("target")
        assert first.down_notified_at is None and first.suppressed == "maintenance"
        assert second.down_notified_at is not None
