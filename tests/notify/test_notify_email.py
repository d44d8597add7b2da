"""E-mail through a real SMTP server on loopback (aiosmtpd), and a stalled one (case C19)."""

from __future__ import annotations

import asyncio
import email.header
import email.policy

from alert_testkit import (
    SITE_NAME_LO,
    SteppedClock,
    down_event,
    enqueue,
    make_worker,
    notifications_config,
    open_incident,
    rows,
)
from notify_testkit import (
    http_receiver,
    smtp_server,
    stalling_server,
    wait_until_async,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.outbox import AttemptOutcome
from monitor.storage.models_notify import AttemptRow, DeliveryRow
from probes import run_probe
from probes.context import ProbeContext
from probes.result import ProbeStatus
from probes.specs import TcpTarget


def _email(port: int, **more: object) -> dict[str, object]:
    return {
        "kind": "email",
        "host": "127.0.0.1",
        "port": port,
        "sender": "linkwatch@ncb.test",
        "to": ["oncall@ncb.test", "duty@ncb.test"],
        **more,
    }


async def test_an_email_round_trips_through_aiosmtpd_with_the_lao_subject_intact(
    sqlite_sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    sessions = sqlite_sessions
    with smtp_server() as smtp:
        config = notifications_config({"mail": _email(smtp.port)})
        incident = open_incident(sessions, fake_clock.now)
        enqueue(sessions, config, fake_clock, down_event(incident, fake_clock.now))
        worker = make_worker(sessions, config, fake_clock)
        try:
            await worker.tick()
            await worker.drain()
        finally:
            await worker.close()
        raw = list(smtp.mailbox.raw)
        messages = smtp.mailbox.messages()
        envelopes = list(smtp.mailbox.envelopes)
    notes, _, attempts = rows(sessions)
    event_id = notes[0].event_id
    assert [a.outcome for a in attempts] == ["delivered"]
    assert len(messages) == 1
    message = messages[0]
    raw[0].decode("ascii")  # every byte is ASCII: headers encoded, body in base64
    raw_subject = str(email.message_from_bytes(raw[0], policy=email.policy.compat32)["Subject"])
    assert "=?utf-8?" in raw_subject.lower()  # RFC 2047 encoded-words
    subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
    assert subject == message["Subject"]
    assert SITE_NAME_LO in subject
    assert subject.startswith("[Linkwatch] PROBLEM: Friendship Bridge I: gw-tcp is DOWN / ")
    assert message["Message-ID"] == f"<{event_id}.mail@ncb.test>"
    assert message["X-Linkwatch-Event-Id"] == event_id
    body = message.get_content()
    assert f"ສະຖານທີ່: {SITE_NAME_LO} (bridge1)" in body
    assert "Site: Friendship Bridge I (bridge1)" in body
    assert f"ref {event_id}" in body
    assert envelopes == [("linkwatch@ncb.test", ["oncall@ncb.test", "duty@ncb.test"])]


async def test_a_stalled_smtp_server_delays_neither_probing_nor_another_channels_delivery(
    sqlite_sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    """C19: the SMTP server accepts TCP, then says nothing; the webhook and probes go on."""
    sessions = sqlite_sessions
    probe_listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    probe_port = probe_listener.sockets[0].getsockname()[1]
    with stalling_server() as stalled, http_receiver() as hook:
        config = notifications_config(
            {
                "mail": _email(stalled.port, timeout_s=120),  # the case's 120 s stall
                "hook": {"kind": "webhook", "url": hook.url + "/hook"},
            }
        )
        incident = open_incident(sessions, fake_clock.now)
        enqueue(sessions, config, fake_clock, down_event(incident, fake_clock.now))
        worker = make_worker(sessions, config, fake_clock)
        try:
            await worker.tick()
            await wait_until_async(lambda: hook.count() == 1, "the webhook delivery")
            await wait_until_async(stalled.accepted.is_set, "the SMTP connection")
            target = TcpTarget(id="gw-tcp", host="127.0.0.1", port=probe_port, timeout_s=2)
            probes = [await run_probe(target, ProbeContext()) for _ in range(3)]
            await wait_until_async(
                lambda: _delivery_status(sessions, "hook") == "delivered", "the webhook record"
            )
            mail_attempt = _attempt(sessions, "mail")
            assert worker.in_flight == 1  # the e-mail attempt is still pending
            stalled.release()  # the server hangs up: the e-mail attempt ends (and is retried)
            await worker.drain()
        finally:
            await worker.close()
            probe_listener.close()
            await probe_listener.wait_closed()
    assert [p.status for p in probes] == [ProbeStatus.UP] * 3
    assert mail_attempt.outcome is None and mail_attempt.finished_at is None
    assert _delivery_status(sessions, "mail") == "pending"
    assert _attempt(sessions, "mail").outcome == AttemptOutcome.FAILED


async def test_an_smtp_server_that_stalls_past_the_timeout_fails_the_attempt_and_retries(
    sqlite_sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    sessions = sqlite_sessions
    with stalling_server() as stalled:
        config = notifications_config({"mail": _email(stalled.port, timeout_s=0.5)})
        incident = open_incident(sessions, fake_clock.now)
        enqueue(sessions, config, fake_clock, down_event(incident, fake_clock.now))
        worker = make_worker(sessions, config, fake_clock)
        try:
            await worker.tick()
            await worker.drain()
        finally:
            await worker.close()
    _, deliveries, attempts = rows(sessions)
    assert [a.outcome for a in attempts] == ["timeout"]
    assert attempts[0].error == "no answer within 0.5 s"
    assert deliveries[0].status == "pending"
    assert deliveries[0].next_attempt_at > fake_clock.now


def _delivery_status(sessions: sessionmaker[Session], channel: str) -> str | None:
    with sessions() as session:
        return session.scalar(select(DeliveryRow.status).where(DeliveryRow.channel == channel))


def _attempt(sessions: sessionmaker[Session], channel: str) -> AttemptRow:
    with sessions() as session:
        row = session.scalar(
            select(AttemptRow).where(AttemptRow.channel == channel).order_by(AttemptRow.id)
        )
    assert row is not None
    return row
