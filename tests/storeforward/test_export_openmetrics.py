"""GET /api/v1/export/openmetrics: backfilled history goes into Prometheus blocks at the
measurement times (real promtool: create-blocks-from openmetrics, then tsdb dump)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.routes import export
from monitor.config import Config
from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

PROMTOOL = "/usr/bin/promtool"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MakeResult = Callable[..., ResultIn]
MakeBatch = Callable[..., BatchIn]
Auth = Callable[[str], dict[str, str]]
URL = "/api/v1/export/openmetrics"


@pytest.fixture
def export_client(sample_config: Config, migrated_engine: Engine) -> Iterator[TestClient]:
    app = create_app(
        sample_config,
        engine=migrated_engine,
        clock=lambda: T0 + timedelta(hours=5),
        run_workers=False,
    )
    app.include_router(export.router)  # until the app factory includes it
    with TestClient(app) as client:
        yield client


def backlog(result_factory: MakeResult) -> list[ResultIn]:
    """Three hours of gw-icmp every 5 minutes, DOWN for the middle hour, one monitor error."""
    out = []
    for i in range(36):
        at = T0 + timedelta(minutes=5 * i, microseconds=123_456)
        if 12 <= i < 24:
            out.append(
                result_factory(
                    "gw-icmp",
                    at,
                    status=ProbeStatus.DOWN,
                    rtt_s=None,
                    packet_loss=1.0,
                    jitter_s=None,
                    received=0,
                    rtts_s=[None, None, None],
                    error="no reply",
                )
            )
        elif i == 30:
            out.append(
                result_factory(
                    "gw-icmp",
                    at,
                    status=ProbeStatus.ERROR,
                    rtt_s=None,
                    packet_loss=None,
                    jitter_s=None,
                    sent=None,
                    received=None,
                    duplicates=None,
                    rtts_s=[],
                    error="no ICMP permission",
                )
            )
        else:
            out.append(result_factory("gw-icmp", at, rtt_s=0.0125 + i / 1e6))
    out.append(result_factory("gw-tcp", T0, kind=ProbeKind.TCP, rtt_s=0.003))
    return out


def test_the_export_backfills_prometheus_at_the_measurement_times(
    export_client: TestClient,
    result_factory: MakeResult,
    batch_factory: MakeBatch,
    auth_header: Auth,
    tmp_path: Path,
) -> None:
    results = backlog(result_factory)
    response = export_client.post(
        "/api/v1/ingest",
        content=batch_factory("bridge1", results).model_dump_json(),
        headers=auth_header("bridge1"),
    )
    assert response.status_code == 200, response.text

    exported = export_client.get(
        URL,
        params={
            "start": T0.isoformat(),
            "end": (T0 + timedelta(hours=4)).isoformat(),
            "site_id": "bridge1",
            "job": "linkwatch",
            "instance": "central:8080",
        },
    )
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/openmetrics-text")
    text = exported.text
    assert text.endswith("# EOF\n")
    rtt_line = (
        'linkwatch_probe_rtt_seconds{instance="central:8080",job="linkwatch",site="bridge1",'
        'target="gw-icmp",kind="icmp"} 0.0125 1740816000.123456'
    )
    assert rtt_line in text

    source = tmp_path / "backfill.om"
    source.write_text(text)
    blocks = tmp_path / "blocks"
    created = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(blocks)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    (blocks / "wal").mkdir()  # promtool 2.42's dump opens the directory as a whole TSDB
    dumped = subprocess.run(
        [PROMTOOL, "tsdb", "dump", str(blocks)], capture_output=True, text=True, timeout=120
    )
    assert dumped.returncode == 0, dumped.stderr
    samples: dict[str, dict[int, float]] = {}
    for line in dumped.stdout.splitlines():
        match = re.match(r'^\{__name__="(\w+)", (.*)\} (\S+) (\d+)$', line)
        if match and 'target="gw-icmp"' in match[2]:
            samples.setdefault(match[1], {})[int(match[4])] = float(match[3])
    times_ms = [int(r.measured_at.timestamp() * 1000) for r in results[:36]]
    success = samples["linkwatch_probe_success"]
    assert sorted(success) == [t for i, t in enumerate(times_ms) if i != 30]
    assert all(success[t] == 0.0 for t in times_ms[12:24])
    assert all(success[t] == 1.0 for t in times_ms[:12] + times_ms[24:30] + times_ms[31:])
    assert samples["linkwatch_probe_monitor_error"][times_ms[30]] == 1.0
    rtt = samples["linkwatch_probe_rtt_seconds"]
    assert sorted(rtt) == times_ms[:12] + times_ms[24:30] + times_ms[31:]
    assert rtt[times_ms[0]] == 0.0125
    assert samples["linkwatch_probe_packet_loss_ratio"][times_ms[12]] == 1.0
    assert 'instance="central:8080", job="linkwatch"' in dumped.stdout


def test_an_export_window_is_checked_and_names_the_field(export_client: TestClient) -> None:
    backwards = export_client.get(
        URL, params={"start": T0.isoformat(), "end": (T0 - timedelta(hours=1)).isoformat()}
    )
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["msg"].startswith("start: must be before end")
    too_long = export_client.get(
        URL, params={"start": T0.isoformat(), "end": (T0 + timedelta(days=40)).isoformat()}
    )
    assert too_long.status_code == 422 and "31 days" in too_long.text
    assert export_client.get(URL, params={"site_id": "nowhere"}).status_code == 404
    bad_job = export_client.get(URL, params={"job": "a\u0001b"})
    assert bad_job.status_code == 422 and bad_job.json()["detail"][0]["msg"].startswith("job: ")


def test_an_empty_window_is_valid_openmetrics(export_client: TestClient) -> None:
    response = export_client.get(URL)
    assert response.status_code == 200
    assert response.text.endswith("# EOF\n")
    assert "# TYPE linkwatch_probe_success gauge" in response.text
