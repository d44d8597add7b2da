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
from sqlalchemy import Engine
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
    rounds_by_id,
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

# The per-target gauges' sample names: a gauge's samples carry the family name
# (tests/metrics/test_collector_cache.py checks that these families are gauges).
_STATE = cat.TARGET_STATE.name
_MEASURED = cat.PROBE_MEASURED.name
_ERROR = cat.PROBE_MONITOR_ERROR.name
_SCORE = cat.PROBE_SCORE.name
_SUCCESS = cat.PROBE_SUCCESS.name
_RTT_MEAN = cat.PROBE_RTT_MEAN.name
_LOSS = cat.PROBE_LOSS.name
_JITTER = cat.PROBE_JITTER.name
_DUPLICATES = cat.PROBE_DUPLICATES.name

_Key = tuple[int | None, bool]
"""A target output's cache key: ``(results.id of its newest round or None, still fresh)``."""
_NO_ROUND: _Key = (None, False)


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

    The caches keep a scrape cheap, none holding a number that could go stale: the label
    text of every configured target and site; each target's formatted samples keyed by its
    latest round (``results.id``: a stored round never changes) and whether that round is
    still fresh (the only way the clock changes a target's state), joined per site; and
    each site's own samples keyed by the rows and state they come from. Each scrape reads
    every target's newest ``results.id`` from the database first, and reads and formats a
    round only where that id (or its freshness) differs from the cached one, so every
    worker process answers from the database as it is at the scrape, byte for byte what a
    new process would, whatever it cached before. All is rebuilt when the configuration
    object changes; the caches hold one entry per configured site and target, no more.
    Concurrent scrapes are safe: a scrape never changes what it read from the cache, and
    replaces the cache with one assignment.
    """

    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services
        self._cache: _Cache | None = None
        self._readers: tuple[Engine, Engine] | None = None

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
        cache = self._cache
        if cache is None or cache.labels.config is not services.config:
            cache = _Cache(_ConfigLabels.build(services.config), {}, {})
        try:
            with Session(bind=self._reader(services.engine)) as session:
                readings = read_all(session, now)
                builder = _Builder(services.config, cache.labels, now, readings, cache)
                rows = rounds_by_id(session, builder.wanted)
        except SQLAlchemyError as exc:
            log.warning("metrics: could not read the database: %s", exc.__class__.__name__)
            return [_database_up(False), _build_info()]
        families = builder.build(rows)
        # One assignment: a scrape running beside this one sees the old cache or the new.
        self._cache = _Cache(cache.labels, builder.outputs, builder.sites)
        return [*families, _database_up(True), _build_info()]

    def _reader(self, engine: Engine) -> Engine:
        """Return ``engine``'s view for a scrape: one read-only snapshot for all its reads.

        SQLite's deferred read transaction is a snapshot already (WAL); on PostgreSQL the
        default READ COMMITTED would let the round ids and the rounds come from different
        commits, so the scrape runs REPEATABLE READ, read only.
        """
        readers = self._readers
        if readers is None or readers[0] is not engine:
            view = read_only(engine)
            if engine.dialect.name == "postgresql":
                view = engine.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            readers = self._readers = (engine, view)
        return readers[1]


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


def _fresh(measured_at: datetime, target: _TargetLabels, now: datetime) -> bool:
    """Return whether a round measured at ``measured_at`` is fresh at ``now`` (the same
    test as :func:`monitor.state.assess_target`: not older than the stale bound)."""
    return (now - measured_at).total_seconds() <= target.fresh_for_s


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
    ``measured_at`` is the round's (``None`` without one): with the id it tells whether the
    round is still fresh at the next scrape without reading it again.
    """

    key: _Key
    measured_at: datetime | None
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

    key: tuple[_Key, ...]
    targets: tuple[_TargetOutput, ...]
    states: tuple[TargetState, ...]
    lines: tuple[tuple[str, str], ...]
    histogram: HistogramLines | None


@dataclass(frozen=True, slots=True)
class _SiteLines:
    """A site's own samples (reachability, state, agent, thresholds, spool report), as
    ``(family, line)`` pairs: cacheable.

    ``key`` holds all they are made of beyond the configuration: the agent row, the spool
    report (with its oldest unsent result's age, which moves with the clock), the clock
    offset, whether the site is reachable and its state.
    """

    key: tuple[object, ...]
    lines: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Cache:
    """What the collector keeps between scrapes: the label text of one configuration and
    the per-site outputs made with it (replaced together, so they always match).

    ``outputs`` holds each site's target samples, ``sites`` each site's own samples, by
    site id; only sites of the configuration, so the cache never outgrows it.
    """

    labels: _ConfigLabels
    outputs: Mapping[str, _SiteOutput]
    sites: Mapping[str, _SiteLines]


@dataclass(frozen=True, slots=True)
class _SitePlan:
    """One site's targets at this scrape, before any round is read.

    ``ids[i]`` is target ``i``'s newest ``results.id`` (``None``: no round stored);
    ``keys[i]`` its output key when the cached output still holds for it, else ``None``
    (its round must be read and formatted).
    """

    site: _SiteLabels
    previous: _SiteOutput | None
    ids: tuple[int | None, ...]
    keys: tuple[_Key | None, ...]


class _Builder:
    """Fill the target and site families of one scrape.

    Made with the readings and the previous scrape's outputs, it lists in :attr:`wanted`
    the ``results.id`` of the rounds it must read (new ones, and those whose freshness
    changed); :meth:`build` then takes those rows.
    """

    def __init__(
        self,
        config: Config,
        labels: _ConfigLabels,
        now: datetime,
        readings: Readings,
        previous: _Cache,
    ) -> None:
        self.config = config
        self.labels = labels
        self.now = now
        self.readings = readings
        self.outputs: dict[str, _SiteOutput] = {}
        self.sites: dict[str, _SiteLines] = {}
        self.previous_sites = previous.sites
        self.f = {spec.name: spec.new() for spec in cat.ALL if spec not in _SERVER}
        self.wanted: list[int] = []
        outputs = previous.outputs
        self.plans = [self._plan(site, outputs.get(site.site_id)) for site in labels.sites]

    def _plan(self, site: _SiteLabels, previous: _SiteOutput | None) -> _SitePlan:
        """Compare each target's newest id with the cached output; note the rows to read."""
        now = self.now
        newest = self.readings.newest.get(site.site_id, {})
        ids = tuple([newest.get(target.target_id) for target in site.targets])
        keys: list[_Key | None] = []
        olds = previous.targets if previous is not None else (None,) * len(ids)
        for row_id, target, old in zip(ids, site.targets, olds, strict=True):
            if row_id is None:
                keys.append(_NO_ROUND)
            elif (
                old is not None
                and old.key[0] == row_id
                and old.measured_at is not None
                and _fresh(old.measured_at, target, now) is old.key[1]
            ):
                keys.append(old.key)
            else:
                keys.append(None)
                self.wanted.append(row_id)
        return _SitePlan(site, previous, ids, tuple(keys))

    def build(self, rows: Mapping[int, RoundRow]) -> list[Family]:
        """Return the families; ``rows`` holds the rounds of :attr:`wanted`, by id."""
        profiles = self.config.profiles
        silent_after_s = self.config.server.site_silent_after_s
        f = self.f
        rtt = f[cat.PROBE_RTT.name]
        sinks = {name: family.line_sink() for name, family in f.items()}
        for plan in self.plans:
            site = plan.site
            profile = profiles[self.config.sites[site.site_id].link_profile]
            output = self._targets(plan, profile, silent_after_s, rows)
            self.outputs[site.site_id] = output
            for family, text in output.lines:
                sinks[family](text)
            if output.histogram is not None:
                rtt.add_histogram(output.histogram)
            own = self._site_lines(
                site, profile, output.states, silent_after_s, self.previous_sites.get(site.site_id)
            )
            self.sites[site.site_id] = own
            for family, text in own.lines:
                sinks[family](text)
        self._notifications()
        return list(f.values())

    def _targets(
        self,
        plan: _SitePlan,
        profile: LinkProfile,
        silent_after_s: float,
        rows: Mapping[int, RoundRow],
    ) -> _SiteOutput:
        previous = plan.previous
        if previous is not None and previous.key == plan.keys:
            return previous  # every key known and unchanged (no key is None)
        now = self.now
        outputs: list[_TargetOutput] = []
        for i, target in enumerate(plan.site.targets):
            key = plan.keys[i]
            old = previous.targets[i] if previous is not None else None
            if key is not None and old is not None and old.key == key:
                outputs.append(old)
                continue
            row_id = plan.ids[i]
            found = None if row_id is None else rows.get(row_id)
            if found is None:  # no round (one read in the same snapshot is never missing)
                record, key = None, _NO_ROUND
            else:
                record = LatestRound(*found)
                key = (record.row_id, _fresh(record.measured_at, target, now))
            assessment = assess_target(record, profile, now, target.interval_s, silent_after_s)
            outputs.append(self._target_output(target, record, assessment, key, profile))
        key_now = tuple(o.key for o in outputs)
        if previous is not None and previous.key == key_now:
            return previous
        by_family: dict[str, list[str]] = {}
        for output in outputs:
            for family, text in output.lines:
                by_family.setdefault(family, []).append(text)
        histograms = [o.histogram for o in outputs if o.histogram is not None]
        return _SiteOutput(
            key=key_now,
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
        key: _Key,
        profile: LinkProfile,
    ) -> _TargetOutput:
        """Format one target's samples (see the module docstring for the presence rules)."""
        labels = target.labels
        state = assessment.state
        out: list[tuple[str, str]] = [(_STATE, target.state_lines[state])]
        histogram = None
        if row is not None:
            stamp = format_value(row.measured_at.timestamp())
            out.append((_MEASURED, f"{_MEASURED}{{{labels}}} {stamp}\n"))
        if row is not None and assessment.reason not in _NOT_FRESH:
            is_error = row.status == ProbeStatus.ERROR
            out.append((_ERROR, f"{_ERROR}{{{labels}}} {ONE if is_error else ZERO}\n"))
            if state is TargetState.DOWN:
                out.append((_SCORE, f"{_SCORE}{{{labels}}} {ZERO}\n"))
            if not is_error:
                up = row.status == ProbeStatus.UP
                out.append((_SUCCESS, f"{_SUCCESS}{{{labels}}} {ONE if up else ZERO}\n"))
                for name, measure in (
                    (_RTT_MEAN, row.rtt_s),
                    (_LOSS, row.packet_loss),
                    (_JITTER, row.jitter_s),
                    (_DUPLICATES, row.duplicates),
                ):
                    if measure is not None:
                        out.append((name, f"{name}{{{labels}}} {format_value(measure)}\n"))
                if state is not TargetState.DOWN:
                    quality = link_score(row.rtt_s, row.packet_loss, row.jitter_s, profile)
                    if quality is not None:
                        out.append((_SCORE, f"{_SCORE}{{{labels}}} {format_value(quality)}\n"))
                if target.kind == "icmp":
                    counts = bucket_samples(round_samples(row), cat.RTT_BUCKETS_S)
                    histogram = self.f[cat.PROBE_RTT.name].histogram_lines(
                        labels, counts.cumulative, counts.sum_s
                    )
        measured_at = None if row is None else row.measured_at
        return _TargetOutput(key, measured_at, state, tuple(out), histogram)

    def _site_lines(
        self,
        site: _SiteLabels,
        profile: LinkProfile,
        target_states: tuple[TargetState, ...],
        silent_after_s: float,
        previous: _SiteLines | None,
    ) -> _SiteLines:
        """Return the site's own samples: reachability, state, agent, thresholds, spool."""
        now = self.now
        agent = self.readings.agents.get(site.site_id)
        last_upload_at = agent.last_upload_at if agent else None
        reachable = site_reachable(last_upload_at, now, silent_after_s)
        state = site_state(last_upload_at, target_states, now, silent_after_s)
        offset_s = self.readings.clock_offsets.get(site.site_id)
        report = self.readings.backlogs.get(site.site_id)
        key = (agent, report, offset_s, reachable, state)
        if previous is not None and previous.key == key:
            return previous
        f = self.f
        labels = site.labels
        out: list[tuple[str, str]] = []

        def add(spec: Spec, value: float | str) -> None:
            text = value if isinstance(value, str) else format_value(value)
            out.append((spec.name, f"{f[spec.name].sample_name}{{{labels}}} {text}\n"))

        add(cat.SITE_REACHABLE, ONE if reachable else ZERO)
        add(cat.RESULTS_STORED, agent.results_stored if agent else 0)
        out.append((cat.SITE_STATE.name, site.state_lines[state]))
        add(cat.SITE_RTT_THRESHOLD, profile.rtt_degraded_s)
        add(cat.SITE_LOSS_THRESHOLD, profile.packet_loss_degraded)
        if profile.jitter_degraded_s is not None:
            add(cat.SITE_JITTER_THRESHOLD, profile.jitter_degraded_s)
        if agent is not None:
            add(cat.SITE_LAST_UPLOAD, agent.last_upload_at.timestamp())
            add(cat.SITE_UPLOADS, agent.uploads)
        if offset_s is not None:
            add(cat.SITE_CLOCK_OFFSET, offset_s)
        add(cat.SITE_CLOCK_THRESHOLD, self.config.site_agent(site.site_id).clock_offset_warn_s)
        if report is not None:
            add(cat.AGENT_BACKLOG, report.backlog)
            add(cat.AGENT_OLDEST_UNSENT, max(0.0, report.oldest_unsent_age_s or 0.0))
            add(cat.AGENT_DROPPED, report.dropped_total)
            add(cat.AGENT_REJECTED, report.rejected_total)
            add(cat.AGENT_REPORTED, report.reported_at.timestamp())
        return _SiteLines(key, tuple(out))

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
