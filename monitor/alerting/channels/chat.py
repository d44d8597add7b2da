"""Chat and messaging services (Telegram, Slack, Matrix, LINE, e-mail gateways, ...) via Apprise.

The channel's ``urls`` (or ``urls_env``) are Apprise URLs; every one of them gets the title and
the English + Lao body. The event id is in the body's last line (``ref <event id>``): chat
services have no idempotency header, so that is how a repeat is recognised. The attempt fails
(transient) when any URL fails; it fails permanently when a URL is not one Apprise knows or
``urls_env`` is unset. Apprise URLs hold secrets, so they never appear in errors or logs.
"""

from __future__ import annotations

import apprise

from monitor.alerting.channels.base import DeliveryError, Notification, RenderedMessage
from monitor.alerting.channels.specs import AppriseChannel


def _notify_type(notification: Notification) -> apprise.NotifyType:
    return apprise.NotifyType.SUCCESS if notification.resolved else apprise.NotifyType.FAILURE


class Chat:
    """An Apprise channel; the URLs are parsed once, on first use."""

    def __init__(self, name: str, spec: AppriseChannel) -> None:
        self._name = name
        self._spec = spec
        self._apprise: apprise.Apprise | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def timeout_s(self) -> float:
        return self._spec.timeout_s

    def _services(self) -> apprise.Apprise:
        if self._apprise is not None:
            return self._apprise
        try:
            urls = self._spec.resolved_urls()
        except ValueError as exc:
            raise DeliveryError(f"apprise {self._name}: {exc}", transient=False) from exc
        services = apprise.Apprise()
        for index, url in enumerate(urls):
            if not services.add(url):
                raise DeliveryError(
                    f"apprise {self._name}: URL {index + 1} is not one Apprise understands",
                    transient=False,
                )
        self._apprise = services
        return services

    async def send(self, notification: Notification, message: RenderedMessage) -> None:
        """Notify every URL; raise DeliveryError naming the services that failed."""
        services = self._services()
        result = await services.async_notify(
            body=message.body,
            title=message.subject,
            notify_type=_notify_type(notification),
            timeout=self._spec.timeout_s,
        )
        if not result:
            failed = [
                str(getattr(item, "name", "service"))
                for item in getattr(result, "results", ())
                if str(getattr(item, "status", "")).upper() != "SUCCESS"
            ]
            raise DeliveryError(
                f"apprise {self._name}: delivery failed on {', '.join(failed) or 'every service'}"
            )

    async def aclose(self) -> None:
        """Nothing to release."""
