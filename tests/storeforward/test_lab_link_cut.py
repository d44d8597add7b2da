"""Proof in the lab: cut a site's link for 3 minutes while its agent probes every 5 s.

The server runs in the lab's gateway namespace (10.200.0.1), the agent of site ftb2 in
ftb2's namespace, both real ``linkwatch`` processes sharing files with this test. ftb2's agent
probes the gateway by ICMP and by TCP (the server's own port). The link is cut with
``Lab.cut`` (the gateway's end of the veth goes down: packets vanish silently) for 180 s,
then restored. Afterwards every result measured during the cut is in the server's database
exactly once, with the measurement time the agent gave it; the gateway targets are DOWN
over the gap; and the UNKNOWN the centre showed while the site was silent is gone.

The API and ``/metrics`` are read through the real app on the same database, in this
process (the test's own namespace cannot reach the lab's addresses).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sf_processes import REPO, TOKEN, stored_ids, wait_until, write_config

from api.app import create_app
from monitor.config_loader import load_config
from monitor.lab.lab import Lab
from monitor.storage.migrate import upgrade

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="the lab needs iproute2"),
]

SITE = "ftb2"
INTERVAL_S = 5.0
CUT_S = 180.0
SERVER_PORT = 18_480


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab(f"lsf{os.getpid() % 10_000}")
    try:
        lab.up({SITE: {"outages_per_day": 0.0, "loss": 0.0}}, sites=[SITE], seed=3)
        yield lab
    finally:
        lab.down()


def config_document(lab: Lab, db_url: str, spool: Path) -> dict[str, Any]:
    gateway = lab.gateway
    return {
        "server": {
            "host": gateway,
            "port": SERVER_PORT,
            "database_url": db_url,
            "site_silent_after_s": 30,
        },
        "sites": {
            SITE: {
                "name": "Friendship Bridge II",
                "token": TOKEN,
                "agent": {
                    "spool_path": str(spool),
                    "upload_interval_s": 1.0,
                    "retry_max_s": 5.0,
                    "upload_timeout_s": 5.0,
                },
                "targets": [
                    {
                        "kind": "icmp",
                        "id": "gw-icmp",
                        "host": gateway,
                        "count": 3,
                        "spacing_s": 0.2,
                        "timeout_s": 1.0,
                        "interval_s": INTERVAL_S,
                    },
                    {
                        "kind": "tcp",
                        "id": "gw-tcp",
                        "host": gateway,
                        "port": SERVER_PORT,
                        "timeout_s": 2.0,
                        "interval_s": INTERVAL_S,
                    },
                ],
            }
        },
    }


def spooled(spool: Path) -> dict[str, datetime]:
    """Return ``{result_id: measured_at}`` of what waits in the spool (read without its lock)."""
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT body FROM results").fetchall()
    finally:
        db.close()
    out = {}
    for (body,) in rows:
        data = json.loads(body)
        out[data["result_id"]] = datetime.fromisoformat(data["measured_at"])
    return out


def states(client: TestClient) -> dict[str, str]:
    """Return ``{target or "site": state}`` of ftb2 from the server's /metrics."""
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line.endswith(" 1.0") and line.startswith(
            ("linkwatch_target_state{", "linkwatch_site_state{")
        ):
            labels = dict(
                part.split("=", 1)
                for part in line[line.index("{") + 1 : line.index("}")].split(",")
            )
            key = labels.get("target", '"site"').strip('"')
            out[key] = labels["state"].strip('"')
    return out


def test_a_three_minute_cut_is_backfilled_exactly_once_and_shows_down_not_unknown(
    lab: Lab, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade(db_url)
    spool = tmp_path / "spool.db"
    config_path = write_config(tmp_path / "config.yaml", config_document(lab, db_url, spool))
    config = load_config(config_path)
    logs = {name: (tmp_path / f"{name}.log").open("ab") for name in ("server", "agent")}
    python = [sys.executable, "-m", "monitor"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = lab.popen_in(
        "gw",
        [*python, "server", "-c", str(config_path)],
        stdout=logs["server"],
        stderr=logs["server"],
        cwd=REPO,
        env=env,
    )
    agent = lab.popen_in(
        SITE,
        [*python, "agent", "-c", str(config_path), "-s", SITE],
        stdout=logs["agent"],
        stderr=logs["agent"],
        cwd=REPO,
        env=env,
    )
    app = create_app(config, run_workers=False)
    try:
        with TestClient(app) as client:
            # 1. the link is up: results flow, both targets UP
            wait_until(
                lambda: (
                    states(client).get("gw-icmp") == "up" and states(client).get("gw-tcp") == "up"
                ),
                "both gateway targets UP at the centre",
                90,
            )
            time.sleep(2 * INTERVAL_S)
            cut_at = datetime.now(UTC)
            lab.cut(SITE)
            # 2. the centre hears nothing: the site turns unreachable, its targets unknown
            wait_until(
                lambda: states(client).get("site") == "unreachable",
                "the site to be unreachable at the centre",
                CUT_S,
            )
            silent = states(client)
            remaining = CUT_S - (datetime.now(UTC) - cut_at).total_seconds()
            time.sleep(max(0.0, remaining))
            during = spooled(spool)  # what the agent holds, measured up to now
            restore_at = datetime.now(UTC)
            lab.restore(SITE)
            # 3. the backlog arrives
            wait_until(
                lambda: set(during) <= set(stored_ids(db_url)), "the backlog at the centre", 120
            )
            wait_until(lambda: states(client).get("site") == "up", "the site UP again", 60)
            after = states(client)
            window: dict[str, list[dict[str, Any]]] = {}
            for target in ("gw-icmp", "gw-tcp"):
                response = client.get(
                    f"/api/v1/sites/{SITE}/targets/{target}/series",
                    params={
                        "start": (cut_at - timedelta(seconds=INTERVAL_S)).isoformat(),
                        "end": (restore_at + timedelta(seconds=INTERVAL_S)).isoformat(),
                        "limit": 1000,
                    },
                )
                assert response.status_code == 200, response.text
                window[target] = response.json()["results"]
    finally:
        for proc in (agent, server):
            proc.terminate()
        for proc in (agent, server):
            try:
                proc.wait(timeout=30)
            except Exception:
                proc.kill()
                proc.wait(timeout=10)
        for log in logs.values():
            log.close()

    assert silent["site"] == "unreachable"
    assert after == {"site": "up", "gw-icmp": "up", "gw-tcp": "up"}  # UNKNOWN is gone

    ids = stored_ids(db_url)
    assert len(ids) == len(set(ids))  # nothing stored twice
    stored = {r["result_id"]: r for rs in window.values() for r in rs}
    measured_in_cut = {i: at for i, at in during.items() if cut_at <= at < restore_at}
    assert len(measured_in_cut) >= 2 * (CUT_S / INTERVAL_S - 2)  # both targets, every 5 s
    for result_id, measured_at in measured_in_cut.items():
        assert datetime.fromisoformat(stored[result_id]["measured_at"]) == measured_at

    # A round that began less than its timeout (+1 s) before the cut or the restore may see
    # the link up: it is measured at its start, answered while the link still or again worked.
    grace = timedelta(seconds=3)
    for target, results in window.items():
        gap = [
            r
            for r in results
            if cut_at + grace <= datetime.fromisoformat(r["measured_at"]) < restore_at - grace
        ]
        assert len(gap) >= CUT_S / INTERVAL_S - 2, target
        assert {r["status"] for r in gap} == {"down"}, target
        times = [datetime.fromisoformat(r["measured_at"]) for r in results]
        steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert max(steps) <= 2 * INTERVAL_S, (target, max(steps))  # no hole in the series
