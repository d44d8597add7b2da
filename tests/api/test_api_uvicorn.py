"""The app under real uvicorn on 127.0.0.1 (ephemeral port), spoken to with httpx."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import uvicorn
from sqlalchemy import Engine

from api.app import create_app
from monitor.config import Config
from monitor.wire import BatchIn, ResultIn

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MakeResult = Callable[..., ResultIn]
MakeBatch = Callable[..., BatchIn]
Auth = Callable[[str], dict[str, str]]


@contextmanager
def serving(config: Config, engine: Engine) -> Iterator[str]:
    """Run the app under uvicorn in a thread on 127.0.0.1:0; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, engine=engine),
            host="127.0.0.1",
            port=0,
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped during startup"
            assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert not thread.is_alive(), "uvicorn did not stop within 20 s"


def test_real_uvicorn_stores_a_gzip_batch_once_and_serves_it_back(
    sample_config: Config,
    migrated_engine: Engine,
    result_factory: MakeResult,
    batch_factory: MakeBatch,
    auth_header: Auth,
) -> None:
    results = [result_factory("gw-icmp", T0 + timedelta(seconds=30 * i)) for i in range(40)]
    results.append(result_factory("gw-icmp", T0 + timedelta(hours=1), rtt_s=None, rtts_s=[None]))
    batch = batch_factory("bridge1", results, agent_sent_at=datetime.now(UTC))
    body = gzip.compress(batch.model_dump_json().encode())
    headers = {
        **auth_header("bridge1"),
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    with (
        serving(sample_config, migrated_engine) as base,
        httpx.Client(base_url=base, timeout=20) as http,
    ):
        ready = http.get("/readyz")
        first = http.post("/api/v1/ingest", content=body, headers=headers)
        again = http.post("/api/v1/ingest", content=body, headers=headers)
        latest = http.get("/api/v1/latest", params={"site_id": "bridge1"})
        denied = http.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
    assert ready.status_code == 200, ready.text
    assert first.status_code == 200, first.text
    assert (first.json()["stored"], first.json()["duplicates"]) == (41, 0)
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 41)
    [newest] = latest.json()
    assert newest["rtt_s"] is None and newest["rtts_s"] == [None]
    assert datetime.fromisoformat(newest["measured_at"]) == T0 + timedelta(hours=1)
    assert denied.status_code == 401
