"""The ``notifications`` section of the configuration: channels, retries, reminders.

These pydantic models come from the configuration file, so they are strict (unknown keys
refused) and validated, like :mod:`probes.specs`. They import nothing heavy: the channel
implementations live in the sibling modules and are loaded only by the delivery worker.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

CHANNEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_CHANNEL_NAME_RE = re.compile(CHANNEL_NAME_PATTERN)


class ChannelKind(StrEnum):
    """How a channel delivers."""

    EMAIL = "email"
    WEBHOOK = "webhook"
    ALERTMANAGER = "alertmanager"
    APPRISE = "apprise"


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected: none, STARTTLS upgrade, or TLS from the start."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


def _check_channel_name(v: str) -> str:
    if not _CHANNEL_NAME_RE.match(v):
        raise ValueError(
            f"channel name {v!r} must be 1-32 characters of a-z, 0-9, '-' or '_', "
            "starting with a letter or digit"
        )
    return v


def _check_address(v: str) -> str:
    local, at, domain = v.rpartition("@")
    if not at or not local.strip() or ("." not in domain and domain != "localhost"):
        raise ValueError(f"{v!r} is not an e-mail address like linkwatch@example.org")
    return v


ChannelName = Annotated[str, AfterValidator(_check_channel_name)]
EmailAddress = Annotated[str, AfterValidator(_check_address)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret_from_env(name: str | None) -> str | None:
    """Return the value of environment variable ``name``; ``None`` when ``name`` is None.

    Raises ValueError naming the variable when it is unset or empty.
    """
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ValueError(f"environment variable {name} is not set")
    return value


class _ChannelBase(_Strict):
    timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Time allowed for one delivery attempt."
    )
    fallback_only: bool = Field(
        default=False,
        description="Receive only alerts that the channel before it failed to deliver.",
    )


class EmailChannel(_ChannelBase):
    """E-mail through an SMTP server."""

    kind: Literal["email"] = "email"
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    security: SmtpSecurity = SmtpSecurity.NONE
    username: str | None = None
    password_env: str | None = None
    sender: EmailAddress
    to: list[EmailAddress] = Field(min_length=1)

    @model_validator(mode="after")
    def _login_pair(self) -> EmailChannel:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both username and password_env, or neither")
        return self

    def password(self) -> str | None:
        """Return the SMTP password from ``password_env``; ValueError if it is unset."""
        return _secret_from_env(self.password_env)


class WebhookChannel(_ChannelBase):
    """A JSON POST to any URL."""

    kind: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token_env: str | None = None

    def bearer_token(self) -> str | None:
        """Return the bearer token from ``bearer_token_env``; ValueError if it is unset."""
        return _secret_from_env(self.bearer_token_env)


class AlertmanagerChannel(_ChannelBase):
    """Prometheus Alertmanager, through its v2 API (``POST /api/v2/alerts``)."""

    kind: Literal["alertmanager"] = "alertmanager"
    url: str = Field(pattern=r"^https?://", description="Alertmanager's base URL.")
    labels: dict[str, str] = Field(default_factory=dict)


class AppriseChannel(_ChannelBase):
    """Chat and messaging services through Apprise URLs (``tgram://``, ``slack://``, ...)."""

    kind: Literal["apprise"] = "apprise"
    urls: list[str] = Field(default_factory=list)
    urls_env: str | None = None

    @model_validator(mode="after")
    def _one_url_source(self) -> AppriseChannel:
        if bool(self.urls) == (self.urls_env is not None):
            raise ValueError(
                "give urls (the Apprise URLs) or urls_env (the variable holding them), exactly one"
            )
        return self

    def resolved_urls(self) -> list[str]:
        """Return the Apprise URLs: ``urls``, or ``urls_env``'s value split on whitespace.

        Raises ValueError if ``urls_env`` names an unset variable.
        """
        if self.urls:
            return list(self.urls)
        value = _secret_from_env(self.urls_env)
        return (value or "").split()


ChannelSpec = Annotated[
    EmailChannel | WebhookChannel | AlertmanagerChannel | AppriseChannel,
    Field(discriminator="kind"),
]


class NotificationsConfig(_Strict):
    """Where alerts go, how delivery is retried, and how often reminders repeat.

    Every channel receives every alert unless ``fallback_only``; when a channel gives up (after
    ``give_up_after_s``), the alert and a "delivery failed" notice go to the next channel in the
    order the channels are written.
    """

    channels: dict[ChannelName, ChannelSpec] = Field(default_factory=dict)
    retry_initial_s: float = Field(default=5.0, gt=0, le=3600)
    retry_max_s: float = Field(default=300.0, gt=0, le=86_400)
    give_up_after_s: float = Field(default=900.0, gt=0, le=7 * 86_400)
    reminder_interval_s: float | None = Field(default=3600.0, ge=60)
    poll_interval_s: float = Field(default=2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _retry_bounds(self) -> NotificationsConfig:
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError("retry_initial_s must not exceed retry_max_s")
        return self

    def next_channel(self, name: str) -> str | None:
        """Return the channel written after ``name``; ``None`` if it is the last or unknown."""
        names = list(self.channels)
        if name not in names:
            return None
        index = names.index(name)
        return names[index + 1] if index + 1 < len(names) else None

    def primary_channels(self) -> list[str]:
        """Return the channels that receive every alert, in the order written."""
        return [name for name, spec in self.channels.items() if not spec.fallback_only]
