"""An app factory for ``uvicorn --factory --workers N``: the real app, config from a variable.

``LINKWATCH_TEST_CONFIG`` names the YAML file. Each response carries ``X-Worker-Pid`` so the
test can tell which worker process answered (a test seam; the product has no such header).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response

from api.app import create_app
from monitor.config_loader import load_config


def create() -> FastAPI:
    """Build the app for the file named by ``LINKWATCH_TEST_CONFIG`` (workers off)."""
    app = create_app(load_config(Path(os.environ["LINKWATCH_TEST_CONFIG"])), run_workers=False)

    @app.middleware("http")
    async def worker_pid(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    return app
