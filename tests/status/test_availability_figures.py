"""Availability figures read from the incident engine's state periods (real database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker
from status_testkit import World, icmp, make_config, site

from api.status.availability import AvailabilityLevel, site_history, sites_daily
from monitor.alerting.maintenance import WindowIn, add_window
from monitor.config import Config
from monitor.storage.availability_days import SITE, load_periods, refresh_cache
from monitor.storage.models_incidents import TargetStatePeriod
from monitor.storage.models_status import AvailabilityDay
from monitor.storage.repository import sync_config

NOW = datetime(2024, 5, 1, 5, 0, tzinfo=UTC)  # 12:00 in Vientiane
MIDNIGHT = datetime(2024, 4, 30, 17, 0, tzinfo=UTC)  # 2024-05-01 00:00 in Vientiane


def config() -> Config:
    return make_config({"fb1": site("Friendship Bridge I", [icmp("a"), icmp("b")])})


def periods(world: World, cfg: Config, rows: list[tuple[str, str, datetime, datetime]]) -> None:
    with sessionmaker(world.engine).begin() as session:
        sync_config(session, cfg, NOW)
        session.execute(
            insert(TargetStatePeriod),
            [
                {"site_id": "fb1", "target_id": t, "state": s, "start_at": a, "end_at": b}
                for t, s, a, b in rows
            ],
        )


def daily(world: World, days: int = 3) -> list[tuple[date, float | None, float | None]]:
    with Session(world.engine) as session:
        result = sites_daily(
            session,
            {"fb1": ["a", "b"]},
            {"fb1": "Asia/Vientiane"},
            {"fb1": date(2024, 5, 1)},
            days,
            NOW,
        )["fb1"]
    return [(d.day, d.availability, d.coverage) for d in result.days]


def test_a_site_is_down_while_any_target_is_down_time_weighted(world: World) -> None:
    cfg = config()
    periods(
        world,
        cfg,
        [
            ("a", "up", MIDNIGHT, MIDNIGHT + timedelta(hours=9)),
            ("a", "down", MIDNIGHT + timedelta(hours=9), MIDNIGHT + timedelta(hours=12)),
            ("b", "up", MIDNIGHT, MIDNIGHT + timedelta(hours=12)),
        ],
    )
    (_, _, today) = daily(world)
    assert today[0] == date(2024, 5, 1)
    assert today[1] == pytest.approx(9 / 12)  # 3 h of 12 elapsed hours down
    assert today[2] == pytest.approx(1.0)  # the state was known all the time so far


def test_a_period_that_began_months_before_the_window_still_counts(world: World) -> None:
    cfg = config()
    long_ago = NOW - timedelta(days=200)
    periods(world, cfg, [("a", "up", long_ago, NOW), ("b", "degraded", long_ago, NOW)])
    figures = daily(world)
    assert [f[1] for f in figures] == [1.0, 1.0, 1.0]
    with Session(world.engine) as session:
        found = load_periods(session, [("fb1", "a")], NOW - timedelta(days=1), NOW)
    assert [(p.start, p.state.value) for p in found[("fb1", "a")]] == [(long_ago, "up")]


def test_time_without_a_period_is_unknown_not_down(world: World) -> None:
    cfg = config()
    periods(
        world,
        cfg,
        [
            ("a", "up", MIDNIGHT, MIDNIGHT + timedelta(hours=6)),
            ("b", "up", MIDNIGHT, MIDNIGHT + timedelta(hours=6)),
        ],
    )
    yesterday, _, today = daily(world)
    assert yesterday[1:] == (None, 0.0)
    assert today[1] == 1.0 and today[2] == pytest.approx(0.5)


def test_maintenance_is_left_out_of_the_day(world: World) -> None:
    cfg = config()
    periods(
        world,
        cfg,
        [
            ("a", "down", MIDNIGHT, MIDNIGHT + timedelta(hours=2)),
            ("a", "up", MIDNIGHT + timedelta(hours=2), NOW),
            ("b", "up", MIDNIGHT, NOW),
        ],
    )
    with sessionmaker(world.engine).begin() as session:
        add_window(
            session,
            cfg,
            WindowIn(
                site_id="fb1",
                title="fibre splice",
                start=datetime(2024, 5, 1, 0, 0),
                end=datetime(2024, 5, 1, 2, 0),
            ),
            NOW,
        )
    with Session(world.engine) as session:
        result = sites_daily(
            session,
            {"fb1": ["a", "b"]},
            {"fb1": "Asia/Vientiane"},
            {"fb1": date(2024, 5, 1)},
            1,
            NOW,
        )["fb1"]
    (today,) = result.days
    assert today.availability == 1.0 and today.maintenance_s == pytest.approx(7200)
    assert result.overall == 1.0


def test_months_and_thirty_days_per_target_come_from_the_same_periods(world: World) -> None:
    cfg = config()
    april = datetime(2024, 3, 31, 17, 0, tzinfo=UTC)
    periods(
        world,
        cfg,
        [
            ("a", "up", april, april + timedelta(days=10)),
            ("a", "down", april + timedelta(days=10), april + timedelta(days=11)),
            ("a", "up", april + timedelta(days=11), NOW),
            ("b", "up", april, NOW),
        ],
    )
    with Session(world.engine) as session:
        history = site_history(
            session, "fb1", ["a", "b"], "Asia/Vientiane", date(2024, 5, 1), NOW, days=31, months=3
        )
    months = history.months
    assert [m.first for m in months] == [date(2024, 5, 1), date(2024, 4, 1), date(2024, 3, 1)]
    assert months[0].availability == 1.0
    assert months[1].availability == pytest.approx(29 / 30)
    assert months[2].availability is None and months[2].level is AvailabilityLevel.NO_DATA
    # The last 30 local days: 2024-04-02 .. 2024-05-01 (12:00); one day DOWN in them.
    known = 29 * 86_400 + 12 * 3600
    assert history.targets_30d["a"] == pytest.approx((known - 86_400) / known)
    assert history.targets_30d["b"] == 1.0
    assert [d.day for d in history.days[:2]] == [date(2024, 5, 1), date(2024, 4, 30)]


def test_cached_days_give_the_same_figures_and_late_results_make_them_stale(
    world: World,
) -> None:
    cfg = config()
    april = datetime(2024, 3, 31, 17, 0, tzinfo=UTC)
    periods(
        world,
        cfg,
        [
            ("a", "up", april, april + timedelta(days=20)),
            ("a", "down", april + timedelta(days=20), april + timedelta(days=20, hours=6)),
            ("a", "up", april + timedelta(days=20, hours=6), NOW),
            ("b", "up", april, NOW),
        ],
    )
    live = daily(world, 30)
    factory = sessionmaker(world.engine)
    computed = refresh_cache(factory, cfg, NOW)
    assert computed == 400  # the 400 complete days before today (today is never cached)
    with Session(world.engine) as session:
        rows = session.query(AvailabilityDay).filter_by(target_id=SITE).count()
        assert rows == computed
        assert session.query(AvailabilityDay).filter_by(target_id="a").count() == computed
    assert daily(world, 30) == live
    assert refresh_cache(factory, cfg, NOW) == 0  # nothing new to do
    refresh_cache(factory, cfg, NOW, [("fb1", date(2024, 4, 21))])
    with Session(world.engine) as session:
        stale = session.query(AvailabilityDay).filter(AvailabilityDay.stale_until.is_not(None))
        assert {r.local_date for r in stale} == {date(2024, 4, 21)}


def test_a_new_maintenance_window_empties_the_cache(world: World) -> None:
    cfg = config()
    periods(world, cfg, [("a", "up", NOW - timedelta(days=3), NOW)])
    factory = sessionmaker(world.engine)
    refresh_cache(factory, cfg, NOW, budget=5)
    with factory.begin() as session:
        assert session.query(AvailabilityDay).count() == 5 * 3
        add_window(
            session,
            cfg,
            WindowIn(
                site_id="fb1",
                title="x",
                start=datetime(2024, 4, 30, 1),
                end=datetime(2024, 4, 30, 2),
            ),
            NOW,
        )
    refresh_cache(factory, cfg, NOW, budget=1)
    with Session(world.engine) as session:
        assert session.query(AvailabilityDay).count() == 1 * 3
