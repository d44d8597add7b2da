"""The server runs the delivery worker: an alert queued in its database reaches the receiver."""

from __future__ import annotations

from datetime import UTC, datetime

from alert_testkit import SITE_NAME_LO, down_event, enqueue, open_incident, rows
from fastapi.testclient import TestClient
from notify_testkit import http_receiver, wait_until
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from monitor.config import Config


def test_the_servers_delivery_worker_sends_what_the_outbox_holds(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    sessions = sqlite_sessions
    engine = sessions.kw["bind"]
    with http_receiver() as receiver:
        config = Config.model_validate(
            {
                "sites": {
                    "bridge1": {
                        "name": "Friendship Bridge I",
                        "name_lo": SITE_NAME_LO,
                        "token": "token-bridge1-0123456789",
                        "targets": [
                            {"kind": "tcp", "id": "gw-tcp", "host": "127.0.0.1", "port": 9}
                        ],
                    }
                },
                "notifications": {
                    "poll_interval_s": 0.05,
                    "channels": {"hook": {"kind": "webhook", "url": receiver.url + "/hook"}},
                },
            }
        )
        app = create_app(config, engine=engine)
        with TestClient(app):
            now = datetime.now(UTC)
            incident = open_incident(sessions, now)
            enqueue(sessions, config.notifications, lambda: now, down_event(incident, now))
            wait_until(lambda: receiver.count("/hook") == 1, "the server to deliver the alert")
        bodies = receiver.bodies("/hook")
    notes, deliveries, _ = rows(sessions)
    assert [b["event_id"] for b in bodies] == [notes[0].event_id]
    assert f"ສະຖານທີ່: {SITE_NAME_LO} (bridge1)" in bodies[0]["text"]
    assert wait_for_status(sessions) == "delivered"
    assert len(deliveries) == 1


def wait_for_status(sessions: sessionmaker[Session]) -> str:
    wait_until(lambda: rows(sessions)[1][0].status == "delivered", "the delivery record")
    return rows(sessions)[1][0].status
