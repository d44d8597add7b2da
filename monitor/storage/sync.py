"""Mirror the configuration's sites and targets into the database (never deleting history)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config
from monitor.storage.db import read_only
from monitor.storage.migrate import current_revision, head_revision
from monitor.storage.models import Site, Target
from probes.specs import DnsTarget, HttpTarget, IcmpTarget, TargetSpec, TcpTarget

log = logging.getLogger("linkwatch.storage.sync")

_NAME_MAX = 200
_ENDPOINT_MAX = 500


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """What :func:`sync_config` changed, as ``site_id`` and ``site_id/target_id`` strings."""

    sites_added: tuple[str, ...] = ()
    sites_changed: tuple[str, ...] = ()
    sites_deactivated: tuple[str, ...] = ()
    targets_added: tuple[str, ...] = ()
    targets_changed: tuple[str, ...] = ()
    targets_deactivated: tuple[str, ...] = ()


def endpoint_of(target: TargetSpec) -> str:
    """Return a one-line description of what ``target`` probes (host, host:port, URL...)."""
    match target:
        case IcmpTarget():
            text = target.host
        case TcpTarget():
            text = _host_port(target.host, target.port)
        case HttpTarget():
            text = target.url
        case DnsTarget():
            text = (
                f"{_host_port(target.host, target.port)} {target.record_type} "
                f"{target.query_name} ({target.transport})"
            )
    return text[:_ENDPOINT_MAX]


def sync_config(session: Session, config: Config, now: datetime) -> SyncSummary:
    """Upsert ``config``'s sites and targets; mark the ones no longer configured inactive.

    Rows are never deleted (their results stay meaningful). A row whose values did not change
    keeps its ``updated_at``; a changed, added, reactivated or deactivated one gets ``now``
    (an aware UTC datetime). The caller commits.
    """
    sites = {row.site_id: row for row in session.scalars(select(Site))}
    added, changed = [], []
    for site_id, site in config.sites.items():
        values: dict[str, Any] = {
            "name": site.name[:_NAME_MAX],
            "name_lo": None if site.name_lo is None else site.name_lo[:_NAME_MAX],
            "region": None if site.region is None else site.region[:_NAME_MAX],
            "time_zone": config.site_zone(site_id),
            "link_profile": site.link_profile,
            "active": True,
        }
        row = sites.get(site_id)
        if row is None:
            session.add(Site(site_id=site_id, updated_at=now, **values))
            added.append(site_id)
        elif _apply(row, values, now):
            changed.append(site_id)
    gone = [row for sid, row in sites.items() if sid not in config.sites and row.active]
    _deactivate(gone, now)
    session.flush()  # sites before targets: targets reference sites

    targets = {(row.site_id, row.target_id): row for row in session.scalars(select(Target))}
    configured: set[tuple[str, str]] = set()
    t_added, t_changed = [], []
    for site_id, site in config.sites.items():
        for spec in site.targets:
            key = (site_id, spec.id)
            configured.add(key)
            values = {
                "kind": spec.kind,
                "name": spec.display_name[:_NAME_MAX],
                "endpoint": endpoint_of(spec),
                "interval_s": spec.interval_s,
                "timeout_s": spec.timeout_s,
                "spec": spec.model_dump(mode="json"),
                "active": True,
            }
            t_row = targets.get(key)
            if t_row is None:
                session.add(Target(site_id=site_id, target_id=spec.id, updated_at=now, **values))
                t_added.append(f"{site_id}/{spec.id}")
            elif _apply(t_row, values, now):
                t_changed.append(f"{site_id}/{spec.id}")
    t_gone = [row for key, row in targets.items() if key not in configured and row.active]
    _deactivate(t_gone, now)
    session.flush()
    return SyncSummary(
        sites_added=tuple(added),
        sites_changed=tuple(changed),
        sites_deactivated=tuple(row.site_id for row in gone),
        targets_added=tuple(t_added),
        targets_changed=tuple(t_changed),
        targets_deactivated=tuple(f"{row.site_id}/{row.target_id}" for row in t_gone),
    )


def _apply(row: Site | Target, values: dict[str, Any], now: datetime) -> bool:
    """Set ``values`` on ``row``; bump ``updated_at`` and return True if anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        row.updated_at = now
    return changed


def _deactivate(rows: Sequence[Site | Target], now: datetime) -> None:
    for row in rows:
        row.active = False
        row.updated_at = now


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ConfigMirror:
    """Copy the configuration into the database once, as soon as its schema is at the head.

    The server may start before ``linkwatch db upgrade`` has run; :meth:`ensure` is then
    called again (by ``/readyz`` and by ingestion) until it succeeds. Thread-safe.
    """

    def __init__(
        self,
        config: Config,
        engine: Engine,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        head: str | None = None,
    ) -> None:
        """Mirror ``config`` into ``engine``'s database through ``sessions`` (bound to it).

        ``head`` defaults to our newest migration revision.
        """
        self._config = config
        self._engine = engine
        self._sessions = sessions
        self._clock = clock
        self.head = head if head is not None else head_revision()
        self._lock = threading.Lock()
        self._done = False

    @property
    def done(self) -> bool:
        """Whether the configuration has been copied in."""
        return self._done

    def ensure(self) -> bool:
        """Copy the configuration in unless done; return whether it is in.

        Returns False (and logs why) when the database does not answer or its schema is not
        at the head; never raises for a database problem.
        """
        if self._done:
            return True
        with self._lock:
            if self._done:
                return True
            try:
                revision = current_revision(read_only(self._engine))
                if revision != self.head:
                    log.warning(
                        "database schema is at revision %s, not %s: run "
                        "`linkwatch db upgrade`; the configuration is not loaded yet",
                        revision,
                        self.head,
                    )
                    return False
                with self._sessions.begin() as session:
                    summary = sync_config(session, self._config, self._clock())
            except SQLAlchemyError as exc:
                log.warning("could not copy the configuration into the database: %s", exc)
                return False
            log.info("configuration copied into the database: %s", summary)
            self._done = True
            return True
