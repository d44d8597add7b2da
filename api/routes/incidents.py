"""The JSON API of states, incidents, availability and maintenance windows.

Reads are open like the rest of ``/api/v1``. Adding or deleting a maintenance window needs
the operator token: ``Authorization: Bearer <server.admin_token>`` (or the variable named by
``server.admin_token_env``); without a configured token those calls answer 403 and the CLI
(``linkwatch maintenance``) is the way. Times are ISO 8601 with a zone (UTC out); durations
in seconds; availability a ratio 0-1, ``null`` when no time is known (never 100 %).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import AwareDatetime, BaseModel

from api.auth import require_operator
from api.deps import ReadSessionDep, ServicesDep
from monitor.alerting.maintenance import (
    MaintenanceError,
    Repeat,
    Window,
    WindowIn,
    add_window,
    delete_window,
    list_windows,
)
from monitor.alerting.queries import (
    IncidentView,
    current_states,
    get_incident,
    open_incidents,
    recent_incidents,
)
from monitor.availability.maths import Availability, month_window
from monitor.availability.queries import availability

router = APIRouter(prefix="/api/v1", tags=["incidents"])

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such item."}}


class IncidentOut(BaseModel):
    """An incident: a target DOWN, a site unreachable, or a gateway lost by most sites.

    ``announced_at``/``recovery_announced_at``: when its alert and recovery were queued
    (``null``: not); ``held``: why it was not (yet) announced (maintenance, site_settling,
    gateway, backfilled, ...). ``duration_s`` runs to now while open.
    """

    id: int
    kind: str
    site_id: str | None
    target_id: str | None
    gateway: str | None
    open: bool
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    confirmed_at: datetime | None
    detected_at: datetime
    announced_at: datetime | None
    recovery_announced_at: datetime | None
    held: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, view: IncidentView) -> IncidentOut:
        """Copy an incident view."""
        return cls(
            id=view.id,
            kind=view.kind,
            site_id=view.site_id,
            target_id=view.target_id,
            gateway=view.gateway,
            open=view.open,
            started_at=view.started_at,
            ended_at=view.ended_at,
            duration_s=view.duration_s,
            confirmed_at=view.confirmed_at,
            detected_at=view.detected_at,
            announced_at=view.announced_at,
            recovery_announced_at=view.recovery_announced_at,
            held=view.held,
            detail=view.detail,
        )


class StateOut(BaseModel):
    """A target's current state with hysteresis (``maintenance``: the window's title)."""

    site_id: str
    target_id: str
    state: str
    since: datetime | None
    maintenance: str | None


class AvailabilityOut(BaseModel):
    """Seconds in each state over ``[start, end)`` and the availability ratio (or null)."""

    site_id: str
    target_id: str | None
    start: datetime
    end: datetime
    up_s: float
    degraded_s: float
    down_s: float
    unknown_s: float
    maintenance_s: float
    availability: float | None

    @classmethod
    def of(cls, site_id: str, target_id: str | None, got: Availability) -> AvailabilityOut:
        """Copy an availability record."""
        return cls(
            site_id=site_id,
            target_id=target_id,
            start=got.start,
            end=got.end,
            up_s=got.up_s,
            degraded_s=got.degraded_s,
            down_s=got.down_s,
            unknown_s=got.unknown_s,
            maintenance_s=got.maintenance_s,
            availability=got.availability,
        )


class WindowOut(BaseModel):
    """A maintenance window; ``start``/``end`` are its first occurrence in local time."""

    id: int
    site_id: str | None
    target_id: str | None
    title: str
    zone: str
    repeat: Repeat
    start: datetime
    end: datetime
    until: date | None
    note: str | None
    next_occurrences: list[tuple[datetime, datetime]]

    @classmethod
    def of(cls, window: Window, now: datetime) -> WindowOut:
        """Copy a window, with its occurrences in the coming 8 days (UTC)."""
        return cls(
            id=window.id,
            site_id=window.site_id,
            target_id=window.target_id,
            title=window.title,
            zone=window.zone,
            repeat=window.repeat,
            start=window.start_local,
            end=window.end_local,
            until=window.until,
            note=window.note,
            next_occurrences=window.occurrences(now, now + timedelta(days=8)),
        )


OperatorDep = Annotated[None, Depends(require_operator)]


@router.get("/incidents", response_model=list[IncidentOut])
def list_incidents(
    session: ReadSessionDep,
    services: ServicesDep,
    site_id: Annotated[
        str | None, Query(description="This site's (and gateway) incidents.")
    ] = None,
    open_only: Annotated[bool, Query(description="Only incidents still going on.")] = False,
    days: Annotated[int, Query(ge=1, le=366, description="Incidents of the last N days.")] = 7,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[IncidentOut]:
    """List incidents, newest first (open ones oldest first with ``open_only``)."""
    now = services.clock()
    if open_only:
        return [IncidentOut.of(v) for v in open_incidents(session, now, site_id)][:limit]
    since = now - timedelta(days=days)
    return [IncidentOut.of(v) for v in recent_incidents(session, now, since, site_id, limit)]


@router.get("/incidents/{incident_id}", response_model=IncidentOut, responses=_NOT_FOUND)
def incident(incident_id: int, session: ReadSessionDep, services: ServicesDep) -> IncidentOut:
    """Return one incident."""
    found = get_incident(session, incident_id, services.clock())
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no incident {incident_id}.")
    return IncidentOut.of(found)


@router.get("/states", response_model=list[StateOut])
def states(
    session: ReadSessionDep,
    services: ServicesDep,
    site_id: Annotated[str | None, Query(description="Only this site's targets.")] = None,
) -> list[StateOut]:
    """Return every configured target's current state (hysteresis and maintenance applied)."""
    found = current_states(session, services.clock(), site_id)
    return [
        StateOut(
            site_id=s.site_id,
            target_id=s.target_id,
            state=s.state.value,
            since=s.since,
            maintenance=s.maintenance,
        )
        for s in found.values()
    ]


@router.get("/availability", response_model=AvailabilityOut, responses=_NOT_FOUND)
def availability_of(
    session: ReadSessionDep,
    services: ServicesDep,
    site_id: Annotated[str, Query(description="The site.")],
    target_id: Annotated[str | None, Query(description="One target; default: the site.")] = None,
    month: Annotated[
        str | None, Query(description="A calendar month YYYY-MM in the site's zone.")
    ] = None,
    start: Annotated[AwareDatetime | None, Query(description="ISO 8601 with a zone.")] = None,
    end: Annotated[AwareDatetime | None, Query(description="ISO 8601 with a zone.")] = None,
) -> AvailabilityOut:
    """Return availability over ``month``, or ``[start, end)`` (default: the last 24 hours)."""
    config = services.config
    if site_id not in config.sites:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no site {site_id!r}.")
    if target_id is not None and target_id not in {t.id for t in config.sites[site_id].targets}:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"Site {site_id!r} has no target {target_id!r}."
        )
    now = services.clock()
    if month is not None:
        span = _month_span(month, config.site_zone(site_id))
    else:
        stop = (end or now).astimezone(UTC)
        span = ((start or stop - timedelta(days=1)).astimezone(UTC), stop)
    if span[0] >= span[1]:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be before end.")
    got = availability(session, site_id, target_id, span[0], span[1], now=now)
    return AvailabilityOut.of(site_id, target_id, got)


def _month_span(month: str, zone: str) -> tuple[datetime, datetime]:
    match = _MONTH.match(month)
    if match is None or not 1 <= int(match[2]) <= 12:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"month must be YYYY-MM, e.g. 2026-10 (got {month!r}).",
        )
    return month_window(int(match[1]), int(match[2]), zone)


@router.get("/maintenance", response_model=list[WindowOut])
def maintenance_windows(
    session: ReadSessionDep,
    services: ServicesDep,
    site_id: Annotated[str | None, Query(description="Windows that apply to this site.")] = None,
) -> list[WindowOut]:
    """List maintenance windows with their next occurrences."""
    now = services.clock()
    return [WindowOut.of(w, now) for w in list_windows(session, site_id)]


@router.post(
    "/maintenance",
    response_model=WindowOut,
    status_code=status.HTTP_201_CREATED,
    responses={401: {"description": "No or wrong operator token."}, 403: {}},
)
def add_maintenance(given: WindowIn, services: ServicesDep, _: OperatorDep) -> WindowOut:
    """Add a maintenance window (local wall-clock ``start``/``end`` in ``zone``)."""
    now = services.clock()
    with services.sessions() as session, session.begin():
        try:
            window = add_window(session, services.config, given, now)
        except MaintenanceError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return WindowOut.of(window, now)


@router.delete(
    "/maintenance/{window_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, 401: {"description": "No or wrong operator token."}},
)
def remove_maintenance(window_id: int, services: ServicesDep, _: OperatorDep) -> Response:
    """Delete a maintenance window."""
    with services.sessions() as session, session.begin():
        if not delete_window(session, window_id):
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"There is no maintenance window {window_id}."
            )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
