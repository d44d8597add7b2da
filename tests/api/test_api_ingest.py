"""POST /api/v1/ingest through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import field_path
from api.routes.ingest import MAX_BODY_BYTES
from monitor.storage import repository as repo
from monitor.wire import BatchIn, ResultIn

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
URL = "/api/v1/ingest"
MakeResult = Callable[..., ResultIn]
MakeBatch = Callable[..., BatchIn]
Auth = Callable[[str], dict[str, str]]


def stored(engine: Engine) -> int:
    with Session(engine) as session:
        return repo.count_results(session)


def body_of(batch: BatchIn) -> dict[str, Any]:
    return batch.model_dump(mode="json")


@pytest.fixture
def batch(result_factory: MakeResult, batch_factory: MakeBatch) -> BatchIn:
    """A batch of three bridge1 results, one of them with no reply at all."""
    return batch_factory(
        "bridge1",
        [
            result_factory("gw-icmp", T0),
            result_factory("gw-icmp", T0 + timedelta(seconds=30), rtt_s=None, rtts_s=[None]),
            result_factory("gw-tcp", T0, kind="tcp"),
        ],
    )


def test_a_batch_posted_twice_is_stored_once(
    client: TestClient, migrated_engine: Engine, batch: BatchIn, auth_header: Auth
) -> None:
    first = client.post(URL, json=body_of(batch), headers=auth_header("bridge1"))
    again = client.post(URL, json=body_of(batch), headers=auth_header("bridge1"))
    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert (first.json()["stored"], first.json()["duplicates"]) == (3, 0)
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 3)
    assert again.json()["batch_id"] == batch.batch_id
    assert datetime.fromisoformat(first.json()["server_time"]) == T0
    assert stored(migrated_engine) == 3


def test_overlapping_batches_store_each_result_once(
    client: TestClient,
    migrated_engine: Engine,
    batch: BatchIn,
    batch_factory: MakeBatch,
    result_factory: MakeResult,
    auth_header: Auth,
) -> None:
    extra = result_factory("gw-tcp", T0 + timedelta(minutes=1), kind="tcp")
    overlapping = batch_factory("bridge1", [*batch.results[1:], extra])
    client.post(URL, json=body_of(batch), headers=auth_header("bridge1"))
    response = client.post(URL, json=body_of(overlapping), headers=auth_header("bridge1"))
    assert response.status_code == 200, response.text
    assert (response.json()["stored"], response.json()["duplicates"]) == (1, 2)
    assert stored(migrated_engine) == 4


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token-of-any-site"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong-token", "not-bearer", "empty-bearer"],
)
def test_a_missing_or_wrong_token_is_401_and_stores_nothing(
    client: TestClient, migrated_engine: Engine, batch: BatchIn, headers: dict[str, str]
) -> None:
    response = client.post(URL, json=body_of(batch), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "token" in response.json()["detail"]
    assert stored(migrated_engine) == 0


def test_the_token_of_another_site_is_403_and_stores_nothing(
    client: TestClient, migrated_engine: Engine, batch: BatchIn, auth_header: Auth
) -> None:
    response = client.post(URL, json=body_of(batch), headers=auth_header("wattay"))
    assert response.status_code == 403
    assert "'wattay'" in response.json()["detail"] and "'bridge1'" in response.json()["detail"]
    assert stored(migrated_engine) == 0
    with Session(migrated_engine) as session:
        assert repo.site_agents(session) == {}


def test_field_paths_read_like_python() -> None:
    assert field_path(("body", "results", 0, "rtts_s", 3)) == "results[0].rtts_s[3]"
    assert field_path(("query", "start")) == "start"
    assert field_path(("body",)) == "body"


def _set(body: dict[str, Any], index: int, key: str, value: Any) -> dict[str, Any]:
    body["results"][index][key] = value
    return body


def _drop(body: dict[str, Any], index: int, key: str) -> dict[str, Any]:
    del body["results"][index][key]
    return body


@pytest.mark.parametrize(
    ("spoil", "loc", "words"),
    [
        (lambda b: _set(b, 1, "packet_loss", 1.5), ("results", 1, "packet_loss"), "less than"),
        (lambda b: _drop(b, 2, "measured_at"), ("results", 2, "measured_at"), "required"),
        (
            lambda b: _set(b, 0, "measured_at", "2025-03-01T08:00:00"),
            ("results", 0, "measured_at"),
            "timezone",
        ),
        (lambda b: _set(b, 0, "rtts_s", [0.01, "NaN"]), ("results", 0, "rtts_s", 1), "finite"),
        (lambda b: {**b, "agent_sent_at": "yesterday"}, ("agent_sent_at",), "datetime"),
        (lambda b: {**b, "surprise": 1}, ("surprise",), "not permitted"),
    ],
    ids=["loss-over-1", "no-measured_at", "naive-time", "nan-rtt", "bad-sent-at", "extra-key"],
)
def test_a_malformed_body_is_422_naming_the_field_and_stores_nothing(
    client: TestClient,
    migrated_engine: Engine,
    batch: BatchIn,
    auth_header: Auth,
    spoil: Callable[[dict[str, Any]], dict[str, Any]],
    loc: tuple[str | int, ...],
    words: str,
) -> None:
    response = client.post(URL, json=spoil(body_of(batch)), headers=auth_header("bridge1"))
    assert response.status_code == 422, response.text
    problems = {tuple(p["loc"]): p["msg"] for p in response.json()["detail"]}
    message = problems[("body", *loc)]
    assert message.startswith(f"{field_path(loc)}: ")
    assert words in message
    assert stored(migrated_engine) == 0


def test_a_body_that_is_not_json_is_422_and_says_so(
    client: TestClient, migrated_engine: Engine, auth_header: Auth
) -> None:
    response = client.post(
        URL,
        content=b"{not json",
        headers={**auth_header("bridge1"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith("body: ")
    assert "JSON" in response.json()["detail"][0]["msg"]
    assert stored(migrated_engine) == 0


def test_an_unknown_target_is_422_naming_it_and_stores_nothing(
    client: TestClient,
    migrated_engine: Engine,
    batch_factory: MakeBatch,
    result_factory: MakeResult,
    auth_header: Auth,
) -> None:
    # wattay has gw-icmp and gw-tcp only
    bad = batch_factory(
        "wattay",
        [result_factory("gw-tcp", T0, kind="tcp"), result_factory("gw-dns", T0, kind="dns")],
    )
    response = client.post(URL, json=body_of(bad), headers=auth_header("wattay"))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "results", 1, "target_id"]
    assert "'gw-dns'" in problem["msg"] and "nothing" in problem["msg"]
    assert stored(migrated_engine) == 0


def test_a_gzip_body_is_accepted(
    client: TestClient, migrated_engine: Engine, batch: BatchIn, auth_header: Auth
) -> None:
    response = client.post(
        URL,
        content=gzip.compress(json.dumps(body_of(batch)).encode()),
        headers={
            **auth_header("bridge1"),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 3
    assert stored(migrated_engine) == 3


def test_a_gzip_body_inflating_past_the_limit_is_413(
    client: TestClient, migrated_engine: Engine, auth_header: Auth
) -> None:
    bomb = gzip.compress(b" " * (MAX_BODY_BYTES + 1), compresslevel=9)
    assert len(bomb) < 100_000
    response = client.post(
        URL,
        content=bomb,
        headers={**auth_header("bridge1"), "Content-Encoding": "gzip"},
    )
    assert response.status_code == 413
    assert "bytes" in response.json()["detail"]
    assert stored(migrated_engine) == 0


def test_corrupt_gzip_is_400_and_another_encoding_is_415(
    client: TestClient, batch: BatchIn, auth_header: Auth
) -> None:
    raw = json.dumps(body_of(batch)).encode()
    corrupt = client.post(
        URL, content=raw, headers={**auth_header("bridge1"), "Content-Encoding": "gzip"}
    )
    brotli = client.post(
        URL, content=raw, headers={**auth_header("bridge1"), "Content-Encoding": "br"}
    )
    truncated = client.post(
        URL,
        content=gzip.compress(raw)[:-12],
        headers={**auth_header("bridge1"), "Content-Encoding": "gzip"},
    )
    assert corrupt.status_code == 400 and "gzip" in corrupt.json()["detail"]
    assert brotli.status_code == 415 and "'br'" in brotli.json()["detail"]
    assert truncated.status_code == 400 and "truncated" in truncated.json()["detail"]


def test_an_empty_batch_is_a_heartbeat_that_updates_the_agent(
    client: TestClient,
    migrated_engine: Engine,
    batch_factory: MakeBatch,
    auth_header: Auth,
    fake_clock: Any,
) -> None:
    fake_clock.advance(60)
    heartbeat = batch_factory("wattay", [], agent_sent_at=T0 + timedelta(seconds=58))
    response = client.post(URL, json=body_of(heartbeat), headers=auth_header("wattay"))
    assert response.status_code == 200
    assert (response.json()["stored"], response.json()["duplicates"]) == (0, 0)
    with Session(migrated_engine) as session:
        agent = repo.site_agents(session)["wattay"]
    assert agent.last_upload_at == T0 + timedelta(seconds=60)
    assert agent.clock_offset_s == pytest.approx(2.0)
