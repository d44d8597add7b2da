"""Build one snapshot of every configured site and target: what the page and /metrics show.

Only what the configuration lists is shown: a target or site removed from the config has no
row and no metric series, whatever history the database still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from api.status.queries import AgentSeen, Reading, agents_seen, latest_readings
from monitor.config import Config
from monitor.state import (
    Assessment,
    Reason,
    SiteState,
    TargetState,
    assess_target,
    site_reachable,
    site_state,
)
from probes.result import ProbeKind, ProbeStatus

_NOT_FRESH = frozenset({Reason.NO_DATA, Reason.STALE})


@dataclass(frozen=True, slots=True)
class TargetView:
    """One configured target with its latest result and derived state.

    ``latest`` is ``None`` when the target has no stored result; ``fresh`` is true when the
    latest result is recent enough to count (see :func:`monitor.state.stale_bound_s`).
    """

    site_id: str
    target_id: str
    name: str
    kind: ProbeKind
    interval_s: float
    latest: Reading | None
    assessment: Assessment

    @property
    def state(self) -> TargetState:
        """The target's derived state."""
        return self.assessment.state

    @property
    def fresh(self) -> bool:
        """Whether the latest result counts (exists and is not stale)."""
        return self.latest is not None and self.assessment.reason not in _NOT_FRESH

    @property
    def measured(self) -> Reading | None:
        """The latest result if its measures are to be shown, else ``None``.

        ``None`` when there is no result, when it is stale (old numbers would pass for
        current ones), or when it is a monitor-side error (its numbers measured nothing).
        """
        if not self.fresh or self.latest is None or self.latest.status == ProbeStatus.ERROR:
            return None
        return self.latest


@dataclass(frozen=True, slots=True)
class SiteView:
    """One configured site: names, zone, its agent, its state and its targets."""

    site_id: str
    name: str
    name_lo: str | None
    region: str | None
    time_zone: str
    link_profile: str
    agent: AgentSeen | None
    reachable: bool
    state: SiteState
    targets: tuple[TargetView, ...]


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Every configured site at ``taken_at`` (aware, server clock), in config order."""

    taken_at: datetime
    sites: tuple[SiteView, ...]

    def site(self, site_id: str) -> SiteView | None:
        """Return the site with this id, or ``None`` if it is not configured."""
        return next((s for s in self.sites if s.site_id == site_id), None)


def take_snapshot(
    config: Config, session: Session, now: datetime, site_ids: list[str] | None = None
) -> StatusSnapshot:
    """Read the database once and derive every configured site's and target's state.

    Args:
        config: the configuration; defines which sites and targets exist.
        session: an open session (only reads).
        now: the current time, aware.
        site_ids: restrict to these configured sites (unknown ids are skipped); all if None.

    Cost: one index seek per stored target plus one read of ``site_agents``.
    """
    wanted = list(config.sites) if site_ids is None else [s for s in site_ids if s in config.sites]
    only_site = wanted[0] if site_ids is not None and len(wanted) == 1 else None
    latest = latest_readings(session, only_site)
    agents = agents_seen(session)
    silent_after_s = config.server.site_silent_after_s
    profiles = config.profiles
    sites: list[SiteView] = []
    for sid in wanted:
        site = config.sites[sid]
        profile = profiles[site.link_profile]
        targets = tuple(
            TargetView(
                site_id=sid,
                target_id=t.id,
                name=t.display_name,
                kind=ProbeKind(t.kind),
                interval_s=t.interval_s,
                latest=latest.get((sid, t.id)),
                assessment=assess_target(
                    latest.get((sid, t.id)), profile, now, t.interval_s, silent_after_s
                ),
            )
            for t in site.targets
        )
        agent = agents.get(sid)
        last_upload_at = agent.last_upload_at if agent else None
        sites.append(
            SiteView(
                site_id=sid,
                name=site.name,
                name_lo=site.name_lo,
                region=site.region,
                time_zone=config.site_zone(sid),
                link_profile=site.link_profile,
                agent=agent,
                reachable=site_reachable(last_upload_at, now, silent_after_s),
                state=site_state(last_upload_at, (t.state for t in targets), now, silent_after_s),
                targets=targets,
            )
        )
    return StatusSnapshot(taken_at=now, sites=tuple(sites))
