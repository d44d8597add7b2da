"""``linkwatch notify``: channels, test, list, ack (a real config file, database, receiver)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alert_testkit import SITE_NAME_LO, SteppedClock, down_event, enqueue, open_incident
from notify_testkit import free_port, http_receiver
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from monitor.alerting.notify_cli import app
from monitor.config_loader import load_config
from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade

CONFIG = """\
server:
  database_url: "sqlite:///{db}"
sites:
  bridge1:
    name: Friendship Bridge I
    name_lo: {name_lo}
    token: token-bridge1-0123456789
    targets:
      - {{kind: tcp, id: gw-tcp, host: 127.0.0.1, port: 9}}
notifications:
  channels:
    hook:
      kind: webhook
      url: {url}
      timeout_s: 5
    mail:
      kind: email
      host: 127.0.0.1
      port: {dead_port}
      sender: linkwatch@ncb.test
      to: [oncall@ncb.test]
      fallback_only: true
"""


def _write(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "linkwatch.yaml"
    path.write_text(
        CONFIG.format(db=tmp_path / "lw.db", name_lo=SITE_NAME_LO, url=url, dead_port=free_port()),
        encoding="utf-8",
    )
    return path


def test_notify_test_sends_one_english_and_lao_message_through_the_channel(
    tmp_path: Path,
) -> None:
    with http_receiver() as receiver:
        config = _write(tmp_path, receiver.url + "/hook")
        result = CliRunner().invoke(app, ["test", "--config", str(config), "--channel", "hook"])
        bodies = receiver.bodies("/hook")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sent a test message through hook (event id ")
    assert len(bodies) == 1
    assert bodies[0]["type"] == "test"
    assert SITE_NAME_LO in bodies[0]["summary"]["lo"]
    assert bodies[0]["event_id"] in result.output


def test_notify_test_says_in_one_sentence_why_a_channel_failed(tmp_path: Path) -> None:
    config = _write(tmp_path, "http://127.0.0.1:9/hook")
    failed = CliRunner().invoke(app, ["test", "--config", str(config), "--channel", "mail"])
    unknown = CliRunner().invoke(app, ["test", "--config", str(config), "--channel", "sms"])
    assert failed.exit_code == 1
    assert failed.output.startswith("linkwatch: email mail: ")
    assert "Traceback" not in failed.output
    assert unknown.exit_code == 2
    assert unknown.output == ("linkwatch: --channel: no channel named 'sms' (known: hook, mail)\n")


def test_notify_channels_lists_them_in_escalation_order(tmp_path: Path) -> None:
    config = _write(tmp_path, "http://127.0.0.1:9/hook")
    result = CliRunner().invoke(app, ["channels", "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["hook", "mail"]
    assert lines[0].endswith("escalates to mail")
    assert "fallback only" in lines[1] and lines[1].endswith("escalates to -")


def test_notify_list_and_ack_read_and_write_the_servers_database(
    tmp_path: Path, fake_clock: SteppedClock
) -> None:
    path = _write(tmp_path, "http://127.0.0.1:9/hook")
    config = load_config(path)
    upgrade(config.server.database_url)
    engine = make_engine(config.server.database_url)
    try:
        sessions = sessionmaker(engine, expire_on_commit=False)
        incident = open_incident(sessions, fake_clock.now)
        enqueue(sessions, config.notifications, fake_clock, down_event(incident, fake_clock.now))
    finally:
        engine.dispose()
    listed = CliRunner().invoke(app, ["list", "--config", str(path)])
    acked = CliRunner().invoke(
        app, ["ack", str(incident), "--config", str(path), "--by", "Somphone"]
    )
    again = CliRunner().invoke(app, ["ack", str(incident), "--config", str(path), "--by", "K"])
    missing = CliRunner().invoke(app, ["ack", "999", "--config", str(path), "--by", "K"])
    assert listed.exit_code == 0, listed.output
    assert "hook" in listed.output and "pending" in listed.output
    assert "Friendship Bridge I: gw-tcp is DOWN" in listed.output
    assert acked.output == f"incident {incident} acknowledged by Somphone\n"
    assert again.output == f"incident {incident} was already acknowledged; nothing changed\n"
    assert (missing.exit_code, missing.output) == (
        2,
        "linkwatch: INCIDENT: no incident has id 999\n",
    )


@pytest.mark.parametrize("command", ["list", "ack"])
def test_notify_commands_on_a_database_not_yet_upgraded_say_what_to_run(
    tmp_path: Path, command: str
) -> None:
    path = _write(tmp_path, "http://127.0.0.1:9/hook")
    extra = ["1", "--by", "x"] if command == "ack" else []
    result = CliRunner().invoke(app, [command, *extra, "--config", str(path)])
    assert result.exit_code == 1
    assert result.output == (
        "linkwatch: the database schema is not current; run 'linkwatch db upgrade' first\n"
    )
