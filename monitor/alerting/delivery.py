"""The delivery worker: sends what the outbox holds, with timeouts, retries and escalation.

It runs as its own asyncio task in the server (``run_delivery``), apart from ingest and the
evaluator, and every attempt runs in a task of its own under its channel's ``timeout_s``:
a stalled SMTP server or a slow webhook delays nothing but its own delivery. Database work
goes to a thread. One pass (:meth:`DeliveryWorker.tick`):

1. queue the reminders now due (open, unacknowledged incidents);
2. claim the deliveries now due (:func:`monitor.alerting.outbox.claim_due`), commit;
3. start one attempt task per claim and return at once.

When an attempt ends, its outcome is recorded in a transaction of its own: delivered; or
failed and retried at ``now + backoff`` (:func:`backoff_s`); or given up, when the failure
is permanent or ``give_up_after_s`` has passed since the first attempt, and then escalated
to the next channel with a "delivery failed" notice (:func:`monitor.alerting.outbox.escalate`).
Every attempt is logged with the notification's event id, so the log shows one event and its
N attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.channels.base import (
    Channel,
    DeliveryError,
    Notification,
    RenderedMessage,
)
from monitor.alerting.channels.specs import NotificationsConfig
from monitor.alerting.outbox import (
    AttemptOutcome,
    Claim,
    DeliveryStatus,
    claim_due,
    record_delivered,
    record_failed,
    schedule_reminders,
)

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger("linkwatch.delivery")

JITTER_RATIO = 0.2
"""Each retry delay is shortened by a random 0 to 20 %, so workers and channels spread out."""

STOP_GRACE_S = 5.0
"""On stop, how long attempts under way may still finish before they are cancelled."""

Renderer = Callable[[Notification], RenderedMessage]


def backoff_s(
    failures: int,
    *,
    initial_s: float,
    max_s: float,
    rng: random.Random,
    jitter: float = JITTER_RATIO,
) -> float:
    """Return the wait before the next attempt after ``failures`` failed ones (1, 2, ...).

    Exponential with a cap, shortened by jitter:
    ``min(max_s, initial_s * 2 ** (failures - 1)) * (1 - jitter * U)``, U uniform in [0, 1).
    Jitter only shortens the wait, so the schedule stays within its bound (with the defaults,
    5 s: attempts at 0, 4-5, 12-15 s, ...).
    """
    base = min(max_s, initial_s * 2.0 ** max(0, failures - 1))
    return float(base * (1.0 - jitter * rng.random()))


def lease_s(timeout_s: float) -> float:
    """Return how long a claim on a channel with ``timeout_s`` lasts: well past the timeout."""
    return 2 * timeout_s + 30.0


def default_worker_id() -> str:
    """Return a worker id unique to this process: ``host:pid-like random``."""
    return f"{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"


class DeliveryWorker:
    """Delivers the outbox on ``channels``; one per server process (more are safe).

    Args:
        config: the ``notifications`` section (retries, give-up, reminders, poll interval).
        sessions: session factory of the shared database.
        clock: "now" as an aware UTC datetime.
        channels: the channels this worker sends on, by name.
        render: turns a notification into its text (``monitor.alerting.messages.render``).
        worker_id: names this worker in leases and attempt rows; unique per process.
        rng: randomness of the retry jitter (seed it in tests).
        max_in_flight: at most this many attempts at once.
    """

    def __init__(
        self,
        *,
        config: NotificationsConfig,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        channels: Mapping[str, Channel],
        render: Renderer,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        max_in_flight: int = 32,
    ) -> None:
        self.config = config
        self.worker_id = worker_id or default_worker_id()
        self._sessions = sessions
        self._clock = clock
        self._channels = dict(channels)
        self._render = render
        self._rng = rng or random.Random()
        self._max_in_flight = max_in_flight
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """How many attempts are under way."""
        return len(self._in_flight)

    async def tick(self) -> list[Claim]:
        """Queue due reminders, claim due deliveries and start their attempts; return the claims.

        Returns without waiting for the attempts (see :meth:`drain`).
        """
        room = self._max_in_flight - len(self._in_flight)
        if room <= 0 or not self._channels:
            return []
        claims = await asyncio.to_thread(self._claim, room)
        for claim in claims:
            task = asyncio.create_task(
                self._attempt(claim), name=f"linkwatch-delivery-{claim.delivery_id}"
            )
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return claims

    def _claim(self, limit: int) -> list[Claim]:
        now = self._clock()
        leases = {name: lease_s(channel.timeout_s) for name, channel in self._channels.items()}
        with self._sessions() as session, session.begin():
            queued = schedule_reminders(session, now=now, config=self.config)
            claims = claim_due(session, now=now, worker=self.worker_id, lease_s=leases, limit=limit)
        if queued:
            log.info("queued %d reminder(s) of unacknowledged incidents", queued)
        return claims

    async def drain(self) -> None:
        """Wait until every attempt under way has ended and been recorded."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def _attempt(self, claim: Claim) -> None:
        channel = self._channels[claim.channel]
        n = claim.notification
        outcome = AttemptOutcome.DELIVERED
        error: str | None = None
        transient = True
        try:
            message = self._render(n)
            async with asyncio.timeout(channel.timeout_s):
                await channel.send(n, message)
        except TimeoutError:
            outcome, error = AttemptOutcome.TIMEOUT, f"no answer within {channel.timeout_s:g} s"
        except DeliveryError as exc:
            transient = exc.transient
            outcome = AttemptOutcome.FAILED if transient else AttemptOutcome.REJECTED
            error = str(exc)
        except Exception as exc:  # a channel bug must not stop the worker
            log.exception("channel %s failed unexpectedly on event %s", claim.channel, n.event_id)
            outcome, error = AttemptOutcome.FAILED, f"{type(exc).__name__}: {exc}"
        try:
            await asyncio.to_thread(self._record, claim, outcome, error, transient)
        except Exception:
            log.exception(
                "could not record attempt %d of event %s on %s; it is retried when its lease ends",
                claim.attempt,
                n.event_id,
                claim.channel,
            )

    def _retry_at(self, claim: Claim, now: datetime, transient: bool) -> datetime | None:
        """Return when to try again, or ``None`` to give up (the last try falls on the bound)."""
        deadline = claim.first_attempt_at + timedelta(seconds=self.config.give_up_after_s)
        if not transient or now >= deadline:
            return None
        wait = backoff_s(
            claim.attempt,
            initial_s=self.config.retry_initial_s,
            max_s=self.config.retry_max_s,
            rng=self._rng,
        )
        return min(now + timedelta(seconds=wait), deadline)

    def _record(
        self, claim: Claim, outcome: AttemptOutcome, error: str | None, transient: bool
    ) -> None:
        now = self._clock()
        n = claim.notification
        with self._sessions() as session, session.begin():
            if outcome is AttemptOutcome.DELIVERED:
                kept = record_delivered(session, claim, now=now, worker=self.worker_id)
                status: DeliveryStatus | None = DeliveryStatus.DELIVERED if kept else None
                retry_at = None
            else:
                retry_at = self._retry_at(claim, now, transient)
                status = record_failed(
                    session,
                    claim,
                    now=now,
                    worker=self.worker_id,
                    outcome=outcome,
                    error=error or outcome.value,
                    retry_at=retry_at,
                    config=self.config,
                )
        where = f"event {n.event_id} ({n.key}) on {claim.channel}: attempt {claim.attempt}"
        if status is None:
            log.warning("%s ended (%s) after its lease passed to another worker", where, outcome)
        elif status is DeliveryStatus.DELIVERED:
            log.info("%s delivered", where)
        elif status is DeliveryStatus.PENDING:
            log.warning("%s %s: %s; next attempt at %s", where, outcome, error, retry_at)
        else:
            following = self.config.next_channel(claim.channel)
            log.error(
                "%s %s: %s; delivery given up, %s",
                where,
                outcome,
                error,
                f"escalated to {following}" if following else "no channel left to escalate to",
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then let attempts finish briefly and close channels."""
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:
                    log.exception("delivery pass failed; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.poll_interval_s)
        finally:
            await self.close()

    async def close(self) -> None:
        """Give attempts under way :data:`STOP_GRACE_S`, cancel the rest, close the channels.

        A cancelled attempt stays claimed until its lease ends; then it is tried again
        (marked abandoned), with the same event id.
        """
        if self._in_flight:
            _done, pending = await asyncio.wait(list(self._in_flight), timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for channel in self._channels.values():
            try:
                await channel.aclose()
            except Exception:
                log.exception("closing channel %s failed", channel.name)


def worker_for(services: Services) -> DeliveryWorker:
    """Return the server's delivery worker: the configured channels, English + Lao text."""
    from monitor.alerting.channels.registry import build_channels
    from monitor.alerting.messages import render

    config = services.config
    zone = config.server.time_zone
    sites = config.sites

    def render_message(notification: Notification) -> RenderedMessage:
        return render(notification, zone=zone, sites=sites)

    return DeliveryWorker(
        config=config.notifications,
        sessions=services.sessions,
        clock=services.clock,
        channels=build_channels(config.notifications),
        render=render_message,
    )


async def run_delivery(services: Services, stop: asyncio.Event) -> None:
    """Run the server's delivery worker until ``stop`` is set (see :mod:`monitor.workers`).

    With no channel configured there is nothing to deliver: it only waits for ``stop``.
    """
    if not services.config.notifications.channels:
        log.info("no notification channel configured: alerts are recorded, not sent")
        await stop.wait()
        return
    await worker_for(services).run(stop)
