"""What every channel receives and raises: the notification record, the rendered text, errors.

A channel is one object with ``name`` and ``async send(notification, message)``: it makes one
delivery attempt and returns when the receiver has accepted it, or raises
:class:`DeliveryError`. It never retries and never sleeps; the delivery worker owns retries,
backoff and the per-attempt deadline (``asyncio.timeout``), so a channel need not enforce its
own ``timeout_s`` (it may pass it to its library as well).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class NotificationKind(StrEnum):
    """Why a notification exists: an alert, a reminder of one, a delivery failure notice, or a
    test sent by ``linkwatch notify test``."""

    ALERT = "alert"
    REMINDER = "reminder"
    DELIVERY_FAILED = "delivery_failed"
    TEST = "test"


@dataclass(frozen=True)
class Notification:
    """One logical notification, as every attempt on every channel carries it.

    Attributes:
        event_id: the idempotency key (a UUID string): the same on every attempt and every
            channel, so a receiver can drop a repeat. Webhooks get it as the
            ``Idempotency-Key`` header and ``event_id`` field, e-mail in its Message-ID,
            Alertmanager as the ``event_id`` annotation.
        key: the stable key it was enqueued under (unique per logical notification).
        kind: alert, reminder, delivery-failed notice or test.
        alert_kind: the alert's kind (``monitor.alerting.events.AlertKind`` value).
        resolved: True when the alert says a problem is over (Alertmanager gets ``endsAt``).
        incident_id: the incident it belongs to; ``None`` for none.
        site_id: the site; ``None`` for a gateway-wide alert.
        target_id: the target; ``None`` for a site- or gateway-wide alert.
        started_at: when the problem started (aware UTC).
        occurred_at: when this notification's event happened (aware UTC).
        summary_en: one line in English, e.g. ``Friendship Bridge I: gateway ICMP is DOWN``.
        summary_lo: the same line in Lao (site names in Lao script).
        detail: free-form JSON-able facts from the evaluator.
        failed_channel: for a delivery-failed notice, the channel that gave up; else ``None``.
        reminder: for a reminder, its number (1, 2, ...); else 0.
    """

    event_id: str
    key: str
    kind: NotificationKind
    alert_kind: str
    resolved: bool
    incident_id: int | None
    site_id: str | None
    target_id: str | None
    started_at: datetime
    occurred_at: datetime
    summary_en: str
    summary_lo: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    failed_channel: str | None = None
    reminder: int = 0


@dataclass(frozen=True)
class RenderedMessage:
    """A notification as people read it, in English and Lao.

    Attributes:
        title_en: one line, English.
        title_lo: one line, Lao.
        subject: the e-mail subject / chat title: ``title_en`` then ``title_lo``.
        body: the full text: English block, blank line, Lao block, then the references.
    """

    title_en: str
    title_lo: str
    subject: str
    body: str


class DeliveryError(Exception):
    """One delivery attempt failed; ``transient`` says whether retrying may help.

    The message is one sentence for the delivery log (no secrets, no stack trace). Channels
    raise it from the library's own exception (``raise DeliveryError(...) from exc``).
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class Channel(Protocol):
    """A configured way to deliver notifications (one per ``notifications.channels`` entry)."""

    @property
    def name(self) -> str:
        """The channel's name in the configuration."""
        ...

    @property
    def timeout_s(self) -> float:
        """The time allowed for one attempt, seconds."""
        ...

    async def send(self, notification: Notification, message: RenderedMessage) -> None:
        """Make one delivery attempt; raise DeliveryError when it fails."""
        ...

    async def aclose(self) -> None:
        """Release what the channel holds (HTTP connections)."""
        ...
