"""Build what the overview page shows: one card per site, a count of sites per state.

Per site: its state (derived from each target's latest round, :mod:`api.status.snapshot`),
the headline target's current RTT, loss and jitter with the link-quality score
(:mod:`api.status.score`), when it was last seen, its open incident, and a 90-day
availability bar (one segment per local day: time-weighted availability from the state
periods, :mod:`api.status.availability`). Nothing here reads more than each target's
latest round and the 90 days of state periods of the page's sites, so the cost does not
grow with the history kept. Sites are paged (:data:`PAGE_SIZE` per page);
the state counts cover every site.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from api.status.availability import DayFigure, SiteDays, sites_daily
from api.status.incidents import IncidentView, open_incidents
from api.status.score import ScoreBand, link_score, score_band
from api.status.snapshot import SiteView, TargetView, take_snapshot
from monitor.config import Config
from monitor.state import SiteState, TargetState
from probes.result import ProbeKind

PAGE_SIZE = 50
BAR_DAYS = 90

# Worst first: how the state summary and a "problems first" order rank sites.
STATE_ORDER: tuple[SiteState, ...] = (
    SiteState.DOWN,
    SiteState.UNREACHABLE,
    SiteState.UNKNOWN,
    SiteState.DEGRADED,
    SiteState.MAINTENANCE,
    SiteState.UP,
)


@dataclass(frozen=True, slots=True)
class Quality:
    """A target's link-quality score (0-100) and its band; both ``None`` when not scored."""

    score: float | None
    band: ScoreBand | None


def target_quality(target: TargetView, config: Config) -> Quality:
    """Score ``target``'s latest fresh round against its site's link profile."""
    profile = config.profiles[config.sites[target.site_id].link_profile]
    if target.state is TargetState.DOWN:
        return Quality(0.0, ScoreBand.POOR)
    reading = target.measured
    if reading is None:
        return Quality(None, None)
    score = link_score(reading.rtt_s, reading.packet_loss, reading.jitter_s, profile)
    return Quality(score, None if score is None else score_band(score))


def headline_target(site: SiteView) -> TargetView | None:
    """Return the target whose measures stand for the site: its first ICMP target (the
    gateway ping), else its first target; ``None`` for a site without targets."""
    for target in site.targets:
        if target.kind is ProbeKind.ICMP:
            return target
    return site.targets[0] if site.targets else None


@dataclass(frozen=True, slots=True)
class SiteCard:
    """One site on the overview.

    ``headline`` the target whose measures are shown (``None``: no target);
    ``last_seen`` the newest round of any target (agent clock); ``targets_by_state``
    counts the site's targets per state; ``problems`` its targets that are not UP;
    ``days`` the :data:`BAR_DAYS` local days, oldest first; ``availability_90d`` over
    them (``None``: no data); ``incident`` the site's open incident, if any.
    """

    site: SiteView
    headline: TargetView | None
    quality: Quality
    last_seen: datetime | None
    targets_by_state: Mapping[TargetState, int]
    problems: tuple[TargetView, ...]
    days: tuple[DayFigure, ...]
    availability_90d: float | None
    incident: IncidentView | None


@dataclass(frozen=True, slots=True)
class Overview:
    """The overview page: one page of site cards and counts over every site.

    ``page`` counts from 1; ``pages`` >= 1; ``total`` sites after the state filter;
    ``sites_by_state`` counts every configured site by state (before the filter);
    ``gateway_incidents`` the open incidents about the gateway itself (no one site).
    """

    taken_at: datetime
    cards: tuple[SiteCard, ...]
    sites_by_state: Mapping[SiteState, int]
    state_filter: SiteState | None
    page: int
    pages: int
    total: int
    gateway_incidents: tuple[IncidentView, ...]


def _card(
    site: SiteView, config: Config, days: SiteDays, incident: IncidentView | None
) -> SiteCard:
    headline = headline_target(site)
    seen = [t.latest.measured_at for t in site.targets if t.latest is not None]
    return SiteCard(
        site=site,
        headline=headline,
        quality=target_quality(headline, config) if headline else Quality(None, None),
        last_seen=max(seen) if seen else None,
        targets_by_state=Counter(t.state for t in site.targets),
        problems=tuple(t for t in site.targets if t.state is not TargetState.UP),
        days=days.days,
        availability_90d=days.overall,
        incident=incident,
    )


def build_overview(
    config: Config,
    session: Session,
    now: datetime,
    *,
    page: int = 1,
    state: SiteState | None = None,
    page_size: int = PAGE_SIZE,
) -> Overview:
    """Build the overview at ``now`` (aware): page ``page`` of the sites in config order,
    only those in ``state`` when given (a page past the end shows the last page)."""
    snapshot = take_snapshot(config, session, now)
    counts = Counter(site.state for site in snapshot.sites)
    chosen = [s for s in snapshot.sites if state is None or s.state is state]
    pages = max(1, math.ceil(len(chosen) / page_size))
    page = min(max(1, page), pages)
    shown = chosen[(page - 1) * page_size : page * page_size]
    days = sites_daily(
        session,
        {s.site_id: [t.target_id for t in s.targets] for s in shown},
        {s.site_id: s.time_zone for s in shown},
        {s.site_id: now.astimezone(ZoneInfo(s.time_zone)).date() for s in shown},
        BAR_DAYS,
        now,
    )
    incidents = open_incidents(session, now, [s.site_id for s in shown])
    cards = tuple(
        _card(s, config, days[s.site_id], incidents.by_site.get(s.site_id)) for s in shown
    )
    return Overview(
        taken_at=now,
        cards=cards,
        sites_by_state={s: counts.get(s, 0) for s in STATE_ORDER},
        state_filter=state,
        page=page,
        pages=pages,
        total=len(chosen),
        gateway_incidents=incidents.gateways,
    )
