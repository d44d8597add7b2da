"""Run the central service under uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn

from monitor.config import Config, ConfigError

log = logging.getLogger("linkwatch.server")


def run_server(
    config: Config, *, host: str | None = None, port: int | None = None, verbose: bool = False
) -> int:
    """Serve the app for ``config`` until SIGINT/SIGTERM; return the exit code.

    The schema is never created here: if the database is not at the alembic head the
    service still starts, logs how to fix it, and ``/readyz`` answers 503 until it is.
    """
    from api.app import create_app
    from api.auth import SiteTokens
    from monitor.logging_setup import uvicorn_log_config
    from monitor.storage.db import make_engine
    from monitor.storage.migrate import is_at_head

    try:
        SiteTokens.from_config(config)  # every site's token is known before anything starts
    except ConfigError as exc:
        for line in exc.messages:
            print(f"linkwatch: {line}", file=sys.stderr)
        return 2
    engine = make_engine(config.server.database_url)
    try:
        if not is_at_head(engine):
            log.error(
                "database schema is not at the newest revision; run "
                "`linkwatch db upgrade --config FILE` (the service reports not ready until then)"
            )
    except Exception as exc:  # database down: start anyway, /readyz tells
        log.error("database not reachable at start: %s", exc)
    try:
        app = create_app(config, engine=engine)
    except ConfigError as exc:
        for line in exc.messages:
            print(f"linkwatch: {line}", file=sys.stderr)
        engine.dispose()
        return 2
    uv_config = uvicorn.Config(
        app,
        host=host or config.server.host,
        port=port or config.server.port,
        log_config=uvicorn_log_config(verbose),
        log_level="debug" if verbose else "info",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(uv_config)
    server.run()
    engine.dispose()
    return 0 if server.started else 1
