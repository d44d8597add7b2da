"""Case C41: several uvicorn workers answer /metrics the same, and a dead worker leaves nothing.

The real server app runs under ``uvicorn --factory --workers 2`` (a real process on a
loopback port, SQLite on disk); the test stores rounds in the same database between scrapes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML
from sqlalchemy.orm import Session

from monitor.config_loader import load_config
from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade
from monitor.storage.repository import ingest_batch, sync_config
from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SUCCESS = 'linkwatch_probe_success{kind="icmp",site="fb1",target="gw-icmp"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def store_round(url: str, config_path: Path, status: ProbeStatus) -> None:
    """Store one fresh ICMP round of fb1/gw-icmp, measured a second ago (real clock)."""
    config = load_config(config_path)
    now = datetime.now(UTC)
    result = ResultIn(
        result_id=str(uuid.uuid4()),
        target_id="gw-icmp",
        kind=ProbeKind.ICMP,
        status=status,
        measured_at=now - timedelta(seconds=1),
        duration_s=1.0,
        rtt_s=0.02 if status is ProbeStatus.UP else None,
        packet_loss=0.0 if status is ProbeStatus.UP else 1.0,
        sent=3,
        received=3 if status is ProbeStatus.UP else 0,
        duplicates=0,
        rtts_s=[0.02] * 3 if status is ProbeStatus.UP else [None] * 3,
    )
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            sync_config(session, config, now)
            batch = BatchIn(
                batch_id=str(uuid.uuid4()), site_id="fb1", agent_sent_at=now, results=[result]
            )
            ingest_batch(session, "fb1", batch, now)
            session.commit()
    finally:
        engine.dispose()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path, subprocess.Popen[bytes]]]:
    """Start the app under two uvicorn workers; yield (base URL, db URL, config, process)."""
    url = f"sqlite:///{tmp_path / 'linkwatch.db'}"
    config_path = tmp_path / "linkwatch.yaml"
    data = {
        "server": {"database_url": url, "site_silent_after_s": 600},
        "sites": {
            "fb1": {
                "name": "Friendship Bridge I",
                "token": "token-fb1-0123456789abcdef",
                "targets": [{"id": "gw-icmp", "kind": "icmp", "host": "192.0.2.1"}],
            },
            "lpq": {
                "name": "Luang Prabang Airport",
                "link_profile": "vsat",
                "token": "token-lpq-0123456789abcdef",
                "targets": [{"id": "gw-icmp", "kind": "icmp", "host": "192.0.2.1"}],
            },
        },
    }
    with config_path.open("w") as fh:
        YAML().dump(data, fh)
    upgrade(url)
    store_round(url, config_path, ProbeStatus.DOWN)
    port = free_port()
    log = (tmp_path / "uvicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "multiworker_app:create",
         "--app-dir", str(HERE), "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        env={**os.environ, "LINKWATCH_TEST_CONFIG": str(config_path)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "uvicorn.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("uvicorn did not get ready: " + (tmp_path / "uvicorn.log").read_text())
        yield base, url, config_path, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape_many(base: str, rounds: int = 40) -> dict[int, list[Samples]]:
    """Scrape in bursts of four concurrent requests until two workers answered; by pid."""

    def one(_: int) -> tuple[int, Samples]:
        response = httpx.get(f"{base}/metrics", timeout=10)  # a new connection each time
        assert response.status_code == 200
        found = {
            (s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(response.text)
            for s in f.samples
        }
        return int(response.headers["X-Worker-Pid"]), found

    by_pid: dict[int, list[Samples]] = {}
    with ThreadPoolExecutor(4) as pool:
        for _ in range(rounds):
            for pid, found in pool.map(one, range(4)):
                by_pid.setdefault(pid, []).append(found)
            if len(by_pid) >= 2 and sum(len(v) for v in by_pid.values()) >= 12:
                break
    return by_pid


def without_build(found: Samples) -> Samples:
    return {k: v for k, v in found.items() if k[0] != "linkwatch_build_info"}


def test_two_workers_export_identical_series_and_values(
    served: tuple[str, str, Path, subprocess.Popen[bytes]],
) -> None:
    base, _url, _config, _proc = served
    by_pid = scrape_many(base)
    assert len(by_pid) >= 2, "only one worker answered"
    scrapes = [s for answers in by_pid.values() for s in answers]
    first = scrapes[0]
    for other in scrapes[1:]:
        assert other == first
    assert all("pid" not in dict(labels) for _name, labels in first)
    assert first[("linkwatch_probe_success", frozenset(_labels("fb1").items()))] == 0


def test_a_killed_worker_leaves_no_stale_value(
    served: tuple[str, str, Path, subprocess.Popen[bytes]],
) -> None:
    base, url, config, _proc = served
    before = scrape_many(base)
    victim = next(iter(before))
    key = ("linkwatch_probe_success", frozenset(_labels("fb1").items()))
    assert before[victim][-1][key] == 0
    os.kill(victim, signal.SIGKILL)  # worker A dies with "down" as its last answer
    store_round(url, config, ProbeStatus.UP)  # the target recovers
    time.sleep(1.0)
    after = scrape_many(base)
    assert victim not in after
    scrapes = [s for answers in after.values() for s in answers]
    assert {s[key] for s in scrapes} == {1.0}
    assert len({frozenset(without_build(s).items()) for s in scrapes}) == 1


def _labels(site_id: str) -> dict[str, str]:
    return {"site": site_id, "target": "gw-icmp", "kind": "icmp"}
