"""Fixtures for the browser tests: a seeded database, a real uvicorn server, headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright for Python through
``executable_path`` (Playwright's own browser download is never used). The server listens
on 127.0.0.1 on a port the kernel picks. Every request the browser makes goes through a
route that lets only 127.0.0.1 through and records anything else; each test fails if
anything else was asked for. Chromium's own background services are outside that route, so
its resolver is told to fail every name (``--host-resolver-rules``): without that, each run
sent DNS queries for accounts.google.com and update.googleapis.com to the host's resolver.
Screenshots go to ``test-artifacts/`` at the repository root.

Without Chromium or Playwright the tests are skipped, saying why, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from browser_kit import Requests, Server
from seed import NOW, seed

from api.app import create_app
from monitor.storage.db import make_engine

CHROMIUM = os.environ.get("LINKWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Chromium's own services (sign-in, the updater) look names up outside any page, where
    # the route guard below cannot see them: without this rule they reach the host's
    # resolver. Every name fails inside the browser; the pages use the 127.0.0.1 literal.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Serve the seeded world with uvicorn on 127.0.0.1 (a free port), fixed clock."""
    path = tmp_path_factory.mktemp("browser") / "linkwatch.db"
    url = f"sqlite:///{path}"
    config = seed(url)
    engine = make_engine(url)
    app = create_app(config, engine=engine, clock=lambda: NOW, run_workers=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    if not uv.started:
        pytest.fail("the uvicorn server did not start within 20 s")
    try:
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Launch Debian's Chromium headless through Playwright (never Playwright's download).

    Module scope, not session: Playwright's sync API keeps an event loop running in this
    thread while it is open, which would break every asyncio test collected after it.
    """
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def requests() -> Requests:
    """Return the record of this test's requests (filled by :func:`new_context`)."""
    return Requests()


@pytest.fixture
def new_context(browser: Any, requests: Requests) -> Iterator[Any]:
    """Return ``make(**options)``: a browser context whose requests may only go to
    127.0.0.1; at the end, assert that nothing else was asked for."""
    contexts: list[Any] = []

    def guard(route: Any) -> None:
        url = route.request.url
        requests.seen.append(url)
        if url.startswith("data:") or urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            requests.refused.append(url)
            route.abort()

    def make(**options: Any) -> Any:
        context = browser.new_context(**options)
        context.route("**/*", guard)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert requests.refused == [], f"requests that would have left the machine: {requests.refused}"
    assert requests.seen, "the browser made no request at all"
