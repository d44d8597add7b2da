"""Shared fixtures: a database on each backend, a migrated engine, a small config, the app.

``db_url`` runs a test once on SQLite (a file in ``tmp_path``) and once on PostgreSQL at
127.0.0.1:5432 (user postgres). The PostgreSQL side creates one database per test session
(``linkwatch_test_<pid>_<random>``, dropped at the end) and gives each test a fresh schema
of its own (via ``search_path`` in the URL), so tests never see each other's rows nor
those of anyone else using the server. When PostgreSQL is unreachable the postgres tests are
skipped, saying why, except under ``CI=true``, where they fail. ``LINKWATCH_TEST_PG_PORT``
moves the server to another loopback port.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import Engine

from api.app import create_app
from monitor.config import Config
from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade
from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

PG_HOST = "127.0.0.1"  # loopback only, by the project's network rule
PG_PORT = int(os.environ.get("LINKWATCH_TEST_PG_PORT", "5432"))
PG_USER = "postgres"

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
"""The fake clock's start; results in tests are measured around it."""

TOKENS = {"bridge1": "token-bridge1-0123456789", "wattay": "token-wattay-0123456789"}
"""The upload token of each site in ``sample_config``."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _pg_connect(dbname: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True, connect_timeout=5
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """Create a database for this test session on 127.0.0.1:5432; drop it afterwards."""
    try:
        admin = _pg_connect("postgres")
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}) is unreachable: {reason}"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: the postgres tests must run)")
        pytest.skip(f"{message}; start it to run the postgres tests")
    name = f"linkwatch_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield name
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """Return a URL to a fresh, empty schema in the session's PostgreSQL database."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _pg_connect(pg_database) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    options = quote(f"-csearch_path={schema}", safe="")
    yield (f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}?options={options}")
    with _pg_connect(pg_database) as conn:
        conn.execute("SET lock_timeout = '5s'")
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'linkwatch.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def migrated_engine(db_url: str) -> Iterator[Engine]:
    """Return an engine on ``db_url`` after ``alembic upgrade head``; disposed afterwards."""
    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@dataclass
class FakeClock:
    """The server's clock in tests: stands still until moved."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def fake_clock() -> FakeClock:
    """Return a clock standing at ``T0``; ``fake_clock.advance(s)`` moves it."""
    return FakeClock()


def config_for(sites: dict[str, list[dict[str, Any]]]) -> Config:
    """Build a Config with one site per key (token from ``TOKENS`` or made up) and its targets."""
    return Config.model_validate(
        {
            "sites": {
                site_id: {
                    "name": site_id.title(),
                    "token": TOKENS.get(site_id, f"token-{site_id}-0123456789"),
                    "targets": targets,
                }
                for site_id, targets in sites.items()
            }
        }
    )


LOOPBACK_TARGETS: list[dict[str, Any]] = [
    {"kind": "icmp", "id": "gw-icmp", "host": "127.0.0.1", "count": 3, "spacing_s": 0.2},
    {"kind": "tcp", "id": "gw-tcp", "host": "127.0.0.1", "port": 9},
    {"kind": "http", "id": "gw-http", "url": "http://127.0.0.1:9/health"},
    {"kind": "dns", "id": "gw-dns", "host": "127.0.0.1", "port": 5353, "query_name": "gw.test"},
]


@pytest.fixture
def sample_config() -> Config:
    """Two sites (``bridge1``, ``wattay``; tokens in ``TOKENS``), loopback targets only."""
    config = Config.model_validate(
        {
            "sites": {
                "bridge1": {
                    "name": "Friendship Bridge I",
                    "name_lo": "ຂົວມິດຕະພາບ 1",
                    "region": "Vientiane",
                    "link_profile": "fibre",
                    "token": TOKENS["bridge1"],
                    "targets": LOOPBACK_TARGETS,
                },
                "wattay": {
                    "name": "Wattay Airport",
                    "link_profile": "4g",
                    "token": TOKENS["wattay"],
                    "targets": LOOPBACK_TARGETS[:2],
                },
            }
        }
    )
    return config


@pytest.fixture
def client(
    sample_config: Config, migrated_engine: Engine, fake_clock: FakeClock
) -> Iterator[TestClient]:
    """Return a TestClient on the real app for ``sample_config``, started (lifespan run)."""
    app = create_app(sample_config, engine=migrated_engine, clock=fake_clock)
    with TestClient(app) as test_client:
        yield test_client


def make_result(
    target_id: str,
    measured_at: datetime,
    *,
    kind: ProbeKind = ProbeKind.ICMP,
    status: ProbeStatus = ProbeStatus.UP,
    rtt_s: float | None = 0.012,
    result_id: str | None = None,
    **fields: Any,
) -> ResultIn:
    """Return one uploaded result (ICMP UP by default; ``fields`` override the rest)."""
    values: dict[str, Any] = {
        "result_id": result_id or str(uuid.uuid4()),
        "target_id": target_id,
        "kind": kind,
        "status": status,
        "measured_at": measured_at,
        "duration_s": 1.0,
        "rtt_s": rtt_s,
    }
    if kind == ProbeKind.ICMP:
        values |= {"packet_loss": 0.0, "jitter_s": 0.001, "sent": 3, "received": 3}
        values |= {"duplicates": 0, "rtts_s": [rtt_s, rtt_s, rtt_s]}
    values |= fields
    return ResultIn.model_validate(values)


def make_batch(
    site_id: str,
    results: Sequence[ResultIn],
    *,
    agent_sent_at: datetime | None = None,
    batch_id: str | None = None,
) -> BatchIn:
    """Return a batch of ``results`` from ``site_id``'s agent."""
    return BatchIn(
        batch_id=batch_id or str(uuid.uuid4()),
        site_id=site_id,
        agent_sent_at=agent_sent_at or T0,
        results=list(results),
    )


def auth(site_id: str) -> dict[str, str]:
    """Return the Authorization header of ``site_id``'s agent."""
    return {"Authorization": f"Bearer {TOKENS[site_id]}"}


# Test modules get the helpers above through these fixtures: importing ``conftest`` by name
# is ambiguous (other folders have a conftest.py of their own).


@pytest.fixture
def result_factory() -> Callable[..., ResultIn]:
    """Return :func:`make_result`."""
    return make_result


@pytest.fixture
def batch_factory() -> Callable[..., BatchIn]:
    """Return :func:`make_batch`."""
    return make_batch


@pytest.fixture
def auth_header() -> Callable[[str], dict[str, str]]:
    """Return :func:`auth`: ``auth_header("bridge1")`` is that site's Authorization header."""
    return auth
