"""Tables of alert delivery: the outbox, its delivery attempts, and incident acknowledgements.

One logical notification (an alert, a reminder, a delivery-failed notice) is one row of
``notifications``, unique by ``key``; it is delivered once per channel, one row of
``notification_deliveries`` each, unique by (notification, channel), so the right to send is
claimed in a transaction; every try is a row of ``notification_attempts``. The evaluator
writes ``notifications`` and ``notification_deliveries`` in its own transaction (the outbox);
the delivery worker does the rest. See ``monitor.alerting.outbox``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.storage.models import Base, BigIntPk


class NotificationRow(Base):
    """One logical notification; its text in English and Lao, as every channel sends it.

    ``key`` is the enqueuer's stable key (an alert's ``AlertEvent.key``, ``<key>|reminder|<n>``,
    ``<key>|failed|<channel>``); ``event_id`` the idempotency key (UUID5 of ``key``) every
    attempt carries. ``kind`` is a ``NotificationKind``; ``alert_kind`` an ``AlertKind`` value;
    ``resolved`` True when it says a problem is over. ``reminder`` numbers reminders (0: none).
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_incident", "incident_id"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    alert_kind: Mapped[str] = mapped_column(String(40))
    resolved: Mapped[bool] = mapped_column(Boolean)
    incident_id: Mapped[int | None] = mapped_column(BigInteger)
    site_id: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(63))
    started_at: Mapped[datetime]
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]
    summary_en: Mapped[str] = mapped_column(Text)
    summary_lo: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]]
    failed_channel: Mapped[str | None] = mapped_column(String(32))
    reminder: Mapped[int] = mapped_column(Integer, default=0)


class DeliveryRow(Base):
    """One notification on one channel: its status, attempts and next try.

    ``status`` is a ``DeliveryStatus``. While ``sending``, ``lease_owner`` (a worker id) holds
    it until ``lease_until``; a lease that expired (its worker died) may be claimed again.
    ``next_attempt_at`` is when a ``pending`` delivery is due. ``first_attempt_at`` starts
    the give-up clock; ``last_error`` is the latest failure, one sentence.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        ForeignKeyConstraint(["notification_id"], ["notifications.id"], ondelete="CASCADE"),
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(BigIntPk)
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    first_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class AttemptRow(Base):
    """One delivery attempt: who made it, when, and how it ended (``outcome`` NULL: running).

    ``outcome`` is an ``AttemptOutcome``; ``error`` one sentence when it failed.
    """

    __tablename__ = "notification_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt"),
        ForeignKeyConstraint(["delivery_id"], ["notification_deliveries.id"], ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigIntPk)
    attempt: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(32))
    worker: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)


class AcknowledgementRow(Base):
    """An operator's acknowledgement of an incident: reminders stop once it exists."""

    __tablename__ = "incident_acknowledgements"

    incident_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    acknowledged_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[datetime]
