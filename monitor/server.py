"""Run the central service under uvicorn."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

from monitor.config import Config, ConfigError

log = logging.getLogger("linkwatch.server")


def run_server(
    config: Config, *, host: str | None = None, port: int | None = None, verbose: bool = False
) -> int:
    """Serve the app for ``config`` until SIGINT/SIGTERM; return the exit code.

    0 after a graceful shutdown on SIGTERM (in-flight requests finished, within
    10 s), 1 if the server never started, 2 for a configuration error. SIGINT (Ctrl-C)
    keeps uvicorn's behaviour: it is raised again after the shutdown.

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
    with _sigterm_ends_cleanly(server):
        server.run()
    engine.dispose()
    return 0 if server.started else 1


@contextmanager
def _sigterm_ends_cleanly(server: uvicorn.Server) -> Iterator[None]:
    """Make SIGTERM end ``linkwatch server`` with status 0 once uvicorn has shut down.

    uvicorn's ``Server.capture_signals`` handles SIGTERM itself while serving (graceful
    shutdown: no new connection, in-flight requests finish), then restores the handler it
    found and raises the signal again so that the process "dies of it". With the default
    handler that is status 143, which supervisors log as a failure although the shutdown was
    clean. The handler it finds is this one: it asks ``server`` to stop (which matters only
    for a signal arriving before uvicorn took over) and logs, so ``run`` returns and the
    command exits 0. After the block SIGTERM has its previous handler again. Only the main
    thread may set handlers; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        # Only flags here: logging from a signal handler could re-enter a stream write the
        # interrupted code was in the middle of.
        server.should_exit = True
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            log.info("stopped by %s", signal.Signals(received[0]).name)
