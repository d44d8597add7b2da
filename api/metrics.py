"""Prometheus ``GET /metrics`` for the server: a collector that reads the database per scrape.

Each app gets its own ``CollectorRegistry`` (never the global default one). The collector
holds no numbers: at every scrape it reads the latest result of each target *in the current
configuration* (one index seek each), the ``site_agents`` rows and a per-site result count.
So every uvicorn worker answers the same, and a target or site removed from the config
leaves no stale series behind.

Exported (labels are stable ids only: ``site``, ``target``, ``kind``; never error text or
addresses). A value that was not measured has no sample (never NaN or -1). Probe values
(``success``, ``rtt``, ``loss``, ``jitter``, ``duplicates``, ``monitor_error``) come from the
latest result only while it is fresh (see :func:`monitor.state.stale_bound_s`), and the
measures not at all from a monitor-side error; the timestamp of the latest result is always
there, so staleness stays visible.

- ``linkwatch_probe_success`` 1 up, 0 down; absent on a monitor-side error.
- ``linkwatch_probe_monitor_error`` 1 when the latest round could not measure, else 0.
- ``linkwatch_probe_rtt_seconds``, ``linkwatch_probe_packet_loss_ratio``,
  ``linkwatch_probe_jitter_seconds``, ``linkwatch_probe_duplicates``: latest round.
- ``linkwatch_probe_last_measured_timestamp_seconds``: agent clock, Unix seconds.
- ``linkwatch_target_state{state}`` / ``linkwatch_site_state{state}``: one series per state
  value, 1 for the current one (a bounded "stateset").
- ``linkwatch_site_reachable``, ``linkwatch_site_last_upload_timestamp_seconds``,
  ``linkwatch_site_clock_offset_seconds`` (server minus agent clock, transit included),
  ``linkwatch_site_uploads_total``, ``linkwatch_results_stored_total`` (results stored
  per site: a count over the results index, so its cost grows with history, and it would
  drop if old results were deleted).
- ``linkwatch_database_up`` 0 when the database could not be read (then only this and
  build info are exported), ``linkwatch_build_info``.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.services import Services
from api.status.queries import results_stored_by_site
from api.status.snapshot import SiteView, StatusSnapshot, take_snapshot
from monitor.state import SiteState, TargetState
from monitor.storage.db import read_only
from probes.result import ProbeStatus

log = logging.getLogger(__name__)

TARGET_LABELS = ("site", "target", "kind")


def _version() -> str:
    try:
        return metadata.version("linkwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


class LinkwatchCollector(Collector):
    """Collect Linkwatch's metrics from the database at scrape time.

    ``services`` returns the app's :class:`api.services.Services` (looked up per scrape, so
    the collector can be registered before the app is fully wired).
    """

    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services

    def describe(self) -> Iterable[Metric]:
        """Describe nothing up front: the series depend on the database at scrape time."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Read the database and yield every metric family (see the module docstring)."""
        services = self._services()
        database_up = GaugeMetricFamily(
            "linkwatch_database_up", "Whether the server could read its database (1) or not (0)."
        )
        try:
            with Session(bind=read_only(services.engine)) as session:
                snapshot = take_snapshot(services.config, session, services.clock())
                stored = results_stored_by_site(session)
        except SQLAlchemyError as exc:
            log.warning("metrics: could not read the database: %s", exc.__class__.__name__)
            database_up.add_metric([], 0)
            yield database_up
            yield _build_info()
            return
        database_up.add_metric([], 1)
        yield database_up
        yield from _target_families(snapshot)
        yield from _site_families(snapshot, stored)
        yield _build_info()


def _build_info() -> Metric:
    info = InfoMetricFamily("linkwatch_build", "Linkwatch version and Python version.")
    info.add_metric([], {"version": _version(), "python_version": platform.python_version()})
    return info


def _target_families(snapshot: StatusSnapshot) -> Iterator[Metric]:
    def gauge(name: str, doc: str, labels: tuple[str, ...] = TARGET_LABELS) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=labels)

    success = gauge("linkwatch_probe_success", "Latest round: target answered (1) or not (0).")
    monitor_error = gauge(
        "linkwatch_probe_monitor_error",
        "Latest round: the monitor could not measure (1, not a target failure) or could (0).",
    )
    rtt = gauge("linkwatch_probe_rtt_seconds", "Latest round's round-trip time (ICMP: mean).")
    loss = gauge("linkwatch_probe_packet_loss_ratio", "Latest round's packet loss, ratio 0-1.")
    jitter = gauge("linkwatch_probe_jitter_seconds", "Latest round's jitter (RFC 3550 style).")
    duplicates = gauge("linkwatch_probe_duplicates", "Latest round's duplicate echo replies.")
    measured = gauge(
        "linkwatch_probe_last_measured_timestamp_seconds",
        "When the latest stored round was measured (agent clock), Unix time.",
    )
    state = gauge(
        "linkwatch_target_state",
        "Derived target state: 1 for the current state, 0 for the others.",
        (*TARGET_LABELS, "state"),
    )
    for site in snapshot.sites:
        for target in site.targets:
            labels = [site.site_id, target.target_id, target.kind.value]
            for value in TargetState:
                state.add_metric([*labels, value.value], 1 if target.state is value else 0)
            latest = target.latest
            if latest is None:
                continue
            measured.add_metric(labels, latest.measured_at.timestamp())
            if not target.fresh:
                continue
            monitor_error.add_metric(labels, 1 if latest.status == ProbeStatus.ERROR else 0)
            reading = target.measured
            if reading is None:
                continue
            success.add_metric(labels, 1 if reading.status == ProbeStatus.UP else 0)
            for family, measure in (
                (rtt, reading.rtt_s),
                (loss, reading.packet_loss),
                (jitter, reading.jitter_s),
                (duplicates, reading.duplicates),
            ):
                if measure is not None:
                    family.add_metric(labels, float(measure))
    yield from (success, monitor_error, rtt, loss, jitter, duplicates, measured, state)


def _site_families(snapshot: StatusSnapshot, stored: dict[str, int]) -> Iterator[Metric]:
    reachable = GaugeMetricFamily(
        "linkwatch_site_reachable",
        "The site's agent uploaded within server.site_silent_after_s (1) or not (0).",
        labels=["site"],
    )
    last_upload = GaugeMetricFamily(
        "linkwatch_site_last_upload_timestamp_seconds",
        "When the site's agent last uploaded (server clock), Unix time.",
        labels=["site"],
    )
    offset = GaugeMetricFamily(
        "linkwatch_site_clock_offset_seconds",
        "Server clock minus the site agent's clock at its last upload (transit included).",
        labels=["site"],
    )
    uploads = CounterMetricFamily(
        "linkwatch_site_uploads", "Upload batches accepted from the site.", labels=["site"]
    )
    results = CounterMetricFamily(
        "linkwatch_results_stored", "Probe results stored for the site.", labels=["site"]
    )
    state = GaugeMetricFamily(
        "linkwatch_site_state",
        "Derived site state: 1 for the current state, 0 for the others.",
        labels=["site", "state"],
    )
    for site in snapshot.sites:
        _add_site(site, stored, reachable, last_upload, offset, uploads, results)
        for value in SiteState:
            state.add_metric([site.site_id, value.value], 1 if site.state is value else 0)
    yield from (reachable, last_upload, offset, uploads, results, state)


def _add_site(
    site: SiteView,
    stored: dict[str, int],
    reachable: GaugeMetricFamily,
    last_upload: GaugeMetricFamily,
    offset: GaugeMetricFamily,
    uploads: CounterMetricFamily,
    results: CounterMetricFamily,
) -> None:
    labels = [site.site_id]
    reachable.add_metric(labels, 1 if site.reachable else 0)
    results.add_metric(labels, stored.get(site.site_id, 0))
    agent = site.agent
    if agent is None:
        return
    last_upload.add_metric(labels, agent.last_upload_at.timestamp())
    uploads.add_metric(labels, agent.uploads)
    if agent.clock_offset_s is not None:
        offset.add_metric(labels, agent.clock_offset_s)


def install_metrics(app: FastAPI) -> None:
    """Add ``GET /metrics`` to ``app``, served from a registry of its own.

    The registry is kept in ``app.state.metrics_registry``; the collector reads
    ``app.state.services`` at each scrape. Text format 0.0.4 by default; OpenMetrics or
    text 1.0.0 when the scraper's ``Accept`` header asks for it.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LinkwatchCollector(lambda: app.state.services))
    app.state.metrics_registry = registry

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})
