"""Benchmark ``GET /metrics`` with many sites and targets; print figures, last line JSON.

Builds a migrated database (a SQLite file in a temporary folder, or ``--db-url``, e.g. a
PostgreSQL database on 127.0.0.1) holding ``--sites`` sites of ``--targets`` targets each,
every target with ``--history`` stored rounds, serves it through the real app
(``api.app.create_app``, background workers off, a fixed clock so every result is fresh) and
times ``--scrapes`` scrapes through the ASGI stack (``fastapi.testclient``; wall time, and
the process's CPU time, which other load on the machine disturbs less), after one
warm-up scrape. Before each timed scrape a new round is stored for ``--churn`` of the
targets (default a quarter: a 15 s scrape interval against 60 s probe intervals), untimed,
so the collector's per-round cache is exercised as in production. The default mix per site
is 40 % ICMP (20 echo requests a round), 20 % each TCP, HTTP and DNS; ``--all-icmp`` makes
every target ICMP (the most series per target). On PostgreSQL the planner statistics are
gathered after the fill, as autovacuum soon does (``--no-analyze`` scrapes without them).
The 1-minute load average is printed at the start and at the end: the machine is shared.

Run: ``python bench/metrics.py`` (1,000 sites x 10 targets; about a minute to fill).
The goal (issue 7): median under 250 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.app import create_app
from monitor.config import Config
from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade
from monitor.storage.repository import ingest_batch, sync_config
from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
PROFILES = ("fibre", "4g", "3g", "vsat")
MIX = (ProbeKind.ICMP,) * 4 + (ProbeKind.TCP,) * 2 + (ProbeKind.HTTP,) * 2 + (ProbeKind.DNS,) * 2


def target_spec(kind: ProbeKind, index: int) -> dict[str, Any]:
    """Return a target of ``kind`` on a documentation address (never probed here)."""
    tid = f"t{index:02d}-{kind.value}"
    host = f"192.0.2.{index + 1}"
    match kind:
        case ProbeKind.ICMP:
            return {"id": tid, "kind": "icmp", "host": host, "count": 20, "interval_s": 60}
        case ProbeKind.TCP:
            return {"id": tid, "kind": "tcp", "host": host, "port": 443, "interval_s": 60}
        case ProbeKind.HTTP:
            return {"id": tid, "kind": "http", "url": f"https://{host}/", "interval_s": 60}
        case ProbeKind.DNS:
            return {
                "id": tid,
                "kind": "dns",
                "host": host,
                "query_name": "gw.test.",
                "interval_s": 60,
            }


def build_config(sites: int, targets: int, all_icmp: bool) -> Config:
    """Return a config of ``sites`` sites with ``targets`` targets each."""
    kinds = [ProbeKind.ICMP if all_icmp else MIX[i % len(MIX)] for i in range(targets)]
    return Config.model_validate(
        {
            "server": {"site_silent_after_s": 600},
            "sites": {
                f"site{s:04d}": {
                    "name": f"Site {s}",
                    "link_profile": PROFILES[s % len(PROFILES)],
                    "token": f"token-site{s:04d}-0123456789",
                    "targets": [target_spec(kind, i) for i, kind in enumerate(kinds)],
                }
                for s in range(sites)
            },
        }
    )


def store_rounds(url: str, config: Config, site_ids: list[str], age_s: float) -> None:
    """Store one new round per target of ``site_ids``, measured ``age_s`` before ``NOW``."""
    rng = random.Random(age_s)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            for site_id in site_ids:
                results = [make_result(rng, t, age_s) for t in config.sites[site_id].targets]
                batch = BatchIn(
                    batch_id=str(uuid.uuid4()), site_id=site_id, agent_sent_at=NOW, results=results
                )
                ingest_batch(session, site_id, batch, NOW)
            session.commit()
    finally:
        engine.dispose()


def make_result(rng: random.Random, target: Any, age_s: float) -> ResultIn:
    """Return one plausible round for ``target``, measured ``age_s`` before ``NOW``."""
    kind = ProbeKind(target.kind)
    base = rng.uniform(0.01, 0.7)
    down = rng.random() < 0.05
    fields: dict[str, Any] = {
        "result_id": str(uuid.uuid4()),
        "target_id": target.id,
        "kind": kind,
        "status": ProbeStatus.DOWN if down else ProbeStatus.UP,
        "measured_at": NOW - timedelta(seconds=age_s),
        "duration_s": 1.0,
        "rtt_s": None if down else base,
        "error": "no reply" if down else None,
    }
    if kind == ProbeKind.ICMP:
        rtts = [
            None if down or rng.random() < 0.03 else base * rng.uniform(0.8, 1.5) for _ in range(20)
        ]
        got = [r for r in rtts if r is not None]
        fields |= {
            "sent": 20,
            "received": len(got),
            "packet_loss": 1 - len(got) / 20,
            "duplicates": 0,
            "jitter_s": None if len(got) < 2 else 0.002,
            "rtts_s": rtts,
            "rtt_s": sum(got) / len(got) if got else None,
        }
    return ResultIn.model_validate(fields)


def fill(url: str, config: Config, history: int, analyze: bool = True) -> int:
    """Migrate ``url``, mirror ``config`` and store ``history`` rounds per target; return rows.

    With ``analyze``, PostgreSQL then gathers its planner statistics (``ANALYZE``), as its
    autovacuum does within about a minute of a bulk load: without them the planner takes
    each target for one row and sorts all of a target's rounds to find the newest (about
    twice the query time here, growing with the history kept), a state a running server
    leaves quickly.
    """
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(7)
    rows = 0
    try:
        with Session(engine) as session:
            sync_config(session, config, NOW)
            session.commit()
        for site_id, site in config.sites.items():
            results = [
                make_result(rng, t, age_s=10 + 60 * h) for t in site.targets for h in range(history)
            ]
            batch = BatchIn(
                batch_id=str(uuid.uuid4()), site_id=site_id, agent_sent_at=NOW, results=results
            )
            with Session(engine) as session:
                ingest_batch(session, site_id, batch, NOW)
                session.commit()
            rows += len(results)
        if analyze and engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
    finally:
        engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--history", type=int, default=5, help="stored rounds per target")
    parser.add_argument("--scrapes", type=int, default=21)
    parser.add_argument("--db-url", help="an EMPTY database (default: SQLite in a temp dir)")
    parser.add_argument("--all-icmp", action="store_true", help="every target ICMP")
    parser.add_argument(
        "--churn", type=float, default=0.25, help="share of sites with a new round per scrape"
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: scrape before any planner statistics exist (see fill)",
    )
    args = parser.parse_args(argv)

    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lw-bench-metrics-") as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        config = build_config(args.sites, args.targets, args.all_icmp)
        started = time.perf_counter()
        rows = fill(url, config, args.history, analyze=not args.no_analyze)
        fill_s = time.perf_counter() - started
        backend = url.split(":", 1)[0]
        print(
            f"filled {backend}: {args.sites} sites x {args.targets} targets, {rows} rounds "
            f"in {fill_s:.1f} s"
        )
        engine = make_engine(url)
        app = create_app(config, engine=engine, clock=lambda: NOW, run_workers=False)
        times_ms: list[float] = []
        cpu_ms: list[float] = []
        with TestClient(app) as client:
            first = client.get("/metrics")
            if first.status_code != 200:
                print(f"GET /metrics answered {first.status_code}", file=sys.stderr)
                return 1
            body = first.text
            site_ids = list(config.sites)
            per_scrape = int(len(site_ids) * args.churn)
            for i in range(args.scrapes):
                if per_scrape:
                    start = (i * per_scrape) % len(site_ids)
                    chosen = (site_ids + site_ids)[start : start + per_scrape]
                    store_rounds(url, config, chosen, age_s=9.0 - 0.01 * i)
                t0, c0 = time.perf_counter(), time.process_time()
                response = client.get("/metrics")
                times_ms.append((time.perf_counter() - t0) * 1000)
                cpu_ms.append((time.process_time() - c0) * 1000)
                assert response.status_code == 200
        engine.dispose()
    samples = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    figures = {
        "benchmark": "metrics_scrape",
        "backend": backend,
        "sites": args.sites,
        "targets_per_site": args.targets,
        "all_icmp": args.all_icmp,
        "history_per_target": args.history,
        "analyzed": backend.startswith("postgresql") and not args.no_analyze,
        "churn": args.churn,
        "scrapes": args.scrapes,
        "samples": samples,
        "bytes": len(body.encode()),
        "median_ms": round(statistics.median(times_ms), 1),
        "p90_ms": round(sorted(times_ms)[int(0.9 * (len(times_ms) - 1))], 1),
        "min_ms": round(min(times_ms), 1),
        "max_ms": round(max(times_ms), 1),
        "cpu_median_ms": round(statistics.median(cpu_ms), 1),
        "load_average_1m_start": round(load_at_start, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "goal_median_ms": 250,
    }
    print(f"{samples} samples, {figures['bytes']} bytes per scrape")
    print(
        f"scrape: median {figures['median_ms']} ms, p90 {figures['p90_ms']} ms, "
        f"min {figures['min_ms']} ms, max {figures['max_ms']} ms over {args.scrapes} scrapes; "
        f"CPU median {figures['cpu_median_ms']} ms (load average "
        f"{figures['load_average_1m_start']} at the start, {figures['load_average_1m']} at the end)"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
