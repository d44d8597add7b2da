"""The notification outbox: queue alerts transactionally, claim them for sending, record outcomes.

Detection and delivery meet here. The evaluator calls :meth:`OutboxSink.enqueue` inside its
own transaction: one ``notifications`` row per logical notification (unique ``key``) and one
``notification_deliveries`` row per channel (unique per notification and channel). Nothing is
sent then. The delivery worker (:mod:`monitor.alerting.delivery`) later claims due deliveries
with :func:`claim_due`, sends, and records the outcome with :func:`record_delivered` or
:func:`record_failed`.

Why no notification is sent twice, even by two workers on one database: a delivery is claimed
by a conditional ``UPDATE ... WHERE attempts = <seen> AND status = <seen>`` in a transaction
(SQLite serialises writers with ``BEGIN IMMEDIATE``; PostgreSQL re-checks the condition on the
locked row), so exactly one worker wins each attempt; the attempt row is unique per
(delivery, attempt number) as well. A claim is a lease (``lease_until``) longer than the
channel's attempt timeout; only a worker that died mid-attempt lets it expire, and the
retry then carries the same event id, so the receiver can still drop it.

Every function takes the caller's ``Session`` and never commits. Times are aware UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.alerting.channels.base import Notification, NotificationKind
from monitor.alerting.channels.specs import NotificationsConfig
from monitor.alerting.events import AlertEvent
from monitor.storage.models import Base
from monitor.storage.models_incidents import Incident
from monitor.storage.models_notify import (
    AcknowledgementRow,
    AttemptRow,
    DeliveryRow,
    NotificationRow,
)

EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://linkwatch.invalid/notification")
"""UUID5 namespace of event ids: ``event_id = uuid5(EVENT_ID_NAMESPACE, key)``."""


class DeliveryStatus(StrEnum):
    """Where a delivery stands: waiting, being sent, done, given up, or no longer wanted."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


OPEN_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)


class AttemptOutcome(StrEnum):
    """How one attempt ended."""

    DELIVERED = "delivered"
    FAILED = "failed"  # transient: network error, 5xx, 4xx SMTP answer
    TIMEOUT = "timeout"  # the channel's timeout_s passed
    REJECTED = "rejected"  # permanent: the receiver refused it, retrying cannot help
    ABANDONED = "abandoned"  # its worker stopped before it finished (lease expired)


def event_id_for(key: str) -> str:
    """Return the event id (idempotency key, a UUID string) of the notification ``key``."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, key))


@dataclass(frozen=True)
class Claim:
    """The right to make attempt number ``attempt`` of one delivery, held until ``lease_until``."""

    delivery_id: int
    channel: str
    attempt: int
    lease_until: datetime
    first_attempt_at: datetime
    notification: Notification


def _insert_ignore(session: Session, model: type[Base], values: Mapping[str, Any]) -> bool:
    """Insert one row unless it breaks a unique constraint; return True if it was inserted.

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING 1``: a row comes back only when inserted
    (the driver's rowcount is not reliable for this statement on every backend).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported backends
        raise NotImplementedError(f"no insert-or-ignore for {dialect}")
    return session.execute(stmt.returning(literal_column("1"))).first() is not None


def _notification(row: NotificationRow) -> Notification:
    return Notification(
        event_id=row.event_id,
        key=row.key,
        kind=NotificationKind(row.kind),
        alert_kind=row.alert_kind,
        resolved=row.resolved,
        incident_id=row.incident_id,
        site_id=row.site_id,
        target_id=row.target_id,
        started_at=row.started_at,
        occurred_at=row.occurred_at,
        summary_en=row.summary_en,
        summary_lo=row.summary_lo,
        detail=dict(row.detail or {}),
        failed_channel=row.failed_channel,
        reminder=row.reminder,
    )


def enqueue_notification(
    session: Session, notification: Notification, channels: Iterable[str], *, now: datetime
) -> bool:
    """Queue ``notification`` for each of ``channels``; return True if its key was new.

    A key already queued changes nothing for the notification; a channel it lacks is added
    (that is how an escalation reaches the next channel).
    """
    n = notification
    new = _insert_ignore(
        session,
        NotificationRow,
        {
            "key": n.key,
            "event_id": n.event_id,
            "kind": n.kind.value,
            "alert_kind": n.alert_kind,
            "resolved": n.resolved,
            "incident_id": n.incident_id,
            "site_id": n.site_id,
            "target_id": n.target_id,
            "started_at": n.started_at,
            "occurred_at": n.occurred_at,
            "created_at": now,
            "summary_en": n.summary_en,
            "summary_lo": n.summary_lo,
            "detail": dict(n.detail),
            "failed_channel": n.failed_channel,
            "reminder": n.reminder,
        },
    )
    notification_id = session.scalar(select(NotificationRow.id).where(NotificationRow.key == n.key))
    assert notification_id is not None
    for channel in channels:
        _insert_ignore(
            session,
            DeliveryRow,
            {
                "notification_id": notification_id,
                "channel": channel,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            },
        )
    return new


def notification_for(event: AlertEvent) -> Notification:
    """Return the notification that announces ``event`` (same key, event id from the key)."""
    return Notification(
        event_id=event_id_for(event.key),
        key=event.key,
        kind=NotificationKind.ALERT,
        alert_kind=event.kind.value,
        resolved=event.kind.is_recovery,
        incident_id=event.incident_id,
        site_id=event.site_id,
        target_id=event.target_id,
        started_at=event.started_at,
        occurred_at=event.occurred_at,
        summary_en=event.summary_en,
        summary_lo=event.summary_lo,
        detail=dict(event.detail),
    )


class OutboxSink:
    """The :class:`monitor.alerting.events.AlertSink` of the server: an outbox table.

    Args:
        config: the ``notifications`` section (which channels receive every alert).
        clock: "now" as an aware UTC datetime (the server's clock).
    """

    def __init__(self, config: NotificationsConfig, clock: Callable[[], datetime]) -> None:
        self._config = config
        self._clock = clock

    def enqueue(self, session: Session, event: AlertEvent) -> bool:
        """Queue ``event`` for every primary channel in ``session``'s transaction.

        Returns True if its key is new; a repeated key stores nothing. Never commits, never
        sends. A recovery cancels the incident's reminders not yet sent.
        """
        now = self._clock()
        new = enqueue_notification(
            session, notification_for(event), self._config.primary_channels(), now=now
        )
        if new and event.kind.is_recovery:
            cancel_reminders(session, event.incident_id)
        return new


def claim_due(
    session: Session,
    *,
    now: datetime,
    worker: str,
    lease_s: Mapping[str, float],
    limit: int = 50,
) -> list[Claim]:
    """Claim up to ``limit`` deliveries due at ``now`` on the channels in ``lease_s``.

    ``lease_s`` maps each channel this worker can send on to how long its claim lasts
    (longer than the channel's attempt timeout). Due means ``pending`` with
    ``next_attempt_at <= now``, or ``sending`` with an expired lease (its worker died: that
    attempt is marked ``abandoned``). Within one incident and channel, notifications go in the
    order they happened: a recovery waits until its problem's delivery is done or given up.
    Claims are made here and must be committed by the caller before sending.
    """
    rows = session.execute(
        select(DeliveryRow, NotificationRow)
        .join(NotificationRow, NotificationRow.id == DeliveryRow.notification_id)
        .where(DeliveryRow.status.in_(OPEN_STATUSES), DeliveryRow.channel.in_(list(lease_s)))
        .order_by(NotificationRow.occurred_at, NotificationRow.id, DeliveryRow.id)
    ).all()
    seen_incident: set[tuple[int, str]] = set()
    claims: list[Claim] = []
    for delivery, note in rows:
        if note.incident_id is not None:
            slot = (note.incident_id, delivery.channel)
            if slot in seen_incident:
                continue
            seen_incident.add(slot)
        if len(claims) >= limit:
            break
        expired = (
            delivery.status == DeliveryStatus.SENDING
            and delivery.lease_until is not None
            and delivery.lease_until <= now
        )
        due = delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at <= now
        if not (due or expired):
            continue
        claim = _claim_one(
            session,
            delivery,
            note,
            now=now,
            worker=worker,
            expired=expired,
            lease_s=lease_s[delivery.channel],
        )
        if claim is not None:
            claims.append(claim)
    return claims


def _claim_one(
    session: Session,
    delivery: DeliveryRow,
    note: NotificationRow,
    *,
    now: datetime,
    worker: str,
    expired: bool,
    lease_s: float,
) -> Claim | None:
    seen_attempts, seen_status = delivery.attempts, delivery.status
    lease_until = now + timedelta(seconds=lease_s)
    first = delivery.first_attempt_at or now
    won = session.execute(
        update(DeliveryRow)
        .where(
            DeliveryRow.id == delivery.id,
            DeliveryRow.attempts == seen_attempts,
            DeliveryRow.status == seen_status,
        )
        .values(
            status=DeliveryStatus.SENDING.value,
            attempts=seen_attempts + 1,
            lease_owner=worker,
            lease_until=lease_until,
            first_attempt_at=first,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(won, "rowcount", 0) != 1:
        return None
    if expired:
        session.execute(
            update(AttemptRow)
            .where(AttemptRow.delivery_id == delivery.id, AttemptRow.outcome.is_(None))
            .values(
                outcome=AttemptOutcome.ABANDONED.value,
                finished_at=now,
                error="its worker stopped before the attempt finished",
            )
            .execution_options(synchronize_session=False)
        )
    session.add(
        AttemptRow(
            delivery_id=delivery.id,
            attempt=seen_attempts + 1,
            channel=delivery.channel,
            worker=worker,
            started_at=now,
        )
    )
    session.flush()
    return Claim(
        delivery_id=delivery.id,
        channel=delivery.channel,
        attempt=seen_attempts + 1,
        lease_until=lease_until,
        first_attempt_at=first,
        notification=_notification(note),
    )


def _finish_attempt(
    session: Session, claim: Claim, *, now: datetime, outcome: AttemptOutcome, error: str | None
) -> None:
    session.execute(
        update(AttemptRow)
        .where(AttemptRow.delivery_id == claim.delivery_id, AttemptRow.attempt == claim.attempt)
        .values(outcome=outcome.value, finished_at=now, error=error)
        .execution_options(synchronize_session=False)
    )


def _still_ours(claim: Claim, worker: str) -> Any:
    return (
        (DeliveryRow.id == claim.delivery_id)
        & (DeliveryRow.lease_owner == worker)
        & (DeliveryRow.attempts == claim.attempt)
        & (DeliveryRow.status == DeliveryStatus.SENDING.value)
    )


def record_delivered(session: Session, claim: Claim, *, now: datetime, worker: str) -> bool:
    """Record that ``claim``'s attempt was delivered; return False if the lease was lost."""
    _finish_attempt(session, claim, now=now, outcome=AttemptOutcome.DELIVERED, error=None)
    done = session.execute(
        update(DeliveryRow)
        .where(_still_ours(claim, worker))
        .values(
            status=DeliveryStatus.DELIVERED.value,
            delivered_at=now,
            lease_owner=None,
            lease_until=None,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    return getattr(done, "rowcount", 0) == 1


def record_failed(
    session: Session,
    claim: Claim,
    *,
    now: datetime,
    worker: str,
    outcome: AttemptOutcome,
    error: str,
    retry_at: datetime | None,
    config: NotificationsConfig,
) -> DeliveryStatus | None:
    """Record a failed attempt: retry at ``retry_at``, or give up when it is ``None``.

    Giving up marks the delivery ``failed`` and escalates in the same transaction: the
    notification is queued on the next channel (in the order written), with a
    "delivery failed on <channel>" notice there (none for a notice itself, which only moves
    on). Returns the delivery's new status; ``None`` if the lease was lost to another worker.
    """
    _finish_attempt(session, claim, now=now, outcome=outcome, error=error)
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "last_error": error}
    if retry_at is None:
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.PENDING
        values["next_attempt_at"] = retry_at
    done = session.execute(
        update(DeliveryRow)
        .where(_still_ours(claim, worker))
        .values(status=status.value, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:
        return None
    if status is DeliveryStatus.FAILED:
        escalate(session, claim, now=now, error=error, config=config)
    return status


def escalate(
    session: Session, claim: Claim, *, now: datetime, error: str, config: NotificationsConfig
) -> str | None:
    """Send ``claim``'s notification, and a notice of the failure, to the next channel.

    Returns that channel; ``None`` when ``claim.channel`` is the last one (nothing to do
    but log). A channel that already has the notification gets only the notice.
    """
    following = config.next_channel(claim.channel)
    if following is None:
        return None
    original = claim.notification
    enqueue_notification(session, original, [following], now=now)
    if original.kind is NotificationKind.DELIVERY_FAILED:
        return following
    key = f"{original.key}|failed|{claim.channel}"
    notice = Notification(
        event_id=event_id_for(key),
        key=key,
        kind=NotificationKind.DELIVERY_FAILED,
        alert_kind=original.alert_kind,
        resolved=False,
        incident_id=original.incident_id,
        site_id=original.site_id,
        target_id=original.target_id,
        started_at=original.started_at,
        occurred_at=now,
        summary_en=original.summary_en,
        summary_lo=original.summary_lo,
        detail={
            "error": error,
            "attempts": claim.attempt,
            "failed_event_id": original.event_id,
        },
        failed_channel=claim.channel,
    )
    enqueue_notification(session, notice, [following], now=now)
    return following


def cancel_reminders(session: Session, incident_id: int) -> int:
    """Cancel the incident's reminders not yet being sent; return how many were cancelled."""
    reminder_ids = select(NotificationRow.id).where(
        NotificationRow.incident_id == incident_id,
        NotificationRow.kind == NotificationKind.REMINDER.value,
    )
    result = session.execute(
        update(DeliveryRow)
        .where(
            DeliveryRow.notification_id.in_(reminder_ids),
            DeliveryRow.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.CANCELLED.value)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def open_unacknowledged_alerts(session: Session) -> list[NotificationRow]:
    """Return, per open and unacknowledged incident, the alert that opened it.

    An incident is open while its ``incidents`` row has no ``ended_at`` and the outbox holds
    no recovery alert for it.
    """
    still_open = select(Incident.id).where(Incident.ended_at.is_(None))
    recovered = select(NotificationRow.incident_id).where(
        NotificationRow.kind == NotificationKind.ALERT.value,
        NotificationRow.resolved.is_(True),
        NotificationRow.incident_id.is_not(None),
    )
    acknowledged = select(AcknowledgementRow.incident_id)
    rows = session.scalars(
        select(NotificationRow)
        .where(
            NotificationRow.kind == NotificationKind.ALERT.value,
            NotificationRow.resolved.is_(False),
            NotificationRow.incident_id.is_not(None),
            NotificationRow.incident_id.in_(still_open),
            NotificationRow.incident_id.not_in(recovered),
            NotificationRow.incident_id.not_in(acknowledged),
        )
        .order_by(NotificationRow.occurred_at, NotificationRow.id)
    )
    first: dict[int, NotificationRow] = {}
    for row in rows:
        assert row.incident_id is not None
        first.setdefault(row.incident_id, row)
    return list(first.values())


def schedule_reminders(session: Session, *, now: datetime, config: NotificationsConfig) -> int:
    """Queue the reminder now due for each open, unacknowledged incident; return how many.

    Reminder *n* is due ``n * reminder_interval_s`` after the opening alert; only the
    latest due one is queued (after a pause, one reminder, not a burst). Its key,
    ``<alert key>|reminder|<n>``, makes a second worker's copy a no-op.
    """
    interval = config.reminder_interval_s
    if interval is None:
        return 0
    queued = 0
    for alert in open_unacknowledged_alerts(session):
        number = int((now - alert.occurred_at).total_seconds() // interval)
        if number < 1:
            continue
        key = f"{alert.key}|reminder|{number}"
        reminder = Notification(
            event_id=event_id_for(key),
            key=key,
            kind=NotificationKind.REMINDER,
            alert_kind=alert.alert_kind,
            resolved=False,
            incident_id=alert.incident_id,
            site_id=alert.site_id,
            target_id=alert.target_id,
            started_at=alert.started_at,
            occurred_at=alert.occurred_at + timedelta(seconds=number * interval),
            summary_en=alert.summary_en,
            summary_lo=alert.summary_lo,
            detail=dict(alert.detail or {}),
            reminder=number,
        )
        if enqueue_notification(session, reminder, config.primary_channels(), now=now):
            queued += 1
    return queued


class UnknownIncidentError(LookupError):
    """No incident has the id given."""


def acknowledge(
    session: Session, incident_id: int, by: str, note: str | None, now: datetime
) -> bool:
    """Acknowledge incident ``incident_id`` as ``by``; return False if it already was.

    Reminders of the incident stop (queued ones not yet sent are cancelled). The first
    acknowledgement is kept; a later one changes nothing and returns False. Raises
    :class:`UnknownIncidentError` when no incident (and no alert) has that id, ValueError
    when ``by`` is empty. Does not commit.
    """
    who = by.strip()
    if not who:
        raise ValueError("by: the name of who acknowledges must not be empty")
    if not _incident_exists(session, incident_id):
        raise UnknownIncidentError(f"no incident has id {incident_id}")
    new = _insert_ignore(
        session,
        AcknowledgementRow,
        {
            "incident_id": incident_id,
            "acknowledged_by": who[:200],
            "note": (note.strip() or None) if note is not None else None,
            "acknowledged_at": now,
        },
    )
    if new:
        cancel_reminders(session, incident_id)
    return new


def _incident_exists(session: Session, incident_id: int) -> bool:
    return session.get(Incident, incident_id) is not None


@dataclass(frozen=True)
class Acknowledgement:
    """Who acknowledged an incident, when, and their note (``None``: none)."""

    incident_id: int
    by: str
    at: datetime
    note: str | None


def acknowledgements(
    session: Session, incident_ids: Sequence[int] | None = None
) -> dict[int, Acknowledgement]:
    """Return the acknowledgements of ``incident_ids`` (``None``: all), by incident id."""
    stmt = select(AcknowledgementRow)
    if incident_ids is not None:
        stmt = stmt.where(AcknowledgementRow.incident_id.in_(list(incident_ids)))
    return {
        row.incident_id: Acknowledgement(
            incident_id=row.incident_id,
            by=row.acknowledged_by,
            at=row.acknowledged_at,
            note=row.note,
        )
        for row in session.scalars(stmt)
    }


def delivery_counts(session: Session) -> dict[tuple[str, str], int]:
    """Return the number of finished delivery attempts by (channel, outcome).

    Outcomes are :class:`AttemptOutcome` values. Meant for a Prometheus counter
    ``linkwatch_notification_attempts_total{channel, outcome}``: it only grows (attempt rows
    are never deleted).
    """
    rows = session.execute(
        select(AttemptRow.channel, AttemptRow.outcome, func.count())
        .where(AttemptRow.outcome.is_not(None))
        .group_by(AttemptRow.channel, AttemptRow.outcome)
    ).all()
    return {(channel, str(outcome)): int(count) for channel, outcome, count in rows}


def delivery_backlog(session: Session) -> dict[tuple[str, str], int]:
    """Return the number of deliveries by (channel, status) (:class:`DeliveryStatus` values).

    Meant for a gauge ``linkwatch_notification_deliveries{channel, status}``: ``pending``
    and ``sending`` are the backlog, ``failed`` the deliveries given up.
    """
    rows = session.execute(
        select(DeliveryRow.channel, DeliveryRow.status, func.count()).group_by(
            DeliveryRow.channel, DeliveryRow.status
        )
    ).all()
    return {(channel, str(status)): int(count) for channel, status, count in rows}


@dataclass(frozen=True)
class AttemptView:
    """One delivery attempt as stored; ``outcome`` ``None`` while it runs."""

    attempt: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome | None
    error: str | None


@dataclass(frozen=True)
class DeliveryView:
    """One notification on one channel, with its attempts (oldest first)."""

    delivery_id: int
    channel: str
    status: DeliveryStatus
    event_id: str
    key: str
    kind: NotificationKind
    alert_kind: str
    incident_id: int | None
    site_id: str | None
    target_id: str | None
    occurred_at: datetime
    summary_en: str
    summary_lo: str
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    attempts: tuple[AttemptView, ...]


def recent_deliveries(
    session: Session,
    *,
    incident_id: int | None = None,
    status: DeliveryStatus | None = None,
    limit: int = 100,
) -> list[DeliveryView]:
    """Return up to ``limit`` deliveries, newest notification first, with their attempts.

    ``incident_id`` and ``status`` filter (``None``: any). ``next_attempt_at`` is ``None``
    unless the delivery is pending.
    """
    stmt = (
        select(DeliveryRow, NotificationRow)
        .join(NotificationRow, NotificationRow.id == DeliveryRow.notification_id)
        .order_by(NotificationRow.occurred_at.desc(), DeliveryRow.id.desc())
        .limit(limit)
    )
    if incident_id is not None:
        stmt = stmt.where(NotificationRow.incident_id == incident_id)
    if status is not None:
        stmt = stmt.where(DeliveryRow.status == status.value)
    pairs = session.execute(stmt).all()
    ids = [delivery.id for delivery, _ in pairs]
    attempts: dict[int, list[AttemptView]] = {i: [] for i in ids}
    if ids:
        for row in session.scalars(
            select(AttemptRow)
            .where(AttemptRow.delivery_id.in_(ids))
            .order_by(AttemptRow.delivery_id, AttemptRow.attempt)
        ):
            attempts[row.delivery_id].append(
                AttemptView(
                    attempt=row.attempt,
                    worker=row.worker,
                    started_at=row.started_at,
                    finished_at=row.finished_at,
                    outcome=AttemptOutcome(row.outcome) if row.outcome else None,
                    error=row.error,
                )
            )
    return [
        DeliveryView(
            delivery_id=delivery.id,
            channel=delivery.channel,
            status=DeliveryStatus(delivery.status),
            event_id=note.event_id,
            key=note.key,
            kind=NotificationKind(note.kind),
            alert_kind=note.alert_kind,
            incident_id=note.incident_id,
            site_id=note.site_id,
            target_id=note.target_id,
            occurred_at=note.occurred_at,
            summary_en=note.summary_en,
            summary_lo=note.summary_lo,
            next_attempt_at=(
                delivery.next_attempt_at if delivery.status == DeliveryStatus.PENDING else None
            ),
            delivered_at=delivery.delivered_at,
            last_error=delivery.last_error,
            attempts=tuple(attempts[delivery.id]),
        )
        for delivery, note in pairs
    ]


def alerts_sent(session: Session, incident_ids: Sequence[int]) -> dict[int, int]:
    """Return, per incident, how many notifications were delivered on at least one channel.

    Incidents with none are absent (read them as 0). For the status page's "alerts sent".
    """
    if not incident_ids:
        return {}
    delivered = (
        select(DeliveryRow.notification_id)
        .where(DeliveryRow.status == DeliveryStatus.DELIVERED.value)
        .distinct()
    )
    rows = session.execute(
        select(NotificationRow.incident_id, func.count())
        .where(
            NotificationRow.incident_id.in_(list(incident_ids)),
            NotificationRow.id.in_(delivered),
        )
        .group_by(NotificationRow.incident_id)
    ).all()
    return {int(incident): int(count) for incident, count in rows if incident is not None}
