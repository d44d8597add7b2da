"""C01 across processes: two real agents in one namespace, one probing dead targets.

Two ``linkwatch agent`` processes run at once in site ftb2's namespace, so each one's raw
ICMP socket receives the other's echo replies too. Agent ``alive`` probes 20 gateway
addresses (answered by the responder); agent ``dead`` probes 20 hosts of site ftb3's LAN
while ftb3's link is cut. No result of the dead agent may ever show a reply. The agents
spool locally (their server URL is a closed loopback port) and the test reads the spools.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.lab.lab import Lab
from monitor.lab.topology import bulk_targets

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

RUN_S = 7.0


def _icmp_targets(hosts: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "kind": "icmp",
            "id": f"t{n}",
            "host": host,
            "count": 5,
            "spacing_s": 0.1,
            "timeout_s": 1.0,
            "interval_s": 2.0,
        }
        for n, host in enumerate(hosts)
    ]


def _config(alive: list[str], dead: list[str]) -> dict[str, Any]:
    return {
        "server": {"public_url": "http://127.0.0.1:9"},  # nothing listens: results stay spooled
        "agent": {"upload_interval_s": 60.0, "upload_timeout_s": 1.0},
        "sites": {
            "alive": {"name": "Alive", "token": "a" * 20, "targets": _icmp_targets(alive)},
            "dead": {"name": "Dead", "token": "d" * 20, "targets": _icmp_targets(dead)},
        },
    }


def _spooled(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM results")]


def test_two_agents_never_credit_a_dead_target_with_the_other_agents_replies(
    lab: Lab, tmp_path: Path
) -> None:
    alive_hosts = bulk_targets(20)
    dead_hosts = [lab.site("ftb3").lan_host(n) for n in range(1, 21)]
    config = tmp_path / "two-agents.yaml"
    config.write_text(json.dumps(_config(alive_hosts, dead_hosts)), encoding="utf-8")
    lab.cut("ftb3")
    try:
        agents = {
            site: lab.popen_in(
                "ftb2",
                [sys.executable, "-m", "monitor", "agent", "-c", str(config), "--site", site],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=tmp_path,
            )
            for site in ("alive", "dead")
        }
        time.sleep(RUN_S)  # both run at once for RUN_S, then stop together
        logs = {}
        for proc in agents.values():
            proc.terminate()
        for site, proc in agents.items():
            logs[site], _ = proc.communicate(timeout=30)
            assert proc.returncode == 0, logs[site][-2000:]
    finally:
        lab.restore("ftb3")

    alive = _spooled(tmp_path / "linkwatch-spool-alive.db")
    dead = _spooled(tmp_path / "linkwatch-spool-dead.db")
    assert len(alive) >= 20 and len(dead) >= 20, (len(alive), len(dead))
    assert {r["target_id"] for r in dead} == {f"t{n}" for n in range(20)}
    for result in dead:
        assert result["status"] == "down", result
        assert result["received"] == 0
        assert result["packet_loss"] == 1.0
        assert all(rtt is None for rtt in result.get("rtts_s", []))
        assert result.get("rtt_s") is None
    for result in alive:
        assert result["status"] == "up", result
        assert result["received"] >= 1
    print(f"\n{len(alive)} alive and {len(dead)} dead results; a dead one: {dead[0]['error']}")
    # Both agents' raw sockets saw the live replies: they really shared the traffic.
    assert sum(r["received"] for r in alive) >= 0.9 * 5 * len(alive)
