"""Prometheus Alertmanager through its v2 API: ``POST <url>/api/v2/alerts``.

Each notification is posted as one alert. Its labels identify the problem, so the firing
alert and the one that resolves it carry the same labels and Alertmanager pairs them::

    alertname  Linkwatch<Problem> (e.g. LinkwatchTargetDown, LinkwatchDeliveryFailed)
    incident   the incident id (when there is one)
    site, target  ids (when there are)
    severity   critical for a problem, warning for a delivery failure
    source     linkwatch
    + the channel's own ``labels``

Annotations carry the text (``summary`` English, ``summary_lo`` Lao, ``description`` the
whole message) and ``event_id``, the idempotency key. ``startsAt`` is when the problem
started; a resolving notification sends ``endsAt`` = when it ended. A firing alert sends
``endsAt`` = :data:`FIRING_HORIZON` after its event (reminders post it again; a
delivery-failed notice :data:`NOTICE_HORIZON`, a test :data:`TEST_HORIZON`), because an alert
without ``endsAt`` is resolved by Alertmanager itself after its ``resolve_timeout`` (5 min by
default), which would tell on-call staff a problem is over when it is not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from monitor.alerting.channels.base import (
    DeliveryError,
    Notification,
    NotificationKind,
    RenderedMessage,
)
from monitor.alerting.channels.specs import AlertmanagerChannel
from monitor.alerting.channels.webhook import is_transient_status

FIRING_HORIZON = timedelta(days=7)
"""How long Alertmanager keeps a firing alert that is not posted again."""

NOTICE_HORIZON = timedelta(hours=1)
"""How long Alertmanager shows a delivery-failed notice."""

TEST_HORIZON = timedelta(minutes=5)
"""How long Alertmanager shows a test alert (``linkwatch notify test``)."""

AlertName = Callable[[Notification], str]


_PROBLEM_NAMES = {
    "target_down": "LinkwatchTargetDown",
    "target_recovered": "LinkwatchTargetDown",
    "site_unreachable": "LinkwatchSiteUnreachable",
    "site_recovered": "LinkwatchSiteUnreachable",
    "gateway_down": "LinkwatchGatewayDown",
    "gateway_recovered": "LinkwatchGatewayDown",
}
"""``alertname`` by alert kind: a recovery carries its problem's name, so it resolves it."""


def default_alert_name(notification: Notification) -> str:
    """Return the ``alertname`` of ``notification``: the same for a problem and its recovery.

    ``LinkwatchDeliveryFailed`` for a delivery-failed notice; an alert kind not in
    :data:`_PROBLEM_NAMES` becomes ``Linkwatch`` + its CamelCase (``link_flap`` → LinkFlap).
    """
    if notification.kind is NotificationKind.DELIVERY_FAILED:
        return "LinkwatchDeliveryFailed"
    if notification.kind is NotificationKind.TEST:
        return "LinkwatchTest"
    known = _PROBLEM_NAMES.get(notification.alert_kind)
    if known is not None:
        return known
    words = notification.alert_kind.replace("-", "_").split("_")
    return "Linkwatch" + "".join(word.capitalize() for word in words if word)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def alertmanager_alert(
    notification: Notification,
    message: RenderedMessage,
    *,
    alert_name: str,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return the v2 API alert object (``postableAlert``) for ``notification``.

    ``alert_name`` must be the same for a problem and its resolution.
    """
    n = notification
    labels = {**(extra_labels or {}), "alertname": alert_name, "source": "linkwatch"}
    if n.incident_id is not None:
        labels["incident"] = str(n.incident_id)
    if n.site_id is not None:
        labels["site"] = n.site_id
    if n.target_id is not None:
        labels["target"] = n.target_id
    if n.kind is NotificationKind.DELIVERY_FAILED:
        labels["severity"] = "warning"
        labels["failed_channel"] = n.failed_channel or ""
    elif n.kind is NotificationKind.TEST:
        labels["severity"] = "info"
    else:
        labels["severity"] = "critical"
    if n.resolved:
        ends_at = n.occurred_at
    elif n.kind is NotificationKind.DELIVERY_FAILED:
        ends_at = n.occurred_at + NOTICE_HORIZON
    elif n.kind is NotificationKind.TEST:
        ends_at = n.occurred_at + TEST_HORIZON
    else:
        ends_at = n.occurred_at + FIRING_HORIZON
    return {
        "labels": labels,
        "annotations": {
            "summary": n.summary_en,
            "summary_lo": n.summary_lo,
            "title": message.title_en,
            "title_lo": message.title_lo,
            "description": message.body,
            "event_id": n.event_id,
            "notification": n.kind.value,
        },
        "startsAt": _iso(n.started_at),
        "endsAt": _iso(ends_at),
    }


class Alertmanager:
    """An Alertmanager channel; ``alert_name`` maps a notification to its ``alertname``."""

    def __init__(
        self, name: str, spec: AlertmanagerChannel, alert_name: AlertName = default_alert_name
    ) -> None:
        self._name = name
        self._spec = spec
        self._alert_name = alert_name
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def timeout_s(self) -> float:
        return self._spec.timeout_s

    async def send(self, notification: Notification, message: RenderedMessage) -> None:
        """Post the alert; raise DeliveryError on a network error or a non-2xx answer."""
        alert = alertmanager_alert(
            notification,
            message,
            alert_name=self._alert_name(notification),
            extra_labels=dict(self._spec.labels),
        )
        body = json.dumps([alert], ensure_ascii=False).encode()
        url = self._spec.url.rstrip("/") + "/api/v2/alerts"
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._spec.timeout_s, trust_env=False)
        try:
            response = await self._client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Idempotency-Key": notification.event_id,
                },
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"alertmanager {self._name}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            text = response.text.strip()[:200]
            raise DeliveryError(
                f"alertmanager {self._name} answered HTTP {response.status_code}: {text}",
                transient=is_transient_status(response.status_code),
            )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
