"""Read what the agents reported about themselves: backlog, drops, clock offset (issue 4).

Data functions for the status page and the server's ``/metrics`` (their owners wire them):

- :func:`agent_backlogs`: each site's newest spool report (backlog, oldest unsent result,
  dropped and rejected totals), with its age at ``now``;
- :func:`clock_offsets`: each site's best clock-offset estimate;
- :func:`clock_offset_flags`: the sites whose clock is off by more than a threshold.

Each takes a SQLAlchemy ``Session`` (read only) and returns plain frozen records or numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.storage.models import SiteAgent
from monitor.storage.models_agent import AgentReport


@dataclass(frozen=True, slots=True)
class AgentBacklog:
    """A site agent's newest spool report, as the centre last heard it.

    Attributes:
        site_id: the site.
        reported_at: server clock when the report arrived (with an upload batch).
        backlog: results still waiting at the agent besides that batch.
        oldest_unsent_at: ``measured_at`` (agent clock) of the oldest waiting result;
            ``None`` when nothing was waiting.
        oldest_unsent_age_s: seconds from ``oldest_unsent_at`` to ``now``; ``None`` with it.
        dropped_total: results the agent dropped unsent since its spool was created.
        rejected_total: results the server refused (kept aside at the agent).
        clock_offset_s: the agent's own estimate of server minus agent clock, seconds;
            ``None`` before its first estimate.
    """

    site_id: str
    reported_at: datetime
    backlog: int
    oldest_unsent_at: datetime | None
    oldest_unsent_age_s: float | None
    dropped_total: int
    rejected_total: int
    clock_offset_s: float | None


def agent_backlogs(session: Session, now: datetime) -> dict[str, AgentBacklog]:
    """Return the newest spool report of each site that sent one, by site id.

    ``now`` is the server's clock (aware). A site whose agent never sent a report (an older
    agent, or none yet) is absent. The report is as old as ``reported_at``: while a site is
    unreachable its backlog grows unseen, so show it together with the site's state.
    """
    out: dict[str, AgentBacklog] = {}
    for row in session.scalars(select(AgentReport)):
        oldest = row.oldest_unsent_at
        out[row.site_id] = AgentBacklog(
            site_id=row.site_id,
            reported_at=row.reported_at,
            backlog=row.backlog,
            oldest_unsent_at=oldest,
            oldest_unsent_age_s=None if oldest is None else (now - oldest).total_seconds(),
            dropped_total=row.dropped_total,
            rejected_total=row.rejected_total,
            clock_offset_s=row.clock_offset_s,
        )
    return out


def clock_offsets(session: Session) -> dict[str, float]:
    """Return each site's best estimate of server minus agent clock, seconds, by site id.

    The agent's own estimate from its newest report (NTP-style midpoint of an upload, so
    without transit time) when there is one; else ``site_agents.clock_offset_s`` (server
    receive time minus the agent's send time, which includes the upload's transit time).
    Positive: the agent's clock is behind. Sites with neither are absent.
    """
    out = {
        row.site_id: row.clock_offset_s
        for row in session.scalars(select(SiteAgent))
        if row.clock_offset_s is not None
    }
    for report in session.scalars(select(AgentReport)):
        if report.clock_offset_s is not None:
            out[report.site_id] = report.clock_offset_s
    return out


def clock_offset_thresholds(config: Config) -> dict[str, float]:
    """Return each configured site's clock-offset threshold (``agent.clock_offset_warn_s``)."""
    return {site_id: config.site_agent(site_id).clock_offset_warn_s for site_id in config.sites}


def clock_offset_flags(
    session: Session, threshold_s: float | Mapping[str, float]
) -> dict[str, float]:
    """Return ``{site_id: offset_s}`` for each site whose clock is off by more than a bound.

    ``threshold_s`` is one bound in seconds for every site, or a mapping by site id (e.g.
    :func:`clock_offset_thresholds`; sites missing from it are not judged). A site is flagged
    when ``abs(offset_s) > threshold`` with the offset of :func:`clock_offsets` (positive:
    the agent's clock is behind the server's).
    """
    flagged: dict[str, float] = {}
    for site_id, offset_s in clock_offsets(session).items():
        bound = threshold_s.get(site_id) if isinstance(threshold_s, Mapping) else threshold_s
        if bound is not None and abs(offset_s) > bound:
            flagged[site_id] = offset_s
    return flagged
