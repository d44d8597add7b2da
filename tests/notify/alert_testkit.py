"""Helpers of the notification tests: incidents, alert events, the outbox, workers, clocks.

The events follow :mod:`monitor.alerting.events`; the incidents are rows of the evaluator's
``incidents`` table, inserted directly (the evaluator is not under test here).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.channels.base import Channel, Notification, RenderedMessage
from monitor.alerting.channels.registry import build_channels
from monitor.alerting.channels.specs import NotificationsConfig
from monitor.alerting.delivery import DeliveryWorker
from monitor.alerting.events import AlertEvent, AlertKind, IncidentKind, event_key
from monitor.alerting.messages import render
from monitor.alerting.outbox import OutboxSink
from monitor.config import SiteConfig
from monitor.storage.models_incidents import Incident
from monitor.storage.models_notify import AttemptRow, DeliveryRow, NotificationRow

SITE_NAME_LO = "ຂົວມິດຕະພາບ 1"
"""The Lao name of the test site ``bridge1`` (must arrive intact through every channel)."""

SITES = {
    "bridge1": SiteConfig.model_validate(
        {
            "name": "Friendship Bridge I",
            "name_lo": SITE_NAME_LO,
            "token": "token-bridge1-0123456789",
            "targets": [{"kind": "tcp", "id": "gw-tcp", "host": "127.0.0.1", "port": 9}],
        }
    )
}


class SteppedClock(Protocol):
    """The tests' fake clock (``tests/conftest.py``: ``fake_clock``)."""

    now: datetime

    def __call__(self) -> datetime: ...

    def advance(self, seconds: float) -> None: ...


def open_incident(
    sessions: sessionmaker[Session], started_at: datetime, *, target_id: str = "gw-tcp"
) -> int:
    """Insert an open target incident of ``bridge1`` and return its id."""
    with sessions() as session, session.begin():
        incident = Incident(
            kind=IncidentKind.TARGET.value,
            site_id="bridge1",
            target_id=target_id,
            open_key=f"target:bridge1:{target_id}:{started_at.isoformat()}",
            started_at=started_at,
            detected_at=started_at,
            detail={},
        )
        session.add(incident)
        session.flush()
        return incident.id


def close_incident(sessions: sessionmaker[Session], incident_id: int, ended_at: datetime) -> None:
    """Mark the incident ended at ``ended_at``."""
    with sessions() as session, session.begin():
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.ended_at = ended_at
        incident.open_key = None


def down_event(incident_id: int, at: datetime, *, target_id: str = "gw-tcp") -> AlertEvent:
    """Return the TARGET_DOWN event of an incident (Lao site name in its Lao summary)."""
    return AlertEvent(
        key=event_key(incident_id, AlertKind.TARGET_DOWN),
        kind=AlertKind.TARGET_DOWN,
        incident_id=incident_id,
        site_id="bridge1",
        target_id=target_id,
        started_at=at,
        occurred_at=at,
        summary_en=f"Friendship Bridge I: {target_id} is DOWN",
        summary_lo=f"{SITE_NAME_LO}: {target_id} ຂາດການເຊື່ອມຕໍ່",
        detail={"site_name": "Friendship Bridge I", "site_name_lo": SITE_NAME_LO},
    )


def recovery_event(incident_id: int, started: datetime, ended: datetime) -> AlertEvent:
    """Return the TARGET_RECOVERED event of an incident."""
    return AlertEvent(
        key=event_key(incident_id, AlertKind.TARGET_RECOVERED),
        kind=AlertKind.TARGET_RECOVERED,
        incident_id=incident_id,
        site_id="bridge1",
        target_id="gw-tcp",
        started_at=started,
        occurred_at=ended,
        summary_en="Friendship Bridge I: gw-tcp is UP again",
        summary_lo=f"{SITE_NAME_LO}: gw-tcp ກັບມາປົກກະຕິ",
        detail={"duration_s": (ended - started).total_seconds()},
    )


def enqueue(
    sessions: sessionmaker[Session],
    config: NotificationsConfig,
    clock: Callable[[], datetime],
    event: AlertEvent,
) -> bool:
    """Enqueue ``event`` through the outbox sink in a transaction of its own."""
    with sessions() as session, session.begin():
        return OutboxSink(config, clock).enqueue(session, event)


def notifications_config(
    channels: dict[str, dict[str, Any]], **settings: Any
) -> NotificationsConfig:
    """Return a validated ``notifications`` section with ``channels`` and ``settings``."""
    return NotificationsConfig.model_validate({"channels": channels, **settings})


def render_for_tests(notification: Notification) -> RenderedMessage:
    """Render with the test site's names, in Vientiane time."""
    return render(notification, zone="Asia/Vientiane", sites=SITES)


def make_worker(
    sessions: sessionmaker[Session],
    config: NotificationsConfig,
    clock: Callable[[], datetime],
    *,
    worker_id: str = "worker-a",
    channels: dict[str, Channel] | None = None,
    max_in_flight: int = 32,
) -> DeliveryWorker:
    """Return a delivery worker on the configured (real) channels; jitter seeded."""
    return DeliveryWorker(
        config=config,
        sessions=sessions,
        clock=clock,
        channels=channels if channels is not None else build_channels(config),
        render=render_for_tests,
        worker_id=worker_id,
        rng=random.Random(7),
        max_in_flight=max_in_flight,
    )


def rows(
    sessions: sessionmaker[Session],
) -> tuple[list[NotificationRow], list[DeliveryRow], list[AttemptRow]]:
    """Return every notification, delivery and attempt row, in id order."""
    with sessions() as session:
        return (
            list(session.scalars(select(NotificationRow).order_by(NotificationRow.id))),
            list(session.scalars(select(DeliveryRow).order_by(DeliveryRow.id))),
            list(session.scalars(select(AttemptRow).order_by(AttemptRow.id))),
        )


def advance_to_next_attempt(clock: SteppedClock, sessions: sessionmaker[Session]) -> None:
    """Move the fake clock to the earliest pending delivery's ``next_attempt_at``."""
    with sessions() as session:
        due = session.scalar(
            select(DeliveryRow.next_attempt_at)
            .where(DeliveryRow.status == "pending")
            .order_by(DeliveryRow.next_attempt_at)
            .limit(1)
        )
    assert due is not None, "no pending delivery"
    if due > clock.now:
        clock.now = due
