"""The operator API: acknowledge an incident, list deliveries (real app, real database)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alert_testkit import (
    SteppedClock,
    down_event,
    enqueue,
    notifications_config,
    open_incident,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.routes import alerts
from monitor.config import Config

OPERATOR_TOKEN = "operator-token-0123456789"


def _config(**server: Any) -> Config:
    return Config.model_validate(
        {
            "server": server,
            "sites": {
                "bridge1": {
                    "name": "Friendship Bridge I",
                    "name_lo": "ຂົວມິດຕະພາບ 1",
                    "token": "token-bridge1-0123456789",
                    "targets": [{"kind": "tcp", "id": "gw-tcp", "host": "127.0.0.1", "port": 9}],
                }
            },
            "notifications": {
                "channels": {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/"}}
            },
        }
    )


def _client(config: Config, engine: Engine, clock: SteppedClock) -> TestClient:
    app = create_app(config, engine=engine, clock=clock, run_workers=False)
    if not any(getattr(route, "path", "").endswith("/acknowledge") for route in app.routes):
        app.include_router(alerts.router)
    return TestClient(app)


@pytest.fixture
def api(migrated_engine: Engine, fake_clock: SteppedClock) -> Iterator[TestClient]:
    with _client(_config(admin_token=OPERATOR_TOKEN), migrated_engine, fake_clock) as client:
        yield client


BEARER = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def test_an_operator_acknowledges_an_incident_once(
    api: TestClient, sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    incident = open_incident(sessions, fake_clock.now)
    url = f"/api/v1/incidents/{incident}/acknowledge"
    first = api.post(url, json={"by": "Somphone", "note": "ກຳລັງໄປກວດ"}, headers=BEARER)
    again = api.post(url, json={"by": "Kham"}, headers=BEARER)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "incident_id": incident,
        "new": True,
        "acknowledged_by": "Somphone",
        "acknowledged_at": "2025-03-01T08:00:00Z",
        "note": "ກຳລັງໄປກວດ",
    }
    assert again.status_code == 200
    assert again.json()["new"] is False
    assert again.json()["acknowledged_by"] == "Somphone"


def test_acknowledging_needs_the_operator_token(
    api: TestClient, sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    incident = open_incident(sessions, fake_clock.now)
    url = f"/api/v1/incidents/{incident}/acknowledge"
    missing = api.post(url, json={"by": "x"})
    wrong = api.post(url, json={"by": "x"}, headers={"Authorization": "Bearer not-the-token"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["WWW-Authenticate"] == "Bearer"


def test_without_an_operator_token_configured_the_operator_api_is_off(
    migrated_engine: Engine, fake_clock: SteppedClock
) -> None:
    with _client(_config(), migrated_engine, fake_clock) as client:
        answer = client.post("/api/v1/incidents/1/acknowledge", json={"by": "x"}, headers=BEARER)
    assert answer.status_code == 403
    assert "admin_token" in answer.json()["detail"]


def test_an_unknown_incident_or_a_bad_body_is_refused_naming_the_field(api: TestClient) -> None:
    unknown = api.post("/api/v1/incidents/999/acknowledge", json={"by": "x"}, headers=BEARER)
    empty = api.post("/api/v1/incidents/1/acknowledge", json={"by": ""}, headers=BEARER)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "incident_id: no incident has id 999."
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["msg"].startswith("by: ")


def test_the_delivery_log_lists_each_delivery_with_its_event_id(
    api: TestClient, sessions: sessionmaker[Session], fake_clock: SteppedClock
) -> None:
    config = notifications_config({"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/"}})
    incident = open_incident(sessions, fake_clock.now)
    event = down_event(incident, fake_clock.now)
    enqueue(sessions, config, fake_clock, event)
    listed = api.get("/api/v1/notifications/deliveries", headers=BEARER)
    filtered = api.get(
        "/api/v1/notifications/deliveries",
        params={"incident_id": incident + 1, "status": "pending"},
        headers=BEARER,
    )
    assert listed.status_code == 200, listed.text
    [delivery] = listed.json()
    assert delivery["channel"] == "hook"
    assert delivery["status"] == "pending"
    assert delivery["key"] == event.key
    assert delivery["incident_id"] == incident
    assert delivery["attempts"] == []
    assert filtered.json() == []
