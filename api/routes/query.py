"""The read-only JSON API: sites, targets, latest results, one target's time series.

Times are ISO 8601 with a zone (UTC out); durations in seconds; ``packet_loss`` a ratio
0-1; a measure that was not taken is ``null`` (never 0, -1 or NaN).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict
from sqlalchemy.orm import Session

from api.deps import ReadSessionDep, ServicesDep
from monitor.storage import repository as repo
from monitor.storage.models import Result, Site, SiteAgent, Target
from probes.result import ProbeKind, ProbeStatus

DEFAULT_SERIES_SPAN = timedelta(hours=3)
DEFAULT_SERIES_LIMIT = 1000
MAX_SERIES_LIMIT = 10_000

router = APIRouter(prefix="/api/v1", tags=["query"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown site or target."}}
_SPACED_OFFSET = re.compile(r" (\d{2}(?::?\d{2})?)$")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SiteOut(_Out):
    """A site, and what the server last heard from its agent (``null``: never)."""

    id: str
    name: str
    name_lo: str | None
    region: str | None
    time_zone: str
    link_profile: str
    active: bool
    last_upload_at: datetime | None
    last_measured_at: datetime | None
    clock_offset_s: float | None
    uploads: int

    @classmethod
    def of(cls, site: Site, agent: SiteAgent | None) -> SiteOut:
        """Combine a site row and its agent row (``None`` when it never uploaded)."""
        return cls(
            id=site.site_id,
            name=site.name,
            name_lo=site.name_lo,
            region=site.region,
            time_zone=site.time_zone,
            link_profile=site.link_profile,
            active=site.active,
            last_upload_at=agent.last_upload_at if agent else None,
            last_measured_at=agent.last_measured_at if agent else None,
            clock_offset_s=agent.clock_offset_s if agent else None,
            uploads=agent.uploads if agent else 0,
        )


class TargetOut(_Out):
    """A target of a site; ``endpoint`` says what is probed."""

    id: str
    site_id: str
    kind: ProbeKind
    name: str
    endpoint: str
    interval_s: float
    timeout_s: float
    active: bool

    @classmethod
    def of(cls, target: Target) -> TargetOut:
        """Copy a target row."""
        return cls(
            id=target.target_id,
            site_id=target.site_id,
            kind=ProbeKind(target.kind),
            name=target.name,
            endpoint=target.endpoint,
            interval_s=target.interval_s,
            timeout_s=target.timeout_s,
            active=target.active,
        )


class ResultOut(_Out):
    """One probe round as stored (see ``probes.result.ProbeResult`` for each field)."""

    result_id: str
    site_id: str
    target_id: str
    kind: ProbeKind
    status: ProbeStatus
    measured_at: datetime
    received_at: datetime
    duration_s: float
    rtt_s: float | None
    packet_loss: float | None
    jitter_s: float | None
    sent: int | None
    received: int | None
    duplicates: int | None
    rtts_s: list[float | None]
    address: str | None
    family: int | None
    error: str | None
    phases_s: dict[str, float]
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: Result) -> ResultOut:
        """Copy a result row."""
        return cls.model_validate(row)


class SeriesOut(BaseModel):
    """One target's results with ``start <= measured_at < end``, oldest first.

    ``truncated`` is true when more than ``limit`` results fall in the window; ask again
    with ``start`` = the last ``measured_at`` for the rest.
    """

    site_id: str
    target_id: str
    start: datetime
    end: datetime
    limit: int
    truncated: bool
    results: list[ResultOut]


def _restore_plus(value: Any) -> Any:
    """Undo a '+' of a UTC offset that arrived unencoded, hence as a space (``+07:00``)."""
    if isinstance(value, str):
        return _SPACED_OFFSET.sub(r"+\1", value.strip(), count=1)
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_restore_plus)]


@router.get("/sites", response_model=list[SiteOut])
def list_sites(
    session: ReadSessionDep,
    include_inactive: Annotated[
        bool, Query(description="Also list sites no longer in the configuration.")
    ] = False,
) -> list[SiteOut]:
    """List the sites, ordered by id, with their agents' last upload and clock offset."""
    agents = repo.site_agents(session)
    return [
        SiteOut.of(site, agents.get(site.site_id))
        for site in repo.list_sites(session, include_inactive=include_inactive)
    ]


@router.get("/sites/{site_id}/targets", response_model=list[TargetOut], responses=_NOT_FOUND)
def list_targets(
    site_id: str,
    session: ReadSessionDep,
    include_inactive: Annotated[
        bool, Query(description="Also list targets no longer in the configuration.")
    ] = False,
) -> list[TargetOut]:
    """List a site's targets, ordered by id."""
    _site_or_404(session, site_id)
    rows = repo.list_targets(session, site_id, include_inactive=include_inactive)
    return [TargetOut.of(t) for t in rows]


@router.get("/latest", response_model=list[ResultOut], responses=_NOT_FOUND)
def latest(
    session: ReadSessionDep,
    site_id: Annotated[str | None, Query(description="Only this site's targets.")] = None,
) -> list[ResultOut]:
    """Return the newest result of every target that has one, ordered by site and target."""
    if site_id is not None:
        _site_or_404(session, site_id)
    found = repo.latest_results(session, site_id)
    return [ResultOut.of(found[key]) for key in sorted(found)]


@router.get(
    "/sites/{site_id}/targets/{target_id}/series",
    response_model=SeriesOut,
    responses=_NOT_FOUND,
)
def series(
    site_id: str,
    target_id: str,
    session: ReadSessionDep,
    services: ServicesDep,
    start: Annotated[
        Instant | None,
        Query(description="ISO 8601 with a zone; default: end minus 3 hours."),
    ] = None,
    end: Annotated[
        Instant | None, Query(description="ISO 8601 with a zone (exclusive); default: now.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_SERIES_LIMIT, description="At most this many results.")
    ] = DEFAULT_SERIES_LIMIT,
) -> SeriesOut:
    """Return one target's results measured in ``[start, end)``, oldest first."""
    if repo.get_target(session, site_id, target_id) is None:
        _site_or_404(session, site_id)
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"Site {site_id!r} has no target {target_id!r}.",
        )
    end_at = (end if end is not None else services.clock()).astimezone(UTC)
    start_at = (start if start is not None else end_at - DEFAULT_SERIES_SPAN).astimezone(UTC)
    if start_at >= end_at:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "start"),
                    "msg": f"must be before end ({end_at.isoformat()})",
                    "type": "value_error",
                }
            ]
        )
    rows = repo.series(session, site_id, target_id, start_at, end_at, limit + 1)
    return SeriesOut(
        site_id=site_id,
        target_id=target_id,
        start=start_at,
        end=end_at,
        limit=limit,
        truncated=len(rows) > limit,
        results=[ResultOut.of(r) for r in rows[:limit]],
    )


def _site_or_404(session: Session, site_id: str) -> Site:
    site = repo.get_site(session, site_id)
    if site is None:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"There is no site {site_id!r}.",
        )
    return site
