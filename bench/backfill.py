"""Benchmark: a site comes back after 24 hours offline and uploads its whole backlog.

One site, 10 ICMP targets probed every 10 s for 24 hours: 86,400 results, synthetic but
shaped like measured ones (per-link RTT levels and noise, sporadic loss, short outages;
values rounded to the microsecond as the agent records them; the agent's counting result
ids), written into a real agent spool. Then a real server (``python -m monitor server``,
uvicorn, a subprocess) is started and the agent's real :class:`Uploader` sends the backlog
over loopback HTTP, as it would after the link returns.

Reported per backend (SQLite file; PostgreSQL on 127.0.0.1:5432 in a fresh database created
and dropped here, via the ``test`` database): the time from the first upload until the last
acknowledgement (``ingest_s``), bytes on the wire per result (``wire_bytes_per_result``:
gzip-compressed request bodies; ``http_bytes_per_result`` adds the HTTP request and status
lines, headers and acknowledgement bodies both ways; TCP/IP framing is not counted), the
server's peak resident memory (``peak_rss_mb``, VmHWM of the server process), and checks:
``stored`` rows, ``duplicates`` (rows stored twice), ``exact`` (every stored measurement
time equal to the spooled one, to the microsecond), ``values_exact`` (every other stored
field equal to the spooled one too: RTT samples, mean, jitter, details, ...).

Each round is the agent's default ICMP round (``count`` 20 echo requests, from
:class:`probes.specs.IcmpTarget`), paced as the agent's default ``spacing_s`` (0.5 s) when
that fits the 10 s interval with a 2 s timeout, else at the largest whole number of
milliseconds that does (20 requests: 0.421 s), as the configuration validator requires
(``(count - 1) * spacing_s + timeout_s <= interval_s``).

Usage: ``python bench/backfill.py [--backends sqlite,postgresql] [--count 20]
[--encoding compact|json] [--compare-layouts]``. ``--compare-layouts`` also prints what
the same backlog takes, gzip-compressed in batches of 5,000, in each encoding (compact
version 3, compact version 2 as agents before it send, JSON), without sending it. The last
lines are JSON, one per backend, PostgreSQL last.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.agent.ids import ResultIds  # noqa: E402
from monitor.agent.precision import quantize  # noqa: E402
from monitor.agent.spool import Spool  # noqa: E402
from monitor.agent.uploader import UploadEncoding, Uploader, UploadOutcome  # noqa: E402
from monitor.storage.db import make_engine  # noqa: E402
from monitor.storage.migrate import upgrade  # noqa: E402
from monitor.storage.models import Result  # noqa: E402
from monitor.wire import BatchIn, ResultIn  # noqa: E402
from monitor.wire_compact import encode_batch  # noqa: E402
from probes.result import ProbeKind, ProbeResult, ProbeStatus  # noqa: E402
from probes.specs import IcmpTarget  # noqa: E402

SITE = "post1"
TOKEN = "bench-token-0123456789abcdef"
PG: dict[str, Any] = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
TIMEOUT_S = 2.0
BATCH = 5000
AGENT_COUNT: int = IcmpTarget.model_fields["count"].default
AGENT_SPACING_S: float = IcmpTarget.model_fields["spacing_s"].default


def round_timing(interval_s: float, count: int) -> tuple[float, float]:
    """Return ``(spacing_s, timeout_s)`` for ``count`` requests a round every ``interval_s``.

    The agent's default spacing if the round fits the interval, else the largest whole
    number of milliseconds that fits; checked by the configuration's own validator
    (:class:`IcmpTarget`), which raises ``ValidationError`` if the round cannot fit.
    """
    spacing_s = AGENT_SPACING_S
    if count > 1 and (count - 1) * spacing_s + TIMEOUT_S > interval_s:
        spacing_s = math.floor((interval_s - TIMEOUT_S) * 1000 / (count - 1)) / 1000
    IcmpTarget(
        id="check",
        host="192.0.2.1",
        count=count,
        spacing_s=spacing_s,
        timeout_s=TIMEOUT_S,
        interval_s=interval_s,
    )
    return spacing_s, TIMEOUT_S


@dataclass(frozen=True)
class Link:
    """An RTT level and its noise, seconds (exponential queueing delay on top of the base)."""

    base_s: float
    noise_s: float
    loss: float


LINKS = [
    Link(0.008, 0.0005, 0.001),  # fibre
    Link(0.012, 0.0008, 0.001),
    Link(0.015, 0.001, 0.002),
    Link(0.045, 0.008, 0.005),  # 4G
    Link(0.055, 0.01, 0.005),
    Link(0.06, 0.012, 0.01),
    Link(0.095, 0.02, 0.01),  # 3G
    Link(0.12, 0.025, 0.02),
    Link(0.61, 0.025, 0.01),  # VSAT
    Link(0.64, 0.03, 0.015),
]


def synthetic_backlog(
    hours: float, interval_s: float, count: int, start: datetime, seed: int = 4
) -> list[ResultIn]:
    """Return the results 10 ICMP targets would have spooled, in measurement order."""
    rng = random.Random(seed)
    ids = ResultIds(prefix_bits=rng.getrandbits(60))
    spacing_s, timeout_s = round_timing(interval_s, count)
    rounds = int(hours * 3600 / interval_s)
    outages = {
        t: [(rng.randrange(rounds), rng.randrange(18, 60)) for _ in range(3)]
        for t in range(len(LINKS))
    }
    rows: list[tuple[datetime, ResultIn]] = []
    for t, link in enumerate(LINKS):
        target_id = f"gw-icmp-{t}"
        phase_s = interval_s * t / len(LINKS)
        for k in range(rounds):
            at = start + timedelta(
                seconds=phase_s + k * interval_s, microseconds=rng.randrange(2000)
            )
            out = any(s <= k < s + n for s, n in outages[t])
            samples: list[float | None] = [
                None
                if out or rng.random() < link.loss
                else link.base_s + rng.expovariate(1 / link.noise_s)
                for _ in range(count)
            ]
            rows.append((at, ids_result(ids, target_id, at, samples, spacing_s, timeout_s, rng)))
    rows.sort(key=lambda row: row[0])
    return [r for _, r in rows]


def ids_result(
    ids: ResultIds,
    target_id: str,
    at: datetime,
    samples: list[float | None],
    spacing_s: float,
    timeout_s: float,
    rng: random.Random,
) -> ResultIn:
    """Return one round as the agent would spool it (through the agent's own rounding)."""
    got = [s for s in samples if s is not None]
    last = samples[-1] if samples[-1] is not None else timeout_s
    jitter = (
        math.fsum(abs(b - a) for a, b in itertools.pairwise(got)) / (len(got) - 1)
        if len(got) > 1
        else None
    )
    probe = ProbeResult(
        kind=ProbeKind.ICMP,
        status=ProbeStatus.UP if got else ProbeStatus.DOWN,
        duration_s=(len(samples) - 1) * spacing_s + last + rng.uniform(0.0002, 0.002),
        rtt_s=math.fsum(got) / len(got) if got else None,
        packet_loss=1 - len(got) / len(samples),
        jitter_s=jitter,
        sent=len(samples),
        received=len(got),
        duplicates=0,
        rtts_s=tuple(samples),
        address=f"192.0.2.{int(target_id.rsplit('-', 1)[1]) + 1}",
        family=4,
        error=None if got else f"no echo reply to {len(samples)} requests",
        phases_s={"resolve": rng.uniform(5e-6, 3e-5)},
        detail={
            "rtt_min_s": min(got, default=None),
            "rtt_max_s": max(got, default=None),
            "late_replies": 0,
            "unreachable": [],
        },
    )
    return ResultIn.from_probe(
        quantize(probe),
        result_id=ids.next_id(),
        target_id=target_id,
        measured_at=at,
        clock_offset_s=-0.012,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, port: int, db_url: str, interval_s: float, count: int) -> None:
    spacing_s, timeout_s = round_timing(interval_s, count)
    targets = [
        {
            "kind": "icmp",
            "id": f"gw-icmp-{t}",
            "host": f"192.0.2.{t + 1}",  # documentation range: never probed here
            "count": count,
            "spacing_s": spacing_s,
            "timeout_s": timeout_s,
            "interval_s": interval_s,
        }
        for t in range(len(LINKS))
    ]
    document = {
        "server": {"host": "127.0.0.1", "port": port, "database_url": db_url},
        "sites": {SITE: {"name": "Post 1", "token": TOKEN, "targets": targets}},
    }
    path.write_text(json.dumps(document), encoding="utf-8")


def peak_rss_mb(pid: int) -> float:
    """Return VmHWM (peak resident set) of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def start_server(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "server", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not become ready within 60 s")


class HttpBytes:
    """Count HTTP bytes both ways from httpx's event hooks (lines, headers, bodies)."""

    def __init__(self) -> None:
        self.total = 0

    async def on_request(self, request: httpx.Request) -> None:
        line = f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\n"
        headers = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
        self.total += len(line) + len(headers) + 2 + len(request.content)

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        line = f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n"
        headers = "".join(f"{k}: {v}\r\n" for k, v in response.headers.items())
        self.total += len(line) + len(headers) + 2 + len(response.content)


async def upload_all(spool: Spool, port: int, encoding: UploadEncoding) -> dict[str, Any]:
    meter = HttpBytes()
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(120.0),
        event_hooks={"request": [meter.on_request], "response": [meter.on_response]},
    )
    uploader = Uploader(
        spool,
        site_id=SITE,
        server_url=f"http://127.0.0.1:{port}",
        token=TOKEN,
        batch_max_results=BATCH,
        upload_interval_s=1.0,
        retry_max_s=2.0,
        upload_timeout_s=120.0,
        client=client,
        encoding=encoding,
    )
    body_bytes = 0
    started = time.perf_counter()
    try:
        for _ in range(10_000):
            outcome = await uploader.upload_once()
            if outcome is UploadOutcome.EMPTY:
                break
            body_bytes += uploader.stats.last_batch_body_bytes
            if outcome is not UploadOutcome.ACKED:
                raise RuntimeError(f"upload failed: {outcome}: {uploader.stats.last_error}")
    finally:
        elapsed = time.perf_counter() - started
        await client.aclose()
    return {
        "ingest_s": elapsed,
        "body_bytes": body_bytes,
        "http_bytes": meter.total,
        "requests": uploader.stats.requests_total,
        "acked_duplicates": uploader.stats.duplicates_total,
    }


def create_pg_database() -> tuple[str, str]:
    name = f"linkwatch_backfill_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(dbname="test", autocommit=True, connect_timeout=5, **PG) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    return name, url


def drop_pg_database(name: str) -> None:
    with psycopg.connect(dbname="test", autocommit=True, connect_timeout=5, **PG) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


COMPARED = (
    "target_id",
    "status",
    "duration_s",
    "rtt_s",
    "packet_loss",
    "jitter_s",
    "sent",
    "received",
    "duplicates",
    "address",
    "family",
    "error",
    "rtts_s",
    "phases_s",
    "detail",
    "clock_offset_s",
)
"""Stored fields compared with the spooled result, besides ``measured_at`` and ``kind``."""


def check_stored(db_url: str, results: list[ResultIn]) -> dict[str, Any]:
    """Count the stored rows and compare each with the result spooled.

    ``exact``: every ``measured_at`` equal to the spooled one, to the microsecond;
    ``values_exact``: every field of :data:`COMPARED` equal too (floats compared as
    floats, lists and objects as decoded JSON).
    """
    engine = make_engine(db_url)
    columns = [getattr(Result, name) for name in COMPARED]
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(Result)).scalar_one()
            distinct = conn.execute(
                select(func.count(func.distinct(Result.result_id)))
            ).scalar_one()
            stored = {
                row[0]: row[1:]
                for row in conn.execute(
                    select(Result.result_id, Result.measured_at, Result.kind, *columns)
                )
            }
    finally:
        engine.dispose()
    exact = len(stored) == len(results) and all(
        r.result_id in stored and stored[r.result_id][0] == r.measured_at for r in results
    )
    values_exact = len(stored) == len(results) and all(
        r.result_id in stored
        and tuple(stored[r.result_id][1:])
        == (r.kind.value, *(getattr(r, name) for name in COMPARED))
        for r in results
    )
    return {
        "stored": int(rows),
        "duplicates": int(rows) - int(distinct),
        "exact": exact,
        "values_exact": values_exact,
    }


def run_backend(
    backend: str, results: list[ResultIn], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    pg_name = None
    if backend == "sqlite":
        db_url = f"sqlite:///{workdir / 'server.db'}"
    else:
        pg_name, db_url = create_pg_database()
    server = None
    try:
        upgrade(db_url)
        port = free_port()
        config = workdir / "config.yaml"
        write_config(config, port, db_url, args.interval, args.count)
        spool_path = workdir / f"spool-{backend}.db"
        with Spool(spool_path, max_results=10_000_000, max_age_s=30 * 86_400) as spool:
            for i in range(0, len(results), BATCH):
                spool.put(results[i : i + BATCH])
            server = start_server(config, port, workdir / f"server-{backend}.log")
            upload = asyncio.run(upload_all(spool, port, UploadEncoding(args.encoding)))
            left = spool.backlog()
        rss = peak_rss_mb(server.pid)
        checks = check_stored(db_url, results)
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)
        if pg_name is not None:
            drop_pg_database(pg_name)
    n = len(results)
    return {
        "backend": backend,
        "results": n,
        "stored": checks["stored"],
        "duplicates": checks["duplicates"],
        "exact": checks["exact"],
        "values_exact": checks["values_exact"],
        "left_in_spool": left,
        "ingest_s": round(upload["ingest_s"], 2),
        "results_per_s": round(n / upload["ingest_s"]),
        "wire_bytes_per_result": round(upload["body_bytes"] / n, 1),
        "http_bytes_per_result": round(upload["http_bytes"] / n, 1),
        "requests": upload["requests"],
        "peak_rss_mb": round(rss, 1),
        "encoding": args.encoding,
        "icmp_count": args.count,
    }


def compare_layouts(results: list[ResultIn], start: datetime) -> dict[str, float]:
    """Return gzip-compressed bytes per result of the backlog in each encoding, unsent.

    Batches of :data:`BATCH` in measurement order (the uploader's order differs only in the
    first batch), gzip level 9 as the uploader compresses.
    """
    sizes = {"compact_v3": 0, "compact_v2": 0, "json": 0}
    for i in range(0, len(results), BATCH):
        batch = BatchIn(
            batch_id=str(uuid.uuid4()),
            site_id=SITE,
            agent_sent_at=start,
            results=results[i : i + BATCH],
        )
        bodies = {
            "compact_v3": encode_batch(batch, version=3),
            "compact_v2": encode_batch(batch, version=2),
            "json": batch.model_dump_json(exclude_none=True).encode("utf-8"),
        }
        for name, body in bodies.items():
            sizes[name] += len(gzip.compress(body, compresslevel=9))
    return {name: round(total / len(results), 1) for name, total in sizes.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--interval", type=float, default=10.0, help="probe interval, s")
    parser.add_argument(
        "--count",
        type=int,
        default=AGENT_COUNT,
        help=f"ICMP echo requests per round (default: the agent's, {AGENT_COUNT})",
    )
    parser.add_argument("--encoding", choices=["compact", "json"], default="compact")
    parser.add_argument(
        "--compare-layouts", action="store_true", help="also size each encoding, unsent"
    )
    args = parser.parse_args()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    spacing_s, timeout_s = round_timing(args.interval, args.count)
    results = synthetic_backlog(args.hours, args.interval, args.count, start)
    print(
        f"backlog: {len(results)} results, {len(LINKS)} targets, every {args.interval:g} s, "
        f"{args.count} echo requests per round ({spacing_s:g} s apart, {timeout_s:g} s "
        f"timeout), {args.encoding} encoding",
        flush=True,
    )
    if args.compare_layouts:
        print(f"bytes/result, gzip, unsent: {compare_layouts(results, start)}", flush=True)
    lines = []
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    backends.sort(key=lambda b: b == "postgresql")  # PostgreSQL last
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix=f"linkwatch-backfill-{backend}-") as tmp:
            line = run_backend(backend, results, args, Path(tmp))
        print(
            f"{backend}: {line['stored']} stored in {line['ingest_s']} s "
            f"({line['results_per_s']} results/s), {line['wire_bytes_per_result']} B/result "
            f"on the wire, peak RSS {line['peak_rss_mb']} MiB",
            flush=True,
        )
        lines.append(line)
    for line in lines:
        print(json.dumps(line), flush=True)
    ok = all(
        line["stored"] == line["results"]
        and line["duplicates"] == 0
        and line["exact"]
        and line["values_exact"]
        for line in lines
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
