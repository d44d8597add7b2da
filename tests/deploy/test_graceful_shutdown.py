"""SIGTERM stops the agent and the server cleanly (exit 0) and loses no measured result;
the server finishes a request in flight first.

Real processes: ``linkwatch server`` (uvicorn) on a loopback port with SQLite, and
``linkwatch agent`` probing that port over TCP. The spool numbers every result it ever held
(SQLite AUTOINCREMENT), so after each stop: results at the server + results still in the
spool + dropped + rejected == results ever measured.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from processes import free_port, start, terminate, wait_http, write_config
from sqlalchemy import create_engine, text

from monitor.storage.migrate import upgrade
from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

pytestmark = pytest.mark.slow

TOKEN = "token-fb1-0123456789abcdef"


def config(tmp: Path, port: int) -> dict[str, Any]:
    return {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "database_url": f"sqlite:///{tmp / 'server.db'}",
        },
        "agent": {
            "spool_path": str(tmp / "spool.db"),
            "upload_interval_s": 0.5,
            "retry_max_s": 1,
        },
        "sites": {
            "fb1": {
                "name": "Friendship Bridge I",
                "token": TOKEN,
                "targets": [
                    {
                        "id": "gw-tcp",
                        "kind": "tcp",
                        "host": "127.0.0.1",
                        "port": port,
                        "interval_s": 0.5,
                        "timeout_s": 0.4,
                    }
                ],
            }
        },
    }


def spool_accounts(path: Path) -> tuple[int, set[str], int]:
    """Return (results ever spooled, ids still waiting, dropped + rejected) of a closed spool."""
    db = sqlite3.connect(path)
    try:
        ever = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'results'").fetchone()
        waiting = {row[0] for row in db.execute("SELECT result_id FROM results")}
        lost = db.execute("SELECT COALESCE(SUM(value), 0) FROM counters").fetchone()[0]
        rejected = db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
    finally:
        db.close()
    return (ever[0] if ever else 0), waiting, int(lost) + int(rejected)


def stored_ids(tmp: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{tmp / 'server.db'}")
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT result_id FROM results"))}
    finally:
        engine.dispose()


def test_sigterm_stops_the_agent_with_exit_0_and_every_result_kept(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(tmp_path / "linkwatch.yaml", config(tmp_path, port))
    upgrade(f"sqlite:///{tmp_path / 'server.db'}")
    log = tmp_path / "processes.log"

    # 1. The centre is down: the agent measures (TCP refused: DOWN rounds) and spools.
    agent = start(["agent", "--config", str(cfg), "--site", "fb1"], log)
    time.sleep(4)
    assert terminate(agent) == 0, log.read_text()
    ever, waiting, lost = spool_accounts(tmp_path / "spool.db")
    assert ever > 0 and lost == 0
    assert len(waiting) == ever  # nothing uploaded, nothing lost

    # 2. The centre is up: a new agent run uploads the backlog and its own results.
    server = start(["server", "--config", str(cfg)], log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", server, log)
        agent = start(["agent", "--config", str(cfg), "--site", "fb1"], log)
        time.sleep(5)
        assert terminate(agent) == 0, log.read_text()
        ever_2, waiting_2, lost_2 = spool_accounts(tmp_path / "spool.db")
        at_server = stored_ids(tmp_path)
        assert waiting <= at_server  # the outage's results arrived
        assert lost_2 == 0
        assert len(at_server) + len(waiting_2) == ever_2  # every result is somewhere
        assert ever_2 > ever and waiting_2 == set()  # the final upload emptied the spool
    finally:
        server_status = terminate(server)
    text_log = log.read_text()
    assert "Traceback" not in text_log
    assert "0 result(s) left in the spool" in text_log
    assert_server_stopped_cleanly(server_status, text_log)


def assert_server_stopped_cleanly(status: int, log: str) -> None:
    """uvicorn finished its shutdown and ``linkwatch server`` exited 0 (not 143: uvicorn
    raises SIGTERM again after its shutdown, and monitor.server makes that end cleanly)."""
    assert status == 0, log
    assert "Application shutdown complete." in log
    assert "Finished server process" in log


def test_sigterm_lets_an_in_flight_request_finish_and_the_server_exits_0(
    tmp_path: Path,
) -> None:
    port = free_port()
    cfg = write_config(tmp_path / "linkwatch.yaml", config(tmp_path, port))
    upgrade(f"sqlite:///{tmp_path / 'server.db'}")
    log = tmp_path / "server.log"
    server = start(["server", "--config", str(cfg)], log)
    now = datetime.now(UTC)
    batch = BatchIn(
        batch_id=str(uuid.uuid4()),
        site_id="fb1",
        agent_sent_at=now,
        results=[
            ResultIn(
                result_id=str(uuid.uuid4()),
                target_id="gw-tcp",
                kind=ProbeKind.TCP,
                status=ProbeStatus.UP,
                measured_at=now,
                duration_s=0.01,
                rtt_s=0.001,
            )
        ],
    )
    body = batch.model_dump_json().encode()
    head = (
        f"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", server, log)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(head + body[:10])  # the request is in flight: half its body sent
            time.sleep(0.5)
            server.send_signal(signal.SIGTERM)
            time.sleep(1.5)
            assert server.poll() is None, log.read_text()  # waits for the request
            conn.sendall(body[10:])
            answer = b""
            while chunk := conn.recv(65536):  # the server closes after this response
                answer += chunk
    finally:
        status = terminate(server)
    text_log = log.read_text()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["stored"] == 1
    assert stored_ids(tmp_path) == {batch.results[0].result_id}
    assert "Traceback" not in text_log
    assert_server_stopped_cleanly(status, text_log)
