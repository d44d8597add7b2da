"""A small world for evaluator tests: a migrated database, a config, a fake clock, real ingest.

Results enter through :func:`monitor.storage.ingest.ingest_batch` (the server's own ingest)
and alerts leave into :class:`RecordingSink`, a fake at the seam we own
(:class:`monitor.alerting.events.AlertSink`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.evaluator import Evaluator, PassSummary
from monitor.alerting.events import AlertEvent, AlertKind
from monitor.config import Config
from monitor.storage.db import make_engine
from monitor.storage.ingest import ingest_batch
from monitor.storage.migrate import upgrade
from monitor.storage.models_incidents import Incident, TargetStatePeriod
from monitor.storage.sync import sync_config
from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@dataclass
class RecordingSink:
    """Records every alert queued; a key seen before is refused like the real outbox does."""

    events: list[AlertEvent] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def enqueue(self, session: Session, event: AlertEvent) -> bool:
        if event.key in self.keys:
            return False
        self.keys.add(event.key)
        self.events.append(event)
        return True

    def count(self) -> Counter[AlertKind]:
        return Counter(event.kind for event in self.events)

    def of(self, kind: AlertKind) -> list[AlertEvent]:
        return [event for event in self.events if event.kind is kind]


@dataclass
class Clock:
    """The server's fake clock."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def site_config(
    sites: dict[str, list[dict[str, Any]]],
    *,
    server: dict[str, Any] | None = None,
    site_extra: dict[str, dict[str, Any]] | None = None,
) -> Config:
    """Return a config with one site per key (made-up tokens) and the given targets."""
    return Config.model_validate(
        {
            "server": server or {},
            "sites": {
                site_id: {
                    "name": site_id.title(),
                    "token": f"token-{site_id}-0123456789",
                    "targets": targets,
                    **((site_extra or {}).get(site_id, {})),
                }
                for site_id, targets in sites.items()
            },
        }
    )


def icmp(
    target_id: str, host: str = "192.0.2.1", interval_s: float = 60.0, **extra: Any
) -> dict[str, Any]:
    """Return an ICMP target spec (documentation address: data only, never probed)."""
    return {
        "kind": "icmp",
        "id": target_id,
        "host": host,
        "count": 3,
        "spacing_s": 0.2,
        "interval_s": interval_s,
        **extra,
    }


def result(target_id: str, at: datetime, obs: str = "up", **fields: Any) -> ResultIn:
    """Return an uploaded ICMP result saying ``obs``: up, degraded, down or error."""
    values: dict[str, Any] = {
        "result_id": str(uuid.uuid4()),
        "target_id": target_id,
        "kind": ProbeKind.ICMP,
        "measured_at": at,
        "duration_s": 1.0,
        "sent": 3,
        "duplicates": 0,
    }
    if obs in ("up", "degraded"):
        rtt = 0.012 if obs == "up" else 5.0
        values |= {"status": ProbeStatus.UP, "rtt_s": rtt, "packet_loss": 0.0}
        values |= {"jitter_s": 0.001, "received": 3, "rtts_s": [rtt] * 3}
    elif obs == "down":
        values |= {"status": ProbeStatus.DOWN, "packet_loss": 1.0, "received": 0}
        values |= {"rtts_s": [None] * 3, "error": "no echo reply within 5 s"}
    elif obs == "error":
        values |= {"status": ProbeStatus.ERROR, "sent": 0, "received": 0}
        values |= {"error": "the probe host's resolver failed (SERVFAIL)"}
    else:
        raise ValueError(obs)
    values |= fields
    return ResultIn.model_validate(values)


class World:
    """A migrated database holding ``config``, with a clock, a sink and an evaluator."""

    def __init__(self, config: Config, engine: Engine, **evaluator_options: Any) -> None:
        self.config = config
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.clock = Clock()
        self.sink = RecordingSink()
        self.options = evaluator_options
        with self.sessions() as session, session.begin():
            sync_config(session, config, self.clock())
        self.evaluator = self.new_evaluator()

    def new_evaluator(self, **options: Any) -> Evaluator:
        """Return a fresh evaluator on this world (a server restart, as far as it knows)."""
        merged = {**self.options, **options}
        return Evaluator(self.config, self.engine, self.sessions, self.clock, self.sink, **merged)

    def upload(self, site_id: str, results: Sequence[ResultIn]) -> int:
        """Ingest ``results`` from ``site_id``'s agent now (the clock's time); return stored."""
        batch = BatchIn(
            batch_id=str(uuid.uuid4()),
            site_id=site_id,
            agent_sent_at=self.clock(),
            results=list(results),
        )
        with self.sessions() as session, session.begin():
            return ingest_batch(session, site_id, batch, self.clock()).stored

    def run(self) -> PassSummary:
        """Run one evaluator pass."""
        return self.evaluator.run_pass()

    def run_until_caught_up(self, max_passes: int = 100) -> None:
        """Run passes until one reports it caught up (bounded)."""
        for _ in range(max_passes):
            if self.run().caught_up:
                return
        raise AssertionError(f"not caught up after {max_passes} passes")

    def periods(self, site_id: str, target_id: str) -> list[tuple[datetime, datetime, str]]:
        """Return the target's stored periods, oldest first."""
        table = TargetStatePeriod
        with self.sessions() as session:
            rows = session.execute(
                select(table.start_at, table.end_at, table.state)
                .where(table.site_id == site_id, table.target_id == target_id)
                .order_by(table.start_at)
            )
            return [(a, b, s) for a, b, s in rows]

    def incidents(self, kind: str | None = None) -> list[Incident]:
        """Return the incidents (of ``kind``), by id."""
        with self.sessions() as session:
            stmt = select(Incident).order_by(Incident.id)
            if kind is not None:
                stmt = stmt.where(Incident.kind == kind)
            return list(session.scalars(stmt))

    def play(
        self,
        site_id: str,
        target_id: str,
        observations: Iterable[str],
        start: datetime,
        step_s: float,
        *,
        lag_s: float = 2.0,
    ) -> list[PassSummary]:
        """Upload one result per step ``lag_s`` after it is measured and run a pass after each."""
        summaries = []
        for i, obs in enumerate(observations):
            at = start + timedelta(seconds=i * step_s)
            self.clock.set(at + timedelta(seconds=lag_s))
            self.upload(site_id, [result(target_id, at, obs)])
            summaries.append(self.run())
        return summaries


@contextmanager
def migrated_world(db_url: str, config: Config, **options: Any) -> Iterator[World]:
    """Yield a :class:`World` on a freshly migrated ``db_url``; dispose the engine after."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield World(config, engine, **options)
    finally:
        engine.dispose()


WorldFactory = Callable[..., AbstractContextManager[World]]
"""``make_world(config, **evaluator_options)``: the fixture's type."""
