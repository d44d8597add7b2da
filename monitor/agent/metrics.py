"""The agent's own Prometheus metrics, read from an :class:`AgentSnapshot` at scrape time.

A custom collector on a registry made per agent (:func:`agent_registry`), never the
global one. Every series has the label ``site``; per-target series add ``target`` and
``kind``. A value not known (no upload yet, nothing waiting, not measured) has no sample,
never NaN or -1.

- ``linkwatch_agent_backlog_results``: results waiting in the spool.
- ``linkwatch_agent_oldest_unsent_age_seconds``: age of the oldest waiting result.
- ``linkwatch_agent_last_upload_timestamp_seconds``: last acknowledged upload, Unix time.
- ``linkwatch_agent_clock_offset_seconds``: server clock minus agent clock (last upload);
  ``linkwatch_agent_clock_offset_warn_seconds``: the threshold (``clock_offset_warn_s``);
  ``linkwatch_agent_clock_offset_flagged``: 1 when the offset's magnitude is over it.
- ``linkwatch_agent_dropped_results_total{reason}``: results dropped unsent,
  ``reason`` = ``spool_full`` or ``too_old`` (persistent across restarts).
- ``linkwatch_agent_rejected_results_total``: results the server refused (persistent);
  ``linkwatch_agent_rejected_waiting_results``: those kept aside now.
- ``linkwatch_agent_uploaded_results_total``, ``linkwatch_agent_upload_requests_total``,
  ``linkwatch_agent_upload_failures_total``, ``linkwatch_agent_upload_bytes_total``
  (since the agent started), ``linkwatch_agent_upload_consecutive_failures``.
- ``linkwatch_agent_upload_budget_bytes`` / ``linkwatch_agent_upload_budget_used_bytes``:
  the hourly budget and the bytes counted against it in the last hour (only with a budget).
- Per target: ``linkwatch_agent_probe_success`` (1 up, 0 down, absent on a monitor-side
  error), ``linkwatch_agent_probe_rtt_seconds``, ``linkwatch_agent_probe_packet_loss_ratio``,
  ``linkwatch_agent_probe_jitter_seconds``,
  ``linkwatch_agent_probe_last_measured_timestamp_seconds``, ``linkwatch_agent_rounds_total``,
  and ``linkwatch_agent_target_state{state}`` (1 for the current state, 0 for the others).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.agent.status import AgentSnapshot
from monitor.state import TargetState
from probes.result import ProbeStatus

_TARGET_LABELS = ("site", "target", "kind")


class AgentCollector(Collector):
    """Yield the agent's metrics from ``snapshot()`` (called once per scrape)."""

    def __init__(self, snapshot: Callable[[], AgentSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        """Describe nothing up front (the per-target series depend on the configuration)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Take one snapshot and yield every family (see the module docstring)."""
        snap = self._snapshot()
        yield from _agent_families(snap)
        yield from _target_families(snap)


def agent_registry(snapshot: Callable[[], AgentSnapshot]) -> CollectorRegistry:
    """Return a new registry holding only an :class:`AgentCollector` on ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(snapshot))
    return registry


def _gauge(name: str, doc: str, value: float | None, site: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["site"])
    if value is not None:
        family.add_metric([site], value)
    return family


def _counter(name: str, doc: str, value: float, site: str) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["site"])
    family.add_metric([site], value)
    return family


def _agent_families(s: AgentSnapshot) -> Iterator[Metric]:
    site = s.site_id
    yield _gauge(
        "linkwatch_agent_backlog_results", "Results waiting in the spool.", s.backlog, site
    )
    yield _gauge(
        "linkwatch_agent_oldest_unsent_age_seconds",
        "Age of the oldest result waiting in the spool (by its measurement time).",
        s.oldest_unsent_age_s,
        site,
    )
    yield _gauge(
        "linkwatch_agent_last_upload_timestamp_seconds",
        "When the server last acknowledged an upload, Unix time (agent clock).",
        None if s.last_upload_at is None else s.last_upload_at.timestamp(),
        site,
    )
    yield _gauge(
        "linkwatch_agent_clock_offset_seconds",
        "Server clock minus this agent's clock at the last acknowledged upload.",
        s.clock_offset_s,
        site,
    )
    yield _gauge(
        "linkwatch_agent_clock_offset_warn_seconds",
        "Clock offset magnitude over which the agent's clock is flagged.",
        s.clock_offset_warn_s,
        site,
    )
    yield _gauge(
        "linkwatch_agent_clock_offset_flagged",
        "1 when the clock offset's magnitude is over the threshold, else 0.",
        None if s.clock_offset_s is None else float(s.clock_offset_flagged),
        site,
    )
    dropped = CounterMetricFamily(
        "linkwatch_agent_dropped_results",
        "Results dropped from the spool before upload, by reason (since the spool was made).",
        labels=["site", "reason"],
    )
    dropped.add_metric([site, "spool_full"], s.dropped_full_total)
    dropped.add_metric([site, "too_old"], s.dropped_age_total)
    yield dropped
    yield _counter(
        "linkwatch_agent_rejected_results",
        "Results the server refused, kept aside (since the spool was made).",
        s.rejected_total,
        site,
    )
    yield _gauge(
        "linkwatch_agent_rejected_waiting_results",
        "Refused results kept aside in the spool now.",
        s.rejected_waiting,
        site,
    )
    yield _counter(
        "linkwatch_agent_uploaded_results",
        "Results the server acknowledged (since the agent started).",
        s.results_uploaded_total,
        site,
    )
    yield _counter(
        "linkwatch_agent_upload_requests",
        "Upload requests sent (since the agent started).",
        s.requests_total,
        site,
    )
    yield _counter(
        "linkwatch_agent_upload_failures",
        "Upload attempts that failed (since the agent started).",
        s.failures_total,
        site,
    )
    yield _counter(
        "linkwatch_agent_upload_bytes",
        "Bytes counted for uploads: bodies plus estimated headers (since the agent started).",
        s.bytes_sent_total,
        site,
    )
    yield _gauge(
        "linkwatch_agent_upload_consecutive_failures",
        "Failed upload attempts since the last success.",
        s.consecutive_failures,
        site,
    )
    yield _gauge(
        "linkwatch_agent_upload_budget_bytes",
        "The upload budget: bytes allowed in any hour (absent: no budget).",
        s.budget_bytes_per_hour,
        site,
    )
    yield _gauge(
        "linkwatch_agent_upload_budget_used_bytes",
        "Bytes counted against the upload budget in the last hour.",
        s.budget_used_bytes,
        site,
    )


def _target_families(s: AgentSnapshot) -> Iterator[Metric]:
    def gauge(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=_TARGET_LABELS)

    success = gauge("linkwatch_agent_probe_success", "Latest round: answered (1) or not (0).")
    rtt = gauge("linkwatch_agent_probe_rtt_seconds", "Latest round's round-trip time.")
    loss = gauge("linkwatch_agent_probe_packet_loss_ratio", "Latest round's packet loss, 0-1.")
    jitter = gauge("linkwatch_agent_probe_jitter_seconds", "Latest round's jitter.")
    measured = gauge(
        "linkwatch_agent_probe_last_measured_timestamp_seconds",
        "When the latest round was measured, Unix time (agent clock).",
    )
    rounds = CounterMetricFamily(
        "linkwatch_agent_rounds", "Probe rounds run since the agent started.", labels=_TARGET_LABELS
    )
    state = GaugeMetricFamily(
        "linkwatch_agent_target_state",
        "Target state as this agent derives it: 1 for the current state, 0 for the others.",
        labels=[*_TARGET_LABELS, "state"],
    )
    for t in s.targets:
        labels = [s.site_id, t.target_id, t.kind]
        rounds.add_metric(labels, t.rounds_total)
        for value in TargetState:
            state.add_metric([*labels, value.value], 1 if t.state is value else 0)
        if t.measured_at is None:
            continue
        measured.add_metric(labels, t.measured_at.timestamp())
        if t.status is not None and t.status is not ProbeStatus.ERROR:
            success.add_metric(labels, 1 if t.status is ProbeStatus.UP else 0)
        for family, measure in ((rtt, t.rtt_s), (loss, t.packet_loss), (jitter, t.jitter_s)):
            if measure is not None:
                family.add_metric(labels, measure)
    yield from (success, rtt, loss, jitter, measured, rounds, state)
