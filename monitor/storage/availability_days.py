"""Availability per site and per target per local day: computed, cached, read back.

The maths is the availability engine's (:mod:`monitor.availability.maths`): time-weighted
over the evaluator's state periods, maintenance windows taken out, unknown time apart, a
site DOWN while any known target is DOWN (``combine``); one target alone (``account``). What
this module adds is cost control, so a page costs the same with years of history:

- :func:`load_periods` reads only the periods *starting* in a window (an index range on
  ``(site_id, target_id, start_at)``) plus, per target, the last one starting before it
  (a target removed from the configuration keeps its row in ``targets``, inactive).
- :func:`compute_days` hands each day only the periods that overlap it.
- :func:`refresh_cache` (run by the rollup worker) stores each *complete* local day's
  seconds per state in ``availability_day`` (rows per site, ``target_id`` = ``"*"``, and
  per target) for :data:`CACHE_DAYS` days. A day is cached once it ended at least
  :data:`SETTLE` ago. A day that receives late results is marked stale and recomputed at
  every cycle for :data:`SETTLE` (the evaluator rewrites periods after the results land).
  A change of the maintenance windows or of the configured targets empties the cache.
- :func:`days_of` reads cached days and computes the others (today, stale or missing days)
  on the spot: the cache only saves time, it never changes a figure.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.maintenance import Window, list_windows, maintenance_intervals
from monitor.availability.maths import Availability, Period, account, combine, day_window
from monitor.config import Config
from monitor.state import TargetState
from monitor.storage.models import Target
from monitor.storage.models_incidents import MaintenanceWindow, TargetStatePeriod
from monitor.storage.models_status import AvailabilityDay, StatusMark

SITE = "*"
"""The ``target_id`` of a site's own row (target ids never contain ``*``)."""

CACHE_DAYS = 400
"""Complete local days kept in the cache (13 months: the site page's 12 months)."""

SETTLE = timedelta(minutes=15)
"""How long after its end (or after late results) a day is still computed on the spot."""

MAX_DAYS_PER_CYCLE = 2000
"""Site-days one :func:`refresh_cache` computes at most; the rest wait for the next cycle."""

TargetKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class DayTimes(Availability):
    """Seconds in each state over one local ``day`` (cut at "now" for today).

    The availability engine's figure for that day (``start``/``end`` the UTC span measured;
    the parts add up to ``end - start``; ``known_s`` and ``availability`` as there).
    """

    day: date

    @classmethod
    def of(cls, day: date, figure: Availability) -> DayTimes:
        """Copy the availability engine's figure for ``day``."""
        return cls(
            figure.start,
            figure.end,
            figure.up_s,
            figure.degraded_s,
            figure.down_s,
            figure.unknown_s,
            figure.maintenance_s,
            day=day,
        )


def load_periods(
    session: Session, keys: Iterable[TargetKey], start: datetime, end: datetime
) -> dict[TargetKey, list[Period]]:
    """Return each target's state periods overlapping ``[start, end)``, oldest first.

    Two bounded reads: the periods starting in the window (``site_id IN .. AND target_id
    IN ..`` so the index range is used; other pairs are dropped here), and for each target
    the last period starting before the window (one backward index seek each, driven by
    the ``targets`` table). Every key asked for is in the result.
    """
    wanted = sorted(set(keys))
    out: dict[TargetKey, list[Period]] = {key: [] for key in wanted}
    if not wanted or end <= start:
        return out
    site_ids = sorted({s for s, _ in wanted})
    target_ids = sorted({t for _, t in wanted})
    t = TargetStatePeriod
    columns = (t.site_id, t.target_id, t.start_at, t.end_at, t.state)
    inside = select(*columns).where(
        t.site_id.in_(site_ids),
        t.target_id.in_(target_ids),
        t.start_at >= start,
        t.start_at < end,
    )
    last_before = (
        select(t.id)
        .where(
            t.site_id == Target.site_id,
            t.target_id == Target.target_id,
            t.start_at < start,
        )
        .order_by(t.start_at.desc())
        .limit(1)
        .correlate(Target)
        .scalar_subquery()
    )
    ids = (
        select(last_before)
        .select_from(Target)
        .where(Target.site_id.in_(site_ids), Target.target_id.in_(target_ids))
    )
    earlier = select(*columns).where(t.id.in_(ids), t.end_at > start)
    for query in (earlier, inside):
        for site_id, target_id, start_at, end_at, state in session.execute(query):
            key = (site_id, target_id)
            if key in out:
                out[key].append(Period(start_at, end_at, TargetState(state)))
    for periods in out.values():
        periods.sort(key=lambda p: p.start)
    return out


def _split(
    periods: Sequence[Period], spans: Sequence[tuple[datetime, datetime]]
) -> list[list[Period]]:
    """Return, for each span (sorted, apart), the periods that overlap it."""
    starts = [a for a, _ in spans]
    out: list[list[Period]] = [[] for _ in spans]
    for p in periods:
        i = max(0, bisect_left(starts, p.start) - 1)
        while i < len(spans) and spans[i][0] < p.end:
            if spans[i][1] > p.start:
                out[i].append(p)
            i += 1
    return out


def day_span(day: date, zone: str, now: datetime) -> tuple[datetime, datetime]:
    """Return the UTC span of local ``day`` in ``zone``, cut at ``now``."""
    a, b = day_window(day, zone)
    return a, max(a, min(b, now))


def compute_sites_days(
    session: Session,
    sites: Mapping[str, Sequence[str]],
    zones: Mapping[str, str],
    days: Mapping[str, Sequence[date]],
    now: datetime,
    windows: Sequence[Window] | None = None,
) -> dict[str, dict[tuple[str, date], DayTimes]]:
    """Compute, for each site, its own (key ``(SITE, day)``) and each target's figures for
    ``days[site]``. One bounded read of the periods of all the sites together; ``windows``
    are the maintenance windows (read when ``None``)."""
    spans = {
        site_id: [(d, day_span(d, zones[site_id], now)) for d in sorted(set(days.get(site_id, ())))]
        for site_id in sites
    }
    spans = {site_id: v for site_id, v in spans.items() if v}
    if not spans:
        return {}
    lo = min(v[0][1][0] for v in spans.values())
    hi = max(v[-1][1][1] for v in spans.values())
    periods = load_periods(session, ((s, t) for s in spans for t in sites[s]), lo, hi)
    if windows is None:
        windows = list_windows(session)
    out: dict[str, dict[tuple[str, date], DayTimes]] = {}
    for site_id, site_spans in spans.items():
        bounds = [span for _, span in site_spans]
        per_target = {t: _split(periods[(site_id, t)], bounds) for t in sites[site_id]}
        figures: dict[tuple[str, date], DayTimes] = {}
        for i, (day, (a, b)) in enumerate(site_spans):
            timelines = []
            for t in sites[site_id]:
                maint = maintenance_intervals(windows, site_id, t, a, b)
                timelines.append((per_target[t][i], maint))
                figures[(t, day)] = DayTimes.of(day, account(per_target[t][i], maint, a, b))
            figures[(SITE, day)] = DayTimes.of(day, combine(timelines, a, b))
        out[site_id] = figures
    return out


def compute_days(
    session: Session,
    site_id: str,
    target_ids: Sequence[str],
    zone: str,
    days: Sequence[date],
    now: datetime,
    windows: Sequence[Window] | None = None,
) -> dict[tuple[str, date], DayTimes]:
    """Compute one site's figures for ``days`` (see :func:`compute_sites_days`)."""
    found = compute_sites_days(
        session, {site_id: target_ids}, {site_id: zone}, {site_id: days}, now, windows
    )
    return found.get(site_id, {})


def days_of(
    session: Session,
    sites: Mapping[str, Sequence[str]],
    zones: Mapping[str, str],
    first: Mapping[str, date],
    last: Mapping[str, date],
    now: datetime,
    *,
    targets_from: date | None = None,
) -> dict[str, dict[str, dict[date, DayTimes]]]:
    """Return ``{site: {SITE or target id: {day: DayTimes}}}`` for each site's days
    ``first[site]``..``last[site]``: cached days as stored, the others computed now.

    Cached target rows are read from ``targets_from`` on (``None``: none); for days not
    cached, the targets' figures come with the site's.
    """
    if not sites:
        return {}
    lo, hi = min(first.values()), max(last.values())
    a = AvailabilityDay
    stmt = select(
        a.site_id,
        a.target_id,
        a.local_date,
        a.start_at,
        a.end_at,
        a.up_s,
        a.degraded_s,
        a.down_s,
        a.unknown_s,
        a.maintenance_s,
    ).where(
        a.site_id.in_(list(sites)),
        a.local_date >= lo,
        a.local_date <= hi,
        a.stale_until.is_(None),
    )
    if targets_from is None:
        stmt = stmt.where(a.target_id == SITE)
    else:
        stmt = stmt.where((a.target_id == SITE) | (a.local_date >= targets_from))
    out: dict[str, dict[str, dict[date, DayTimes]]] = {s: defaultdict(dict) for s in sites}
    for site_id, target_id, day, start, end, up, degraded, down, unknown, maint in session.execute(
        stmt
    ):
        if first[site_id] <= day <= last[site_id]:
            out[site_id][target_id][day] = DayTimes(
                start, end, up, degraded, down, unknown, maint, day=day
            )
    missing: dict[str, list[date]] = {}
    for site_id in sites:
        wanted = [
            first[site_id] + timedelta(days=i)
            for i in range((last[site_id] - first[site_id]).days + 1)
        ]
        gaps = [d for d in wanted if d not in out[site_id][SITE]]
        if gaps:
            missing[site_id] = gaps
    if missing:
        computed = compute_sites_days(session, {s: sites[s] for s in missing}, zones, missing, now)
        for site_id, figures in computed.items():
            for (key, day), times in figures.items():
                out[site_id][key][day] = times
    return {s: dict(v) for s, v in out.items()}


# -- the cache --------------------------------------------------------------------------


def _fingerprint(session: Session, config: Config) -> str:
    """Return a digest of what every cached figure depends on besides the periods: the
    maintenance windows (count, ids) and each site's zone and targets."""
    count, high, total = session.execute(
        select(
            func.count(),
            func.coalesce(func.max(MaintenanceWindow.id), 0),
            func.coalesce(func.sum(MaintenanceWindow.id), 0),
        )
    ).one()
    text = f"{count}/{high}/{total}|" + "|".join(
        f"{sid}:{config.site_zone(sid)}:{','.join(t.id for t in site.targets)}"
        for sid, site in sorted(config.sites.items())
    )
    return hashlib.sha256(text.encode()).hexdigest()


FINGERPRINT_MARK = "availability_inputs"


def _check_inputs(session: Session, config: Config, now: datetime) -> bool:
    """Empty the cache if the windows or targets changed since it was filled; return
    whether it was emptied."""
    digest = _fingerprint(session, config)
    mark = session.get(StatusMark, FINGERPRINT_MARK)
    if mark is not None and mark.value == digest:
        return False
    session.execute(delete(AvailabilityDay))
    if mark is None:
        session.add(StatusMark(name=FINGERPRINT_MARK, value=digest, updated_at=now))
    else:
        mark.value, mark.updated_at = digest, now
    return True


def mark_stale(session: Session, touched: Iterable[tuple[str, date]], now: datetime) -> None:
    """Mark cached days that received late results: recomputed for :data:`SETTLE`."""
    by_site: dict[str, set[date]] = defaultdict(set)
    for site_id, day in touched:
        by_site[site_id].add(day)
    for site_id, days in by_site.items():
        session.execute(
            update(AvailabilityDay)
            .where(AvailabilityDay.site_id == site_id, AvailabilityDay.local_date.in_(days))
            .values(stale_until=now + SETTLE)
        )


def _due(
    session: Session, config: Config, now: datetime, keep_days: int
) -> list[tuple[str, list[date]]]:
    """Return, per site, the complete days of the last ``keep_days`` to (re)compute:
    missing or stale."""
    have: dict[str, set[date]] = defaultdict(set)
    redo: dict[str, set[date]] = defaultdict(set)
    for site_id, day, stale_until in session.execute(
        select(
            AvailabilityDay.site_id, AvailabilityDay.local_date, AvailabilityDay.stale_until
        ).where(AvailabilityDay.target_id == SITE)
    ):
        have[site_id].add(day)
        if stale_until is not None:
            redo[site_id].add(day)
    out: list[tuple[str, list[date]]] = []
    for site_id in config.sites:
        zone = config.site_zone(site_id)
        today = now.astimezone(ZoneInfo(zone)).date()
        last = today - timedelta(days=1)
        if day_window(last, zone)[1] + SETTLE > now:
            last -= timedelta(days=1)
        first = today - timedelta(days=keep_days)
        wanted = {first + timedelta(days=i) for i in range((last - first).days + 1)}
        days = sorted((wanted - have[site_id]) | (redo[site_id] & wanted), reverse=True)
        if days:
            out.append((site_id, days))
    return out


def refresh_cache(
    sessions: sessionmaker[Session],
    config: Config,
    now: datetime,
    touched: Iterable[tuple[str, date]] = (),
    *,
    budget: int = MAX_DAYS_PER_CYCLE,
    keep_days: int = CACHE_DAYS,
) -> int:
    """Bring the cache up to date (see the module docstring); return site-days computed.

    ``touched``: ``(site, local day)`` that received results this cycle (late ones among
    them mark their cached day stale). Computes with a read transaction and writes each
    site's rows in a short write transaction. Newest days first, at most ``budget``; days
    older than ``keep_days`` are neither computed nor kept.
    """
    with sessions.begin() as session:
        _check_inputs(session, config, now)
        mark_stale(session, touched, now)
        session.execute(
            delete(AvailabilityDay).where(
                AvailabilityDay.local_date < (now - timedelta(days=keep_days + 2)).date()
            )
        )
        due = _due(session, config, now, keep_days)
    done = 0
    for site_id, days in due:
        if done >= budget:
            break
        chosen = days[: budget - done]
        targets = [t.id for t in config.sites[site_id].targets]
        with sessions() as session:
            figures = compute_days(
                session, site_id, targets, config.site_zone(site_id), chosen, now
            )
        rows: list[dict[str, Any]] = [
            {
                "site_id": site_id,
                "target_id": key,
                "local_date": day,
                "start_at": t.start,
                "end_at": t.end,
                "up_s": t.up_s,
                "degraded_s": t.degraded_s,
                "down_s": t.down_s,
                "unknown_s": t.unknown_s,
                "maintenance_s": t.maintenance_s,
                "stale_until": None,
                "computed_at": now,
            }
            for (key, day), t in figures.items()
        ]
        with sessions.begin() as session:
            still_stale = {
                d
                for (d,) in session.execute(
                    select(AvailabilityDay.local_date).where(
                        AvailabilityDay.site_id == site_id,
                        AvailabilityDay.target_id == SITE,
                        AvailabilityDay.stale_until > now,
                    )
                )
            }
            for row in rows:
                if row["local_date"] in still_stale:
                    row["stale_until"] = now + SETTLE
            _upsert(session, rows)
        done += len(chosen)
    return done


def _upsert(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    from monitor.storage.rollups_job import upsert

    table = AvailabilityDay.__table__
    for start in range(0, len(rows), 500):
        upsert(session, table, rows[start : start + 500], ["site_id", "target_id", "local_date"])  # type: ignore[arg-type]
