"""Make the configured channels: one object per ``notifications.channels`` entry."""

from __future__ import annotations

from monitor.alerting.channels.alertmanager import Alertmanager, AlertName, default_alert_name
from monitor.alerting.channels.base import Channel
from monitor.alerting.channels.chat import Chat
from monitor.alerting.channels.email import Email
from monitor.alerting.channels.specs import (
    AlertmanagerChannel,
    AppriseChannel,
    ChannelSpec,
    EmailChannel,
    NotificationsConfig,
    WebhookChannel,
)
from monitor.alerting.channels.webhook import Webhook


def build_channel(
    name: str, spec: ChannelSpec, *, alert_name: AlertName = default_alert_name
) -> Channel:
    """Return the channel object for ``spec``; nothing is connected until it first sends."""
    if isinstance(spec, EmailChannel):
        return Email(name, spec)
    if isinstance(spec, WebhookChannel):
        return Webhook(name, spec)
    if isinstance(spec, AlertmanagerChannel):
        return Alertmanager(name, spec, alert_name)
    if isinstance(spec, AppriseChannel):
        return Chat(name, spec)
    raise TypeError(f"no channel for {type(spec).__name__}")  # pragma: no cover


def build_channels(
    config: NotificationsConfig, *, alert_name: AlertName = default_alert_name
) -> dict[str, Channel]:
    """Return every configured channel by name, in the order written."""
    return {
        name: build_channel(name, spec, alert_name=alert_name)
        for name, spec in config.channels.items()
    }
