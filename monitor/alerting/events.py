"""The seam between detection and delivery: what the evaluator hands to the notifier.

The evaluator (:mod:`monitor.alerting.evaluator`) detects state changes and opens and
closes incidents; for each change someone must hear about, it calls
:meth:`AlertSink.enqueue` *inside the same database transaction* as its incident write, so
an alert is queued exactly when its incident change is committed. Delivery (outbox,
channels, retries, reminders) is the sink's business and never runs in the evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.orm import Session


class IncidentKind(StrEnum):
    """What an incident is about."""

    TARGET = "target"
    SITE = "site"
    GATEWAY = "gateway"


class AlertKind(StrEnum):
    """The kinds of alert the evaluator raises, a problem and its recovery for each incident."""

    TARGET_DOWN = "target_down"
    TARGET_RECOVERED = "target_recovered"
    SITE_UNREACHABLE = "site_unreachable"
    SITE_RECOVERED = "site_recovered"
    GATEWAY_DOWN = "gateway_down"
    GATEWAY_RECOVERED = "gateway_recovered"

    @property
    def is_recovery(self) -> bool:
        """Whether this kind announces the end of a problem."""
        return self in _RECOVERIES


_RECOVERIES = frozenset(
    {AlertKind.TARGET_RECOVERED, AlertKind.SITE_RECOVERED, AlertKind.GATEWAY_RECOVERED}
)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert to deliver: an incident began or ended.

    Attributes:
        key: the idempotency key, ``f"{incident_id}:{kind}"``; the same incident and kind
            always give the same key, so enqueueing it again (after a restart, from a second
            evaluator) changes nothing, and every delivery attempt can carry it.
        kind: what happened.
        incident_id: the ``incidents.id`` row.
        site_id: the site concerned; ``None`` for a gateway incident.
        target_id: the target concerned (TARGET_* kinds); ``None`` otherwise.
        started_at: when the incident really began (aware UTC): the first failed round of a
            target, the last upload of a silent site, the first site of a gateway outage.
        occurred_at: when this event's change happened (aware UTC): ``started_at`` for a
            problem, the incident's end (first good round, first upload back) for a recovery.
        summary_en: one line in English for people (site names as configured).
        summary_lo: the same line in Lao (site names in Lao script where configured).
        detail: JSON-able facts: ``site_name``, ``site_name_lo``, ``target_name``,
            ``gateway`` (the host), ``sites``, ``duration_s`` (recoveries), ``reason``.
    """

    key: str
    kind: AlertKind
    incident_id: int
    site_id: str | None
    target_id: str | None
    started_at: datetime
    occurred_at: datetime
    summary_en: str
    summary_lo: str
    detail: dict[str, Any] = field(default_factory=dict)


def event_key(incident_id: int, kind: AlertKind) -> str:
    """Return the idempotency key of ``kind`` for incident ``incident_id``."""
    return f"{incident_id}:{kind.value}"


class AlertSink(Protocol):
    """Where the evaluator puts alerts; implemented by the delivery side (an outbox table)."""

    def enqueue(self, session: Session, event: AlertEvent) -> bool:
        """Queue ``event`` in ``session``'s transaction; return True if its key is new.

        Must not commit, must not send anything, and must make a repeated key harmless
        (return False, store nothing new). Raises only for database failures, which roll
        the evaluator's whole pass back.
        """
        ...
