"""The ``notifications`` section: strict, documented, and clear about every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from monitor.alerting.channels.specs import (
    AlertmanagerChannel,
    AppriseChannel,
    EmailChannel,
    NotificationsConfig,
    WebhookChannel,
)
from monitor.config import ConfigError
from monitor.config_loader import load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
MODELS: list[type[BaseModel]] = [
    NotificationsConfig,
    EmailChannel,
    WebhookChannel,
    AlertmanagerChannel,
    AppriseChannel,
]

SITE = """\
sites:
  bridge1:
    name: B
    token: token-bridge1-0123456789
    targets:
      - {kind: tcp, id: gw-tcp, host: 127.0.0.1, port: 9}
"""


def test_the_configuration_reference_names_every_notifications_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [
        f"{model.__name__}.{key}"
        for model in MODELS
        for key in model.model_fields
        if f"`{key}`" not in text
    ]
    assert missing == []


def test_channels_keep_the_order_written_for_escalation(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        SITE
        + """\
notifications:
  channels:
    chat: {kind: apprise, urls: ["json://127.0.0.1:9/"]}
    am: {kind: alertmanager, url: "http://127.0.0.1:9093"}
    mail: {kind: email, host: 127.0.0.1, sender: lw@ncb.test, to: [a@ncb.test], fallback_only: true}
""",
        encoding="utf-8",
    )
    config = load_config(path).notifications
    assert list(config.channels) == ["chat", "am", "mail"]
    assert config.primary_channels() == ["chat", "am"]
    assert [config.next_channel(n) for n in ("chat", "am", "mail")] == ["am", "mail", None]


BAD = """\
notifications:
  reminder_interval_s: 10
  channels:
    Bad Name: {kind: webhook, url: "http://127.0.0.1/"}
    hook: {kind: webhook, url: "ftp://x", timout_s: 3}
    mail: {kind: email, host: 127.0.0.1, sender: nobody, to: []}
    chat: {kind: apprise}
"""


def test_every_mistake_in_notifications_is_reported_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SITE + BAD, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    at = f"{path}:"
    assert caught.value.messages == [
        f"{at}8:24: notifications.reminder_interval_s: must be at least 60",
        f"{at}10:5: notifications.channels.Bad Name: channel name 'Bad Name' must be 1-32 "
        "characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
        f"{at}11:32: notifications.channels.hook.url: must start with http:// or https://, "
        "got 'ftp://x'",
        f"{at}11:43: notifications.channels.hook.timout_s: unknown key; did you mean timeout_s?",
        f"{at}12:50: notifications.channels.mail.sender: 'nobody' is not an e-mail address "
        "like linkwatch@example.org",
        f"{at}12:58: notifications.channels.mail.to: must not be empty",
        f"{at}13:5: notifications.channels.chat: give urls (the Apprise URLs) or urls_env "
        "(the variable holding them), exactly one",
    ]


def test_an_smtp_login_needs_both_username_and_password_env() -> None:
    with pytest.raises(ValueError, match="give both username and password_env, or neither"):
        EmailChannel.model_validate(
            {"host": "h", "sender": "a@b.test", "to": ["c@d.test"], "username": "u"}
        )


def test_retry_initial_may_not_exceed_retry_max() -> None:
    with pytest.raises(ValueError, match="retry_initial_s must not exceed retry_max_s"):
        NotificationsConfig.model_validate({"retry_initial_s": 600, "retry_max_s": 300})
