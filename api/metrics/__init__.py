"""Prometheus ``GET /metrics`` for the server, read from the database at each scrape.

Each app gets its own collector (and its own ``prometheus_client`` registry holding it,
never the global default one); nothing is counted in process memory, so every uvicorn
worker answers the same and a removed target leaves no stale series. The names, types,
labels and units are listed in :mod:`api.metrics.catalogue` and ``docs/metrics.md``.

Modules: :mod:`~api.metrics.catalogue` (the families), :mod:`~api.metrics.readings` (the
database reads), :mod:`~api.metrics.collector` (families from the readings),
:mod:`~api.metrics.exposition` (text 0.0.4 and OpenMetrics 1.0.0 output).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CollectorRegistry

from api.auth import require_reader
from api.metrics.collector import LinkwatchCollector
from api.metrics.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    render,
    wants_openmetrics,
)

__all__ = ["LinkwatchCollector", "install_metrics"]


def install_metrics(app: FastAPI) -> None:
    """Add ``GET /metrics`` to ``app``.

    The collector is kept in ``app.state.metrics_collector`` and registered in a registry
    of the app's own, ``app.state.metrics_registry``; it reads ``app.state.services`` at
    each scrape. Text format 0.0.4 by default; OpenMetrics 1.0.0 when the scraper's
    ``Accept`` header asks for it (Prometheus does).
    """
    collector = LinkwatchCollector(lambda: app.state.services)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    app.state.metrics_collector = collector
    app.state.metrics_registry = registry

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require_reader)])
    def metrics(request: Request) -> Response:
        openmetrics = wants_openmetrics(request.headers.get("accept", ""))
        body = render(collector.families(), openmetrics)
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        return Response(body, headers={"Content-Type": content_type})
