"""E-mail through SMTP (aiosmtplib): English and Lao in one UTF-8 message.

The message is serialised by the standard library with ``email.policy.SMTP``: every header is
ASCII, a Lao subject becomes RFC 2047 encoded-words (``=?utf-8?b?...?=``), and the body is
UTF-8 in base64, so it passes any server, with or without SMTPUTF8 or 8BITMIME. The
``Message-ID`` is derived from the notification's event id (``<event-id.channel@domain>``) and
the event id is repeated in ``X-Linkwatch-Event-Id``: a retried message is recognisably the
same message. SMTP 4xx answers and network errors are transient; 5xx answers and a missing
password are permanent.
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from monitor.alerting.channels.base import DeliveryError, Notification, RenderedMessage
from monitor.alerting.channels.specs import EmailChannel, SmtpSecurity


def message_id(notification: Notification, channel: str, sender: str) -> str:
    """Return the Message-ID for ``notification`` on ``channel``: the same on every attempt."""
    domain = sender.rpartition("@")[2].strip(" >") or "linkwatch.invalid"
    return f"<{notification.event_id}.{channel}@{domain}>"


def build_email(
    notification: Notification, message: RenderedMessage, *, channel: str, spec: EmailChannel
) -> EmailMessage:
    """Return the e-mail for ``notification`` (headers set, body UTF-8)."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = spec.sender
    mail["To"] = ", ".join(spec.to)
    mail["Date"] = format_datetime(notification.occurred_at)
    mail["Message-ID"] = message_id(notification, channel, spec.sender)
    mail["X-Linkwatch-Event-Id"] = notification.event_id
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.body, charset="utf-8", cte="base64")
    return mail


class Email:
    """An e-mail channel: one SMTP connection per attempt."""

    def __init__(self, name: str, spec: EmailChannel) -> None:
        self._name = name
        self._spec = spec

    @property
    def name(self) -> str:
        return self._name

    @property
    def timeout_s(self) -> float:
        return self._spec.timeout_s

    async def send(self, notification: Notification, message: RenderedMessage) -> None:
        """Send the e-mail; raise DeliveryError when the server refuses it or is unreachable."""
        spec = self._spec
        try:
            password = spec.password()
        except ValueError as exc:
            raise DeliveryError(f"email {self._name}: {exc}", transient=False) from exc
        mail = build_email(notification, message, channel=self._name, spec=spec)
        raw = mail.as_bytes(policy=email.policy.SMTP)
        try:
            await aiosmtplib.send(
                raw,
                sender=spec.sender,
                recipients=list(spec.to),
                hostname=spec.host,
                port=spec.port,
                username=spec.username,
                password=password,
                use_tls=spec.security is SmtpSecurity.TLS,
                start_tls=spec.security is SmtpSecurity.STARTTLS,
                timeout=spec.timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"email {self._name}: the server answered {exc.code} {exc.message}",
                transient=exc.code < 500,
            ) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            raise DeliveryError(
                f"email {self._name}: every recipient was refused ({codes})",
                transient=all(code < 500 for code in codes),
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email {self._name}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Nothing to release: each attempt opens and closes its own connection."""
