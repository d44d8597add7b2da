"""Availability read from the stored state periods, per target or per site, any window.

These are the data functions the status page, ``/metrics`` and the monthly report call.
The periods are written by the state evaluator (:mod:`monitor.alerting.evaluator`); time
after ``now`` is never counted (a window reaching into the future ends at ``now``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerting.maintenance import Window, list_windows, maintenance_intervals
from monitor.availability.maths import (
    Availability,
    Period,
    account,
    combine,
    day_window,
    empty,
    month_window,
)
from monitor.state import TargetState
from monitor.storage.models import Target
from monitor.storage.models_incidents import TargetStatePeriod


@dataclass(frozen=True, slots=True)
class DayAvailability:
    """One calendar day (in the zone asked) and its availability."""

    day: date
    availability: Availability


def site_target_ids(session: Session, site_id: str) -> list[str]:
    """Return the ids of the site's configured (active) targets, sorted."""
    return list(
        session.scalars(
            select(Target.target_id)
            .where(Target.site_id == site_id, Target.active.is_(True))
            .order_by(Target.target_id)
        )
    )


def load_periods(
    session: Session,
    site_id: str,
    target_ids: Sequence[str],
    start: datetime,
    end: datetime,
) -> dict[str, list[Period]]:
    """Return each target's periods overlapping ``[start, end)``, oldest first, by target id."""
    out: dict[str, list[Period]] = {target_id: [] for target_id in target_ids}
    if not target_ids or end <= start:
        return out
    table = TargetStatePeriod
    rows = session.execute(
        select(table.target_id, table.start_at, table.end_at, table.state)
        .where(
            table.site_id == site_id,
            table.target_id.in_(list(target_ids)),
            table.start_at < end,
            table.end_at > start,
        )
        .order_by(table.target_id, table.start_at)
    )
    for target_id, start_at, end_at, state in rows:
        out[target_id].append(Period(start_at, end_at, TargetState(state)))
    return out


def availability(
    session: Session,
    site_id: str,
    target_id: str | None,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    windows: Sequence[Window] | None = None,
) -> Availability:
    """Return the availability of one target, or of a site (``target_id`` ``None``).

    The window is ``[start, min(end, now))``. A site combines its configured targets as
    :func:`monitor.availability.maths.combine` says (down when any known target is down).
    ``windows``: the maintenance windows, read from the database when ``None``.
    """
    stop = min(end, now)
    if stop <= start:
        return empty(start, start)
    if windows is None:
        windows = list_windows(session)
    ids = [target_id] if target_id is not None else site_target_ids(session, site_id)
    periods = load_periods(session, site_id, ids, start, stop)
    return _measure(site_id, target_id, ids, periods, windows, start, stop)


def _measure(
    site_id: str,
    target_id: str | None,
    ids: Sequence[str],
    periods: dict[str, list[Period]],
    windows: Sequence[Window],
    start: datetime,
    stop: datetime,
) -> Availability:
    if stop <= start:
        return empty(start, start)
    if target_id is not None:
        maint = maintenance_intervals(windows, site_id, target_id, start, stop)
        return account(periods.get(target_id, []), maint, start, stop)
    timelines = [
        (periods.get(t, []), maintenance_intervals(windows, site_id, t, start, stop)) for t in ids
    ]
    return combine(timelines, start, stop)


def daily_availability(
    session: Session,
    site_id: str,
    target_id: str | None,
    first_day: date,
    days: int,
    zone: str,
    *,
    now: datetime,
) -> list[DayAvailability]:
    """Return ``days`` calendar days from ``first_day`` in ``zone``, each with its availability.

    Days are local calendar days (23 or 25 hours on DST days); a day after ``now`` ends
    at ``now`` (or is empty). One database read for the whole span.
    """
    if days <= 0:
        return []
    spans = [day_window(first_day + timedelta(days=i), zone) for i in range(days)]
    start, stop = spans[0][0], min(spans[-1][1], now)
    windows = list_windows(session)
    ids = [target_id] if target_id is not None else site_target_ids(session, site_id)
    periods = load_periods(session, site_id, ids, start, stop)
    return [
        DayAvailability(
            first_day + timedelta(days=i),
            _measure(site_id, target_id, ids, periods, windows, a, min(b, now)),
        )
        for i, (a, b) in enumerate(spans)
    ]


def month_availability(
    session: Session,
    site_id: str,
    target_id: str | None,
    year: int,
    month: int,
    zone: str,
    *,
    now: datetime,
) -> Availability:
    """Return the availability of a calendar month in ``zone`` (up to ``now``)."""
    start, end = month_window(year, month, zone)
    return availability(session, site_id, target_id, start, end, now=now)
