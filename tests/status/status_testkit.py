"""Test kit for the status page and /metrics tests: configs, results, real ingest, the app."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade
from monitor.storage.repository import ingest_batch, sync_config
from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

NOW = datetime(2024, 5, 1, 7, 0, 0, tzinfo=UTC)
"""The fake clock of every test app (14:00 in Asia/Vientiane)."""


def icmp(target_id: str, host: str = "192.0.2.1") -> dict[str, Any]:
    return {"id": target_id, "kind": "icmp", "host": host, "count": 5, "spacing_s": 0.2}


def tcp(target_id: str, host: str = "192.0.2.1", port: int = 443) -> dict[str, Any]:
    return {"id": target_id, "kind": "tcp", "host": host, "port": port}


def site(
    name: str, targets: list[dict[str, Any]], name_lo: str | None = None, profile: str = "fibre"
) -> dict[str, Any]:
    return {
        "name": name,
        "name_lo": name_lo,
        "link_profile": profile,
        "token": hashlib.sha256(name.encode()).hexdigest()[:32],
        "targets": targets,
    }


def make_config(sites: dict[str, dict[str, Any]]) -> Config:
    return Config.model_validate({"sites": sites})


def result(
    target_id: str,
    *,
    kind: str = "icmp",
    status: str = "up",
    age_s: float = 10.0,
    rtt_s: float | None = 0.012,
    packet_loss: float | None = 0.0,
    jitter_s: float | None = 0.002,
    duplicates: int | None = 0,
    error: str | None = None,
) -> ResultIn:
    icmp_kind = kind == "icmp"
    return ResultIn(
        result_id=str(uuid.uuid4()),
        target_id=target_id,
        kind=ProbeKind(kind),
        status=ProbeStatus(status),
        measured_at=NOW - timedelta(seconds=age_s),
        duration_s=1.0,
        rtt_s=rtt_s,
        packet_loss=packet_loss if icmp_kind else None,
        jitter_s=jitter_s if icmp_kind else None,
        sent=5 if icmp_kind else None,
        received=5 if icmp_kind and status == "up" else (0 if icmp_kind else None),
        duplicates=duplicates if icmp_kind else None,
        error=error,
    )


def icmp_round(
    target_id: str,
    measured_at: datetime,
    rtts_s: list[float | None],
    *,
    status: str = "up",
    jitter_s: float | None = 0.001,
) -> ResultIn:
    """Return one uploaded ICMP round with these per-request RTTs (``None``: lost)."""
    replies = [v for v in rtts_s if v is not None]
    return ResultIn(
        result_id=str(uuid.uuid4()),
        target_id=target_id,
        kind=ProbeKind.ICMP,
        status=ProbeStatus(status),
        measured_at=measured_at,
        duration_s=1.0,
        rtt_s=sum(replies) / len(replies) if replies else None,
        packet_loss=1 - len(replies) / len(rtts_s) if rtts_s else None,
        jitter_s=jitter_s if replies else None,
        sent=len(rtts_s),
        received=len(replies),
        duplicates=0,
        rtts_s=rtts_s,
    )


@dataclass
class World:
    """A migrated database and the means to fill it and serve it through the real app."""

    url: str
    engine: Engine

    def ingest(
        self,
        config: Config,
        site_id: str,
        results: list[ResultIn],
        received_at: datetime = NOW,
        *,
        spool: dict[str, Any] | None = None,
        agent_sent_at: datetime | None = None,
    ) -> None:
        """Mirror ``config`` into the database and store ``results`` as one uploaded batch
        (with the agent's spool report ``spool``, if given)."""
        with Session(self.engine) as session:
            sync_config(session, config, received_at)
            batch = BatchIn.model_validate(
                {
                    "batch_id": str(uuid.uuid4()),
                    "site_id": site_id,
                    "agent_sent_at": agent_sent_at or received_at,
                    "results": results,
                    **({"spool": spool} if spool is not None else {}),
                }
            )
            ingest_batch(session, site_id, batch, received_at)
            session.commit()

    def roll_up(self, config: Config, now: datetime = NOW) -> int:
        """Roll up every result stored so far (no settling delay); return how many were read."""
        from sqlalchemy.orm import sessionmaker

        from monitor.storage.rollups_job import roll_up_all

        return roll_up_all(sessionmaker(self.engine), config, now, settle_s=0.0)

    def evaluate(self, config: Config, now: datetime = NOW, passes: int = 3) -> None:
        """Run the incident engine's state evaluator (state periods, incidents) at ``now``."""
        from sqlalchemy.orm import sessionmaker

        from api.services import Services
        from monitor.alerting.evaluator import evaluator_for

        services = Services(
            config=config,
            engine=self.engine,
            sessions=sessionmaker(self.engine, expire_on_commit=False),
            clock=lambda: now,
        )
        evaluator = evaluator_for(services)
        for _ in range(passes):
            evaluator.run_pass()

    def periods(
        self, config: Config, site_id: str, rows: list[tuple[str, str, datetime, datetime]]
    ) -> None:
        """Store state periods ``(target_id, state, start, end)`` as the evaluator would."""
        from sqlalchemy import insert

        from monitor.storage.models_incidents import TargetStatePeriod

        with Session(self.engine) as session:
            sync_config(session, config, NOW)
            session.execute(
                insert(TargetStatePeriod),
                [
                    {"site_id": site_id, "target_id": t, "state": s, "start_at": a, "end_at": b}
                    for t, s, a, b in rows
                ],
            )
            session.commit()

    @contextmanager
    def client(self, config: Config, now: datetime = NOW) -> Iterator[TestClient]:
        """Serve the database through ``api.app.create_app`` with a fixed clock."""
        from api.app import create_app

        app = create_app(config, engine=self.engine, clock=lambda: now, run_workers=False)
        with TestClient(app) as client:
            yield client


@contextmanager
def migrated_world(url: str) -> Iterator[World]:
    """Migrate the empty database at ``url`` to head and yield a World on it."""
    upgrade(url)
    engine = make_engine(url)
    try:
        yield World(url, engine)
    finally:
        engine.dispose()


def token_of(config: Config, site_id: str) -> str:
    """Return the upload token the test kit gave ``site_id``."""
    token = config.sites[site_id].token
    assert token is not None
    return token
