"""Reads of evaluated state for the status page, ``/metrics`` and the API.

Everything here reads what the state evaluator wrote (periods with hysteresis, incidents)
and applies maintenance windows at read time. All instants are aware UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from monitor.alerting.maintenance import Window, active_window, list_windows
from monitor.state import TargetState
from monitor.storage.models import Target
from monitor.storage.models_incidents import Incident, TargetStatePeriod


@dataclass(frozen=True, slots=True)
class CurrentState:
    """A target's state now, with hysteresis.

    Attributes:
        site_id/target_id: the target.
        state: UP, DEGRADED, DOWN, UNKNOWN (no fresh data or a monitor-side error) or
            MAINTENANCE (a window covers it now; ``evaluated`` keeps the state underneath).
        since: when the current stored period began; for UNKNOWN after the data ran out,
            when it ran out; ``None`` when the target never had data.
        evaluated: the state from the periods alone (maintenance not applied).
        maintenance: the title of the window covering it now, else ``None``.
    """

    site_id: str
    target_id: str
    state: TargetState
    since: datetime | None
    evaluated: TargetState
    maintenance: str | None = None


def current_states(
    session: Session,
    now: datetime,
    site_id: str | None = None,
    windows: Sequence[Window] | None = None,
) -> dict[tuple[str, str], CurrentState]:
    """Return every configured target's current state, keyed ``(site_id, target_id)``.

    One query: the newest period of each target (one index seek per target). A target
    whose newest period ended before ``now`` is UNKNOWN since that end.
    """
    if windows is None:
        windows = list_windows(session)
    newer = aliased(TargetStatePeriod)
    newest = (
        select(newer.id)
        .where(newer.site_id == Target.site_id, newer.target_id == Target.target_id)
        .order_by(newer.start_at.desc())
        .limit(1)
        .correlate(Target)
        .scalar_subquery()
    )
    stmt = (
        select(Target.site_id, Target.target_id, TargetStatePeriod)
        .outerjoin(TargetStatePeriod, TargetStatePeriod.id == newest)
        .where(Target.active.is_(True))
        .order_by(Target.site_id, Target.target_id)
    )
    if site_id is not None:
        stmt = stmt.where(Target.site_id == site_id)
    out: dict[tuple[str, str], CurrentState] = {}
    for site, target, period in session.execute(stmt):
        if period is None:
            evaluated, since = TargetState.UNKNOWN, None
        elif period.start_at <= now < period.end_at or period.start_at > now:
            evaluated, since = TargetState(period.state), period.start_at
        else:
            evaluated, since = TargetState.UNKNOWN, period.end_at
        window = active_window(windows, site, target, now)
        out[(site, target)] = CurrentState(
            site_id=site,
            target_id=target,
            state=TargetState.MAINTENANCE if window else evaluated,
            since=since,
            evaluated=evaluated,
            maintenance=window.title if window else None,
        )
    return out


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident as shown to people and the API.

    ``kind``: target, site or gateway; ``gateway``: the host (``*central*``: most sites
    silent at once); ``duration_s``: up to ``ended_at``, or up to the ``now`` asked while
    open; ``announced_at``/``recovery_announced_at``: when its alerts were queued
    (``None``: not); ``held``: why it was not (yet) announced.
    """

    id: int
    kind: str
    site_id: str | None
    target_id: str | None
    gateway: str | None
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    confirmed_at: datetime | None
    detected_at: datetime
    announced_at: datetime | None
    recovery_announced_at: datetime | None
    held: str | None
    detail: dict[str, Any]

    @property
    def open(self) -> bool:
        """Whether the incident is still going on."""
        return self.ended_at is None


def _view(row: Incident, now: datetime) -> IncidentView:
    end = row.ended_at or max(now, row.started_at)
    return IncidentView(
        id=row.id,
        kind=row.kind,
        site_id=row.site_id,
        target_id=row.target_id,
        gateway=row.gateway,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=(end - row.started_at).total_seconds(),
        confirmed_at=row.confirmed_at,
        detected_at=row.detected_at,
        announced_at=row.down_notified_at,
        recovery_announced_at=row.recovery_notified_at,
        held=row.suppressed,
        detail=dict(row.detail),
    )


def open_incidents(
    session: Session, now: datetime, site_id: str | None = None
) -> list[IncidentView]:
    """Return the open incidents (of ``site_id`` and every gateway, if given), oldest first."""
    stmt = select(Incident).where(Incident.ended_at.is_(None)).order_by(Incident.started_at)
    if site_id is not None:
        stmt = stmt.where((Incident.site_id == site_id) | Incident.site_id.is_(None))
    return [_view(row, now) for row in session.scalars(stmt)]


def recent_incidents(
    session: Session,
    now: datetime,
    since: datetime,
    site_id: str | None = None,
    limit: int = 100,
) -> list[IncidentView]:
    """Return incidents open at or after ``since`` (still open, or ended since), newest first.

    Retracted incidents (late results showed no outage) are left out. At most ``limit``.
    """
    stmt = (
        select(Incident)
        .where((Incident.ended_at.is_(None)) | (Incident.ended_at >= since))
        .order_by(Incident.started_at.desc(), Incident.id.desc())
        .limit(limit)
    )
    if site_id is not None:
        stmt = stmt.where((Incident.site_id == site_id) | Incident.site_id.is_(None))
    rows = [row for row in session.scalars(stmt) if not row.detail.get("retracted")]
    return [_view(row, now) for row in rows]


def get_incident(session: Session, incident_id: int, now: datetime) -> IncidentView | None:
    """Return incident ``incident_id``, or ``None`` if there is none."""
    row = session.get(Incident, incident_id)
    return _view(row, now) if row is not None else None
