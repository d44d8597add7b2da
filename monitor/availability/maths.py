"""Availability arithmetic over state periods: pure functions, no I/O.

Availability over a window = (up + degraded) / (up + degraded + down), time-weighted, with
maintenance time taken out first and unknown time (no data, monitor-side errors, before a
target existed) reported apart and counted on neither side. With no known time at all the
availability is ``None`` ("no data"), never 100 % (case C22). This is the ratio of ITU-T
E.800's "availability" (time able to serve over the time considered), restricted to the time
whose state is known; see docs/availability.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.alerting.maintenance import Interval, merge, resolve_local
from monitor.state import TargetState

_UNAVAILABLE = frozenset({TargetState.DOWN})
_AVAILABLE = frozenset({TargetState.UP, TargetState.DEGRADED})


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` in one state (aware datetimes)."""

    start: datetime
    end: datetime
    state: TargetState


@dataclass(frozen=True, slots=True)
class Availability:
    """Time in each state over ``[start, end)``, seconds; the window's parts add up.

    ``up_s + degraded_s + down_s + unknown_s + maintenance_s == end - start``.
    Maintenance time is counted as maintenance whatever the state was.
    """

    start: datetime
    end: datetime
    up_s: float
    degraded_s: float
    down_s: float
    unknown_s: float
    maintenance_s: float

    @property
    def known_s(self) -> float:
        """Time with a known state outside maintenance: up + degraded + down, seconds."""
        return self.up_s + self.degraded_s + self.down_s

    @property
    def availability(self) -> float | None:
        """(up + degraded) / known time, a ratio 0-1; ``None`` when no time is known."""
        known = self.known_s
        if known <= 0:
            return None
        return (self.up_s + self.degraded_s) / known


def empty(start: datetime, end: datetime) -> Availability:
    """Return the availability of a window with no data at all (all unknown)."""
    return Availability(start, end, 0.0, 0.0, 0.0, max(0.0, _s(end - start)), 0.0)


def account(
    periods: Iterable[Period],
    maintenance: Sequence[Interval],
    start: datetime,
    end: datetime,
) -> Availability:
    """Return the time of one target in each state over ``[start, end)``.

    ``periods`` must not overlap (any order); each is clipped to the window, never
    dropped (an outage that began before the window counts from the window's start).
    ``maintenance`` intervals may overlap; their union inside the window is maintenance.
    """
    if end <= start:
        return empty(start, start)
    windows = merge([(max(s, start), min(e, end)) for s, e in maintenance])
    totals = {TargetState.UP: 0.0, TargetState.DEGRADED: 0.0, TargetState.DOWN: 0.0}
    for period in periods:
        if period.state not in totals:
            continue
        a, b = max(period.start, start), min(period.end, end)
        if a >= b:
            continue
        totals[period.state] += _s(b - a) - _overlap_s(a, b, windows)
    maintenance_s = sum(_s(e - s) for s, e in windows)
    known = sum(totals.values())
    return Availability(
        start=start,
        end=end,
        up_s=totals[TargetState.UP],
        degraded_s=totals[TargetState.DEGRADED],
        down_s=totals[TargetState.DOWN],
        unknown_s=max(0.0, _s(end - start) - maintenance_s - known),
        maintenance_s=maintenance_s,
    )


def combine(
    timelines: Sequence[tuple[Sequence[Period], Sequence[Interval]]],
    start: datetime,
    end: datetime,
) -> Availability:
    """Return a site's time in each state from its targets' periods and maintenance.

    ``timelines``: per target, its periods (not overlapping) and its maintenance intervals.
    At each instant the site is: MAINTENANCE when every target is in maintenance; else,
    among the targets not in maintenance, DOWN if any is DOWN, DEGRADED if any is DEGRADED,
    UP if any is UP, UNKNOWN when none is known. Unknown targets never make a site down
    or up; one DOWN target makes it down (a site is available when all it can see works).

    One sweep over the periods' ends (sorted), counting targets per state: time grows with
    the number of periods, not with periods times targets.
    """
    if end <= start or not timelines:
        return empty(start, max(start, end))
    events: list[tuple[datetime, int, int]] = []
    for periods, maint in timelines:
        windows = merge([(max(s, start), min(e, end)) for s, e in maint])
        for s, e in windows:
            events += [(s, _MAINT, 1), (e, _MAINT, -1)]
        for period in periods:
            slot = _SLOT.get(period.state)
            a, b = max(period.start, start), min(period.end, end)
            if slot is None or a >= b:
                continue
            for x, y in _outside(a, b, windows):
                events += [(x, slot, 1), (y, slot, -1)]
    events.sort(key=lambda event: event[0])
    everyone = len(timelines)
    counts = [0, 0, 0, 0]
    totals = [0.0] * 5  # up, degraded, down, maintenance, unknown
    previous = start
    for at, slot, delta in events:
        if at > previous:
            totals[_site_slot(counts, everyone)] += _s(at - previous)
            previous = at
        counts[slot] += delta
    if end > previous:
        totals[_site_slot(counts, everyone)] += _s(end - previous)
    return Availability(
        start=start,
        end=end,
        up_s=totals[_UP],
        degraded_s=totals[_DEGRADED],
        down_s=totals[_DOWN],
        unknown_s=totals[_UNKNOWN],
        maintenance_s=totals[_MAINT],
    )


_UP, _DEGRADED, _DOWN, _MAINT, _UNKNOWN = range(5)
_SLOT = {TargetState.UP: _UP, TargetState.DEGRADED: _DEGRADED, TargetState.DOWN: _DOWN}


def _site_slot(counts: Sequence[int], everyone: int) -> int:
    if counts[_MAINT] >= everyone:
        return _MAINT
    for slot in (_DOWN, _DEGRADED, _UP):
        if counts[slot] > 0:
            return slot
    return _UNKNOWN


def _outside(a: datetime, b: datetime, windows: Sequence[Interval]) -> list[Interval]:
    """Return the parts of ``[a, b)`` outside the sorted, merged ``windows``."""
    out: list[Interval] = []
    cursor = a
    for s, e in windows:
        if e <= cursor:
            continue
        if s >= b:
            break
        if s > cursor:
            out.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < b:
        out.append((cursor, b))
    return out


def day_window(day: date, zone: str) -> Interval:
    """Return the calendar day ``day`` in ``zone`` as UTC instants (23 h or 25 h on DST days)."""
    tz = ZoneInfo(zone)
    midnight = datetime.combine(day, datetime.min.time())
    return resolve_local(midnight, tz), resolve_local(midnight + timedelta(days=1), tz)


def month_window(year: int, month: int, zone: str) -> Interval:
    """Return the calendar month in ``zone`` as UTC instants. Raises ValueError if invalid."""
    tz = ZoneInfo(zone)
    first = datetime(year, month, 1)
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return resolve_local(first, tz), resolve_local(following, tz)


def _overlap_s(a: datetime, b: datetime, windows: Sequence[Interval]) -> float:
    total = 0.0
    for s, e in windows:
        if e <= a:
            continue
        if s >= b:
            break
        total += _s(min(b, e) - max(a, s))
    return total


def _s(delta: timedelta) -> float:
    return delta.total_seconds()
