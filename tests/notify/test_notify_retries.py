"""Retries, timeouts, give-up and escalation (cases C18 a and C19), on a real webhook receiver.

The receiver answers later than the sender waits with the case's ratio (1.2 s against a
1.0 s timeout, for 12 s against 10 s); retry waits run on the fake clock.
"""

from __future__ import annotations

import itertools
import logging
import random
from datetime import timedelta

import pytest
from alert_testkit import (
    SITE_NAME_LO,
    SteppedClock,
    advance_to_next_attempt,
    down_event,
    enqueue,
    make_worker,
    notifications_config,
    open_incident,
    rows,
)
from notify_testkit import free_port, http_receiver
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.delivery import backoff_s
from monitor.storage.models_notify import DeliveryRow


def _status(sessions: sessionmaker[Session], channel: str) -> str | None:
    with sessions() as session:
        return session.scalar(select(DeliveryRow.status).where(DeliveryRow.channel == channel))


async def test_a_receiver_answering_after_the_timeout_sees_one_event_id_on_every_attempt(
    sqlite_sessions: sessionmaker[Session],
    fake_clock: SteppedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """C18 (a): 1 logical notification, N attempts, all with the same event id."""
    sessions = sqlite_sessions
    caplog.set_level(logging.INFO, logger="linkwatch.delivery")
    with http_receiver() as receiver:
        receiver.delays_s = [1.2, 1.2]  # processes the request, answers after the timeout
        config = notifications_config(
            {"hook": {"kind": "webhook", "url": receiver.url + "/hook", "timeout_s": 1.0}}
        )
        incident = open_incident(sessions, fake_clock.now)
        enqueue(sessions, config, fake_clock, down_event(incident, fake_clock.now))
        worker = make_worker(sessions, config, fake_clock)
        try:
            for _ in range(6):
                await worker.tick()
                await worker.drain()
                if _status(sessions, "hook") == "delivered":
                    break
                advance_to_next_attempt(fake_clock, sessions)
        finally:
            await worker.close()
        requests = list(receiver.requests)
    notes, deliveries, attempts = rows(sessions)
    assert len(notes) == 1 and len(deliveries) == 1
    assert [a.outcome for a in attempts] == ["timeout", "timeout", "delivered"]
    assert len(requests) == 3
    event_id = notes[0].event_id
    assert {r.headers["idempotency-key"] for r in requests} == {event_id}
    assert {r.json()["event_id"] for r in requests} == {event_id}
    assert len({r.body for r in requests}) == 1  # the same bytes on every attempt
    processed = {r.json()["event_id"] for r in requests}  # what a deduplicating receiver keeps
    assert len(processed) == 1
    logged = [r.getMessage() for r in caplog.records if event_id in r.getMessage()]
    assert [("attempt 1" in m, "attempt 2" in m, "attempt 3" in m) for m in logged] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]


async def test_a_chat_service_unreachable_for_ten_seconds_gets_the_alert_by_fifteen_seconds(
    sqlite_sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    """C19: DOWN at 14:00:00, the chat API is unreachable until 14:00:10; delivered by :15."""
    sessions = sqlite_sessions
    fake_clock.now = fake_clock.now.replace(hour=7, minute=0, second=0)  # 14:00 in Vientiane
    start = fake_clock.now
    port = free_port()  # nothing listens there yet: connection refused
    config = notifications_config(
        {"chat": {"kind": "apprise", "urls": [f"json://127.0.0.1:{port}/chat"]}}
    )  # default retries: 5 s, doubling, up to 20 % shorter
    incident = open_incident(sessions, start)
    enqueue(sessions, config, fake_clock, down_event(incident, start))
    worker = make_worker(sessions, config, fake_clock)
    tried_at: list[timedelta] = []
    try:
        for _ in range(6):
            if fake_clock.now - start >= timedelta(seconds=10):
                break
            tried_at.append(fake_clock.now - start)
            await worker.tick()
            await worker.drain()
            advance_to_next_attempt(fake_clock, sessions)
        with http_receiver(port) as receiver:  # the service is back
            for _ in range(3):
                tried_at.append(fake_clock.now - start)
                await worker.tick()
                await worker.drain()
                if _status(sessions, "chat") == "delivered":
                    break
                advance_to_next_attempt(fake_clock, sessions)
            bodies = receiver.bodies("/chat")
    finally:
        await worker.close()
    notes, deliveries, attempts = rows(sessions)
    assert [a.outcome for a in attempts] == ["failed", "failed", "delivered"]
    assert deliveries[0].delivered_at is not None
    assert timedelta(seconds=10) <= deliveries[0].delivered_at - start <= timedelta(seconds=15)
    assert len(bodies) == 1
    assert SITE_NAME_LO in bodies[0]["title"] and SITE_NAME_LO in bodies[0]["message"]
    assert f"ref {notes[0].event_id}" in bodies[0]["message"]


async def test_a_channel_that_keeps_failing_is_given_up_and_the_next_channel_gets_alert_and_notice(
    sqlite_sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    """C19: retry bounded (15 min), then "delivery failed" escalation on another channel."""
    sessions = sqlite_sessions
    start = fake_clock.now
    with http_receiver() as backup:
        config = notifications_config(
            {
                "chat": {"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/"},
                "mail": {"kind": "webhook", "url": backup.url + "/mail", "fallback_only": True},
            }
        )
        incident = open_incident(sessions, start)
        enqueue(sessions, config, fake_clock, down_event(incident, start))
        worker = make_worker(sessions, config, fake_clock)
        try:
            for _ in range(30):
                await worker.tick()
                await worker.drain()
                if _status(sessions, "chat") == "failed" and backup.count() >= 2:
                    break
                advance_to_next_attempt(fake_clock, sessions)
        finally:
            await worker.close()
        received = backup.bodies("/mail")
    notes, deliveries, attempts = rows(sessions)
    chat = [a for a in attempts if a.channel == "chat"]
    assert all(a.outcome == "failed" for a in chat)
    assert chat[-1].started_at - start == timedelta(seconds=900)  # the last try falls on the bound
    assert all(b.started_at < a.started_at for b, a in itertools.pairwise(chat))
    assert [(b["type"], b["failed_channel"]) for b in received] == [
        ("alert", None),
        ("delivery_failed", "chat"),
    ]
    assert received[0]["event_id"] == notes[0].event_id
    assert "DELIVERY FAILED on channel chat" in received[1]["title"]["en"]
    assert {d.channel: d.status for d in deliveries} == {"chat": "failed", "mail": "delivered"}


async def test_a_refused_notification_is_not_retried_and_escalates_at_once(
    sqlite_sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    sessions = sqlite_sessions
    with http_receiver() as receiver:
        receiver.statuses_by_path = {"/hook": [400]}
        config = notifications_config(
            {
                "hook": {"kind": "webhook", "url": receiver.url + "/hook"},
                "backup": {"kind": "webhook", "url": receiver.url + "/backup"},
            }
        )
        incident = open_incident(sessions, fake_clock.now)
        enqueue(sessions, config, fake_clock, down_event(incident, fake_clock.now))
        worker = make_worker(sessions, config, fake_clock)
        try:
            for _ in range(3):
                await worker.tick()
                await worker.drain()
        finally:
            await worker.close()
        paths = sorted((r.path, r.json()["type"]) for r in receiver.requests)
    _, _, attempts = rows(sessions)
    assert [a.outcome for a in attempts if a.channel == "hook"] == ["rejected"]
    assert paths == [
        ("/backup", "alert"),
        ("/backup", "delivery_failed"),
        ("/hook", "alert"),
    ]


def test_backoff_doubles_up_to_its_cap_and_jitter_only_shortens_it() -> None:
    rng = random.Random(1)
    for failures in range(1, 15):
        base = min(300.0, 5.0 * 2 ** (failures - 1))
        for _ in range(50):
            wait = backoff_s(failures, initial_s=5.0, max_s=300.0, rng=rng)
            assert 0.8 * base <= wait <= base
