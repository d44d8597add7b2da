"""Correlation: one alert per real problem, decided by pure functions over plain facts.

- **Gateway.** A *gateway* is a host probed from at least two sites: targets are grouped by
  the host they probe (ICMP/TCP/DNS ``host``, the HTTP URL's host name, lower-cased), so a
  gateway probed by ICMP, TCP and HTTP from seven sites is one group of 21 targets. The
  gateway is down when more than ``server.gateway_down_fraction`` of the group's
  *reachable* sites have a member target confirmed DOWN. Then one GATEWAY_DOWN alert is
  raised and the members' own DOWN alerts are held back (recorded, not paged).
- **Central path.** When more than that fraction of all sites (at least two) go silent at
  once, the centre's own link (or the shared path the uploads take) is the likelier cause:
  one GATEWAY_DOWN for the group :data:`CENTRAL_GROUP` instead of one SITE_UNREACHABLE per
  site.
- **Site.** While a site's agent is silent no result arrives, so no target alert can come
  from it; when it comes back, its targets' alerts are held until each has been measured
  for ``successes_to_recover`` intervals after the return (its backlog of failures from
  the outage must not page), see :func:`settle_until`.
- **Correlation wait.** A target's DOWN alert waits while other reachable sites probing the
  same gateway have not yet reported rounds as recent as the one that confirmed it, or
  while so many of them are failing that a gateway alert is likely; at most
  ``server.site_silent_after_s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from monitor.alerting.state_machine import Observation
from monitor.config import Config
from monitor.state import TargetState
from probes.specs import HttpTarget, TargetSpec

CENTRAL_GROUP = "*central*"
"""The gateway key of "most sites went silent at once"."""

MIN_GATEWAY_SITES = 2
"""A host probed from fewer sites is not a gateway: its targets alert on their own."""

TargetKey = tuple[str, str]
"""``(site_id, target_id)``."""


def gateway_key(target: TargetSpec) -> str:
    """Return the host ``target`` probes, lower-cased: its gateway group key."""
    if isinstance(target, HttpTarget):
        return (urlsplit(target.url).hostname or target.url).lower()
    return target.host.lower()


@dataclass(frozen=True, slots=True)
class GatewayGroup:
    """The targets, at two or more sites, that probe one host."""

    key: str
    members: tuple[TargetKey, ...]

    @property
    def sites(self) -> frozenset[str]:
        """The sites probing this gateway."""
        return frozenset(site for site, _ in self.members)


def gateway_groups(config: Config) -> dict[str, GatewayGroup]:
    """Return the gateway groups of ``config`` by key (hosts probed from >= 2 sites)."""
    members: dict[str, list[TargetKey]] = {}
    for site_id, site in config.sites.items():
        for target in site.targets:
            members.setdefault(gateway_key(target), []).append((site_id, target.id))
    return {
        key: GatewayGroup(key, tuple(found))
        for key, found in members.items()
        if len({site for site, _ in found}) >= MIN_GATEWAY_SITES
    }


@dataclass(frozen=True, slots=True)
class MemberView:
    """What the gateway judgement reads of one member target.

    ``level``: its confirmed level (``None``: never known); ``last_obs``: what its latest
    round said; ``last_at``: that round's measured time.
    """

    level: TargetState | None
    last_obs: Observation | None
    last_at: datetime | None


@dataclass(frozen=True, slots=True)
class GatewayVerdict:
    """The gateway's state across sites.

    ``considered``: reachable sites probing it; ``down``: those with a member confirmed
    DOWN; ``failing``: those with a member DOWN or whose latest round failed;
    ``is_down``: more than the fraction of ``considered`` is ``down`` (``None`` when fewer
    than two sites are considered: no judgement); ``storm_likely``: more than the
    fraction is ``failing`` (a gateway alert is probably coming).
    """

    considered: tuple[str, ...]
    down: tuple[str, ...]
    failing: tuple[str, ...]
    is_down: bool | None
    storm_likely: bool


def judge_gateway(
    group: GatewayGroup,
    members: Mapping[TargetKey, MemberView],
    reachable: Set[str],
    fraction: float,
) -> GatewayVerdict:
    """Judge one gateway from its members' states; unreachable sites are left out."""
    considered = sorted(group.sites & reachable)
    down: set[str] = set()
    failing: set[str] = set()
    for key in group.members:
        view = members.get(key)
        if key[0] not in reachable or view is None:
            continue
        if view.level is TargetState.DOWN:
            down.add(key[0])
            failing.add(key[0])
        elif view.last_obs is Observation.DOWN:
            failing.add(key[0])
    n = len(considered)
    return GatewayVerdict(
        considered=tuple(considered),
        down=tuple(sorted(down)),
        failing=tuple(sorted(failing)),
        is_down=None if n < MIN_GATEWAY_SITES else len(down) > fraction * n,
        storm_likely=n >= MIN_GATEWAY_SITES and len(failing) > fraction * n,
    )


def central_outage(silent: Set[str], sites: Iterable[str], fraction: float) -> bool:
    """Whether so many sites are silent at once that the centre's own path is at fault."""
    all_sites = set(sites)
    return len(all_sites) >= MIN_GATEWAY_SITES and len(silent & all_sites) > fraction * len(
        all_sites
    )


def gateway_started_at(starts: Iterable[datetime], considered: int, fraction: float) -> datetime:
    """Return when a gateway went down: the start of the site that tipped the balance.

    ``starts``: per down site, when its member went DOWN. With ``considered`` sites the
    gateway is down once more than ``fraction * considered`` are: the start of the
    ``floor(fraction * considered) + 1``-th site. Raises ValueError with no starts.
    """
    ordered = sorted(starts)
    if not ordered:
        raise ValueError("a gateway outage needs at least one down site")
    index = min(int(fraction * considered), len(ordered) - 1)
    return ordered[index]


def site_silent(
    last_upload_at: datetime | None,
    now: datetime,
    silent_after_s: float,
    listening_since: datetime,
) -> bool:
    """Whether a site's agent counts as silent now.

    Silent when its last upload (server clock; ``None``: never) is older than
    ``silent_after_s`` *and* the evaluator itself has been listening for that long: the
    server's own downtime is not the sites' silence.
    """
    if (now - listening_since).total_seconds() < silent_after_s:
        return False
    if last_upload_at is None:
        return True
    return (now - last_upload_at).total_seconds() > silent_after_s


def settle_until(
    back_at: datetime, clock_offset_s: float | None, interval_s: float, rounds: int
) -> datetime:
    """Return the measured (agent-clock) time a target must reach after its site came back.

    ``back_at``: server time the site's uploads resumed; ``clock_offset_s``: server minus
    agent clock (``None``: 0). A DOWN alert of a target of that site is held until the
    target has a round measured at or after the returned instant: ``rounds`` intervals of
    fresh rounds after the return, so the backlog of the outage never pages alone.
    """
    agent_back = back_at - timedelta(seconds=clock_offset_s or 0.0)
    return agent_back + timedelta(seconds=interval_s * rounds)


class Hold(StrEnum):
    """Why an incident's alert is not sent (yet); stored in ``incidents.suppressed``."""

    BEHIND = "behind"
    SITE_UNREACHABLE = "site_unreachable"
    SITE_SETTLING = "site_settling"
    MAINTENANCE = "maintenance"
    GATEWAY = "gateway"
    CENTRAL = "central"
    CORRELATING = "correlating"
    RECOVERING = "recovering"
    BACKFILLED = "backfilled"
    RETRACTED = "retracted"


@dataclass(frozen=True, slots=True)
class TargetFacts:
    """What decides whether a target's open DOWN incident may page now.

    Attributes:
        caught_up: every stored result of the target has been evaluated.
        site_reachable: its site's agent is not silent.
        settled: the target has been measured long enough since its site last came back
            (see :func:`settle_until`).
        in_maintenance: a maintenance window covers it now.
        gateway_open: its gateway group has an open GATEWAY incident.
        gateway_closed_s: seconds since its gateway's last GATEWAY incident closed
            (``None``: none did); the members recover at slightly different times.
        recovering: its latest round was good (a recovery is under way).
        verdict: its gateway's verdict, ``None`` when it belongs to no gateway.
        peers_lagging: a reachable site of its gateway has no round as recent as the one
            that confirmed this incident.
        waited_s: seconds since the incident was detected.
        wait_max_s: the longest correlation wait, seconds.
    """

    caught_up: bool
    site_reachable: bool
    settled: bool
    in_maintenance: bool
    gateway_open: bool
    gateway_closed_s: float | None
    recovering: bool
    verdict: GatewayVerdict | None
    peers_lagging: bool
    waited_s: float
    wait_max_s: float


def target_hold(facts: TargetFacts) -> Hold | None:
    """Return why a target's DOWN alert must wait, or ``None`` to send it now (first match).

    Rules in order: not caught up (BEHIND); site silent (SITE_UNREACHABLE); site just back
    and the target not yet measured afresh (SITE_SETTLING); maintenance window
    (MAINTENANCE); its gateway is down or came back less than ``wait_max_s`` ago (GATEWAY);
    its latest round was good (RECOVERING: the next failed round pages, a second good one
    closes it); other sites of its gateway are failing too or have not reported as far yet
    (CORRELATING, at most ``wait_max_s``).
    """
    if not facts.caught_up:
        return Hold.BEHIND
    if not facts.site_reachable:
        return Hold.SITE_UNREACHABLE
    if not facts.settled:
        return Hold.SITE_SETTLING
    if facts.in_maintenance:
        return Hold.MAINTENANCE
    if facts.gateway_open or (
        facts.gateway_closed_s is not None and facts.gateway_closed_s < facts.wait_max_s
    ):
        return Hold.GATEWAY
    if facts.recovering:
        return Hold.RECOVERING
    verdict = facts.verdict
    waiting = verdict is not None and facts.waited_s < facts.wait_max_s
    if waiting and verdict is not None and (verdict.storm_likely or facts.peers_lagging):
        return Hold.CORRELATING
    return None
