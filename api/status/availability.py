"""Availability figures for the pages: per local day, per month, per target over 30 days.

Every figure is the availability engine's time-weighted one (UP + DEGRADED over the time
whose state is known, maintenance taken out, a site DOWN while any known target is DOWN),
read per local day through :func:`monitor.storage.availability_days.days_of`: complete days
from the availability-day cache, today and any day not cached computed on the spot. Longer
spans add the days' seconds, so a 90-day or monthly figure is exact, not an average of
percentages. Coverage = known time / (elapsed time - maintenance).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from monitor.storage.availability_days import SITE, DayTimes, days_of


class AvailabilityLevel(StrEnum):
    """A band for colouring an availability figure (the figure itself is always shown)."""

    FULL = "full"  # >= 99.9 %
    HIGH = "high"  # >= 99 %
    MEDIUM = "medium"  # >= 95 %
    LOW = "low"  # below 95 %
    MAINTENANCE = "maintenance"  # no known time, some maintenance
    NO_DATA = "nodata"


def availability_level(ratio: float | None, maintenance: bool = False) -> AvailabilityLevel:
    """Return the band of an availability ratio (0-1); ``None`` is NO_DATA or MAINTENANCE."""
    if ratio is None:
        return AvailabilityLevel.MAINTENANCE if maintenance else AvailabilityLevel.NO_DATA
    if ratio >= 0.999:
        return AvailabilityLevel.FULL
    if ratio >= 0.99:
        return AvailabilityLevel.HIGH
    if ratio >= 0.95:
        return AvailabilityLevel.MEDIUM
    return AvailabilityLevel.LOW


@dataclass(frozen=True, slots=True)
class Totals:
    """Seconds in each state over a span (one day or several added up)."""

    span_s: float
    up_s: float
    degraded_s: float
    down_s: float
    unknown_s: float
    maintenance_s: float

    @property
    def known_s(self) -> float:
        """Time with a known state outside maintenance."""
        return self.up_s + self.degraded_s + self.down_s

    @property
    def availability(self) -> float | None:
        """(UP + DEGRADED) / known time, 0-1; ``None`` when nothing is known."""
        return (self.up_s + self.degraded_s) / self.known_s if self.known_s > 0 else None

    @property
    def coverage(self) -> float | None:
        """Known time / (span - maintenance), 0-1; ``None`` when nothing was due."""
        due = self.span_s - self.maintenance_s
        return min(1.0, self.known_s / due) if due > 0 else None


def add_up(days: Iterable[DayTimes]) -> Totals:
    """Return the seconds of ``days`` added up."""
    span = up = degraded = down = unknown = maintenance = 0.0
    for d in days:
        span += (d.end - d.start).total_seconds()
        up += d.up_s
        degraded += d.degraded_s
        down += d.down_s
        unknown += d.unknown_s
        maintenance += d.maintenance_s
    return Totals(span, up, degraded, down, unknown, maintenance)


@dataclass(frozen=True, slots=True)
class DayFigure:
    """One local day: availability and coverage ratios (``None``: no data / nothing due),
    and the seconds DOWN and in maintenance."""

    day: date
    availability: float | None
    coverage: float | None
    down_s: float
    maintenance_s: float

    @property
    def level(self) -> AvailabilityLevel:
        """The colour band of the day."""
        return availability_level(self.availability, self.maintenance_s > 0)

    @classmethod
    def of(cls, day: date, times: DayTimes | None) -> DayFigure:
        """Return the figure of ``day`` from its seconds (``None``: nothing known)."""
        if times is None:
            return cls(day, None, None, 0.0, 0.0)
        known = times.up_s + times.degraded_s + times.down_s
        due = (times.end - times.start).total_seconds() - times.maintenance_s
        return cls(
            day,
            (times.up_s + times.degraded_s) / known if known > 0 else None,
            min(1.0, known / due) if due > 0 else None,
            times.down_s,
            times.maintenance_s,
        )


@dataclass(frozen=True, slots=True)
class MonthFigure:
    """One calendar month (``first`` is its first day) up to now."""

    first: date
    availability: float | None
    coverage: float | None
    down_s: float

    @property
    def level(self) -> AvailabilityLevel:
        """The colour band of the month."""
        return availability_level(self.availability)


@dataclass(frozen=True, slots=True)
class SiteDays:
    """A site's day figures, oldest first, and its availability over all of those days."""

    days: tuple[DayFigure, ...]
    overall: float | None


def _dates(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def sites_daily(
    session: Session,
    sites: Mapping[str, Sequence[str]],
    zones: Mapping[str, str],
    last_days: Mapping[str, date],
    days: int,
    now: datetime,
) -> dict[str, SiteDays]:
    """Return each site's last ``days`` local days (ending with ``last_days[site]``).

    ``sites`` maps site id to its target ids, ``zones`` to its IANA zone.
    """
    firsts = {s: last_days[s] - timedelta(days=days - 1) for s in sites}
    found = days_of(session, sites, zones, firsts, last_days, now)
    out: dict[str, SiteDays] = {}
    for site_id in sites:
        own = found.get(site_id, {}).get(SITE, {})
        dates = _dates(firsts[site_id], last_days[site_id])
        out[site_id] = SiteDays(
            tuple(DayFigure.of(d, own.get(d)) for d in dates),
            add_up(own[d] for d in dates if d in own).availability,
        )
    return out


def _month_firsts(last: date, months: int) -> list[date]:
    firsts = [last.replace(day=1)]
    while len(firsts) < months:
        firsts.append((firsts[-1] - timedelta(days=1)).replace(day=1))
    return firsts


@dataclass(frozen=True, slots=True)
class SiteHistory:
    """What the site page shows of availability: the last days and months, newest first,
    and each target's availability over the last 30 days."""

    days: tuple[DayFigure, ...]
    months: tuple[MonthFigure, ...]
    targets_30d: Mapping[str, float | None]


def site_history(
    session: Session,
    site_id: str,
    target_ids: Sequence[str],
    zone: str,
    today: date,
    now: datetime,
    *,
    days: int,
    months: int,
) -> SiteHistory:
    """Return the site's last ``days`` days, last ``months`` calendar months, and each
    target's last 30 days (today included in all)."""
    firsts = _month_firsts(today, months)
    start = min(firsts[-1], today - timedelta(days=max(days, 30) - 1))
    recent = _dates(today - timedelta(days=29), today)
    found = days_of(
        session,
        {site_id: target_ids},
        {site_id: zone},
        {site_id: start},
        {site_id: today},
        now,
        targets_from=recent[0],
    )[site_id]
    own = found.get(SITE, {})
    day_figures = tuple(
        DayFigure.of(d, own.get(d))
        for d in reversed(_dates(today - timedelta(days=days - 1), today))
    )
    month_figures = []
    for first in firsts:
        following = (first + timedelta(days=32)).replace(day=1)
        totals = add_up(t for d, t in own.items() if first <= d < following)
        month_figures.append(
            MonthFigure(first, totals.availability, totals.coverage, totals.down_s)
        )
    per_target = {
        t: add_up(found[t][d] for d in recent if d in found.get(t, {})).availability
        for t in target_ids
    }
    return SiteHistory(day_figures, tuple(month_figures), per_target)
