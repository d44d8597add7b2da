"""Serve the agent's local page (``/``) and ``/metrics`` on the site LAN, in the agent's loop.

A small Starlette app under uvicorn, started as a task of the agent's own event loop (no
thread, no second process). The socket is bound here first, so a busy or forbidden address
is one clear log line and the agent goes on measuring without its page; uvicorn's own
signal handling is switched off (the agent handles SIGINT/SIGTERM itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Generator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from monitor.agent.metrics import agent_registry
from monitor.agent.page import page_environment, render_page
from monitor.agent.status import AgentSnapshot
from monitor.config import split_listen

log = logging.getLogger("linkwatch.agent.http")

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


def build_local_app(snapshot: Callable[[], AgentSnapshot]) -> Starlette:
    """Return the ASGI app: ``GET /`` the page, ``GET /metrics`` Prometheus text.

    ``snapshot`` is blocking (it reads the spool) and is called in a worker thread.
    """
    env = page_environment()
    registry = agent_registry(snapshot)

    async def page(_request: Request) -> Response:
        snap = await run_in_threadpool(snapshot)
        return HTMLResponse(render_page(env, snap), headers={"Cache-Control": "no-store"})

    async def metrics(_request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/", page), Route("/metrics", metrics)])


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the agent owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class LocalHttp:
    """The running local page; :meth:`stop` ends it."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], address: str) -> None:
        self._server = server
        self._task = task
        self.address = address

    async def stop(self) -> None:
        """Stop serving and wait for the server task (bounded)."""
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=_STOP_TIMEOUT_S)
        except Exception as exc:  # never let the page stop the agent's shutdown
            log.warning("the local page did not stop cleanly: %s", exc)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_local_http(listen: str, snapshot: Callable[[], AgentSnapshot]) -> LocalHttp | None:
    """Serve the local page on ``listen`` (``host:port``); ``None`` if it cannot be served.

    The reason is logged as one sentence naming ``agent.listen``; the agent carries on.
    """
    host, port = split_listen(listen)
    try:
        sock = _bind(host, port)
    except OSError as exc:
        log.error(
            "cannot serve the local page on %s (agent.listen): %s; the agent goes on without it",
            listen,
            exc.strerror or exc,
        )
        return None
    config = uvicorn.Config(
        build_local_app(snapshot),
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="local-http")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT_S
    while not server.started and not task.done() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, timeout=_STOP_TIMEOUT_S)
        sock.close()
        log.error("the local page on %s (agent.listen) did not start; going on without it", listen)
        return None
    bound = sock.getsockname()
    address = (
        f"[{bound[0]}]:{bound[1]}" if sock.family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
    )
    log.info("local page and /metrics on http://%s/", address)
    return LocalHttp(server, task, address)
