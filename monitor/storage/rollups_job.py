"""Keep the rollup tables up to date from newly received results, and prune them.

How (:func:`roll_up`, one cycle):

1. Read the results received since the watermark, in ``(received_at, id)`` order (index
   ``ix_results_received_at``), at most ``max_results``, and only those received at least
   ``settle_s`` ago: an upload takes the server's clock before it waits for the SQLite
   write lock (up to its busy timeout), so a row may commit a little after its
   ``received_at``; reading only settled rows means none is skipped.
2. Each result touches the 5-minute bucket of its *measured* time. A late or backfilled
   result (an agent uploading hours of spooled rounds) therefore updates its past buckets.
3. Every touched 5-minute bucket is recomputed from the raw results in it (one index range
   read per target); each touched hour is then the exact merge of its stored 5-minute rows,
   each touched day the merge of its hour rows. Where a finer level is past its retention,
   the coarser bucket is recomputed from the raw results instead. Recomputing (not adding)
   makes a cycle idempotent: running it twice over the same results gives the same rows.
4. The watermark moves to the last result read, in the same transaction as the rows.

After each cycle the worker also brings the availability-day cache up to date
(:func:`monitor.storage.availability_days.refresh_cache`), telling it which days got results.

Retention (:class:`RollupRetention`, documented in docs/status-page.md): 5-minute rows 3 days
(the 3-hour and 1-day charts), hour rows 62 days (the 7- and 30-day charts), day rows 800
days (the 1-year chart). Raw results are kept (and pruned) by their own policy; the status
page never reads them beyond each target's latest round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, delete, not_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config
from monitor.storage.db import SQLITE_BUSY_TIMEOUT_S
from monitor.storage.models import Result
from monitor.storage.models_status import (
    Rollup5m,
    RollupDay,
    RollupHour,
    RollupProgress,
    TargetRollupColumns,
)
from monitor.storage.rollups import (
    BucketStats,
    Resolution,
    RttSketch,
    bucket_length,
    bucket_start,
    day_end,
    day_start,
    local_date,
    merge,
    summarize,
)

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger("linkwatch.rollups")

SETTLE_S = SQLITE_BUSY_TIMEOUT_S + 5.0
"""Only results received at least this long ago are rolled up (see the module docstring)."""

ROLLUP_INTERVAL_S = 10.0
"""Pause between two cycles of :func:`run_rollups` when there is no backlog, seconds."""

PRUNE_INTERVAL_S = 3600.0
"""How often :func:`run_rollups` deletes rollup rows past their retention, seconds."""

MAX_RESULTS_PER_CYCLE = 20_000
"""Results one cycle reads at most; a backlog is worked off over consecutive cycles."""

BACKLOG_CYCLES = 50
"""Cycles :func:`run_rollups` runs back to back (short pauses) before a full pause."""

PROGRESS_NAME = "results"

_TABLES: dict[Resolution, type[TargetRollupColumns]] = {
    Resolution.FIVE_MIN: Rollup5m,
    Resolution.HOUR: RollupHour,
    Resolution.DAY: RollupDay,
}


@dataclass(frozen=True, slots=True)
class RollupRetention:
    """How long rollup rows are kept, by their bucket start, as timedeltas."""

    five_min: timedelta = timedelta(days=3)
    hour: timedelta = timedelta(days=62)
    day: timedelta = timedelta(days=800)


@dataclass(frozen=True, slots=True)
class RollupReport:
    """What one :func:`roll_up` cycle did.

    ``results`` read; buckets written (or deleted when empty) per level; ``more`` is true
    when the cycle stopped at ``max_results`` (a backlog remains); ``watermark`` the
    ``received_at`` of the last result read (``None`` if none was ever read);
    ``touched_days`` the ``(site, local day)`` the results were measured on.
    """

    results: int
    five_min: int
    hours: int
    days: int
    more: bool
    watermark: datetime | None
    touched_days: frozenset[tuple[str, date]] = frozenset()


def table_of(resolution: Resolution) -> Table:
    """Return the rollup table of ``resolution``."""
    table: Table = _TABLES[resolution].__table__  # type: ignore[attr-defined]
    return table


def stats_values(stats: BucketStats) -> dict[str, Any]:
    """Return the column values of a rollup row for ``stats`` (keys and stamps excluded)."""
    return {
        "rounds": stats.rounds,
        "up": stats.up,
        "down": stats.down,
        "error": stats.error,
        "sent": stats.sent,
        "received": stats.received,
        "rtt_samples": stats.rtt_samples,
        "rtt_sum_s": stats.rtt_sum_s,
        "rtt_min_s": stats.rtt_min_s,
        "rtt_p10_s": stats.rtt_quantile(0.1),
        "rtt_p50_s": stats.rtt_quantile(0.5),
        "rtt_p90_s": stats.rtt_quantile(0.9),
        "rtt_max_s": stats.rtt_max_s,
        "jitter_rounds": stats.jitter_rounds,
        "jitter_sum_s": stats.jitter_sum_s,
        "sketch": stats.sketch.to_json(),
        "first_measured_at": stats.first_measured_at,
        "last_measured_at": stats.last_measured_at,
    }


def stats_from_row(row: Any) -> BucketStats:
    """Read a :class:`BucketStats` back from a rollup row (ORM object or result row)."""
    return BucketStats(
        rounds=row.rounds,
        up=row.up,
        down=row.down,
        error=row.error,
        sent=row.sent,
        received=row.received,
        rtt_samples=row.rtt_samples,
        rtt_sum_s=row.rtt_sum_s,
        rtt_min_s=row.rtt_min_s,
        rtt_max_s=row.rtt_max_s,
        jitter_rounds=row.jitter_rounds,
        jitter_sum_s=row.jitter_sum_s,
        sketch=RttSketch.from_json(row.sketch),
        first_measured_at=row.first_measured_at,
        last_measured_at=row.last_measured_at,
    )


def _insert(session: Session) -> Any:
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert
    if name == "postgresql":
        return postgresql.insert
    raise RuntimeError(f"unsupported database dialect {name!r}")  # pragma: no cover


def upsert(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: list[str]) -> None:
    """Insert ``rows`` into ``table``, replacing the non-key columns of existing rows."""
    if not rows:
        return
    stmt = _insert(session)(table)
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: getattr(stmt.excluded, c) for c in columns}
    )
    session.execute(stmt, list(rows))


_TARGET_KEYS = ["site_id", "target_id", "bucket_start"]


def write_bucket(
    session: Session,
    resolution: Resolution,
    site_id: str,
    target_id: str,
    start: datetime,
    zone: ZoneInfo,
    stats: BucketStats,
    now: datetime,
) -> None:
    """Store ``stats`` as the bucket's row, or delete the row when ``stats`` is empty."""
    table = table_of(resolution)
    if stats.rounds == 0:
        session.execute(
            delete(table).where(
                table.c.site_id == site_id,
                table.c.target_id == target_id,
                table.c.bucket_start == start,
            )
        )
        return
    row = {
        "site_id": site_id,
        "target_id": target_id,
        "bucket_start": start,
        "local_date": local_date(start, zone),
        **stats_values(stats),
        "updated_at": now,
    }
    upsert(session, table, [row], _TARGET_KEYS)


_RAW_COLUMNS = (
    Result.status,
    Result.measured_at,
    Result.rtt_s,
    Result.jitter_s,
    Result.sent,
    Result.received,
    Result.rtts_s,
)


def _raw(session: Session, site_id: str, target_id: str, start: datetime, end: datetime) -> Any:
    """Return one target's rounds measured in ``[start, end)`` (index range read)."""
    return session.execute(
        select(*_RAW_COLUMNS).where(
            Result.site_id == site_id,
            Result.target_id == target_id,
            Result.measured_at >= start,
            Result.measured_at < end,
        )
    ).all()


def _stored(
    session: Session,
    resolution: Resolution,
    site_id: str,
    target_id: str,
    start: datetime,
    end: datetime,
) -> list[BucketStats]:
    table = table_of(resolution)
    rows = session.execute(
        select(table).where(
            table.c.site_id == site_id,
            table.c.target_id == target_id,
            table.c.bucket_start >= start,
            table.c.bucket_start < end,
        )
    ).all()
    return [stats_from_row(row) for row in rows]


@dataclass
class _Counts:
    five_min: int = 0
    hours: int = 0
    days: int = 0


def _roll_target(
    session: Session,
    site_id: str,
    target_id: str,
    zone: ZoneInfo,
    touched: set[datetime],
    now: datetime,
    retention: RollupRetention,
    counts: _Counts,
) -> set[date]:
    """Recompute the touched 5-minute buckets of one target, then their hours and days."""
    five = bucket_length(Resolution.FIVE_MIN)
    hour_len = bucket_length(Resolution.HOUR)
    horizon_5m, horizon_hour = now - retention.five_min, now - retention.hour
    by_hour: dict[datetime, set[datetime]] = defaultdict(set)
    for start in touched:
        by_hour[bucket_start(start, Resolution.HOUR, zone)].add(start)
    days: set[date] = set()
    for hour, starts in sorted(by_hour.items()):
        if hour >= horizon_5m:
            rows = _raw(session, site_id, target_id, min(starts), max(starts) + five)
            grouped: dict[datetime, list[Any]] = defaultdict(list)
            for row in rows:
                grouped[bucket_start(row.measured_at, Resolution.FIVE_MIN, zone)].append(row)
            for start in sorted(starts):
                stats = summarize(grouped.get(start, ()))
                write_bucket(
                    session, Resolution.FIVE_MIN, site_id, target_id, start, zone, stats, now
                )
                counts.five_min += 1
            session.flush()
            hour_stats = merge(
                _stored(session, Resolution.FIVE_MIN, site_id, target_id, hour, hour + hour_len)
            )
        else:
            hour_stats = summarize(_raw(session, site_id, target_id, hour, hour + hour_len))
        if hour >= horizon_hour:
            write_bucket(session, Resolution.HOUR, site_id, target_id, hour, zone, hour_stats, now)
            counts.hours += 1
        days.add(local_date(hour, zone))
    session.flush()
    for day in sorted(days):
        start, end = day_start(day, zone), day_end(day, zone)
        if start >= horizon_hour:
            day_stats = merge(_stored(session, Resolution.HOUR, site_id, target_id, start, end))
        else:
            day_stats = summarize(_raw(session, site_id, target_id, start, end))
        if start >= now - retention.day:
            write_bucket(session, Resolution.DAY, site_id, target_id, start, zone, day_stats, now)
            counts.days += 1
    return days


def _zone_of(config: Config, site_id: str) -> ZoneInfo:
    if site_id in config.sites:
        return ZoneInfo(config.site_zone(site_id))
    return ZoneInfo(config.server.time_zone)


def read_watermark(session: Session) -> tuple[datetime, int] | None:
    """Return the ``(received_at, id)`` of the last result rolled up, ``None`` if none."""
    row = session.get(RollupProgress, PROGRESS_NAME)
    return None if row is None else (row.received_at, row.result_id)


def _new_results(
    session: Session, mark: tuple[datetime, int] | None, upto: datetime, limit: int
) -> Sequence[Any]:
    stmt = select(
        Result.id, Result.received_at, Result.site_id, Result.target_id, Result.measured_at
    ).where(Result.received_at <= upto)
    if mark is not None:
        at, last_id = mark
        stmt = stmt.where(
            Result.received_at >= at,
            not_(and_(Result.received_at == at, Result.id <= last_id)),
        )
    return session.execute(stmt.order_by(Result.received_at, Result.id).limit(limit)).all()


def roll_up(
    session: Session,
    config: Config,
    now: datetime,
    *,
    settle_s: float = SETTLE_S,
    max_results: int = MAX_RESULTS_PER_CYCLE,
    retention: RollupRetention | None = None,
) -> RollupReport:
    """Run one rollup cycle (see the module docstring); the caller commits.

    Args:
        session: a session in a write transaction.
        config: the configuration (each site's time zone; a site no longer configured uses
            ``server.time_zone``).
        now: the server's clock, aware UTC.
        settle_s: only results received at or before ``now - settle_s`` are read.
        max_results: results read at most this cycle.
        retention: how long rows are kept; a bucket past its level's retention is not
            written. Default :class:`RollupRetention`.
    """
    keep = retention or RollupRetention()
    mark = read_watermark(session)
    rows = _new_results(session, mark, now - timedelta(seconds=settle_s), max_results)
    if not rows:
        return RollupReport(0, 0, 0, 0, False, mark[0] if mark else None)
    zones: dict[str, ZoneInfo] = {}
    touched: dict[tuple[str, str], set[datetime]] = defaultdict(set)
    for row in rows:
        zone = zones.get(row.site_id) or zones.setdefault(
            row.site_id, _zone_of(config, row.site_id)
        )
        touched[(row.site_id, row.target_id)].add(
            bucket_start(row.measured_at, Resolution.FIVE_MIN, zone)
        )
    counts = _Counts()
    touched_days: set[tuple[str, date]] = set()
    for (site_id, target_id), starts in sorted(touched.items()):
        days = _roll_target(session, site_id, target_id, zones[site_id], starts, now, keep, counts)
        touched_days.update((site_id, day) for day in days)
    session.flush()
    last = rows[-1]
    progress_table: Table = RollupProgress.__table__  # type: ignore[assignment]
    upsert(
        session,
        progress_table,
        [
            {
                "name": PROGRESS_NAME,
                "received_at": last.received_at,
                "result_id": last.id,
                "updated_at": now,
            }
        ],
        ["name"],
    )
    return RollupReport(
        results=len(rows),
        five_min=counts.five_min,
        hours=counts.hours,
        days=counts.days,
        more=len(rows) >= max_results,
        watermark=last.received_at,
        touched_days=frozenset(touched_days),
    )


def prune_rollups(session: Session, now: datetime, retention: RollupRetention | None = None) -> int:
    """Delete rollup rows whose bucket started before their level's retention; the caller
    commits. Return how many rows were deleted (index ``ix_<table>_bucket_start``)."""
    keep = retention or RollupRetention()
    horizons: list[tuple[Table, timedelta]] = [
        (table_of(Resolution.FIVE_MIN), keep.five_min),
        (table_of(Resolution.HOUR), keep.hour),
        (table_of(Resolution.DAY), keep.day),
    ]
    deleted = 0
    for table, age in horizons:
        result = session.execute(delete(table).where(table.c.bucket_start < now - age))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


def _cycle(services: Services, prune: bool) -> RollupReport:
    from monitor.storage.availability_days import refresh_cache

    now = services.clock()
    with services.sessions.begin() as session:
        report = roll_up(session, services.config, now)
    refresh_cache(services.sessions, services.config, now, report.touched_days)
    if prune:
        with services.sessions.begin() as session:
            deleted = prune_rollups(session, now)
        if deleted:
            log.info("pruned %d rollup rows past their retention", deleted)
    return report


async def run_rollups(services: Services, stop: asyncio.Event) -> None:
    """Roll up newly received results until ``stop`` is set (a background worker).

    Every :data:`ROLLUP_INTERVAL_S` seconds one :func:`roll_up` cycle runs in a thread;
    while a backlog remains, up to :data:`BACKLOG_CYCLES` cycles follow with short pauses
    so uploads still get the SQLite write lock between them. Rows past their retention are
    deleted every :data:`PRUNE_INTERVAL_S`. A failing cycle (database down, schema not
    migrated) is logged and retried at the next interval; it never stops the worker.
    """
    last_prune: datetime | None = None
    backlog = 0
    while not stop.is_set():
        now = datetime.now(UTC)
        prune = last_prune is None or (now - last_prune).total_seconds() >= PRUNE_INTERVAL_S
        more = False
        try:
            report = await asyncio.to_thread(_cycle, services, prune)
            more = report.more
            if prune:
                last_prune = now
            if report.results:
                log.debug("rolled up %d results", report.results)
        except SQLAlchemyError as exc:
            log.warning("rollup cycle failed, retrying in %.0f s: %s", ROLLUP_INTERVAL_S, exc)
        except Exception:  # a bug must not kill the worker; it is logged with its traceback
            log.exception("rollup cycle failed")
        backlog = backlog + 1 if more else 0
        pause = 0.05 if more and backlog < BACKLOG_CYCLES else ROLLUP_INTERVAL_S
        if more and backlog >= BACKLOG_CYCLES:
            backlog = 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=pause)


def roll_up_all(
    session_factory: sessionmaker[Session],
    config: Config,
    now: datetime,
    *,
    settle_s: float = SETTLE_S,
    availability: bool = True,
) -> int:
    """Run :func:`roll_up` cycles (each its own transaction) until no backlog remains, then
    (``availability``) refresh the availability-day cache as the worker does.

    For tools and tests; returns how many results were read. Stops after 10,000 cycles.
    """
    from monitor.storage.availability_days import refresh_cache

    total = 0
    touched: set[tuple[str, date]] = set()
    for _ in range(10_000):
        with session_factory.begin() as session:
            report = roll_up(session, config, now, settle_s=settle_s)
        total += report.results
        touched |= report.touched_days
        if not report.more:
            break
    if availability:
        refresh_cache(session_factory, config, now, touched, budget=10**9)
    return total


__all__ = [
    "RollupReport",
    "RollupRetention",
    "prune_rollups",
    "roll_up",
    "roll_up_all",
    "run_rollups",
    "stats_from_row",
    "stats_values",
    "table_of",
    "upsert",
    "write_bucket",
]
