"""Helpers for the agent tests: a stepping clock, result factories, a loopback ingest receiver.

The receiver implements the documented upload protocol (monitor/wire.py) as a small FastAPI
app under real uvicorn on 127.0.0.1, and can be told to fail: answer a status N times, store
then answer 500 (a lost acknowledgement), stall, or refuse chosen target ids.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from monitor.wire import (
    COMPACT_CONTENT_TYPE,
    COMPACT_V2_CONTENT_TYPE,
    BatchAck,
    BatchIn,
    ResultIn,
    SpoolReport,
)
from monitor.wire_compact import CompactBodyError, decode_batch
from probes.result import ProbeKind, ProbeStatus

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
TOKEN = "site-token-0123456789"


class SteppingClock:
    """A fake agent clock: time moves only when someone sleeps or calls :meth:`advance`."""

    def __init__(self, wall0: datetime = T0, mono0: float = 1000.0) -> None:
        self.mono0 = mono0
        self.now_s = mono0
        self.wall0 = wall0

    def wall(self) -> datetime:
        return self.wall0 + timedelta(seconds=self.now_s - self.mono0)

    def monotonic(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    async def sleep(self, seconds: float) -> None:
        self.now_s += max(0.0, seconds)
        await asyncio.sleep(0)


def spool_now() -> datetime:
    """The clock test spools use: a day after ``T0`` (results at ``T0`` are fresh)."""
    return T0 + timedelta(days=1)


def make_result(
    i: int = 0,
    *,
    target_id: str = "gw-tcp",
    measured_at: datetime | None = None,
    status: ProbeStatus = ProbeStatus.UP,
) -> ResultIn:
    """Return a valid TCP result; ``i`` spaces measurement times one second apart."""
    return ResultIn(
        result_id=str(uuid.uuid4()),
        target_id=target_id,
        kind=ProbeKind.TCP,
        status=status,
        measured_at=measured_at or T0 + timedelta(seconds=i),
        duration_s=0.01,
        rtt_s=0.01 if status is ProbeStatus.UP else None,
        error=None if status is ProbeStatus.UP else "connection refused",
    )


def make_results(n: int, *, start: int = 0, target_id: str = "gw-tcp") -> list[ResultIn]:
    return [make_result(start + i, target_id=target_id) for i in range(n)]


@dataclass
class ReceiverState:
    """What the receiver stored and how it is told to misbehave (guarded by ``lock``)."""

    token: str = TOKEN
    site_id: str = "site-a"
    stored: dict[str, ResultIn] = field(default_factory=dict)
    deliveries: int = 0  # results received in 200-answered or stored batches, dupes included
    requests: int = 0
    fail_status: int | None = None
    fail_times: int = 0
    store_then_fail: int = 0  # store the batch, then answer 500 (ack lost), this many times
    stall_s: float = 0.0
    refuse_targets: set[str] = field(default_factory=set)
    refuse_plain: bool = False  # refuse with a body that names no result
    max_batch: int | None = None  # answer 413 over this many results
    server_time_offset_s: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)
    refuse_compact: bool = False  # answer 415 to the compact encoding (an older server)
    # the content types read as compact; any other body is read as JSON (as a server from
    # before that type does)
    compact_types: tuple[str, ...] = (COMPACT_CONTENT_TYPE, COMPACT_V2_CONTENT_TYPE)
    content_types: list[str] = field(default_factory=list)
    body_bytes: list[int] = field(default_factory=list)
    reports: list[SpoolReport | None] = field(default_factory=list)
    orders: list[list[str]] = field(default_factory=list)  # result ids per decoded batch
    lock: threading.Lock = field(default_factory=threading.Lock)


def build_receiver(state: ReceiverState) -> FastAPI:
    app = FastAPI()

    @app.post("/api/v1/ingest")
    async def ingest(request: Request) -> Response:
        raw = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        with state.lock:
            state.requests += 1
            stall = state.stall_s
            if state.fail_times > 0 and state.fail_status is not None:
                state.fail_times -= 1
                return JSONResponse({"detail": "told to fail"}, status_code=state.fail_status)
        if stall:
            await asyncio.sleep(stall)
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return JSONResponse({"detail": "invalid token"}, status_code=401)
        with state.lock:
            state.content_types.append(request.headers.get("content-type", ""))
            state.body_bytes.append(len(await request.body()))
        try:
            if request.headers.get("content-type") in state.compact_types:
                if state.refuse_compact:
                    return JSONResponse({"detail": "unknown type"}, status_code=415)
                batch = decode_batch(raw)
            else:
                batch = BatchIn.model_validate_json(raw)
        except ValidationError as exc:
            errors = [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
            return JSONResponse({"detail": errors}, status_code=422)
        except CompactBodyError as exc:
            errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors]
            return JSONResponse({"detail": errors}, status_code=422)
        with state.lock:
            state.reports.append(batch.spool)
            state.orders.append([r.result_id for r in batch.results])
        if batch.site_id != state.site_id:
            return JSONResponse({"detail": "token is not this site's"}, status_code=403)
        if state.max_batch is not None and len(batch.results) > state.max_batch:
            return PlainTextResponse("too large", status_code=413)
        bad = [i for i, r in enumerate(batch.results) if r.target_id in state.refuse_targets]
        if bad:
            if state.refuse_plain:
                return PlainTextResponse("unprocessable", status_code=422)
            errors = [
                {"loc": ["body", "results", i, "target_id"], "msg": "unknown target"} for i in bad
            ]
            return JSONResponse({"detail": errors}, status_code=422)
        with state.lock:
            state.batch_sizes.append(len(batch.results))
            stored = dupes = 0
            for r in batch.results:
                state.deliveries += 1
                if r.result_id in state.stored:
                    dupes += 1
                else:
                    state.stored[r.result_id] = r
                    stored += 1
            if state.store_then_fail > 0:
                state.store_then_fail -= 1
                return JSONResponse({"detail": "lost ack"}, status_code=500)
        ack = BatchAck(
            batch_id=batch.batch_id,
            stored=stored,
            duplicates=dupes,
            server_time=datetime.now(UTC) + timedelta(seconds=state.server_time_offset_s),
        )
        return Response(ack.model_dump_json(), media_type="application/json")

    return app


def bound_socket() -> socket.socket:
    """Return a TCP socket bound to 127.0.0.1 on a free port, not listening (refuses)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(app: FastAPI, sock: socket.socket, *, lifespan: bool = False) -> Iterator[str]:
    """Serve ``app`` under uvicorn on ``sock`` in a thread; yield its base URL."""
    config = uvicorn.Config(app, log_level="warning", lifespan="on" if lifespan else "off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test receiver did not start")
        time.sleep(0.01)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def wait_for(predicate: object, *, timeout_s: float = 15.0, what: str = "condition") -> None:
    """Poll ``predicate()`` until true; fail after ``timeout_s`` (a bound, not a measurement)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
