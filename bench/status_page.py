"""Benchmark the status page: overview and site page render times, payload against history.

Three scenarios, each a migrated SQLite database in a temporary folder, served through the
real app (``api.app.create_app``, background workers off, a fixed clock) and timed through
the ASGI stack (``fastapi.testclient``) after warm-up requests:

1. **year**: 7 sites x 10 targets, one year of history: day rollups for 365 days, hour
   rollups for 62 days, 5-minute rollups for 3 days (their retention), the incident
   engine's state periods for the year (``--changes`` state changes per target per day),
   and ``--raw-days`` days of raw results at one round a minute (the page reads only each
   target's latest round, one index seek, so more raw days change nothing measurable).
   Times ``GET /`` and ``GET /sites/<id>`` (the default 1-day charts) and the 30-day and
   1-year charts.
2. **1000 sites**: 1,000 sites x 4 targets with 90 days of state periods; ``GET /`` (first
   page of 50 cards; the state tally covers all 1,000 sites).
3. **C36** (shared/cases/scale-storage-metrics.md): 700 monitors x 7 sites (4,900 series),
   90 days. The rollups and state periods are generated directly instead of 635 million
   raw samples: the pages read only rollups, state periods and each target's latest round,
   never the raw samples, so the raw rows would only sit in the file. Times the public
   status page (``GET /``) and one monitor's page (``GET /sites/<id>/targets/<id>``, its
   3 h ... 1 y charts, the 90-day view among them), and shows that the payload does not grow
   with history: the same pages rendered with 90, 105 and 120 days of history behind "now".

Prints figures as it goes and ends with one JSON line holding at least ``overview_p50_ms``,
``overview_p95_ms``, ``site_p50_ms``, ``site_p95_ms``, ``overview_1000_sites_p50_ms``.

Run: ``python bench/status_page.py`` (a few minutes, mostly filling the databases);
``--quick`` for a smaller, faster run (fewer requests, 1 raw day).
Goals (issue 6): overview and site page under 150 ms median and 300 ms p95 with a year of
history; 1,000-site overview under 1 s; C36 first render under 2 s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import Engine, Table, insert
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from monitor.config import Config
from monitor.storage.availability_days import CACHE_DAYS, refresh_cache
from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade
from monitor.storage.models import Result, SiteAgent
from monitor.storage.models_incidents import TargetStatePeriod
from monitor.storage.repository import sync_config
from monitor.storage.rollups import Resolution, bucket_start, local_date, summarize
from monitor.storage.rollups_job import stats_values, table_of

NOW = datetime(2025, 3, 1, 5, 0, tzinfo=UTC)  # 12:00 in Vientiane
ZONE = ZoneInfo("Asia/Vientiane")
CHUNK = 20_000


# -- building data ----------------------------------------------------------------------


def make_config(sites: int, targets: int) -> Config:
    """Return ``sites`` sites of ``targets`` ICMP targets each (documentation addresses)."""
    spec = {
        f"s{i:04d}": {
            "name": f"Border post {i}",
            "name_lo": f"ດ່ານ {i}",
            "link_profile": ("fibre", "4g", "3g", "vsat")[i % 4],
            "token": f"token-{i:04d}-0123456789abcdef",
            "targets": [
                {
                    "id": f"t{j:03d}",
                    "kind": "icmp",
                    "host": f"192.0.2.{j % 250 + 1}",
                    "count": 20,
                    "interval_s": 60,
                }
                for j in range(targets)
            ],
        }
        for i in range(sites)
    }
    return Config.model_validate({"sites": spec})


class _Round:
    """A synthetic ICMP round (what :func:`summarize` reads)."""

    def __init__(self, rng: random.Random, base_s: float, at: datetime) -> None:
        self.status = "up"
        self.measured_at = at
        self.rtts_s = [
            None if rng.random() < 0.01 else max(0.0005, rng.gauss(base_s, base_s / 8))
            for _ in range(20)
        ]
        got = [v for v in self.rtts_s if v is not None]
        self.rtt_s = sum(got) / len(got)
        self.jitter_s = base_s / 10
        self.sent = 20
        self.received = len(got)


def _templates(rng: random.Random, rounds: int) -> list[dict[str, Any]]:
    """Return a few bucket summaries (column values) to reuse for every bucket."""
    out = []
    for base in (0.012, 0.045, 0.120, 0.600):
        stats = summarize(_Round(rng, base, NOW) for _ in range(rounds))
        values = stats_values(stats)
        del values["first_measured_at"], values["last_measured_at"]
        out.append(values)
    return out


def _insert(engine: Engine, table: Table, rows: Iterator[dict[str, Any]]) -> int:
    """Insert ``rows`` in chunks, one transaction each; return how many."""
    total = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            with engine.begin() as conn:
                conn.execute(insert(table), batch)
            total += len(batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(table), batch)
        total += len(batch)
    return total


def _rollup_rows(
    config: Config, resolution: Resolution, span: timedelta, templates: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    step = {Resolution.FIVE_MIN: timedelta(minutes=5), Resolution.HOUR: timedelta(hours=1)}.get(
        resolution, timedelta(days=1)
    )
    last = bucket_start(NOW, resolution, ZONE)
    count = int(span / step)
    for i, (site_id, site) in enumerate(config.sites.items()):
        template = templates[i % len(templates)]
        for target in site.targets:
            for k in range(count):
                start = last - k * step
                yield {
                    "site_id": site_id,
                    "target_id": target.id,
                    "bucket_start": start,
                    "local_date": local_date(start, ZONE),
                    **template,
                    "first_measured_at": start,
                    "last_measured_at": start + step - timedelta(minutes=1),
                    "updated_at": NOW,
                }


def _period_rows(
    config: Config, days: int, changes_per_day: int, rng: random.Random
) -> Iterator[dict[str, Any]]:
    """Yield contiguous state periods: mostly UP, a DOWN of a few minutes now and then."""
    start = NOW - timedelta(days=days)
    for site_id, site in config.sites.items():
        for target in site.targets:
            at = start
            state = "up"
            while at < NOW:
                mean = 86_400 / max(1, changes_per_day)
                length = timedelta(seconds=rng.uniform(120, 600) if state == "down" else mean)
                end = min(NOW + timedelta(minutes=2), at + length)
                yield {
                    "site_id": site_id,
                    "target_id": target.id,
                    "state": state,
                    "start_at": at,
                    "end_at": end,
                }
                at = end
                state = "down" if state == "up" and rng.random() < 0.5 else "up"


def _raw_rows(config: Config, days: float, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Yield one ICMP round a minute per target for ``days`` days up to NOW."""
    minutes = max(1, int(days * 1440))
    for site_id, site in config.sites.items():
        for target in site.targets:
            for m in range(minutes, 0, -1):
                at = NOW - timedelta(minutes=m) + timedelta(seconds=30)
                rtts = [max(0.0005, rng.gauss(0.02, 0.002)) for _ in range(20)]
                yield {
                    "result_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "site_id": site_id,
                    "target_id": target.id,
                    "kind": "icmp",
                    "status": "up",
                    "measured_at": at,
                    "received_at": at + timedelta(seconds=5),
                    "duration_s": 4.0,
                    "rtt_s": sum(rtts) / 20,
                    "packet_loss": 0.0,
                    "jitter_s": 0.001,
                    "sent": 20,
                    "received": 20,
                    "duplicates": 0,
                    "rtts_s": rtts,
                    "phases_s": {},
                    "detail": {},
                }


def build(
    path: Path,
    config: Config,
    *,
    five_min_days: float,
    hour_days: float,
    day_days: int,
    period_days: int,
    changes_per_day: int,
    raw_days: float,
    rollup_targets: set[tuple[str, str]] | None = None,
    cache_days: int = CACHE_DAYS,
) -> tuple[Engine, dict[str, int]]:
    """Create and fill a database for ``config``; return its engine and the rows written.

    ``rollup_targets`` limits the 5-minute and hour rollups to those ``(site, target)``
    (None: all).
    Ends by filling the availability-day cache for ``cache_days`` days, as the server's
    rollup worker does in the background (its time is printed apart).
    """
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(36)
    with Session(engine) as session:
        sync_config(session, config, NOW)
        session.commit()
    templates = _templates(rng, 12)
    fine = config
    if rollup_targets is not None:
        fine = config.model_copy(
            update={
                "sites": {
                    sid: site.model_copy(
                        update={
                            "targets": [t for t in site.targets if (sid, t.id) in rollup_targets]
                        }
                    )
                    for sid, site in config.sites.items()
                    if any(s == sid for s, _ in rollup_targets)
                }
            }
        )
    counts = {
        "rollup_5m": _insert(
            engine,
            table_of(Resolution.FIVE_MIN),
            _rollup_rows(fine, Resolution.FIVE_MIN, timedelta(days=five_min_days), templates),
        ),
        "rollup_hour": _insert(
            engine,
            table_of(Resolution.HOUR),
            _rollup_rows(fine, Resolution.HOUR, timedelta(days=hour_days), templates),
        ),
        "rollup_day": _insert(
            engine,
            table_of(Resolution.DAY),
            _rollup_rows(config, Resolution.DAY, timedelta(days=day_days), templates),
        ),
        "target_state_periods": _insert(
            engine,
            TargetStatePeriod.__table__,  # type: ignore[arg-type]
            _period_rows(config, period_days, changes_per_day, rng),
        ),
        "results": _insert(engine, Result.__table__, _raw_rows(config, raw_days, rng)),  # type: ignore[arg-type]
    }
    agents = [
        {
            "site_id": site_id,
            "last_upload_at": NOW - timedelta(seconds=20),
            "last_measured_at": NOW - timedelta(seconds=30),
            "clock_offset_s": 0.4,
            "uploads": 1,
            "results_stored": 1,
        }
        for site_id in config.sites
    ]
    _insert(engine, SiteAgent.__table__, iter(agents))  # type: ignore[arg-type]
    started = time.perf_counter()
    counts["availability_days"] = refresh_cache(
        sessionmaker(engine), config, NOW, budget=10**9, keep_days=cache_days
    )
    counts["cache_fill_s"] = round(time.perf_counter() - started)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    return engine, counts


# -- measuring --------------------------------------------------------------------------


def timed(client: TestClient, path: str, runs: int, warmup: int = 3) -> dict[str, float]:
    """GET ``path`` ``warmup`` + ``runs`` times; return p50/p95/max (ms) and the bytes."""
    size = 0
    for _ in range(warmup):
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
        size = len(response.content)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 2 else samples[0]
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(samples[-1], 1),
        "bytes": size,
    }


def serve(
    config: Config, engine: Engine, clock: Callable[[], datetime] = lambda: NOW
) -> TestClient:
    """Return a started TestClient on the real app (workers off)."""
    return TestClient(create_app(config, engine=engine, clock=clock, run_workers=False))


def _fixed(at: datetime) -> Callable[[], datetime]:
    """Return a clock standing at ``at``."""
    return lambda: at


def say(text: str) -> None:
    print(text, flush=True)


def scenario_year(folder: Path, runs: int, raw_days: float, changes: int) -> dict[str, Any]:
    config = make_config(7, 10)
    started = time.perf_counter()
    engine, rows = build(
        folder / "year.db",
        config,
        five_min_days=3,
        hour_days=62,
        day_days=365,
        period_days=365,
        changes_per_day=changes,
        raw_days=raw_days,
    )
    say(f"[year] 7 sites x 10 targets, one year: {rows} ({time.perf_counter() - started:.0f} s)")
    out: dict[str, Any] = {"rows": rows}
    with serve(config, engine) as client:
        for name, path in (
            ("overview", "/"),
            ("site", "/sites/s0003"),
            ("site_30d", "/sites/s0003?range=30d"),
            ("site_1y", "/sites/s0003?range=1y"),
        ):
            out[name] = timed(client, path, runs)
            say(f"[year] GET {path}: {out[name]}")
    engine.dispose()
    return out


def scenario_thousand(folder: Path, runs: int) -> dict[str, Any]:
    config = make_config(1000, 4)
    started = time.perf_counter()
    engine, rows = build(
        folder / "thousand.db",
        config,
        five_min_days=0,
        hour_days=0,
        day_days=0,
        period_days=90,
        changes_per_day=2,
        raw_days=1 / 1440,
        cache_days=90,
    )
    say(f"[1000] 1,000 sites x 4 targets, 90 days: {rows} ({time.perf_counter() - started:.0f} s)")
    with serve(config, engine) as client:
        result = timed(client, "/", runs)
        say(f"[1000] GET /: {result}")
    engine.dispose()
    return {"rows": rows, "overview": result}


def scenario_c36(folder: Path, runs: int) -> dict[str, Any]:
    config = make_config(7, 700)
    started = time.perf_counter()
    engine, rows = build(
        folder / "c36.db",
        config,
        five_min_days=3,
        hour_days=62,
        day_days=120,
        period_days=120,
        changes_per_day=1,
        raw_days=1 / 1440,
        rollup_targets={("s0000", "t007")},
        cache_days=90,
    )
    say(
        f"[C36] 7 sites x 700 monitors, 120 days (5-minute and hour rollups only for the "
        f"monitor opened): {rows} ({time.perf_counter() - started:.0f} s)"
    )
    out: dict[str, Any] = {"rows": rows}
    with serve(config, engine) as client:
        out["overview"] = timed(client, "/", runs)
        say(f"[C36] GET / (status page): {out['overview']}")
        out["monitor"] = timed(client, "/sites/s0000/targets/t007", runs)
        say(f"[C36] GET /sites/s0000/targets/t007 (3 h ... 1 y): {out['monitor']}")
    sizes: dict[str, dict[str, int]] = {}
    for days in (90, 105, 120):
        at = NOW - timedelta(days=120 - days)  # the clock with `days` days of history behind
        with serve(config, engine, clock=_fixed(at)) as client:
            sizes[f"{days}d"] = {
                "overview_bytes": len(client.get("/").content),
                "monitor_bytes": len(client.get("/sites/s0000/targets/t007").content),
            }
    out["payload_by_history"] = sizes
    say(f"[C36] payload with 90/105/120 days of history behind now: {sizes}")
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="Timed requests per page.")
    parser.add_argument("--raw-days", type=float, default=3.0, help="Days of raw results (year).")
    parser.add_argument("--changes", type=int, default=4, help="State changes per target per day.")
    parser.add_argument("--quick", action="store_true", help="Fewer requests, 1 raw day.")
    parser.add_argument("--skip-c36", action="store_true", help="Leave out the C36 scenario.")
    args = parser.parse_args(argv)
    runs = 10 if args.quick else args.runs
    raw_days = 1.0 if args.quick else args.raw_days
    with tempfile.TemporaryDirectory(prefix="linkwatch-bench-status-") as tmp:
        folder = Path(tmp)
        year = scenario_year(folder, runs, raw_days, args.changes)
        thousand = scenario_thousand(folder, runs)
        c36 = None if args.skip_c36 else scenario_c36(folder, max(5, runs // 4))
    summary: dict[str, Any] = {
        "overview_p50_ms": year["overview"]["p50_ms"],
        "overview_p95_ms": year["overview"]["p95_ms"],
        "site_p50_ms": year["site"]["p50_ms"],
        "site_p95_ms": year["site"]["p95_ms"],
        "site_30d_p50_ms": year["site_30d"]["p50_ms"],
        "site_1y_p50_ms": year["site_1y"]["p50_ms"],
        "overview_bytes": year["overview"]["bytes"],
        "site_bytes": year["site"]["bytes"],
        "overview_1000_sites_p50_ms": thousand["overview"]["p50_ms"],
        "overview_1000_sites_p95_ms": thousand["overview"]["p95_ms"],
        "runs": runs,
        "raw_days": raw_days,
        "state_changes_per_target_day": args.changes,
    }
    if c36 is not None:
        summary |= {
            "c36_overview_p50_ms": c36["overview"]["p50_ms"],
            "c36_overview_p95_ms": c36["overview"]["p95_ms"],
            "c36_monitor_p50_ms": c36["monitor"]["p50_ms"],
            "c36_payload_by_history": c36["payload_by_history"],
        }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
