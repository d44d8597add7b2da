"""Real loopback receivers for the notification tests: HTTP (webhook), SMTP, a stalling SMTP.

Each runs in a thread of its own with its own event loop, so a receiver that answers late
never blocks the test's loop, and synchronous tests (the CLI) can use them too. Every wait
here is bounded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller

WAIT_LIMIT_S = 30.0
"""Longest any helper here waits for something to happen before failing the test."""


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = WAIT_LIMIT_S) -> None:
    """Poll ``condition`` every 20 ms until it holds; fail with ``what`` after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting ({limit_s:g} s) for {what}")
        time.sleep(0.02)


async def wait_until_async(
    condition: Callable[[], bool], what: str, limit_s: float = WAIT_LIMIT_S
) -> None:
    """Like :func:`wait_until`, yielding to the event loop between polls."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting ({limit_s:g} s) for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Request:
    """One request a receiver got: path, headers (lower-case names), raw body."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class HttpReceiver:
    """A webhook receiver: records every request when it arrives, then answers.

    ``delays_s`` and ``statuses`` are consumed one per request (then 0 s and 200): the n-th
    request is answered after ``delays_s[n]`` seconds with ``statuses[n]``.
    ``statuses_by_path`` does the same per request path, before ``statuses``; use it when
    requests to several paths may arrive in either order.
    """

    port: int
    requests: list[Request] = field(default_factory=list)
    delays_s: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    statuses_by_path: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self, path: str | None = None) -> list[Any]:
        with self.lock:
            return [r.json() for r in self.requests if path is None or r.path == path]

    def count(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self.lock:
            self.requests.append(Request(scope["path"], headers, body))
            delay = self.delays_s.pop(0) if self.delays_s else 0.0
            queue = self.statuses_by_path.get(scope["path"]) or self.statuses
            status = queue.pop(0) if queue else 200
        if delay:
            await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


@contextmanager
def http_receiver(port: int | None = None) -> Iterator[HttpReceiver]:
    """Serve an :class:`HttpReceiver` on 127.0.0.1 with uvicorn in a thread of its own."""
    receiver = HttpReceiver(port=port or free_port())
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", receiver.port))
    server = uvicorn.Server(
        uvicorn.Config(receiver, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "the webhook receiver to start")
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class _Mailbox:
    """aiosmtpd handler keeping every message's raw bytes."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(bytes(envelope.original_content or envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        parsed = [message_from_bytes(raw, policy=policy.default) for raw in self.raw]
        return [m for m in parsed if isinstance(m, EmailMessage)]


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on loopback; ``mailbox`` holds what it accepted."""

    port: int
    mailbox: _Mailbox


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """Run aiosmtpd on 127.0.0.1 (its own thread and loop)."""
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield SmtpServer(port=port, mailbox=mailbox)
    finally:
        controller.stop()


@dataclass
class StallingServer:
    """Accepts TCP connections and never says anything until ``release()``: a stalled SMTP."""

    port: int
    accepted: threading.Event
    _release: threading.Event

    def release(self) -> None:
        """Close every held connection (the client then sees the connection drop)."""
        self._release.set()


@contextmanager
def stalling_server() -> Iterator[StallingServer]:
    """Listen on 127.0.0.1; hold every connection open and silent until released or closed."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    stop = threading.Event()
    release = threading.Event()
    accepted = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            if release.is_set():
                while held:
                    held.pop().close()
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            accepted.set()
        while held:
            held.pop().close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield StallingServer(listener.getsockname()[1], accepted, release)
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
