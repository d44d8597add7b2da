"""What the agent knows about itself, in one snapshot: for its local page and its /metrics.

:class:`AgentStatus` holds references to the running parts (spool, uploader, scheduler) and
the latest result of each target; :meth:`AgentStatus.snapshot` reads them into a frozen
:class:`AgentSnapshot`. The snapshot reads the spool (SQLite), so call it in a worker
thread from async code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.agent.spool import Spool
from monitor.agent.uploader import Uploader
from monitor.config import AgentConfig, LinkProfile, SiteConfig
from monitor.state import TargetState, assess_target
from monitor.wire import ResultIn
from probes.result import ProbeStatus

STALE_AFTER_INTERVALS = 2.0
"""A target's latest result older than this many intervals (plus one) reads UNKNOWN here."""


@dataclass(frozen=True, slots=True)
class TargetView:
    """One target as the agent sees it now.

    ``state`` is derived as the centre derives it (:func:`monitor.state.assess_target`,
    the site's link profile), except that staleness is judged against the target's own
    interval: the agent needs no upload to know its results are fresh. Measures are from
    the latest round (``None``: not measured, or no round yet); ``rounds_total`` counts
    rounds since the agent started.
    """

    target_id: str
    name: str
    kind: str
    state: TargetState
    status: ProbeStatus | None
    measured_at: datetime | None
    rtt_s: float | None
    packet_loss: float | None
    jitter_s: float | None
    error: str | None
    rounds_total: int


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """The agent's state at ``now``: spool, uploads, clock, targets.

    Times are aware UTC; ``None`` means "never" or "nothing" as each name says. Ages in
    seconds. ``clock_offset_s`` is the server's clock minus the agent's (positive: the agent
    is behind), flagged when its magnitude exceeds ``clock_offset_warn_s``.
    """

    site_id: str
    site_name: str
    server_url: str
    now: datetime
    backlog: int
    oldest_unsent_at: datetime | None
    oldest_unsent_age_s: float | None
    dropped_full_total: int
    dropped_age_total: int
    rejected_total: int
    rejected_waiting: int
    last_upload_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    results_uploaded_total: int
    requests_total: int
    failures_total: int
    bytes_sent_total: int
    encoding: str
    budget_bytes_per_hour: int | None
    budget_used_bytes: int | None
    clock_offset_s: float | None
    clock_offset_warn_s: float
    targets: tuple[TargetView, ...]

    @property
    def dropped_total(self) -> int:
        """Results dropped unsent, for any reason."""
        return self.dropped_full_total + self.dropped_age_total

    @property
    def clock_offset_flagged(self) -> bool:
        """Whether the clock offset is known and over the threshold."""
        return self.clock_offset_s is not None and abs(self.clock_offset_s) > (
            self.clock_offset_warn_s
        )


class AgentStatus:
    """Collect the agent's state for its local page and metrics.

    Args:
        site_id: the site.
        site: the site's configuration (name, targets).
        profile: the site's link profile (DEGRADED thresholds).
        settings: the site's agent settings.
        spool: the spool.
        uploader: the uploader.
        clock: returns "now" (aware UTC).
    """

    def __init__(
        self,
        site_id: str,
        site: SiteConfig,
        profile: LinkProfile,
        settings: AgentConfig,
        spool: Spool,
        uploader: Uploader,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.site_id = site_id
        self.site = site
        self.profile = profile
        self.settings = settings
        self.spool = spool
        self.uploader = uploader
        self.rounds: Callable[[str], int] = lambda _target_id: 0
        self._clock = clock
        self._latest: dict[str, ResultIn] = {}
        self._lock = threading.Lock()

    def observe(self, result: ResultIn) -> None:
        """Keep ``result`` if it is its target's newest so far (called per spooled result)."""
        with self._lock:
            known = self._latest.get(result.target_id)
            if known is None or result.measured_at >= known.measured_at:
                self._latest[result.target_id] = result

    def load_from_spool(self) -> None:
        """Seed the latest results from what waits in the spool (after a restart offline)."""
        for result in self.spool.peek_newest():
            self.observe(result)

    def snapshot(self) -> AgentSnapshot:
        """Read everything into an :class:`AgentSnapshot` (blocking: reads the spool)."""
        now = self._clock()
        counts = self.spool.counts()
        oldest = self.spool.oldest_measured_at()
        stats = self.uploader.stats
        budget = self.uploader.budget
        return AgentSnapshot(
            site_id=self.site_id,
            site_name=self.site.name,
            server_url=self.uploader.url,
            now=now,
            backlog=counts.backlog,
            oldest_unsent_at=oldest,
            oldest_unsent_age_s=None if oldest is None else (now - oldest).total_seconds(),
            dropped_full_total=counts.dropped_full_total,
            dropped_age_total=counts.dropped_age_total,
            rejected_total=counts.rejected_total,
            rejected_waiting=counts.rejected_waiting,
            last_upload_at=stats.last_success_at,
            last_error=stats.last_error,
            consecutive_failures=stats.consecutive_failures,
            results_uploaded_total=stats.results_acked_total,
            requests_total=stats.requests_total,
            failures_total=stats.failures_total,
            bytes_sent_total=stats.bytes_sent_total,
            encoding=self.uploader.encoding.value,
            budget_bytes_per_hour=None if budget is None else budget.bytes_per_hour,
            budget_used_bytes=None if budget is None else budget.used_bytes(now),
            clock_offset_s=stats.clock_offset_s,
            clock_offset_warn_s=self.settings.clock_offset_warn_s,
            targets=tuple(self._target_views(now)),
        )

    def _target_views(self, now: datetime) -> list[TargetView]:
        with self._lock:
            latest = dict(self._latest)
        views = []
        for target in self.site.targets:
            result = latest.get(target.id)
            stale_after_s = STALE_AFTER_INTERVALS * target.interval_s
            assessment = assess_target(result, self.profile, now, target.interval_s, stale_after_s)
            views.append(
                TargetView(
                    target_id=target.id,
                    name=target.display_name,
                    kind=str(target.kind),
                    state=assessment.state,
                    status=None if result is None else result.status,
                    measured_at=None if result is None else result.measured_at,
                    rtt_s=None if result is None else result.rtt_s,
                    packet_loss=None if result is None else result.packet_loss,
                    jitter_s=None if result is None else result.jitter_s,
                    error=None if result is None else result.error,
                    rounds_total=self.rounds(target.id),
                )
            )
        return views
