"""Build every metric family from the database at scrape time (no number kept in memory).

Only what the configuration lists is exported: a target or site removed from the config, or
a target whose id changed, has no series at the next scrape, whatever history the database
still holds. Labels are the stable ids ``site``, ``target``, ``kind`` (and ``state`` for the
state sets); error text, addresses and display names never become labels.

Target values come from the target's latest round while it is fresh (the same rule as the
status page: :func:`monitor.state.assess_target`); a stale round keeps only its timestamp,
and a monitor-side error exports ``monitor_error 1`` and no measure. A value that was not
measured has no sample (never NaN or -1).
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.metrics import catalogue as cat
from api.metrics.catalogue import Spec
from api.metrics.exposition import (
    ONE,
    ZERO,
    Family,
    HistogramLines,
    escape_label_value,
    format_value,
    label_string,
)
from api.metrics.readings import (
    LatestRound,
    Readings,
    RoundRow,
    bucket_samples,
    read_all,
    round_samples,
)
from api.services import Services
from api.status.score import link_score
from monitor.alerting.outbox import AttemptOutcome, DeliveryStatus
from monitor.config import Config, LinkProfile
from monitor.state import (
    Assessment,
    Reason,
    SiteState,
    TargetState,
    assess_target,
    site_reachable,
    site_state,
    stale_bound_s,
)
from monitor.storage.db import read_only
from probes.result import ProbeStatus

log = logging.getLogger(__name__)

_NOT_FRESH = frozenset({Reason.NO_DATA, Reason.STALE})
_TARGET_STATES = tuple(TargetState)
_SITE_STATES = tuple(SiteState)
_SERVER = frozenset({cat.DATABASE_UP, cat.BUILD})


def version() -> str:
    """Return the installed Linkwatch version, ``unknown`` when not installed."""
    try:
        return metadata.version("linkwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


class LinkwatchCollector(Collector):
    """Collect Linkwatch's metrics from the database at each scrape.

    ``services`` returns the app's :class:`api.services.Services` (looked up per scrape, so
    the collector can be made before the app is fully wired). :meth:`families` is what
    ``/metrics`` renders; :meth:`collect` offers the same families to a
    ``prometheus_client`` registry.

    Two caches keep a scrape cheap, neither holding a number that could go stale: the label
    text of every configured target and site, and each site's formatted target samples
    keyed by each target's latest round (``results.id``: a stored round never changes) and
    whether that round is still fresh (the only way the clock changes a target's state).
    Both are rebuilt when the configuration object changes; an entry lives only while its
    site is configured.
    """

    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services
        self._labels: _ConfigLabels | None = None
        self._outputs: _PreviousOutputs = {}

    def describe(self) -> Iterable[Metric]:
        """Describe nothing up front: the series depend on the database at scrape time."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Yield every family as ``prometheus_client`` metrics."""
        return [metric for family in self.families() for metric in family.to_client_metrics()]

    def families(self) -> list[Family]:
        """Read the database once and return every family, in catalogue order.

        When the database cannot be read, only ``linkwatch_database_up 0`` and build info
        are returned (the cause goes to the log, once per scrape, without a traceback).
        """
        services = self._services()
        now = services.clock()
        try:
            with Session(bind=read_only(services.engine)) as session:
                readings = read_all(session, now)
        except SQLAlchemyError as exc:
            log.warning("metrics: could not read the database: %s", exc.__class__.__name__)
            return [_database_up(False), _build_info()]
        labels = self._labels
        if labels is None or labels.config is not services.config:
            labels = self._labels = _ConfigLabels.build(services.config)
            self._outputs = {}
        builder = _Builder(services.config, labels, now, readings)
        families = builder.build(self._outputs)
        self._outputs = builder.outputs
        return [*families, _database_up(True), _build_info()]


def _database_up(up: bool) -> Family:
    family = cat.DATABASE_UP.new()
    family.add_text("", ONE if up else ZERO)
    return family


def _build_info() -> Family:
    family = cat.BUILD.new()
    labels = label_string(("version", "python_version"), (version(), platform.python_version()))
    family.add_text(labels, ONE)
    return family


@dataclass(frozen=True, slots=True)
class _TargetLabels:
    """A configured target's label text and its state-set lines, one block per state."""

    target_id: str
    kind: str
    interval_s: float
    fresh_for_s: float
    labels: str
    state_lines: Mapping[TargetState, str]


@dataclass(frozen=True, slots=True)
class _SiteLabels:
    """A configured site's label text, state-set lines per state, and its targets."""

    site_id: str
    labels: str
    state_lines: Mapping[SiteState, str]
    targets: tuple[_TargetLabels, ...]


@dataclass(frozen=True, slots=True)
class _ConfigLabels:
    """The label text of every configured site and target, for one configuration object."""

    config: Config
    sites: tuple[_SiteLabels, ...]

    @classmethod
    def build(cls, config: Config) -> _ConfigLabels:
        target_state = cat.TARGET_STATE.new()
        site_state_family = cat.SITE_STATE.new()
        sites = []
        for site_id, site in config.sites.items():
            s = escape_label_value(site_id)
            targets = []
            for target in site.targets:
                t = escape_label_value(target.id)
                k = escape_label_value(target.kind)
                state_lines = {
                    current: target_state.lines_for(
                        (
                            f'kind="{k}",site="{s}",state="{v}",target="{t}"',
                            ONE if v is current else ZERO,
                        )
                        for v in _TARGET_STATES
                    )
                    for current in _TARGET_STATES
                }
                targets.append(
                    _TargetLabels(
                        target_id=target.id,
                        kind=target.kind,
                        interval_s=target.interval_s,
                        fresh_for_s=stale_bound_s(
                            target.interval_s, config.server.site_silent_after_s
                        ),
                        labels=f'kind="{k}",site="{s}",target="{t}"',
                        state_lines=state_lines,
                    )
                )
            site_lines = {
                current: site_state_family.lines_for(
                    (f'site="{s}",state="{v}"', ONE if v is current else ZERO) for v in _SITE_STATES
                )
                for current in _SITE_STATES
            }
            sites.append(_SiteLabels(site_id, f'site="{s}"', site_lines, tuple(targets)))
        return cls(config, tuple(sites))


@dataclass(frozen=True, slots=True)
class _TargetOutput:
    """What one target adds to the families, for one latest round and freshness: cacheable.

    ``key`` is ``(results.id or None, fresh)``. The state derived from a round
    (:func:`monitor.state.assess_target`) depends on the clock only through whether the
    round is still fresh, so while the key is unchanged the state and every line are too.
    """

    key: tuple[int | None, bool]
    state: TargetState
    lines: tuple[tuple[str, str], ...]
    histogram: HistogramLines | None


@dataclass(frozen=True, slots=True)
class _SiteOutput:
    """What one site's targets add to the families, joined per family: cacheable.

    ``key`` holds the targets' keys in configuration order; while it is unchanged the
    site's blocks are appended as they are (one string per family instead of one per
    sample: most sites have no new round between two scrapes).
    """

    key: tuple[tuple[int | None, bool], ...]
    targets: tuple[_TargetOutput, ...]
    states: tuple[TargetState, ...]
    lines: tuple[tuple[str, str], ...]
    histogram: HistogramLines | None


_PreviousOutputs = Mapping[str, _SiteOutput]


class _Builder:
    """Fill the target and site families of one scrape."""

    def __init__(
        self,
        config: Config,
        labels: _ConfigLabels,
        now: datetime,
        readings: Readings,
    ) -> None:
        self.config = config
        self.labels = labels
        self.now = now
        self.readings = readings
        self.latest = readings.latest
        self.outputs: dict[str, _SiteOutput] = {}
        self.f = {spec.name: spec.new() for spec in cat.ALL if spec not in _SERVER}

    def build(self, previous: _PreviousOutputs) -> list[Family]:
        """Return the families; ``previous`` holds the last scrape's per-site outputs."""
        profiles = self.config.profiles
        silent_after_s = self.config.server.site_silent_after_s
        f = self.f
        rtt = f[cat.PROBE_RTT.name]
        for site in self.labels.sites:
            profile = profiles[self.config.sites[site.site_id].link_profile]
            output = self._targets(site, profile, silent_after_s, previous.get(site.site_id))
            self.outputs[site.site_id] = output
            for family, text in output.lines:
                f[family].add_lines(text)
            if output.histogram is not None:
                rtt.add_histogram(output.histogram)
            self._site(site, profile, list(output.states), silent_after_s)
            self._agent(site)
        self._notifications()
        return list(f.values())

    def _targets(
        self,
        site: _SiteLabels,
        profile: LinkProfile,
        silent_after_s: float,
        previous: _SiteOutput | None,
    ) -> _SiteOutput:
        now = self.now
        rows: list[RoundRow | None] = []
        keys: list[tuple[int | None, bool]] = []
        for target in site.targets:
            row = self.latest.get((site.site_id, target.target_id))
            if row is None:
                keys.append((None, False))
            else:  # row[0]: results.id, row[4]: measured_at (see readings.RoundRow)
                fresh = (now - row[4]).total_seconds() <= target.fresh_for_s
                keys.append((row[0], fresh))
            rows.append(row)
        key = tuple(keys)
        if previous is not None and previous.key == key:
            return previous
        outputs: list[_TargetOutput] = []
        for i, target in enumerate(site.targets):
            output = previous.targets[i] if previous is not None else None
            if output is None or output.key != keys[i]:
                found = rows[i]
                record = None if found is None else LatestRound(*found)
                assessment = assess_target(record, profile, now, target.interval_s, silent_after_s)
                output = self._target_output(target, record, assessment, keys[i], profile)
            outputs.append(output)
        by_family: dict[str, list[str]] = {}
        for output in outputs:
            for family, text in output.lines:
                by_family.setdefault(family, []).append(text)
        histograms = [o.histogram for o in outputs if o.histogram is not None]
        return _SiteOutput(
            key=key,
            targets=tuple(outputs),
            states=tuple(o.state for o in outputs),
            lines=tuple((family, "".join(texts)) for family, texts in by_family.items()),
            histogram=HistogramLines.merge(histograms) if histograms else None,
        )

    def _target_output(
        self,
        target: _TargetLabels,
        row: LatestRound | None,
        assessment: Assessment,
        key: tuple[int | None, bool],
        profile: LinkProfile,
    ) -> _TargetOutput:
        """Format one target's samples (see the module docstring for the presence rules)."""
        labels = target.labels
        state = assessment.state
        out: list[tuple[Spec, str]] = [(cat.TARGET_STATE, target.state_lines[state])]
        histogram = None

        def add(spec: Spec, value: float | str) -> None:
            text = value if isinstance(value, str) else format_value(value)
            out.append((spec, f"{self.f[spec.name].sample_name}{{{labels}}} {text}\n"))

        if row is not None:
            add(cat.PROBE_MEASURED, row.measured_at.timestamp())
        if row is not None and assessment.reason not in _NOT_FRESH:
            is_error = row.status == ProbeStatus.ERROR
            add(cat.PROBE_MONITOR_ERROR, ONE if is_error else ZERO)
            if state is TargetState.DOWN:
                add(cat.PROBE_SCORE, ZERO)
            if not is_error:
                add(cat.PROBE_SUCCESS, ONE if row.status == ProbeStatus.UP else ZERO)
                for spec, measure in (
                    (cat.PROBE_RTT_MEAN, row.rtt_s),
                    (cat.PROBE_LOSS, row.packet_loss),
                    (cat.PROBE_JITTER, row.jitter_s),
                    (cat.PROBE_DUPLICATES, row.duplicates),
                ):
                    if measure is not None:
                        add(spec, measure)
                if state is not TargetState.DOWN:
                    quality = link_score(row.rtt_s, row.packet_loss, row.jitter_s, profile)
                    if quality is not None:
                        add(cat.PROBE_SCORE, quality)
                if target.kind == "icmp":
                    counts = bucket_samples(round_samples(row), cat.RTT_BUCKETS_S)
                    histogram = self.f[cat.PROBE_RTT.name].histogram_lines(
                        labels, counts.cumulative, counts.sum_s
                    )
        lines = tuple((spec.name, text) for spec, text in out)
        return _TargetOutput(key, state, lines, histogram)

    def _site(
        self,
        site: _SiteLabels,
        profile: LinkProfile,
        target_states: list[TargetState],
        silent_after_s: float,
    ) -> None:
        f = self.f
        labels = site.labels
        agent = self.readings.agents.get(site.site_id)
        last_upload_at = agent.last_upload_at if agent else None
        reachable = site_reachable(last_upload_at, self.now, silent_after_s)
        state = site_state(last_upload_at, target_states, self.now, silent_after_s)
        f[cat.SITE_REACHABLE.name].add_text(labels, ONE if reachable else ZERO)
        f[cat.RESULTS_STORED.name].add(labels, agent.results_stored if agent else 0)
        f[cat.SITE_STATE.name].add_lines(site.state_lines[state])
        f[cat.SITE_RTT_THRESHOLD.name].add(labels, profile.rtt_degraded_s)
        f[cat.SITE_LOSS_THRESHOLD.name].add(labels, profile.packet_loss_degraded)
        if profile.jitter_degraded_s is not None:
            f[cat.SITE_JITTER_THRESHOLD.name].add(labels, profile.jitter_degraded_s)
        if agent is None:
            return
        f[cat.SITE_LAST_UPLOAD.name].add(labels, agent.last_upload_at.timestamp())
        f[cat.SITE_UPLOADS.name].add(labels, agent.uploads)

    def _agent(self, site: _SiteLabels) -> None:
        f = self.f
        labels = site.labels
        offset_s = self.readings.clock_offsets.get(site.site_id)
        if offset_s is not None:
            f[cat.SITE_CLOCK_OFFSET.name].add(labels, offset_s)
        warn_s = self.config.site_agent(site.site_id).clock_offset_warn_s
        f[cat.SITE_CLOCK_THRESHOLD.name].add(labels, warn_s)
        report = self.readings.backlogs.get(site.site_id)
        if report is None:
            return
        f[cat.AGENT_BACKLOG.name].add(labels, report.backlog)
        f[cat.AGENT_OLDEST_UNSENT.name].add(labels, max(0.0, report.oldest_unsent_age_s or 0.0))
        f[cat.AGENT_DROPPED.name].add(labels, report.dropped_total)
        f[cat.AGENT_REJECTED.name].add(labels, report.rejected_total)
        f[cat.AGENT_REPORTED.name].add(labels, report.reported_at.timestamp())

    def _notifications(self) -> None:
        attempts = self.f[cat.NOTIFY_ATTEMPTS.name]
        deliveries = self.f[cat.NOTIFY_DELIVERIES.name]
        for channel in self.config.notifications.channels:
            c = escape_label_value(channel)
            for outcome in AttemptOutcome:
                count = self.readings.attempts.get((channel, outcome.value), 0)
                attempts.add(f'channel="{c}",outcome="{outcome}"', count)
            for status in DeliveryStatus:
                count = self.readings.deliveries.get((channel, status.value), 0)
                deliveries.add(f'channel="{c}",status="{status}"', count)
