"""Build what a site's page shows: per-target charts, availability, incidents, the agent.

Per target: its state and latest measures, its link-quality score, and a latency chart over
the chosen window (:class:`api.status.charts.ChartRange`) from the rollups. Per site: the
availability of each of the last :data:`DAYS_SHOWN` local days and of the last
:data:`MONTHS_SHOWN` calendar months (site-day rollups), its incidents, and what its agent
last reported (backlog, dropped results, clock offset).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from api.status.availability import DayFigure, MonthFigure, site_history
from api.status.charts import RANGES, Chart, ChartRange, build_chart, window
from api.status.incidents import IncidentList, incident_list
from api.status.overview import Quality, target_quality
from api.status.rollup_queries import target_points
from api.status.snapshot import SiteView, TargetView, take_snapshot
from monitor.config import Config
from monitor.storage.agent_reports import AgentBacklog, agent_backlogs, clock_offsets

DAYS_SHOWN = 31
MONTHS_SHOWN = 12
INCIDENTS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class TargetPanel:
    """One target on its site's page: state, score, chart, 30-day availability."""

    target: TargetView
    quality: Quality
    chart: Chart
    availability_30d: float | None


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What the site's agent last reported (``None`` fields: not reported).

    ``clock_offset_s`` server minus agent clock, seconds (positive: agent behind);
    ``clock_offset_warn_s`` the site's threshold for flagging it.
    """

    backlog: AgentBacklog | None
    clock_offset_s: float | None
    clock_offset_warn_s: float

    @property
    def clock_off(self) -> bool:
        """Whether the agent's clock is off by more than the threshold."""
        return (
            self.clock_offset_s is not None and abs(self.clock_offset_s) > self.clock_offset_warn_s
        )


@dataclass(frozen=True, slots=True)
class SitePage:
    """Everything the site page shows, at ``taken_at``: ``days`` newest first, ``months``
    newest first."""

    taken_at: datetime
    site: SiteView
    chart_range: ChartRange
    panels: tuple[TargetPanel, ...]
    days: tuple[DayFigure, ...]
    months: tuple[MonthFigure, ...]
    incidents: IncidentList
    agent: AgentFacts


def _agent_facts(session: Session, config: Config, site_id: str, now: datetime) -> AgentFacts:
    return AgentFacts(
        backlog=agent_backlogs(session, now).get(site_id),
        clock_offset_s=clock_offsets(session).get(site_id),
        clock_offset_warn_s=config.site_agent(site_id).clock_offset_warn_s,
    )


def build_site_page(
    config: Config, session: Session, now: datetime, site_id: str, chart_range: ChartRange
) -> SitePage:
    """Build the page of configured site ``site_id`` at ``now`` (KeyError if unknown)."""
    site_config = config.sites[site_id]
    snapshot = take_snapshot(config, session, now, [site_id])
    site = snapshot.sites[0]
    zone = ZoneInfo(site.time_zone)
    target_ids = [t.id for t in site_config.targets]
    start, end = window(now, chart_range, zone)
    points = target_points(session, RANGES[chart_range].resolution, site_id, target_ids, start, end)
    today = now.astimezone(zone).date()
    history = site_history(
        session,
        site_id,
        target_ids,
        site.time_zone,
        today,
        now,
        days=DAYS_SHOWN,
        months=MONTHS_SHOWN,
    )
    panels = tuple(
        TargetPanel(
            target=t,
            quality=target_quality(t, config),
            chart=build_chart(points.get(t.target_id, []), start, end, chart_range, zone),
            availability_30d=history.targets_30d.get(t.target_id),
        )
        for t in site.targets
    )
    return SitePage(
        taken_at=now,
        site=site,
        chart_range=chart_range,
        panels=panels,
        days=history.days,
        months=history.months,
        incidents=incident_list(session, now, site_id, INCIDENTS_SHOWN),
        agent=_agent_facts(session, config, site_id, now),
    )


@dataclass(frozen=True, slots=True)
class TargetPage:
    """One target over every chart window (the SmokePing "detail" view)."""

    taken_at: datetime
    site: SiteView
    target: TargetView
    quality: Quality
    charts: tuple[tuple[ChartRange, Chart], ...]


def build_target_page(
    config: Config, session: Session, now: datetime, site_id: str, target_id: str
) -> TargetPage | None:
    """Build one target's page with a chart per window; ``None`` if it is not configured."""
    if site_id not in config.sites:
        return None
    snapshot = take_snapshot(config, session, now, [site_id])
    site = snapshot.sites[0]
    target = next((t for t in site.targets if t.target_id == target_id), None)
    if target is None:
        return None
    zone = ZoneInfo(site.time_zone)
    charts: list[tuple[ChartRange, Chart]] = []
    for chart_range in ChartRange:
        start, end = window(now, chart_range, zone)
        points = target_points(
            session, RANGES[chart_range].resolution, site_id, [target_id], start, end
        )
        charts.append(
            (chart_range, build_chart(points.get(target_id, []), start, end, chart_range, zone))
        )
    return TargetPage(now, site, target, target_quality(target, config), tuple(charts))
