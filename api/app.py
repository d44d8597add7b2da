"""The central service's FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from api.auth import SiteTokens, require_reader
from api.metrics import install_metrics
from api.routes import alerts, export, health, incidents, ingest, query
from api.services import Services, utc_now
from api.status.views import router as status_router
from monitor.config import Config
from monitor.storage.db import make_engine
from monitor.storage.sync import ConfigMirror
from monitor.workers import background_workers

log = logging.getLogger("linkwatch.api")

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def create_app(
    config: Config,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] | None = None,
    run_workers: bool = True,
) -> FastAPI:
    """Build the server app for ``config``: routes, services, startup work.

    Args:
        config: the validated configuration.
        engine: the database; by default one is made from ``config.server.database_url``
            (and disposed at shutdown). A given engine stays the caller's.
        clock: "now" as an aware UTC datetime; the real clock by default.
        run_workers: start the background workers (``monitor.workers``: state evaluator,
            notification delivery, rollups) with the app; tests of one route may say no.

    Site tokens are resolved here (ConfigError if a ``token_env`` variable is unset or two
    sites share a token). Nothing touches the database until startup, which copies the
    configuration's sites and targets into it if its schema is at the alembic head (else
    ``/readyz`` answers 503 until ``linkwatch db upgrade`` has run). The schema itself is
    never created here.
    """
    tokens = SiteTokens.from_config(config)
    own_engine = engine is None
    db = engine if engine is not None else make_engine(config.server.database_url)
    services = Services(
        config=config,
        engine=db,
        sessions=sessionmaker(db, expire_on_commit=False),
        clock=clock or utc_now,
    )
    mirror = ConfigMirror(config, db, services.sessions, services.clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(mirror.ensure)
        stop = asyncio.Event()
        tasks = (
            [
                asyncio.create_task(worker(services, stop), name=f"linkwatch-{name}")
                for name, worker in background_workers()
            ]
            if run_workers
            else []
        )
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                try:
                    await asyncio.wait_for(task, timeout=10)
                except Exception:  # a worker that fails to stop must not block shutdown
                    log.exception("background worker %s did not stop cleanly", task.get_name())
            if own_engine:
                db.dispose()

    app = FastAPI(
        title=config.server.title,
        summary="Linkwatch central service: ingest, JSON API, status page, metrics.",
        version="1",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.site_tokens = tokens
    app.state.config_mirror = mirror
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)
    app.include_router(health.router)
    app.include_router(ingest.router)
    # In private mode the data routes need a status-page login or the operator token.
    private = [Depends(require_reader)]
    app.include_router(query.router, dependencies=private)
    app.include_router(incidents.router, dependencies=private)
    app.include_router(alerts.router, dependencies=private)
    app.include_router(export.router, dependencies=private)
    app.include_router(status_router)
    install_metrics(app)
    return app


def field_path(loc: Sequence[Any]) -> str:
    """Return a validation error location as a field path: ``results[0].packet_loss``.

    A leading ``body``/``query``/``path``/``header``/``cookie`` is dropped unless it is all
    there is (a body that is not JSON at all reads ``body``).
    """
    parts = list(loc)
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """Answer 422 with one ``{loc, msg, type}`` per problem; ``msg`` starts with the field."""
    assert isinstance(exc, RequestValidationError)
    detail = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        where = field_path(loc)
        message = str(error.get("msg", "invalid value"))
        detail.append(
            {
                "loc": loc,
                "msg": f"{where}: {message}" if where else message,
                "type": str(error.get("type", "value_error")),
            }
        )
    return JSONResponse(status_code=422, content={"detail": detail})


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer 500 with one sentence; the traceback goes to the log, never to the client."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500,
        content={"detail": "The server failed on this request; the cause is in its log."},
    )
