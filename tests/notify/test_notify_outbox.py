"""The outbox: one row per notification and channel, claimed by exactly one worker (C18 b)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta

import pytest
from alert_testkit import (
    SteppedClock,
    close_incident,
    down_event,
    enqueue,
    make_worker,
    notifications_config,
    open_incident,
    recovery_event,
    rows,
)
from notify_testkit import http_receiver
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.outbox import (
    AttemptOutcome,
    DeliveryStatus,
    OutboxSink,
    UnknownIncidentError,
    acknowledge,
    acknowledgements,
    alerts_sent,
    claim_due,
    delivery_backlog,
    delivery_counts,
    event_id_for,
    recent_deliveries,
)
from monitor.storage.db import make_engine
from monitor.storage.models_notify import DeliveryRow, NotificationRow


def test_an_alert_is_queued_once_per_channel_and_a_repeated_key_stores_nothing(
    sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    config = notifications_config(
        {
            "hook": {"kind": "webhook", "url": "http://127.0.0.1:9/"},
            "am": {"kind": "alertmanager", "url": "http://127.0.0.1:9"},
            "mail": {
                "kind": "email",
                "host": "127.0.0.1",
                "sender": "lw@ncb.test",
                "to": ["oncall@ncb.test"],
                "fallback_only": True,
            },
        }
    )
    clock = fake_clock
    incident = open_incident(sessions, clock.now)
    event = down_event(incident, clock.now)
    assert enqueue(sessions, config, clock, event) is True
    assert enqueue(sessions, config, clock, event) is False
    notes, deliveries, attempts = rows(sessions)
    assert [n.key for n in notes] == [event.key]
    assert notes[0].event_id == event_id_for(event.key)
    assert sorted(d.channel for d in deliveries) == ["am", "hook"]  # mail is fallback only
    assert {d.status for d in deliveries} == {"pending"}
    assert attempts == []


def test_enqueue_is_part_of_the_callers_transaction(
    sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    config = notifications_config({"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/"}})
    incident = open_incident(sessions, fake_clock.now)
    with sessions() as session:
        session.begin()
        OutboxSink(config, fake_clock).enqueue(session, down_event(incident, fake_clock.now))
        session.rollback()
    assert rows(sessions) == ([], [], [])


def test_two_evaluators_queue_the_same_state_change_once(
    migrated_engine: Engine, db_url: str, fake_clock: SteppedClock
) -> None:
    """C18 (b), detection side: two processes see the same change; one notification."""
    config = notifications_config({"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/"}})
    sessions = sessionmaker(migrated_engine, expire_on_commit=False)
    incident = open_incident(sessions, fake_clock.now)
    event = down_event(incident, fake_clock.now)
    other = make_engine(db_url)
    try:
        results = [
            enqueue(sessions, config, fake_clock, event),
            enqueue(sessionmaker(other), config, fake_clock, event),
        ]
    finally:
        other.dispose()
    assert sorted(results) == [False, True]
    notes, deliveries, _ = rows(sessions)
    assert len(notes) == 1 and len(deliveries) == 1


def test_concurrent_claims_from_separate_engines_never_claim_a_delivery_twice(
    migrated_engine: Engine, db_url: str, fake_clock: SteppedClock
) -> None:
    """C18 (b): claiming the right to send is transactional (threads race on one database)."""
    config = notifications_config({"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/"}})
    sessions = sessionmaker(migrated_engine, expire_on_commit=False)
    for number in range(12):
        incident = open_incident(sessions, fake_clock.now, target_id=f"t{number}")
        enqueue(
            sessions,
            config,
            fake_clock,
            down_event(incident, fake_clock.now, target_id=f"t{number}"),
        )
    engines = [make_engine(db_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    claimed: list[list[int]] = [[] for _ in engines]

    def race(index: int) -> None:
        start.wait(timeout=30)
        factory = sessionmaker(engines[index], expire_on_commit=False)
        for _ in range(6):
            with factory() as session, session.begin():
                got = claim_due(
                    session,
                    now=fake_clock.now,
                    worker=f"w{index}",
                    lease_s={"hook": 60.0},
                    limit=3,
                )
            claimed[index].extend(c.delivery_id for c in got)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(engines))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for engine in engines:
            engine.dispose()
    everything = [d for per_worker in claimed for d in per_worker]
    assert len(everything) == 12
    assert len(set(everything)) == 12
    _, deliveries, attempts = rows(sessions)
    assert {d.status for d in deliveries} == {"sending"}
    assert Counter(a.delivery_id for a in attempts) == Counter({d.id: 1 for d in deliveries})


async def test_two_delivery_workers_sharing_one_database_send_each_notification_once(
    migrated_engine: Engine, db_url: str, fake_clock: SteppedClock
) -> None:
    """C18 (b), delivery side: two workers see the same outbox; each notification sent once."""
    with http_receiver() as receiver:
        config = notifications_config({"hook": {"kind": "webhook", "url": receiver.url + "/hook"}})
        sessions = sessionmaker(migrated_engine, expire_on_commit=False)
        for number in range(10):
            incident = open_incident(sessions, fake_clock.now, target_id=f"t{number}")
            event = down_event(incident, fake_clock.now, target_id=f"t{number}")
            enqueue(sessions, config, fake_clock, event)
        other = make_engine(db_url)
        first = make_worker(sessions, config, fake_clock, worker_id="a", max_in_flight=3)
        second = make_worker(
            sessionmaker(other, expire_on_commit=False),
            config,
            fake_clock,
            worker_id="b",
            max_in_flight=3,
        )
        try:
            for _ in range(20):
                await asyncio.gather(first.tick(), second.tick())
                await asyncio.gather(first.drain(), second.drain())
                if receiver.count() >= 10 and not await asyncio.to_thread(_open, sessions):
                    break
        finally:
            await first.close()
            await second.close()
            other.dispose()
        ids = [body["event_id"] for body in receiver.bodies("/hook")]
    assert len(ids) == 10
    assert len(set(ids)) == 10
    _, deliveries, attempts = rows(sessions)
    assert {d.status for d in deliveries} == {"delivered"}
    assert len(attempts) == 10
    assert {a.outcome for a in attempts} == {"delivered"}


def _open(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return len(
            list(
                session.scalars(
                    select(DeliveryRow.id).where(DeliveryRow.status.in_(["pending", "sending"]))
                )
            )
        )


async def test_a_recovery_waits_until_its_problem_is_delivered_on_that_channel(
    sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    with http_receiver() as receiver:
        receiver.statuses = [503]  # the DOWN's first attempt fails
        config = notifications_config(
            {"hook": {"kind": "webhook", "url": receiver.url}}, retry_initial_s=5
        )
        start = fake_clock.now
        incident = open_incident(sessions, start)
        enqueue(sessions, config, fake_clock, down_event(incident, start))
        worker = make_worker(sessions, config, fake_clock)
        try:
            await worker.tick()
            await worker.drain()
            fake_clock.advance(1)
            enqueue(sessions, config, fake_clock, recovery_event(incident, start, fake_clock.now))
            assert await worker.tick() == []  # the recovery may not overtake the DOWN
            fake_clock.advance(10)
            for _ in range(3):
                await worker.tick()
                await worker.drain()
        finally:
            await worker.close()
        kinds = [body["alert_kind"] for body in receiver.bodies()]
    assert kinds == ["target_down", "target_down", "target_recovered"]


async def test_reminders_repeat_while_unacknowledged_and_stop_when_acknowledged(
    sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    with http_receiver() as receiver:
        config = notifications_config(
            {"hook": {"kind": "webhook", "url": receiver.url}}, reminder_interval_s=600
        )
        start = fake_clock.now
        incident = open_incident(sessions, start)
        enqueue(sessions, config, fake_clock, down_event(incident, start))
        worker = make_worker(sessions, config, fake_clock)

        async def at(offset_s: float) -> None:
            fake_clock.now = start + timedelta(seconds=offset_s)
            await worker.tick()
            await worker.drain()

        try:
            await at(0)  # the alert
            await at(300)  # nothing due
            await at(600)  # reminder 1
            await at(601)  # already sent
            await at(1250)  # reminder 2
            with sessions() as session, session.begin():
                assert acknowledge(session, incident, "Somphone", "on my way", fake_clock.now)
            with sessions() as session, session.begin():
                assert not acknowledge(session, incident, "Kham", None, fake_clock.now)
            await at(1800)
            await at(3000)
        finally:
            await worker.close()
        bodies = receiver.bodies()
    assert [(b["type"], b["reminder"]) for b in bodies] == [
        ("alert", 0),
        ("reminder", 1),
        ("reminder", 2),
    ]
    assert len({b["event_id"] for b in bodies}) == 3
    with sessions() as session:
        ack = acknowledgements(session, [incident])[incident]
    assert (ack.by, ack.note) == ("Somphone", "on my way")


async def test_a_recovery_stops_reminders(
    sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    with http_receiver() as receiver:
        config = notifications_config(
            {"hook": {"kind": "webhook", "url": receiver.url}}, reminder_interval_s=600
        )
        start = fake_clock.now
        incident = open_incident(sessions, start)
        enqueue(sessions, config, fake_clock, down_event(incident, start))
        worker = make_worker(sessions, config, fake_clock)
        try:
            await worker.tick()
            await worker.drain()
            fake_clock.advance(900)
            enqueue(sessions, config, fake_clock, recovery_event(incident, start, fake_clock.now))
            close_incident(sessions, incident, fake_clock.now)
            for _ in range(3):
                await worker.tick()
                await worker.drain()
                fake_clock.advance(1200)
        finally:
            await worker.close()
        types = [(b["type"], b["alert_kind"]) for b in receiver.bodies()]
    assert types == [("alert", "target_down"), ("alert", "target_recovered")]


def test_acknowledging_an_unknown_incident_is_refused(
    sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    with sessions() as session, session.begin(), pytest.raises(UnknownIncidentError):
        acknowledge(session, 424242, "Somphone", None, fake_clock.now)
    incident = open_incident(sessions, fake_clock.now)
    with sessions() as session, session.begin(), pytest.raises(ValueError, match="by"):
        acknowledge(session, incident, "  ", None, fake_clock.now)


async def test_counts_backlog_and_the_delivery_log_show_one_event_with_its_attempts(
    sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    with http_receiver() as receiver:
        receiver.statuses = [500, 502]
        config = notifications_config({"hook": {"kind": "webhook", "url": receiver.url}})
        incident = open_incident(sessions, fake_clock.now)
        enqueue(sessions, config, fake_clock, down_event(incident, fake_clock.now))
        worker = make_worker(sessions, config, fake_clock)
        try:
            for _ in range(3):
                await worker.tick()
                await worker.drain()
                fake_clock.advance(60)
        finally:
            await worker.close()
    with sessions() as session:
        counts = delivery_counts(session)
        backlog = delivery_backlog(session)
        log = recent_deliveries(session, incident_id=incident)
        sent = alerts_sent(session, [incident, 999])
    assert counts == {("hook", "failed"): 2, ("hook", "delivered"): 1}
    assert backlog == {("hook", "delivered"): 1}
    assert len(log) == 1
    assert [a.outcome for a in log[0].attempts] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.FAILED,
        AttemptOutcome.DELIVERED,
    ]
    assert log[0].status is DeliveryStatus.DELIVERED
    assert sent == {incident: 1}
    with sessions() as session:
        assert session.scalar(select(NotificationRow.event_id)) == log[0].event_id
