"""Proof with real processes on 127.0.0.1: SIGKILL the server mid-upload, SIGKILL the agent
with a backlog, overfill the spool. Nothing acknowledged is lost, nothing is stored twice,
every drop is counted exactly and shown in the agent's /metrics."""

from __future__ import annotations

import socket
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sf_processes import (
    Relay,
    free_port,
    icmp_results,
    prefill,
    processes,
    site_config,
    spool_ids,
    stored_count,
    stored_ids,
    wait_until,
    write_config,
)

from monitor.agent.scheduler import first_offset_s
from monitor.agent.spool import Spool
from monitor.storage.migrate import upgrade

pytestmark = pytest.mark.slow

QUIET_INTERVAL_S = 86_400.0


def quiet_targets(n: int) -> list[dict[str, object]]:
    """ICMP targets on 127.0.0.1 probed once a day, whose first round is over an hour away
    (the start offset is a deterministic hash, checked here): no new results in a test."""
    targets: list[dict[str, object]] = []
    k = 0
    while len(targets) < n:
        target_id = f"gw-{k}"
        k += 1
        if first_offset_s("post1", target_id, QUIET_INTERVAL_S) < 3600:
            continue
        targets.append(
            {
                "kind": "icmp",
                "id": target_id,
                "host": "127.0.0.1",
                "count": 3,
                "interval_s": QUIET_INTERVAL_S,
            }
        )
    return targets


def test_a_server_killed_mid_upload_loses_no_acknowledged_result_and_stores_none_twice(
    tmp_path: Path, db_url: str
) -> None:
    upgrade(db_url)
    targets = quiet_targets(10)
    spool_path = tmp_path / "spool.db"
    results = icmp_results(
        40_000, [str(t["id"]) for t in targets], datetime.now(UTC) - timedelta(hours=12), 10.0
    )
    prefill(spool_path, results)
    wanted = {r.result_id for r in results}
    port = free_port()
    relay = Relay(port)  # the agent uploads through it; it sees when an upload is in flight
    document = site_config(
        port, db_url, targets, spool_path=str(spool_path), batch_max_results=5000
    )
    document["server"]["public_url"] = f"http://127.0.0.1:{relay.port}"
    config = write_config(tmp_path / "config.yaml", document)
    with processes(tmp_path) as procs:
        server = procs.server(config, port)
        agent = procs.agent(config)
        wait_until(lambda: stored_count(db_url) >= 5000, "the first batch to be stored", 120)
        wait_until(lambda: relay.upload_in_flight(20_000), "a large upload in flight", 60)
        procs.kill(server)  # SIGKILL in the middle of that upload
        wait_until(lambda: relay.stats.cut_in_flight >= 1, "the relay to see it cut", 10)
        in_db = set(stored_ids(db_url))  # read after the kill: everything committed
        waiting = set(spool_ids(spool_path))
        acknowledged = wanted - waiting
        assert acknowledged <= in_db, "an acknowledged result is missing from the database"
        assert len(in_db) < len(wanted), "the kill came after the whole upload"

        procs.server(config, port)
        wait_until(lambda: stored_count(db_url) >= len(wanted), "the rest of the backlog", 180)
        assert procs.stop(agent) == 0
    relay.close()
    ids = stored_ids(db_url)
    assert [i for i, n in Counter(ids).items() if n > 1] == []  # none stored twice
    assert set(ids) == wanted
    assert spool_ids(spool_path) == []


def test_an_agent_killed_with_a_backlog_uploads_all_of_it_after_a_restart(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade(db_url)
    listener = socket.create_server(("127.0.0.1", 0))  # a live TCP target on loopback
    target_port = listener.getsockname()[1]
    targets = [
        {
            "kind": "tcp",
            "id": f"gw-tcp-{i}",
            "host": "127.0.0.1",
            "port": target_port,
            "interval_s": 0.2,
            "timeout_s": 0.15,
        }
        for i in range(5)
    ]
    spool_path = tmp_path / "spool.db"
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml", site_config(port, db_url, targets, spool_path=str(spool_path))
    )
    try:
        with processes(tmp_path) as procs:
            agent = procs.agent(config)  # the centre is down: everything stays in the spool
            wait_until(
                lambda: spool_path.exists() and len(spool_ids(spool_path)) >= 100,
                "a backlog of 100 results",
                60,
            )
            procs.kill(agent)
            backlog = spool_ids(spool_path)  # every committed result, in spool order
            assert len(backlog) >= 100

            procs.server(config, port)
            agent = procs.agent(config)
            wait_until(
                lambda: set(backlog) <= set(stored_ids(db_url)), "the backlog on the server", 120
            )
            assert procs.stop(agent) == 0
    finally:
        listener.close()
    ids = stored_ids(db_url)
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert set(backlog) <= set(ids)
    assert len(ids) > len(backlog)  # the restarted agent measured and uploaded more


def metric(text: str, name: str) -> float:
    """Return the value of the one sample ``name{...}`` in exposition ``text``."""
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def test_an_overfilled_spool_drops_the_oldest_counts_them_exactly_and_shows_it(
    tmp_path: Path,
) -> None:
    targets = quiet_targets(3)
    spool_path = tmp_path / "spool.db"
    results = icmp_results(
        700, [str(t["id"]) for t in targets], datetime.now(UTC) - timedelta(hours=2), 10.0
    )
    prefill(spool_path, results)  # 700 waiting; the agent's bound is 500
    listen_port, server_port = free_port(), free_port()
    config = write_config(
        tmp_path / "config.yaml",
        site_config(
            server_port,
            f"sqlite:///{tmp_path / 'none.db'}",
            targets,
            spool_path=str(spool_path),
            spool_max_results=500,
            listen=f"127.0.0.1:{listen_port}",
        ),
    )
    url = f"http://127.0.0.1:{listen_port}/metrics"
    with processes(tmp_path) as procs:
        agent = procs.agent(config)  # no server: nothing can leave

        def scraped() -> str | None:
            try:
                response = httpx.get(url, timeout=2)
            except httpx.HTTPError:
                return None
            return response.text if response.status_code == 200 else None

        wait_until(lambda: scraped() is not None, "the agent's /metrics", 60)
        text = scraped()
        assert text is not None
        assert procs.stop(agent) == 0
    assert metric(text, 'linkwatch_agent_dropped_results_total{reason="spool_full"') == 200
    assert metric(text, 'linkwatch_agent_dropped_results_total{reason="too_old"') == 0
    assert metric(text, "linkwatch_agent_backlog_results{") == 500
    assert spool_ids(spool_path) == [r.result_id for r in results[200:]]  # the oldest went
    with Spool(spool_path) as spool:
        assert spool.counts().dropped_full_total == 200  # persistent, for the next start
