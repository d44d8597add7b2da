"""Maintenance windows: one-off or recurring, in local wall-clock time of any IANA zone.

A window is stored as its first occurrence in local time (``start_local``, ``end_local``,
no offset) with a zone and a repeat rule (once, daily, weekly) and an optional last date.
Occurrences are computed for the period asked and never stored (case C37: a recurring
window must not breed rows).

Local times become instants by one rule, for both ends of every occurrence: *the first
instant at which the zone's wall clock reads that time*.

- A time skipped by a DST change (02:30 on the night clocks jump from 02:00 to 03:00) is
  reached when the clock jumps past it: the window opens at 03:00, the skipped part is
  dropped, no error.
- A time that happens twice (02:30 on the night clocks fall back from 03:00 to 02:00) is
  taken at its first occurrence (``fold=0``).

So the daily 02:30-03:30 Europe/Berlin window is 01:30-02:30 UTC on 29 March 2025,
01:00-01:30 UTC on 30 March (03:00-03:30 CEST), 00:30-01:30 UTC on 31 March, and
00:30-02:30 UTC on 26 October 2025 (from the first 02:30 CEST to the only 03:30 CET; the
clock passes through the window's hours twice, and the window holds through both). Case
C30.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.storage.models_incidents import MaintenanceWindow

Interval = tuple[datetime, datetime]
"""``[start, end)`` as aware UTC datetimes."""


class Repeat(StrEnum):
    """How a maintenance window repeats."""

    ONCE = "once"
    DAILY = "daily"
    WEEKLY = "weekly"


_PERIOD_DAYS = {Repeat.DAILY: 1, Repeat.WEEKLY: 7}


def resolve_local(local: datetime, zone: ZoneInfo) -> datetime:
    """Return the first instant (aware UTC) at which ``zone``'s wall clock reads ``local``.

    ``local`` is naive wall-clock time. A repeated time gives its first occurrence; a
    skipped time gives the instant the clock jumps past it (the end of the gap).
    """
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first
    second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(first, second), max(first, second)
    # The wall clock is below ``local`` at ``low`` and past it at ``high``: find the jump.
    lo_s, hi_s = int(low.timestamp()), int(high.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        wall = datetime.fromtimestamp(mid, UTC).astimezone(zone).replace(tzinfo=None)
        if wall >= local:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """A maintenance window as stored (see ``monitor.storage.models_incidents``).

    ``start_local``/``end_local``: naive wall-clock datetimes of the first occurrence;
    ``until``: the last local date an occurrence may start, ``None`` for no end.
    ``site_id``/``target_id``: the scope, ``None`` meaning every site / every target.
    """

    id: int
    site_id: str | None
    target_id: str | None
    title: str
    zone: str
    repeat: Repeat
    start_local: datetime
    end_local: datetime
    until: date | None = None
    note: str | None = None

    def covers(self, site_id: str, target_id: str | None = None) -> bool:
        """Whether the window applies to ``target_id`` at ``site_id`` (``None``: the site)."""
        if self.site_id is not None and self.site_id != site_id:
            return False
        if target_id is None:
            return self.target_id is None
        return self.target_id is None or self.target_id == target_id

    def occurrences(self, start: datetime, end: datetime) -> list[Interval]:
        """Return the occurrences overlapping ``[start, end)``, as UTC instants, in order.

        Work and output are bounded by the span asked (one candidate per local day),
        however long the window repeats.
        """
        zone = ZoneInfo(self.zone)
        if self.repeat is Repeat.ONCE:
            found = [(resolve_local(self.start_local, zone), resolve_local(self.end_local, zone))]
            return [(s, e) for s, e in found if s < end and e > start and s < e]
        period = _PERIOD_DAYS[self.repeat]
        length = self.end_local - self.start_local
        first_day = self.start_local.date()
        from_day = start.astimezone(zone).date() - timedelta(days=length.days + 1)
        to_day = end.astimezone(zone).date() + timedelta(days=1)
        skip = max(0, (from_day - first_day).days)
        day = first_day + timedelta(days=-(-skip // period) * period)
        out: list[Interval] = []
        while day <= to_day and (self.until is None or day <= self.until):
            local_start = datetime.combine(day, self.start_local.time())
            s = resolve_local(local_start, zone)
            e = resolve_local(local_start + length, zone)
            if s < end and e > start and s < e:
                out.append((s, e))
            day += timedelta(days=period)
        return out


class WindowIn(BaseModel):
    """A maintenance window as given by an operator (CLI or API).

    ``start``/``end``: the first occurrence in wall-clock time of ``zone`` (no offset);
    ``zone``: an IANA name, ``None`` for the site's zone (or the server's for every site).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_id: str | None = None
    target_id: str | None = None
    title: str = Field(min_length=1, max_length=200)
    zone: str | None = None
    repeat: Repeat = Repeat.ONCE
    start: datetime
    end: datetime
    until: date | None = None
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, v: datetime) -> datetime:
        if v.tzinfo is not None:
            raise ValueError("give local wall-clock time without an offset (the zone says where)")
        return v.replace(microsecond=0)

    @model_validator(mode="after")
    def _sane(self) -> WindowIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        longest = {Repeat.DAILY: timedelta(days=1), Repeat.WEEKLY: timedelta(days=7)}
        if self.repeat in longest and self.end - self.start > longest[self.repeat]:
            raise ValueError(f"a {self.repeat.value} window must not last longer than its period")
        if self.until is not None and self.until < self.start.date():
            raise ValueError("until must not be before the start date")
        return self


class MaintenanceError(ValueError):
    """A maintenance window names an unknown site, target or zone; one sentence."""


def add_window(session: Session, config: Config, given: WindowIn, now: datetime) -> Window:
    """Store ``given``; return it with its id. The caller commits.

    The zone defaults to the site's (``server.time_zone`` for a window on every site).
    Raises MaintenanceError naming the field when the site, target or zone is unknown.
    """
    if given.site_id is not None and given.site_id not in config.sites:
        raise MaintenanceError(f"site: there is no site {given.site_id!r} in the configuration")
    if given.target_id is not None:
        sites = [given.site_id] if given.site_id is not None else list(config.sites)
        if not any(given.target_id in {t.id for t in config.sites[s].targets} for s in sites):
            where = f"site {given.site_id!r}" if given.site_id else "any site"
            raise MaintenanceError(f"target: {where} has no target {given.target_id!r}")
    zone = given.zone or (
        config.site_zone(given.site_id) if given.site_id else config.server.time_zone
    )
    try:
        ZoneInfo(zone)
    except (KeyError, ValueError, OSError) as exc:
        raise MaintenanceError(f"zone: unknown IANA time zone {zone!r}") from exc
    row = MaintenanceWindow(
        site_id=given.site_id,
        target_id=given.target_id,
        title=given.title,
        zone=zone,
        repeat=given.repeat.value,
        start_local=given.start.isoformat(),
        end_local=given.end.isoformat(),
        until_local=given.until.isoformat() if given.until else None,
        note=given.note,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return window_of(row)


def window_of(row: MaintenanceWindow) -> Window:
    """Return the :class:`Window` of a stored row."""
    return Window(
        id=row.id,
        site_id=row.site_id,
        target_id=row.target_id,
        title=row.title,
        zone=row.zone,
        repeat=Repeat(row.repeat),
        start_local=datetime.fromisoformat(row.start_local),
        end_local=datetime.fromisoformat(row.end_local),
        until=date.fromisoformat(row.until_local) if row.until_local else None,
        note=row.note,
    )


def list_windows(session: Session, site_id: str | None = None) -> list[Window]:
    """Return the windows (those that apply to ``site_id``, if given), by id."""
    stmt = select(MaintenanceWindow).order_by(MaintenanceWindow.id)
    if site_id is not None:
        stmt = stmt.where(
            (MaintenanceWindow.site_id == site_id) | MaintenanceWindow.site_id.is_(None)
        )
    return [window_of(row) for row in session.scalars(stmt)]


def delete_window(session: Session, window_id: int) -> bool:
    """Delete window ``window_id``; return False if there was none. The caller commits."""
    result = session.execute(delete(MaintenanceWindow).where(MaintenanceWindow.id == window_id))
    return bool(getattr(result, "rowcount", 0))


def maintenance_intervals(
    windows: Iterable[Window],
    site_id: str,
    target_id: str | None,
    start: datetime,
    end: datetime,
) -> list[Interval]:
    """Return the merged maintenance time of a target (or site) clipped to ``[start, end)``.

    ``target_id`` ``None`` asks for windows on the whole site.
    """
    spans = [
        (max(s, start), min(e, end))
        for window in windows
        if window.covers(site_id, target_id)
        for s, e in window.occurrences(start, end)
    ]
    return merge(spans)


def active_window(
    windows: Iterable[Window], site_id: str, target_id: str | None, at: datetime
) -> Window | None:
    """Return a window covering ``target_id`` at ``site_id`` at instant ``at``, or ``None``."""
    probe_end = at + timedelta(microseconds=1)
    for window in windows:
        if window.covers(site_id, target_id) and window.occurrences(at, probe_end):
            return window
    return None


def merge(spans: Sequence[Interval]) -> list[Interval]:
    """Return ``spans`` sorted and merged where they overlap or touch; empty ones dropped."""
    out: list[Interval] = []
    for s, e in sorted(x for x in spans if x[0] < x[1]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
