"""Read what the status page and /metrics show of the raw results: each target's latest.

Built on :mod:`monitor.storage.repository`; the latest result is one index seek per target
on ``ix_results_site_target_time``, so its cost does not grow with the years of history
kept. Everything over time (charts, availability) comes from rollups and state periods.
Rows are copied into frozen :class:`Reading` records so nothing outlives the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from monitor.storage.models import Result, Target
from monitor.storage.repository import site_agents


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


_READING_COLUMNS = (
    Result.site_id,
    Result.target_id,
    Result.kind,
    Result.status,
    Result.measured_at,
    Result.rtt_s,
    Result.packet_loss,
    Result.jitter_s,
    Result.sent,
    Result.received,
    Result.duplicates,
    Result.error,
)


def latest_readings(session: Session, site_id: str | None = None) -> dict[tuple[str, str], Reading]:
    """Return the newest result of each target (of ``site_id``, or of every site).

    Keyed ``(site_id, target_id)``; targets without a result are absent. The same query
    as :func:`monitor.storage.repository.latest_results` (one backward index seek per
    target, driven by the ``targets`` table) but reading only the columns a
    :class:`Reading` holds: the JSON columns (RTT samples, phases) are never decoded.
    """
    newer = aliased(Result)
    newest_id = (
        select(newer.id)
        .where(newer.site_id == Target.site_id, newer.target_id == Target.target_id)
        .order_by(newer.measured_at.desc(), newer.id.desc())
        .limit(1)
        .correlate(Target)
        .scalar_subquery()
    )
    ids = select(newest_id).select_from(Target)
    if site_id is not None:
        ids = ids.where(Target.site_id == site_id)
    stmt = select(*_READING_COLUMNS).where(Result.id.in_(ids))
    return {
        (row.site_id, row.target_id): Reading(
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
        for row in session.execute(stmt)
    }


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
