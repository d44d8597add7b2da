"""The storage operations the server uses, each a function taking a SQLAlchemy ``Session``.

Writes: :func:`sync_config` (configuration → sites/targets), :func:`ingest_batch` (one
uploaded batch, exactly once). Reads: the functions below. All datetimes in and out are
aware UTC. The caller owns the session and its transaction (and commits writes).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, aliased

from monitor.storage.ingest import UnknownTargetsError, ingest_batch
from monitor.storage.models import Result, Site, SiteAgent, Target
from monitor.storage.sync import SyncSummary, sync_config

__all__ = [
    "SyncSummary",
    "UnknownTargetsError",
    "count_results",
    "get_site",
    "get_target",
    "ingest_batch",
    "latest_results",
    "list_sites",
    "list_targets",
    "series",
    "site_agents",
    "sync_config",
]


def list_sites(session: Session, *, include_inactive: bool = False) -> list[Site]:
    """Return the sites ordered by id; only configured (active) ones unless asked."""
    stmt = select(Site).order_by(Site.site_id)
    if not include_inactive:
        stmt = stmt.where(Site.active.is_(True))
    return list(session.scalars(stmt))


def get_site(session: Session, site_id: str) -> Site | None:
    """Return the site ``site_id`` (active or not); ``None`` if it was never configured."""
    return session.get(Site, site_id)


def list_targets(
    session: Session, site_id: str | None = None, *, include_inactive: bool = False
) -> list[Target]:
    """Return the targets of ``site_id`` (``None``: of every site), ordered by site and id."""
    stmt = select(Target).order_by(Target.site_id, Target.target_id)
    if site_id is not None:
        stmt = stmt.where(Target.site_id == site_id)
    if not include_inactive:
        stmt = stmt.where(Target.active.is_(True))
    return list(session.scalars(stmt))


def get_target(session: Session, site_id: str, target_id: str) -> Target | None:
    """Return one target (active or not); ``None`` if it was never configured."""
    return session.get(Target, (site_id, target_id))


def latest_results(session: Session, site_id: str | None = None) -> dict[tuple[str, str], Result]:
    """Return the newest result of each target, keyed ``(site_id, target_id)``.

    Targets without any result are absent; inactive targets are included. Newest means
    largest ``measured_at`` (agent clock), ties broken by arrival order.

    One query, driven by the (small) targets table: for each target a correlated subquery
    takes the newest row through ``ix_results_site_target_time`` (one backward index seek
    per target on SQLite and PostgreSQL), so the cost does not grow with the history kept,
    unlike a window function or a ``GROUP BY max(measured_at)`` over all results.
    """
    newer = aliased(Result)
    newest = (
        select(newer.id)
        .where(newer.site_id == Target.site_id, newer.target_id == Target.target_id)
        .order_by(newer.measured_at.desc(), newer.id.desc())
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL plans ``id IN (correlated subquery)`` as a hash join over a scan of
        # every result; a LATERAL join keeps it at one index seek per target.
        lat = newest.lateral("newest")
        stmt = (
            select(Result).select_from(Target).join(lat, true()).join(Result, Result.id == lat.c.id)
        )
        if site_id is not None:
            stmt = stmt.where(Target.site_id == site_id)
    else:
        ids = select(newest.correlate(Target).scalar_subquery()).select_from(Target)
        if site_id is not None:
            ids = ids.where(Target.site_id == site_id)
        stmt = select(Result).where(Result.id.in_(ids))
    return {(r.site_id, r.target_id): r for r in session.scalars(stmt)}


def series(
    session: Session,
    site_id: str,
    target_id: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[Result]:
    """Return one target's results with ``start <= measured_at < end``, oldest first.

    At most ``limit`` rows (the oldest ones; to page on, ask again from the last
    ``measured_at``). ``start`` and ``end`` are aware datetimes (ValueError when naive).
    """
    stmt = (
        select(Result)
        .where(
            Result.site_id == site_id,
            Result.target_id == target_id,
            Result.measured_at >= start,
            Result.measured_at < end,
        )
        .order_by(Result.measured_at, Result.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def site_agents(session: Session) -> dict[str, SiteAgent]:
    """Return what is known of each site's agent (sites that ever uploaded), by site id."""
    return {row.site_id: row for row in session.scalars(select(SiteAgent))}


def count_results(session: Session, site_id: str | None = None) -> int:
    """Return how many results are stored (for ``site_id``, or for all sites)."""
    stmt = select(func.count()).select_from(Result)
    if site_id is not None:
        stmt = stmt.where(Result.site_id == site_id)
    return int(session.scalar(stmt) or 0)
