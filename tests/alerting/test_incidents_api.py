"""The JSON API of incidents, states, availability and maintenance windows (real FastAPI)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from alerting_testkit import T0, World, WorldFactory, icmp, result, site_config
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from api.app import create_app
from api.routes import incidents
from api.services import Services
from monitor.alerting.evaluator import run_evaluator
from monitor.config import Config

ADMIN = "admin-token-0123456789"


def _config(**server: object) -> Config:
    return site_config(
        {"bridge1": [icmp("gw")], "wattay": [icmp("gw", host="192.0.2.7")]}, server=server
    )


@contextmanager
def _client(world: World) -> Iterator[TestClient]:
    app = create_app(world.config, engine=world.engine, clock=world.clock, run_workers=False)
    app.include_router(incidents.router)
    with TestClient(app) as client:
        yield client


def _outage(world: World) -> None:
    world.play("bridge1", "gw", ["up"] * 3 + ["down"] * 4, T0, 60.0)


def test_incidents_list_and_detail_show_an_outage_and_its_alert(make_world: WorldFactory) -> None:
    with make_world(_config()) as world:
        _outage(world)
        with _client(world) as client:
            listed = client.get(
                "/api/v1/incidents", params={"open_only": True, "site_id": "bridge1"}
            ).json()
            assert [(i["kind"], i["site_id"], i["target_id"], i["open"]) for i in listed] == [
                ("target", "bridge1", "gw", True)
            ]
            one = client.get(f"/api/v1/incidents/{listed[0]['id']}").json()
            assert one["started_at"] == "2025-03-01T08:03:00Z"
            assert one["announced_at"] is not None and one["held"] is None
            missing = client.get("/api/v1/incidents/999")
            assert missing.status_code == 404
            assert missing.json() == {"detail": "There is no incident 999."}
            states = {
                s["target_id"] + "@" + s["site_id"]: s["state"]
                for s in client.get("/api/v1/states").json()
            }
            assert states == {"gw@bridge1": "down", "gw@wattay": "unknown"}


def test_availability_by_month_or_window_and_a_bad_month_named_in_one_sentence(
    make_world: WorldFactory,
) -> None:
    with make_world(_config()) as world:
        _outage(world)
        with _client(world) as client:
            got = client.get(
                "/api/v1/availability",
                params={
                    "site_id": "bridge1",
                    "target_id": "gw",
                    "start": "2025-03-01T08:00:00Z",
                    "end": "2025-03-01T08:06:00Z",
                },
            ).json()
            assert (got["up_s"], got["down_s"], got["availability"]) == (180.0, 180.0, 0.5)
            month = client.get(
                "/api/v1/availability", params={"site_id": "wattay", "month": "2025-03"}
            )
            assert month.json()["availability"] is None  # no data, never 100 %
            bad = client.get(
                "/api/v1/availability", params={"site_id": "wattay", "month": "2025-13"}
            )
            assert bad.status_code == 422
            assert bad.json() == {"detail": "month must be YYYY-MM, e.g. 2026-10 (got '2025-13')."}
            assert (
                client.get("/api/v1/availability", params={"site_id": "nowhere"}).status_code == 404
            )


def test_maintenance_changes_need_the_operator_token(make_world: WorldFactory) -> None:
    window = {
        "site_id": "bridge1",
        "title": "fibre works",
        "zone": "Europe/Berlin",
        "repeat": "daily",
        "start": "2025-01-15T02:30",
        "end": "2025-01-15T03:30",
    }
    with make_world(_config()) as world, _client(world) as client:
        off = client.post("/api/v1/maintenance", json=window)
        assert off.status_code == 403 and "admin_token_env" in off.json()["detail"]
    with make_world(_config(admin_token=ADMIN)) as world, _client(world) as client:
        assert client.post("/api/v1/maintenance", json=window).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token-at-all"}
        assert client.post("/api/v1/maintenance", json=window, headers=wrong).status_code == 401
        good = {"Authorization": f"Bearer {ADMIN}"}
        made = client.post("/api/v1/maintenance", json=window, headers=good)
        assert made.status_code == 201
        body = made.json()
        assert body["next_occurrences"][0] == ["2025-03-02T01:30:00Z", "2025-03-02T02:30:00Z"]
        unknown = client.post(
            "/api/v1/maintenance", json={**window, "target_id": "nope"}, headers=good
        )
        assert unknown.status_code == 422
        assert unknown.json()["detail"] == "target: site 'bridge1' has no target 'nope'"
        assert [w["id"] for w in client.get("/api/v1/maintenance").json()] == [body["id"]]
        assert client.delete(f"/api/v1/maintenance/{body['id']}", headers=good).status_code == 204
        gone = client.delete(f"/api/v1/maintenance/{body['id']}", headers=good)
        assert gone.status_code == 404


async def test_the_server_worker_queues_an_outage_in_the_notification_outbox(
    make_world: WorldFactory,
) -> None:
    from monitor.storage.models_notify import NotificationRow

    with make_world(_config()) as world:
        for minute in range(6):
            at = T0 + timedelta(minutes=minute)
            world.clock.set(at + timedelta(seconds=2))
            world.upload("bridge1", [result("gw", at, "up" if minute < 2 else "down")])
        services = Services(
            config=world.config,
            engine=world.engine,
            sessions=sessionmaker(world.engine, expire_on_commit=False),
            clock=world.clock,
        )
        stop = asyncio.Event()
        worker = asyncio.create_task(run_evaluator(services, stop))
        for _ in range(200):  # bounded: at most 10 s
            await asyncio.sleep(0.05)
            with world.sessions() as session:
                keys = list(session.scalars(select(NotificationRow.key)))
            if keys:
                break
        stop.set()
        await asyncio.wait_for(worker, timeout=10)
        (incident,) = world.incidents("target")
        assert keys == [f"{incident.id}:target_down"]
