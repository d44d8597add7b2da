"""/healthz, /readyz and the server's error answers, through the real app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.app import create_app
from monitor.config import Config
from monitor.storage import repository as repo
from monitor.storage.db import make_engine
from monitor.storage.migrate import head_revision, upgrade
from monitor.wire import BatchIn, ResultIn

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MakeResult = Callable[..., ResultIn]
MakeBatch = Callable[..., BatchIn]
Auth = Callable[[str], dict[str, str]]


def test_healthz_answers_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_is_503_until_the_database_is_migrated_then_200_and_ingest_works(
    db_url: str,
    sample_config: Config,
    result_factory: MakeResult,
    batch_factory: MakeBatch,
    auth_header: Auth,
) -> None:
    engine = make_engine(db_url)
    try:
        with TestClient(create_app(sample_config, engine=engine)) as client:
            before = client.get("/readyz")
            batch = batch_factory("bridge1", [result_factory("gw-icmp", T0)])
            early = client.post(
                "/api/v1/ingest", json=batch.model_dump(mode="json"), headers=auth_header("bridge1")
            )
            upgrade(db_url)
            after = client.get("/readyz")
            late = client.post(
                "/api/v1/ingest", json=batch.model_dump(mode="json"), headers=auth_header("bridge1")
            )
        with Session(engine) as session:
            sites = [s.site_id for s in repo.list_sites(session)]
            count = repo.count_results(session)
    finally:
        engine.dispose()
    assert before.status_code == 503
    assert before.json()["status"] == "not ready"
    assert "linkwatch db upgrade" in before.json()["reason"]
    assert early.status_code == 503 and "not stored" in early.json()["detail"]
    assert after.status_code == 200, after.text
    assert after.json() == {"status": "ready", "revision": head_revision(), "reason": None}
    assert late.status_code == 200 and late.json()["stored"] == 1
    assert sites == ["bridge1", "wattay"] and count == 1


def test_readyz_is_503_naming_the_cause_when_the_database_does_not_answer(
    tmp_path: Path, sample_config: Config
) -> None:
    missing = tmp_path / "no-such-dir" / "linkwatch.db"
    engine = make_engine(f"sqlite:///{missing}")
    try:
        with TestClient(create_app(sample_config, engine=engine)) as client:
            response = client.get("/readyz")
            health = client.get("/healthz")
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert response.json()["reason"].startswith("the database does not answer: ")
    assert "unable to open database file" in response.json()["reason"]
    assert health.status_code == 200


def test_an_unexpected_failure_is_a_500_sentence_without_a_traceback(
    migrated_engine: Engine, sample_config: Config
) -> None:
    app = create_app(sample_config, engine=migrated_engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        with migrated_engine.begin() as conn:
            conn.execute(text("DROP TABLE site_agents"))
        response = client.get("/api/v1/sites")
    assert response.status_code == 500
    assert response.json() == {
        "detail": "The server failed on this request; the cause is in its log."
    }
    assert "Traceback" not in response.text and "site_agents" not in response.text
