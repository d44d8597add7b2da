"""The generic webhook: one JSON POST per attempt, the event id in a header and in the body.

Body (UTF-8 JSON, Lao text as is, not escaped)::

    {"event_id": "<uuid>", "key": "...", "type": "alert|reminder|delivery_failed",
     "alert_kind": "...", "resolved": false, "incident_id": "...", "site": "...",
     "target": "...", "started_at": "<ISO 8601 UTC>", "occurred_at": "...",
     "summary": {"en": "...", "lo": "..."}, "title": {"en": "...", "lo": "..."},
     "text": "...", "failed_channel": null, "reminder": 0, "detail": {...}}

Headers: ``Idempotency-Key: <event_id>``, ``Content-Type: application/json; charset=utf-8``,
the channel's ``headers`` and ``Authorization: Bearer`` from ``bearer_token_env``. The body is
the same bytes on every attempt. Any 2xx is delivered; 408, 425, 429 and 5xx are transient
failures (retried); any other answer is permanent.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from monitor.alerting.channels.base import DeliveryError, Notification, RenderedMessage
from monitor.alerting.channels.specs import WebhookChannel

TRANSIENT_STATUS = frozenset({408, 425, 429})


def webhook_payload(notification: Notification, message: RenderedMessage) -> dict[str, Any]:
    """Return the JSON object posted for ``notification`` (see the module docstring)."""
    n = notification
    return {
        "event_id": n.event_id,
        "key": n.key,
        "type": n.kind.value,
        "alert_kind": n.alert_kind,
        "resolved": n.resolved,
        "incident_id": n.incident_id,
        "site": n.site_id,
        "target": n.target_id,
        "started_at": n.started_at.isoformat(),
        "occurred_at": n.occurred_at.isoformat(),
        "summary": {"en": n.summary_en, "lo": n.summary_lo},
        "title": {"en": message.title_en, "lo": message.title_lo},
        "text": message.body,
        "failed_channel": n.failed_channel,
        "reminder": n.reminder,
        "detail": dict(n.detail),
    }


def is_transient_status(status_code: int) -> bool:
    """Return whether an HTTP answer with ``status_code`` is worth retrying."""
    return status_code >= 500 or status_code in TRANSIENT_STATUS


class Webhook:
    """A webhook channel; one ``httpx.AsyncClient`` per channel, opened on first use."""

    def __init__(self, name: str, spec: WebhookChannel) -> None:
        self._name = name
        self._spec = spec
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def timeout_s(self) -> float:
        return self._spec.timeout_s

    def _headers(self, event_id: str) -> dict[str, str]:
        headers = {
            **self._spec.headers,
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": event_id,
            "User-Agent": "linkwatch-notify",
        }
        try:
            token = self._spec.bearer_token()
        except ValueError as exc:
            raise DeliveryError(str(exc), transient=False) from exc
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def send(self, notification: Notification, message: RenderedMessage) -> None:
        """POST the notification; raise DeliveryError on a network error or a non-2xx answer."""
        body = json.dumps(webhook_payload(notification, message), ensure_ascii=False).encode()
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._spec.timeout_s, trust_env=False)
        try:
            response = await self._client.post(
                self._spec.url, content=body, headers=self._headers(notification.event_id)
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"webhook {self._name}: {type(exc).__name__}: {exc}".rstrip(": ")
            ) from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(
                f"webhook {self._name} answered HTTP {response.status_code}",
                transient=is_transient_status(response.status_code),
            )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
