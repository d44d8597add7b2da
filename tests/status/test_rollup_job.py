"""The rollup job on a real database (SQLite and PostgreSQL): buckets, backfill, retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from status_testkit import World, icmp, icmp_round, make_config, site

from api.services import Services
from monitor.config import Config
from monitor.storage.models_status import (
    Rollup5m,
    RollupDay,
    RollupHour,
    RollupProgress,
)
from monitor.storage.rollups_job import (
    RollupRetention,
    prune_rollups,
    read_watermark,
    roll_up,
    run_rollups,
)

# 2024-05-01 10:00 in Vientiane (UTC+07:00).
BASE = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


def config() -> Config:
    return make_config({"fb1": site("Friendship Bridge I", [icmp("gw"), icmp("dns")])})


def hour_rows(world: World) -> list[RollupHour]:
    with Session(world.engine) as session:
        return list(session.scalars(select(RollupHour).order_by(RollupHour.bucket_start)))


def test_an_hour_of_rounds_becomes_twelve_5_minute_rows_an_hour_row_and_a_day_row(
    world: World,
) -> None:
    cfg = config()
    rounds = [
        icmp_round("gw", BASE + timedelta(seconds=60 * i), [0.010, 0.012, None, 0.014])
        for i in range(60)
    ]
    world.ingest(cfg, "fb1", rounds, received_at=BASE + timedelta(hours=1))
    assert world.roll_up(cfg, BASE + timedelta(hours=1)) == 60
    with Session(world.engine) as session:
        fives = session.scalars(select(Rollup5m).order_by(Rollup5m.bucket_start)).all()
        days = session.scalars(select(RollupDay)).all()
    assert len(fives) == 12 and all(r.rounds == 5 for r in fives)
    (hour,) = hour_rows(world)
    assert hour.bucket_start == BASE and hour.local_date == date(2024, 5, 1)
    assert (hour.rounds, hour.up, hour.sent, hour.received) == (60, 60, 240, 180)
    assert hour.rtt_samples == 180
    assert hour.rtt_min_s == pytest.approx(0.010) and hour.rtt_max_s == pytest.approx(0.014)
    assert hour.rtt_p50_s == pytest.approx(0.012, rel=0.01)
    (day,) = days
    assert day.bucket_start == datetime(2024, 4, 30, 17, 0, tzinfo=UTC)
    assert day.rounds == 60 and day.sketch == hour.sketch
    assert day.local_date == date(2024, 5, 1)


def test_a_late_backfill_updates_its_past_bucket_not_the_current_one(world: World) -> None:
    cfg = config()
    now = BASE + timedelta(hours=5)
    world.ingest(cfg, "fb1", [icmp_round("gw", BASE, [0.02])], received_at=BASE)
    world.ingest(
        cfg, "fb1", [icmp_round("gw", now - timedelta(minutes=1), [0.03])], received_at=now
    )
    world.roll_up(cfg, now)
    # The agent's spool arrives later: two more rounds measured in the first hour.
    late = [icmp_round("gw", BASE + timedelta(minutes=m), [0.5], status="up") for m in (10, 20)]
    world.ingest(cfg, "fb1", late, received_at=now + timedelta(minutes=1))
    assert world.roll_up(cfg, now + timedelta(minutes=2)) == 2
    first, last = hour_rows(world)
    assert first.bucket_start == BASE and first.rounds == 3
    assert first.rtt_max_s == pytest.approx(0.5)
    assert last.rounds == 1 and last.rtt_max_s == pytest.approx(0.03)


def test_rolling_up_twice_changes_nothing_and_the_watermark_moves(world: World) -> None:
    cfg = config()
    world.ingest(cfg, "fb1", [icmp_round("gw", BASE, [0.02, 0.03])], received_at=BASE)
    world.roll_up(cfg, BASE)
    before = [(r.rounds, r.rtt_samples, r.sketch) for r in hour_rows(world)]
    assert world.roll_up(cfg, BASE) == 0
    with sessionmaker(world.engine).begin() as session:
        mark = read_watermark(session)
        assert mark is not None and mark[0] == BASE
        # Forget the watermark: every result is read again, and the rows are the same.
        session.execute(delete(RollupProgress))
    assert world.roll_up(cfg, BASE) == 1
    assert [(r.rounds, r.rtt_samples, r.sketch) for r in hour_rows(world)] == before


def test_results_received_within_the_settling_time_wait_for_the_next_cycle(world: World) -> None:
    cfg = config()
    world.ingest(cfg, "fb1", [icmp_round("gw", BASE, [0.02])], received_at=BASE)
    with sessionmaker(world.engine).begin() as session:
        report = roll_up(session, cfg, BASE + timedelta(seconds=5), settle_s=15)
    assert report.results == 0 and not report.more
    with sessionmaker(world.engine).begin() as session:
        report = roll_up(session, cfg, BASE + timedelta(seconds=15), settle_s=15)
    assert report.results == 1 and report.hours == 1


def test_a_full_cycle_says_more_remain_and_the_next_one_reads_them(world: World) -> None:
    cfg = config()
    rounds = [icmp_round("gw", BASE + timedelta(minutes=i), [0.02]) for i in range(5)]
    world.ingest(cfg, "fb1", rounds, received_at=BASE)
    reads = []
    for _ in range(3):
        with sessionmaker(world.engine).begin() as session:
            report = roll_up(session, cfg, BASE, settle_s=0, max_results=2)
        reads.append((report.results, report.more))
    assert reads == [(2, True), (2, True), (1, False)]
    assert hour_rows(world)[0].rounds == 5


def test_rows_past_their_retention_are_pruned_and_not_rewritten(world: World) -> None:
    cfg = config()
    old = BASE - timedelta(days=10)
    world.ingest(cfg, "fb1", [icmp_round("gw", old, [0.02])], received_at=BASE)
    world.ingest(cfg, "fb1", [icmp_round("gw", BASE, [0.02])], received_at=BASE)
    world.roll_up(cfg, BASE)
    with Session(world.engine) as session:
        # The 10-day-old round is past the 5-minute retention: only hour and day rows.
        assert session.scalar(select(func.count()).select_from(Rollup5m)) == 1
        assert session.scalar(select(func.count()).select_from(RollupHour)) == 2
    short = RollupRetention(five_min=timedelta(hours=1), hour=timedelta(days=2))
    with sessionmaker(world.engine).begin() as session:
        deleted = prune_rollups(session, BASE + timedelta(hours=2), short)
    assert deleted == 2  # the 5-minute row of BASE and the old hour
    with Session(world.engine) as session:
        assert session.scalar(select(func.count()).select_from(RollupHour)) == 1
        assert session.scalar(select(func.count()).select_from(RollupDay)) == 2


def test_the_worker_rolls_up_and_stops_when_asked(world: World) -> None:
    cfg = config()
    world.ingest(cfg, "fb1", [icmp_round("gw", BASE, [0.02])], received_at=BASE)
    services = Services(
        config=cfg,
        engine=world.engine,
        sessions=sessionmaker(world.engine, expire_on_commit=False),
        clock=lambda: BASE + timedelta(minutes=1),
    )

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_rollups(services, stop))
        for _ in range(200):
            if hour_rows(world):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=10)

    asyncio.run(run())
    assert [r.rounds for r in hour_rows(world)] == [1]
