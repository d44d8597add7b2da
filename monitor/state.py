"""Derive the state of a target and of a site from stored results: pure functions, no I/O.

This first version reads only the latest result of each target (no hysteresis yet). Later
versions add hysteresis (N failures to go DOWN, M successes to recover), maintenance windows,
incidents and availability; they keep these signatures and build on :func:`assess_target`.

Words (see DESIGN.md): UP, DEGRADED (reachable but over a latency/loss/jitter threshold of
the site's link profile), DOWN (a target-side failure), UNKNOWN (no usable data: no result,
a stale result, or a monitor-side error, which is never read as DOWN), MAINTENANCE. A site
whose agent is silent is UNREACHABLE, a kind of "no data" kept apart from DOWN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from monitor.config import LinkProfile
from probes.result import ProbeStatus


class TargetState(StrEnum):
    """The derived state of one target."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"
    MAINTENANCE = "maintenance"


class SiteState(StrEnum):
    """The derived state of one site.

    UNREACHABLE means the site's agent has not uploaded for longer than the silent bound (or
    never did): the centre cannot see the site at all. For availability it counts as unknown
    time, like UNKNOWN; it is never DOWN, and it replaces the targets' states.
    """

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"
    MAINTENANCE = "maintenance"
    UNREACHABLE = "unreachable"


class Reason(StrEnum):
    """Why a target has its state (one per rule of :func:`assess_target`)."""

    NO_DATA = "no_data"
    STALE = "stale"
    MONITOR_ERROR = "monitor_error"
    TARGET_DOWN = "target_down"
    RTT_OVER = "rtt_over"
    PACKET_LOSS_OVER = "packet_loss_over"
    JITTER_OVER = "jitter_over"
    OK = "ok"


class ResultLike(Protocol):
    """What state derivation reads from a result (a stored row or a snapshot record).

    ``status`` is a :class:`probes.result.ProbeStatus` value ("up", "down", "error");
    ``measured_at`` an aware datetime; RTT and jitter in seconds, packet loss a ratio 0-1,
    each ``None`` when not measured; ``error`` the probe's one-sentence reason, or ``None``.
    """

    @property
    def status(self) -> str: ...
    @property
    def measured_at(self) -> datetime: ...
    @property
    def rtt_s(self) -> float | None: ...
    @property
    def packet_loss(self) -> float | None: ...
    @property
    def jitter_s(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Assessment:
    """A target's state with the reason for it.

    Attributes:
        state: the derived state.
        reason: which rule decided it.
        detail: the probe's own error sentence for DOWN or a monitor error, else ``None``.
    """

    state: TargetState
    reason: Reason
    detail: str | None = None


def stale_bound_s(interval_s: float, stale_after_s: float) -> float:
    """Return how old (seconds) a target's latest result may be and still count.

    One probe interval (the next round is due then) plus ``stale_after_s`` of grace for the
    round itself and the upload path (normally ``server.site_silent_after_s``).
    """
    return interval_s + stale_after_s


def assess_target(
    latest: ResultLike | None,
    profile: LinkProfile,
    now: datetime,
    interval_s: float,
    stale_after_s: float,
) -> Assessment:
    """Derive a target's state and its reason from its latest result.

    Args:
        latest: the newest stored result of the target, or ``None`` if it has none.
        profile: the thresholds of the site's link profile.
        now: the current time, an aware datetime.
        interval_s: the target's probe interval, seconds.
        stale_after_s: grace beyond one interval before a result is stale, seconds.

    Rules, first match wins: no result -> UNKNOWN (NO_DATA); result older than
    :func:`stale_bound_s` -> UNKNOWN (STALE); status error (monitor-side) -> UNKNOWN
    (MONITOR_ERROR, never DOWN); status down -> DOWN; status up with ``rtt_s`` over
    ``profile.rtt_degraded_s``, ``packet_loss`` over ``profile.packet_loss_degraded`` or
    ``jitter_s`` over ``profile.jitter_degraded_s`` (strictly greater) -> DEGRADED; else UP.
    A measure that is ``None`` never makes a target DEGRADED. A result stamped in the future
    (agent clock ahead) counts as fresh.
    """
    if latest is None:
        return Assessment(TargetState.UNKNOWN, Reason.NO_DATA)
    age_s = (now - latest.measured_at).total_seconds()
    if age_s > stale_bound_s(interval_s, stale_after_s):
        return Assessment(TargetState.UNKNOWN, Reason.STALE)
    if latest.status == ProbeStatus.ERROR:
        return Assessment(TargetState.UNKNOWN, Reason.MONITOR_ERROR, latest.error)
    if latest.status == ProbeStatus.DOWN:
        return Assessment(TargetState.DOWN, Reason.TARGET_DOWN, latest.error)
    if latest.rtt_s is not None and latest.rtt_s > profile.rtt_degraded_s:
        return Assessment(TargetState.DEGRADED, Reason.RTT_OVER)
    if latest.packet_loss is not None and latest.packet_loss > profile.packet_loss_degraded:
        return Assessment(TargetState.DEGRADED, Reason.PACKET_LOSS_OVER)
    if (
        profile.jitter_degraded_s is not None
        and latest.jitter_s is not None
        and latest.jitter_s > profile.jitter_degraded_s
    ):
        return Assessment(TargetState.DEGRADED, Reason.JITTER_OVER)
    return Assessment(TargetState.UP, Reason.OK)


def target_state(
    latest: ResultLike | None,
    profile: LinkProfile,
    now: datetime,
    interval_s: float,
    stale_after_s: float,
) -> TargetState:
    """Return a target's state from its latest result; see :func:`assess_target`."""
    return assess_target(latest, profile, now, interval_s, stale_after_s).state


# Worst first. UNKNOWN ranks above UP: a site is only UP when every target is known UP.
_SEVERITY: tuple[TargetState, ...] = (
    TargetState.DOWN,
    TargetState.DEGRADED,
    TargetState.UNKNOWN,
    TargetState.UP,
    TargetState.MAINTENANCE,
)


def site_reachable(
    agent_last_upload_at: datetime | None, now: datetime, silent_after_s: float
) -> bool:
    """Return whether the site's agent uploaded within ``silent_after_s`` seconds of ``now``.

    ``agent_last_upload_at`` is the server's receive time of the last upload, ``None`` if the
    agent never uploaded (then the site is not reachable).
    """
    if agent_last_upload_at is None:
        return False
    return (now - agent_last_upload_at).total_seconds() <= silent_after_s


def site_state(
    agent_last_upload_at: datetime | None,
    target_states: Iterable[TargetState],
    now: datetime,
    silent_after_s: float,
) -> SiteState:
    """Derive a site's state from its agent's last upload and its targets' states.

    Args:
        agent_last_upload_at: when the server last received an upload from the site's agent
            (aware), ``None`` if never.
        target_states: the states of the site's configured targets.
        now: the current time, aware.
        silent_after_s: how long the agent may be silent (``server.site_silent_after_s``).

    Returns UNREACHABLE when the agent is silent longer than ``silent_after_s`` or was never
    seen, whatever the targets say (one "site unreachable", not one DOWN per target).
    Otherwise the worst target state in the order DOWN, DEGRADED, UNKNOWN, UP, MAINTENANCE;
    UNKNOWN when the site has no targets.
    """
    if not site_reachable(agent_last_upload_at, now, silent_after_s):
        return SiteState.UNREACHABLE
    present = set(target_states)
    for state in _SEVERITY:
        if state in present:
            return SiteState(state.value)
    return SiteState.UNKNOWN
