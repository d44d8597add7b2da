"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) receives our alerts.

Alertmanager runs on 127.0.0.1 with clustering off, its storage in a temporary folder, and
one receiver: a webhook to our loopback receiver, so the test sees what Alertmanager itself
would page with. Times are real here: Alertmanager judges startsAt/endsAt by its own clock.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from alert_testkit import (
    SITE_NAME_LO,
    close_incident,
    down_event,
    enqueue,
    make_worker,
    notifications_config,
    open_incident,
    recovery_event,
    rows,
)
from notify_testkit import (
    HttpReceiver,
    free_port,
    http_receiver,
    wait_until,
)
from sqlalchemy.orm import Session, sessionmaker

BINARY = "/usr/bin/prometheus-alertmanager"

AM_CONFIG = """\
route:
  receiver: linkwatch-test
  group_by: [alertname, incident]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: linkwatch-test
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


@dataclass
class RunningAlertmanager:
    url: str
    forwarded: HttpReceiver

    def alerts(self, **params: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=5, trust_env=False)
        answer.raise_for_status()
        alerts: list[dict[str, Any]] = answer.json()
        return alerts


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[RunningAlertmanager]:
    """Start Alertmanager on a free loopback port; its webhook goes to a loopback receiver."""
    if shutil.which(BINARY) is None:
        pytest.skip(f"{BINARY} is not installed (apt-get install prometheus-alertmanager)")
    with http_receiver() as forwarded:
        config = tmp_path / "alertmanager.yml"
        config.write_text(AM_CONFIG.format(url=forwarded.url + "/am"), encoding="utf-8")
        port = free_port()
        log = (tmp_path / "alertmanager.log").open("wb")
        process = subprocess.Popen(
            [
                BINARY,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _ready(url, process), "Alertmanager to be ready")
            yield RunningAlertmanager(url=url, forwarded=forwarded)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"Alertmanager exited with {process.returncode}")
    try:
        return httpx.get(f"{url}/-/ready", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _forwarded(am: RunningAlertmanager, status: str) -> list[dict[str, Any]]:
    return [body for body in am.forwarded.bodies("/am") if body.get("status") == status]


async def test_alertmanager_receives_our_alert_and_its_resolution_with_lao_text_intact(
    alertmanager: RunningAlertmanager, sqlite_sessions: sessionmaker[Session]
) -> None:
    sessions = sqlite_sessions

    def clock() -> datetime:
        return datetime.now(UTC)

    config = notifications_config({"am": {"kind": "alertmanager", "url": alertmanager.url}})
    started = clock()
    incident = open_incident(sessions, started)
    enqueue(sessions, config, clock, down_event(incident, started))
    worker = make_worker(sessions, config, clock)
    try:
        await worker.tick()
        await worker.drain()
        firing = alertmanager.alerts(filter='alertname="LinkwatchTargetDown"')
        wait_until(lambda: bool(_forwarded(alertmanager, "firing")), "Alertmanager to page")

        ended = clock()
        enqueue(sessions, config, clock, recovery_event(incident, started, ended))
        close_incident(sessions, incident, ended)
        await worker.tick()
        await worker.drain()
        wait_until(lambda: bool(_forwarded(alertmanager, "resolved")), "the resolved page")
        still_active = alertmanager.alerts(filter='alertname="LinkwatchTargetDown"')
    finally:
        await worker.close()

    notes, deliveries, attempts = rows(sessions)
    assert [a.outcome for a in attempts] == ["delivered", "delivered"]
    assert len(firing) == 1
    alert = firing[0]
    assert alert["labels"] == {
        "alertname": "LinkwatchTargetDown",
        "incident": str(incident),
        "site": "bridge1",
        "target": "gw-tcp",
        "severity": "critical",
        "source": "linkwatch",
    }
    assert SITE_NAME_LO in alert["annotations"]["summary_lo"]
    assert alert["annotations"]["event_id"] == notes[0].event_id
    assert alert["status"]["state"] == "active"
    assert still_active == []
    paged = _forwarded(alertmanager, "firing")[0]["alerts"][0]
    assert SITE_NAME_LO in paged["annotations"]["summary_lo"]
    resolved = _forwarded(alertmanager, "resolved")[0]["alerts"][0]
    assert resolved["labels"]["incident"] == str(incident)
    assert resolved["annotations"]["event_id"] == notes[1].event_id
    assert len(deliveries) == 2
