"""Incidents as the status page shows them, read through the incident engine's functions.

The incident engine (:mod:`monitor.alerting`) owns incidents: when they start and end,
their alerts and acknowledgements. This module calls its data functions
(:func:`monitor.alerting.queries.open_incidents`, ``recent_incidents``,
:func:`monitor.alerting.outbox.alerts_sent`, ``acknowledgements``, ``acknowledge``) and copies
what they return into :class:`IncidentView` records for the templates. Gateway incidents
(most sites lost the gateway at once) have no site: they are listed apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from monitor.alerting import outbox
from monitor.alerting import queries as engine

RECENT_WINDOW = timedelta(days=30)
"""How far back "recent" incidents reach."""


class IncidentNotFound(LookupError):
    """No incident has the given id."""


@dataclass(frozen=True, slots=True)
class NoteView:
    """A note on an incident: when (aware UTC), by whom, the text (shown escaped)."""

    at: datetime
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class IncidentView:
    """One incident (a target DOWN, a site unreachable, a gateway lost) for the pages.

    ``kind`` an :class:`monitor.alerting.events.IncidentKind` value (target, site,
    gateway); ``site_id``/``target_id`` ``None`` when it is not about one; ``gateway`` the
    gateway host of a gateway incident; times aware UTC; ``ended_at`` ``None`` while open;
    ``alerts_sent`` notifications delivered on at least one channel; ``acknowledged_*``
    ``None`` until an operator acknowledges it; ``notes`` what was written then.
    """

    incident_id: int
    kind: str
    site_id: str | None
    target_id: str | None
    gateway: str | None
    started_at: datetime
    ended_at: datetime | None
    alerts_sent: int
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    notes: tuple[NoteView, ...] = field(default_factory=tuple)

    @property
    def is_open(self) -> bool:
        """Whether the incident has not ended."""
        return self.ended_at is None

    def duration_s(self, now: datetime) -> float:
        """Return how long it lasted (until ``now`` while open), seconds."""
        return max(0.0, ((self.ended_at or now) - self.started_at).total_seconds())


@dataclass(frozen=True, slots=True)
class OpenIncidents:
    """The oldest open incident of each site that has one, and the open gateway incidents."""

    by_site: Mapping[str, IncidentView]
    gateways: tuple[IncidentView, ...]


@dataclass(frozen=True, slots=True)
class IncidentList:
    """Open and recent (ended) incidents, newest first."""

    open: tuple[IncidentView, ...]
    recent: tuple[IncidentView, ...]


def _views(session: Session, found: Sequence[engine.IncidentView]) -> list[IncidentView]:
    ids = [i.id for i in found]
    sent = outbox.alerts_sent(session, ids)
    acks = outbox.acknowledgements(session, ids)
    out: list[IncidentView] = []
    for i in found:
        ack = acks.get(i.id)
        notes = (NoteView(ack.at, ack.by, ack.note),) if ack and ack.note else ()
        out.append(
            IncidentView(
                incident_id=i.id,
                kind=i.kind,
                site_id=i.site_id,
                target_id=i.target_id,
                gateway=i.gateway,
                started_at=i.started_at,
                ended_at=i.ended_at,
                alerts_sent=sent.get(i.id, 0),
                acknowledged_by=ack.by if ack else None,
                acknowledged_at=ack.at if ack else None,
                notes=notes,
            )
        )
    return out


def open_incidents(session: Session, now: datetime, site_ids: Iterable[str]) -> OpenIncidents:
    """Return the open incident (the oldest, if several) of each of ``site_ids``, and the
    open gateway incidents."""
    wanted = set(site_ids)
    by_site: dict[str, IncidentView] = {}
    gateways: list[IncidentView] = []
    for view in _views(session, engine.open_incidents(session, now)):
        if view.site_id is None:
            gateways.append(view)
        elif view.site_id in wanted and view.site_id not in by_site:
            by_site[view.site_id] = view
    return OpenIncidents(by_site, tuple(gateways))


def incident_list(session: Session, now: datetime, site_id: str | None, limit: int) -> IncidentList:
    """Return open incidents and up to ``limit`` ended within :data:`RECENT_WINDOW`
    (of ``site_id`` and the gateway incidents, or of everything), newest first."""
    found = engine.recent_incidents(session, now, now - RECENT_WINDOW, site_id, limit=limit * 2)
    opened = engine.open_incidents(session, now, site_id)
    seen = {i.id for i in found}
    views = _views(session, [*found, *(i for i in opened if i.id not in seen)])
    views.sort(key=lambda v: (v.started_at, v.incident_id), reverse=True)
    return IncidentList(
        open=tuple(v for v in views if v.is_open),
        recent=tuple(v for v in views if not v.is_open)[:limit],
    )


def acknowledge(session: Session, incident_id: int, by: str, note: str, now: datetime) -> bool:
    """Acknowledge incident ``incident_id`` as user ``by`` with ``note`` (may be empty).

    Returns False when it was already acknowledged (the first acknowledgement is kept).
    The caller commits. Raises IncidentNotFound for an unknown id.
    """
    try:
        return outbox.acknowledge(session, incident_id, by, note or None, now)
    except outbox.UnknownIncidentError as exc:
        raise IncidentNotFound(str(exc)) from exc
