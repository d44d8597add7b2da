"""``/readyz`` of a real server process follows its PostgreSQL database coming into being.

The server starts while its database does not exist (503, the database does not answer),
then the database is created (503, no schema yet: run ``linkwatch db upgrade``), then
migrated (200). ``/healthz`` answers 200 throughout: the process itself is fine.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from processes import free_port, start, terminate, wait_http, write_config
from psycopg import sql

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PG_HOST, PG_USER = "127.0.0.1", "postgres"
PG_PORT = int(os.environ.get("LINKWATCH_TEST_PG_PORT", "5432"))


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


@pytest.fixture
def database_name() -> Iterator[str]:
    """Name a database that does not exist yet; drop it afterwards if it was made."""
    try:
        admin().close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {exc}")
    name = f"linkwatch_ready_{uuid.uuid4().hex[:10]}"
    yield name
    with admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    body: dict[str, Any] = response.json()
    return response.status_code, body


def test_readyz_fails_until_the_database_exists_and_is_migrated(
    tmp_path: Path, database_name: str
) -> None:
    port = free_port()
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database_name}"
    cfg = write_config(
        tmp_path / "linkwatch.yaml",
        {
            "server": {"host": "127.0.0.1", "port": port, "database_url": url},
            "sites": {
                "fb1": {
                    "name": "Friendship Bridge I",
                    "token": "token-fb1-0123456789abcdef",
                    "targets": [{"id": "gw-icmp", "kind": "icmp", "host": "192.0.2.1"}],
                }
            },
        },
    )
    log = tmp_path / "server.log"
    server = start(["server", "--config", str(cfg)], log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", server, log)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200

        status, body = readyz(port)
        assert status == 503
        assert body["status"] == "not ready"
        assert body["reason"].startswith("the database does not answer")
        assert database_name in body["reason"]

        with admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database_name)))
        status, body = readyz(port)
        assert status == 503
        assert "no schema yet" in body["reason"] and "linkwatch db upgrade" in body["reason"]

        upgraded = start(["db", "upgrade", "--config", str(cfg)], tmp_path / "upgrade.log")
        assert upgraded.wait(timeout=120) == 0, (tmp_path / "upgrade.log").read_text()
        status, body = readyz(port)
        assert (status, body["status"]) == (200, "ready"), body
        assert body["revision"]
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
    finally:
        terminate(server)
    assert "Traceback" not in log.read_text()
