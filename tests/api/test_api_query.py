"""The read-only JSON API through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MakeResult = Callable[..., ResultIn]
MakeBatch = Callable[..., BatchIn]
Auth = Callable[[str], dict[str, str]]
SERIES = "/api/v1/sites/bridge1/targets/gw-icmp/series"


def upload(client: TestClient, batch: BatchIn, headers: dict[str, str]) -> None:
    response = client.post("/api/v1/ingest", json=batch.model_dump(mode="json"), headers=headers)
    assert response.status_code == 200, response.text


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, f"{text!r} has no zone"
    return value


@pytest.fixture
def loaded(
    client: TestClient,
    result_factory: MakeResult,
    batch_factory: MakeBatch,
    auth_header: Auth,
    fake_clock: Any,
) -> TestClient:
    """The client after bridge1 uploaded 4 h of ICMP rounds (one lost) and one TCP round."""
    rounds = [result_factory("gw-icmp", T0 + timedelta(minutes=10 * i)) for i in range(25)]
    rounds[-1] = result_factory(
        "gw-icmp",
        T0 + timedelta(hours=4),
        status=ProbeStatus.DOWN,
        rtt_s=None,
        jitter_s=None,
        packet_loss=1.0,
        received=0,
        rtts_s=[None, None, None],
        error="no echo reply within 5 s",
    )
    tcp = result_factory("gw-tcp", T0 + timedelta(hours=1), kind=ProbeKind.TCP)
    fake_clock.now = T0 + timedelta(hours=4, seconds=30)
    upload(
        client,
        batch_factory("bridge1", [*rounds, tcp], agent_sent_at=fake_clock.now),
        auth_header("bridge1"),
    )
    return client


def test_sites_lists_each_site_with_what_its_agent_last_did(loaded: TestClient) -> None:
    response = loaded.get("/api/v1/sites")
    assert response.status_code == 200
    bridge, wattay = response.json()
    assert bridge["id"] == "bridge1" and wattay["id"] == "wattay"
    assert bridge["name_lo"] == "ຂົວມິດຕະພາບ 1"
    assert (bridge["time_zone"], bridge["link_profile"]) == ("Asia/Vientiane", "fibre")
    assert instant(bridge["last_upload_at"]) == T0 + timedelta(hours=4, seconds=30)
    assert instant(bridge["last_measured_at"]) == T0 + timedelta(hours=4)
    assert bridge["clock_offset_s"] == 0.0 and bridge["uploads"] == 1
    assert wattay["last_upload_at"] is None and wattay["clock_offset_s"] is None


def test_targets_lists_a_sites_targets(loaded: TestClient) -> None:
    response = loaded.get("/api/v1/sites/wattay/targets")
    assert response.status_code == 200
    assert [(t["id"], t["kind"], t["endpoint"]) for t in response.json()] == [
        ("gw-icmp", "icmp", "127.0.0.1"),
        ("gw-tcp", "tcp", "127.0.0.1:9"),
    ]


def test_latest_gives_the_newest_result_per_target_with_nulls_intact(loaded: TestClient) -> None:
    response = loaded.get("/api/v1/latest", params={"site_id": "bridge1"})
    assert response.status_code == 200
    icmp, tcp = response.json()
    assert (icmp["target_id"], tcp["target_id"]) == ("gw-icmp", "gw-tcp")
    assert icmp["status"] == "down"
    assert icmp["rtt_s"] is None and icmp["jitter_s"] is None
    assert icmp["rtts_s"] == [None, None, None]
    assert icmp["packet_loss"] == 1.0 and icmp["error"] == "no echo reply within 5 s"
    assert instant(icmp["measured_at"]) == T0 + timedelta(hours=4)
    assert tcp["status"] == "up" and tcp["rtt_s"] == 0.012
    assert loaded.get("/api/v1/latest").json() == response.json()  # wattay has none yet


def test_series_defaults_to_the_last_three_hours(loaded: TestClient) -> None:
    response = loaded.get(SERIES)
    assert response.status_code == 200
    body = response.json()
    assert instant(body["end"]) == T0 + timedelta(hours=4, seconds=30)
    assert instant(body["start"]) == T0 + timedelta(hours=1, seconds=30)
    times = [instant(r["measured_at"]) for r in body["results"]]
    assert times[0] == T0 + timedelta(hours=1, minutes=10)
    assert times[-1] == T0 + timedelta(hours=4)
    assert times == sorted(times) and len(times) == 18
    assert body["results"][-1]["rtt_s"] is None and body["truncated"] is False


def test_series_takes_aware_iso_times_in_any_zone_and_a_limit(loaded: TestClient) -> None:
    response = loaded.get(
        SERIES,
        params={"start": "2025-03-01T15:00:00+07:00", "end": "2025-03-01T09:00:00Z", "limit": 3},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [instant(r["measured_at"]) for r in body["results"]] == [
        T0 + timedelta(minutes=m) for m in (0, 10, 20)
    ]
    assert body["truncated"] is True and body["limit"] == 3
    assert instant(body["start"]) == T0


def test_series_accepts_an_offset_whose_plus_arrived_as_a_space(loaded: TestClient) -> None:
    response = loaded.get(f"{SERIES}?start=2025-03-01T15:00:00+07:00&end=2025-03-01T08:15:00Z")
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"start": "2025-03-01T08:00:00"}, "start", "timezone"),
        ({"end": "2025-03-01T08:00:00"}, "end", "timezone"),
        ({"start": "soon"}, "start", "datetime"),
        ({"limit": 10_001}, "limit", "less than or equal to 10000"),
        ({"limit": 0}, "limit", "greater than"),
        ({"start": "2025-03-01T09:00:00Z", "end": "2025-03-01T08:00:00Z"}, "start", "before"),
    ],
    ids=["naive-start", "naive-end", "not-a-time", "limit-too-big", "limit-zero", "inverted"],
)
def test_series_rejects_bad_parameters_naming_them(
    loaded: TestClient, params: dict[str, Any], field: str, words: str
) -> None:
    response = loaded.get(SERIES, params=params)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", field]
    assert problem["msg"].startswith(f"{field}: ") and words in problem["msg"]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/api/v1/sites/nowhere/targets", "no site 'nowhere'"),
        ("/api/v1/latest?site_id=nowhere", "no site 'nowhere'"),
        ("/api/v1/sites/nowhere/targets/gw-icmp/series", "no site 'nowhere'"),
        ("/api/v1/sites/wattay/targets/gw-dns/series", "'wattay' has no target 'gw-dns'"),
    ],
)
def test_an_unknown_site_or_target_is_404_with_a_sentence(
    client: TestClient, path: str, words: str
) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert words in response.json()["detail"]
    assert response.json()["detail"].endswith(".")
