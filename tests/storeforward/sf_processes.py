"""Helpers for the proof tests: real server and agent processes on 127.0.0.1, their files.

Every wait is bounded; every process started is ended by the caller's ``finally`` (see
:class:`Processes`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from monitor.agent.ids import ResultIds
from monitor.agent.spool import Spool
from monitor.storage.db import make_engine
from monitor.storage.models import Result
from monitor.wire import ResultIn
from probes.result import ProbeKind, ProbeStatus

REPO = Path(__file__).resolve().parents[2]
TOKEN = "token-post1-0123456789abcdef"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as the YAML config file (JSON is YAML 1.2)."""
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def site_config(
    server_port: int, db_url: str, targets: list[dict[str, Any]], **agent: Any
) -> dict[str, Any]:
    """Return a config with one site ``post1`` (token :data:`TOKEN`) and ``targets``."""
    return {
        "server": {"host": "127.0.0.1", "port": server_port, "database_url": db_url},
        "sites": {
            "post1": {
                "name": "Post 1",
                "token": TOKEN,
                "agent": {"upload_interval_s": 0.2, "retry_max_s": 0.5, **agent},
                "targets": targets,
            }
        },
    }


def icmp_results(
    n: int, target_ids: list[str], start: datetime, interval_s: float = 10.0
) -> list[ResultIn]:
    """Return ``n`` ICMP-like results, round-robin over ``target_ids``, in time order
    (RTTs drawn from a seeded generator: as hard to compress as measured ones)."""
    ids = ResultIds()
    rng = random.Random(n)
    out = []
    for i in range(n):
        target = target_ids[i % len(target_ids)]
        samples = [round(0.02 + rng.expovariate(500), 6) for _ in range(5)]
        rtt = round(sum(samples) / 5, 6)
        up = i % 50 != 0
        out.append(
            ResultIn(
                result_id=ids.next_id(),
                target_id=target,
                kind=ProbeKind.ICMP,
                status=ProbeStatus.UP if up else ProbeStatus.DOWN,
                measured_at=start
                + timedelta(seconds=(i // len(target_ids)) * interval_s, microseconds=i % 1000),
                duration_s=2.1,
                rtt_s=rtt if up else None,
                packet_loss=0.0 if up else 1.0,
                jitter_s=0.0004 if up else None,
                sent=5,
                received=5 if up else 0,
                duplicates=0,
                rtts_s=samples if up else [None] * 5,
                address="127.0.0.1",
                family=4,
                error=None if up else "no echo reply to 5 requests",
            )
        )
    return out


def prefill(spool_path: Path, results: list[ResultIn], **bounds: Any) -> None:
    """Put ``results`` in the spool file (then close it, so an agent can take it)."""
    with Spool(spool_path, clock=lambda: datetime.now(UTC), **bounds) as spool:
        for i in range(0, len(results), 5000):
            spool.put(results[i : i + 5000])


def spool_ids(spool_path: Path) -> list[str]:
    """Return the result ids waiting in a spool, in spool order, read without its lock."""
    db = sqlite3.connect(f"file:{spool_path}?mode=ro", uri=True, timeout=10)
    try:
        return [str(r[0]) for r in db.execute("SELECT result_id FROM results ORDER BY seq")]
    finally:
        db.close()


def stored_ids(db_url: str) -> list[str]:
    """Return every stored result id (with repeats, if any were stored twice)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [str(r) for r in conn.execute(select(Result.result_id)).scalars()]
    finally:
        engine.dispose()


def stored_count(db_url: str) -> int:
    """Return how many results the server stored."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Result)).scalar_one())
    finally:
        engine.dispose()


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``predicate`` every 50 ms; fail after ``timeout_s`` (a bound, not a measure)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


class Processes:
    """Start ``linkwatch`` processes (``python -m monitor``) and end them all at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``linkwatch ARGS`` with output to ``<logs>/<name>.log``."""
        log = (self.logs / f"{name}.log").open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
        log.close()
        self.started.append(proc)
        return proc

    def server(self, config: Path, port: int) -> subprocess.Popen[bytes]:
        """Start the server and wait until ``/readyz`` answers 200."""
        proc = self.start("server", "server", "--config", str(config))

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"the server exited with {proc.returncode}: {self.log('server')}"
                )
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, "the server to be ready", 60)
        return proc

    def agent(self, config: Path, site: str = "post1") -> subprocess.Popen[bytes]:
        """Start a site's agent."""
        return self.start(f"agent-{site}", "agent", "--config", str(config), "--site", site)

    def log(self, name: str) -> str:
        """Return the tail of a process log."""
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL ``proc`` and reap it."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
        """SIGTERM ``proc`` and wait for it (SIGKILL after ``timeout_s``); return its code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        return int(proc.returncode)

    def end_all(self) -> None:
        """End every process still running (SIGKILL), by its own id."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    """Yield a :class:`Processes`; every process it started is ended on exit."""
    procs = Processes(logs)
    try:
        yield procs
    finally:
        procs.end_all()


class RelayStats:
    """What the relay saw (guarded by ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.request_bytes = 0  # bytes agent -> server since the last answer byte
        self.in_flight = False  # a request went up and no answer came back yet
        self.cut_in_flight = 0  # connections that died with a request in flight


class Relay:
    """A TCP relay on 127.0.0.1 between the agent and the server (real sockets, both ways),
    watching when an upload is in flight so a test can kill the server right then."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.stats = RelayStats()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        up = threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True)
        up.start()
        self._pump(upstream, client, False)
        up.join(timeout=10)

    def _pump(self, source: socket.socket, sink: socket.socket, to_server: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                with self.stats.lock:
                    if to_server:
                        self.stats.request_bytes += len(data)
                        self.stats.in_flight = True
                    else:
                        self.stats.request_bytes = 0
                        self.stats.in_flight = False
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if not to_server:
                with self.stats.lock:
                    if self.stats.in_flight:
                        self.stats.cut_in_flight += 1
                        self.stats.in_flight = False
                        self.stats.request_bytes = 0
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def upload_in_flight(self, min_bytes: int) -> bool:
        """Return whether at least ``min_bytes`` of a request went up without an answer."""
        with self.stats.lock:
            return self.stats.in_flight and self.stats.request_bytes >= min_bytes

    def close(self) -> None:
        """Stop accepting (open connections end with their peers)."""
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
