"""Read what the status page and /metrics show: latest results, agents, recent rounds.

Built on :mod:`monitor.storage.repository` where it has the query; the latest and recent
results are one index seek per target on ``ix_results_site_target_time``, so their cost does
not grow with the years of history kept. Rows are copied into frozen :class:`Reading`
records so nothing outlives the session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.storage.models import Result
from monitor.storage.repository import latest_results, site_agents


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored probe round, detached from the database (units as in ``ProbeResult``).

    ``status`` is a ``ProbeStatus`` value; ``None`` in a measure means "not measured".
    Satisfies :class:`monitor.state.ResultLike`.
    """

    site_id: str
    target_id: str
    kind: str
    status: str
    measured_at: datetime
    rtt_s: float | None
    packet_loss: float | None
    jitter_s: float | None
    sent: int | None
    received: int | None
    duplicates: int | None
    error: str | None

    @classmethod
    def from_row(cls, row: Result) -> Reading:
        """Copy a stored ``Result`` row."""
        return cls(
            site_id=row.site_id,
            target_id=row.target_id,
            kind=row.kind,
            status=row.status,
            measured_at=row.measured_at,
            rtt_s=row.rtt_s,
            packet_loss=row.packet_loss,
            jitter_s=row.jitter_s,
            sent=row.sent,
            received=row.received,
            duplicates=row.duplicates,
            error=row.error,
        )


@dataclass(frozen=True, slots=True)
class AgentSeen:
    """What the server knows of a site's agent (``SiteAgent`` row, detached).

    ``last_upload_at`` is the server's clock; ``clock_offset_s`` is the server's clock minus
    the agent's at upload (transit time included), seconds, ``None`` when not estimated;
    ``uploads`` counts accepted batches.
    """

    site_id: str
    last_upload_at: datetime
    last_measured_at: datetime | None
    clock_offset_s: float | None
    uploads: int


def recent_readings(session: Session, site_id: str, target_id: str, limit: int) -> list[Reading]:
    """Return up to ``limit`` newest results of one target, newest first."""
    stmt = (
        select(Result)
        .where(Result.site_id == site_id, Result.target_id == target_id)
        .order_by(Result.measured_at.desc(), Result.id.desc())
        .limit(limit)
    )
    return [Reading.from_row(row) for row in session.scalars(stmt)]


def latest_readings(session: Session, site_id: str | None = None) -> dict[tuple[str, str], Reading]:
    """Return the newest result of each target (of ``site_id``, or of every site).

    Keyed ``(site_id, target_id)``; targets without a result are absent. Uses
    :func:`monitor.storage.repository.latest_results` (one index seek per target).
    """
    return {key: Reading.from_row(row) for key, row in latest_results(session, site_id).items()}


def site_recent_readings(
    session: Session, site_id: str, target_ids: Iterable[str], limit: int
) -> list[Reading]:
    """Return up to ``limit`` newest results of the given targets of a site, newest first.

    One index seek per target, merged here: ordering the whole site by time in SQL would
    scan all of the site's history.
    """
    merged: list[Reading] = []
    for target_id in target_ids:
        merged.extend(recent_readings(session, site_id, target_id, limit))
    merged.sort(key=lambda r: r.measured_at, reverse=True)
    return merged[:limit]


def agents_seen(session: Session) -> dict[str, AgentSeen]:
    """Return what is known of every agent that ever uploaded, by site id."""
    return {
        site_id: AgentSeen(
            site_id=row.site_id,
            last_upload_at=row.last_upload_at,
            last_measured_at=row.last_measured_at,
            clock_offset_s=row.clock_offset_s,
            uploads=row.uploads,
        )
        for site_id, row in site_agents(session).items()
    }


def results_stored_by_site(session: Session) -> dict[str, int]:
    """Return how many results ingest has stored per site since the site first uploaded.

    Read from the ``site_agents`` counter that ingest increments, so a scrape costs one
    row per site however long the history is (and never falls when old rows are pruned).
    """
    return {site_id: row.results_stored for site_id, row in site_agents(session).items()}
