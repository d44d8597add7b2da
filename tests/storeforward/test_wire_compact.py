"""The compact batch encoding: exact round trips, smaller bodies, field-named 422s."""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.agent.ids import ResultIds
from monitor.storage.models import Result
from monitor.wire import COMPACT_CONTENT_TYPE, BatchIn, ResultIn, SpoolReport
from monitor.wire_compact import (
    CompactBodyError,
    decode_batch,
    decode_number,
    encode_batch,
    encode_number,
)
from probes.result import ProbeKind, ProbeStatus

T0 = datetime(2025, 3, 1, 8, 0, 0, 123_457, tzinfo=UTC)
URL = "/api/v1/ingest"
Auth = Callable[[str], dict[str, str]]


def icmp(
    ids: ResultIds, target_id: str, at: datetime, rtts: list[float | None], **over: Any
) -> ResultIn:
    got = [r for r in rtts if r is not None]
    values: dict[str, Any] = {
        "result_id": ids.next_id(),
        "target_id": target_id,
        "kind": ProbeKind.ICMP,
        "status": ProbeStatus.UP if got else ProbeStatus.DOWN,
        "measured_at": at,
        "duration_s": round(4.75 + (got[-1] if got else 1.0), 6),
        "rtt_s": round(sum(got) / len(got), 6) if got else None,
        "packet_loss": 1 - len(got) / len(rtts),
        "jitter_s": 0.000412 if len(got) > 1 else None,
        "sent": len(rtts),
        "received": len(got),
        "duplicates": 0,
        "rtts_s": rtts,
        "address": "192.0.2.1",
        "family": 4,
        "error": None if got else f"no echo reply to {len(rtts)} requests",
        "phases_s": {"resolve": 1.2e-05},
        "detail": {"rtt_min_s": min(got, default=None), "late_replies": 0, "unreachable": []},
        "clock_offset_s": -0.25,
    }
    values |= over
    return ResultIn.model_validate(values)


def batch_of(results: list[ResultIn], spool: SpoolReport | None = None) -> BatchIn:
    return BatchIn(
        batch_id=str(uuid.uuid4()),
        site_id="bridge1",
        agent_sent_at=T0 + timedelta(hours=1),
        results=results,
        spool=spool,
    )


def test_a_batch_decodes_to_exactly_the_batch_encoded() -> None:
    ids = ResultIds()
    rng = random.Random(7)
    results = [
        icmp(
            ids,
            f"gw-{i % 3}",
            T0 + timedelta(seconds=10 * i, microseconds=rng.randrange(1000)),
            [None if rng.random() < 0.2 else round(0.01 + rng.random() / 100, 6) for _ in range(5)],
        )
        for i in range(60)
    ]
    results.append(icmp(ids, "gw-0", T0, [None, None], rtt_s=None))  # nothing answered
    odd = {
        "result_id": str(uuid.uuid4()),  # a random id: no shared prefix
        "measured_at": datetime(2025, 3, 1, 15, 0, 0, 1, tzinfo=timezone(timedelta(hours=7))),
        "duration_s": 1 / 3,  # not a whole number of microseconds: sent as is
        "jitter_s": 5e-324,
        "clock_offset_s": -0.0,
        "rtts_s": [1e-9, None, 0.1 + 0.2],
        "phases_s": {"resolve": 0.0, "connect": 123.456789},
        "detail": {"nested": {"x": [1, 2.5, None, "t"]}, "big": 2**70},
        "address": None,
        "family": None,
    }
    results.append(icmp(ids, "gw-1", T0, [0.01], **odd))
    report = SpoolReport(
        backlog=12, oldest_unsent_at=T0, dropped_total=3, rejected_total=1, clock_offset_s=None
    )
    batch = batch_of(results, report)
    decoded = decode_batch(encode_batch(batch))
    assert decoded == batch
    assert decoded.results[-1].measured_at == odd["measured_at"]
    assert str(decoded.results[-1].clock_offset_s) == "-0.0"
    assert decoded.results[-2].rtt_s is None and decoded.results[-2].rtts_s == [None, None]
    for mine, theirs in zip(batch.results, decoded.results, strict=True):
        assert mine.model_dump() == theirs.model_dump()  # instants compare in any zone
        assert [type(x) for x in mine.rtts_s] == [type(x) for x in theirs.rtts_s]


def test_an_empty_batch_and_one_without_a_report_round_trip() -> None:
    batch = batch_of([])
    assert decode_batch(encode_batch(batch)) == batch


def test_numbers_are_whole_microseconds_when_exact_and_raw_floats_otherwise() -> None:
    assert encode_number(0.012345) == 12345
    assert encode_number(1 / 3) == 1 / 3
    assert encode_number(None) is None
    assert isinstance(encode_number(-0.0), float)
    for value in (0.0, 0.05, 12.000001, 1e-06, 1 / 3, 1e300, -2.5):
        assert decode_number(encode_number(value)) == value


def test_consecutive_agent_ids_cost_next_to_nothing_and_the_body_is_far_smaller() -> None:
    ids = ResultIds()
    rng = random.Random(1)
    results = [
        icmp(
            ids,
            f"gw-{i % 10}",
            T0 + timedelta(seconds=i, microseconds=rng.randrange(900)),
            [round(0.03 + rng.expovariate(400), 6) for _ in range(5)],
        )
        for i in range(2000)
    ]
    batch = batch_of(results)
    compact = len(gzip.compress(encode_batch(batch), 9))
    plain = len(gzip.compress(batch.model_dump_json().encode(), 9))
    cols = json.loads(encode_batch(batch))["cols"]
    assert set(cols["id_lo"][1:]) == {1}
    assert cols["id_hi"]["values"] == [results[0].result_id.replace("-", "")[:16]]
    assert compact < 0.7 * plain


def spoiled(batch: BatchIn, change: Callable[[dict[str, Any]], None]) -> bytes:
    document = json.loads(encode_batch(batch))
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        (lambda d: d["cols"]["rtt_s"].pop(), ("cols", "rtt_s"), "has 2 values for 3 results"),
        (lambda d: d["cols"]["rtt_s"].__setitem__(1, "fast"), ("results", 1, "rtt_s"), "a number"),
        (
            lambda d: d["cols"]["target_id"]["index"].__setitem__(2, 9),
            ("results", 2, "target_id"),
            "outside cols.target_id.values",
        ),
        (
            lambda d: d["cols"]["packet_loss"].__setitem__(0, 2_000_000),
            ("results", 0, "packet_loss"),
            "less than or equal to 1",
        ),
        (
            lambda d: d["cols"]["measured_at_us"].__setitem__(0, 10**20),
            ("results", 0, "measured_at"),
            "datetime",
        ),
        (lambda d: d["cols"].pop("status"), ("cols", "status"), "Field required"),
        (lambda d: d.__setitem__("v", 3), ("v",), "2"),
        (
            lambda d: d["cols"]["id_hi"]["values"].__setitem__(0, "XYZ"),
            ("cols", "id_hi", "values", 0),
            "16 lowercase hex",
        ),
    ],
    ids=[
        "short-column",
        "bad-type",
        "bad-index",
        "loss-over-1",
        "bad-time",
        "no-column",
        "bad-version",
        "bad-id",
    ],
)
def test_a_bad_compact_body_is_refused_naming_the_field(
    change: Callable[[dict[str, Any]], None], loc: tuple[str | int, ...], words: str
) -> None:
    ids = ResultIds()
    batch = batch_of([icmp(ids, "gw-icmp", T0 + timedelta(seconds=i), [0.01]) for i in range(3)])
    with pytest.raises(CompactBodyError) as caught:
        decode_batch(spoiled(batch, change))
    problems = {tuple(e["loc"]): e["msg"] for e in caught.value.errors}
    assert loc in problems, problems
    assert words in problems[loc]


def test_the_server_stores_a_compact_batch_exactly(
    client: TestClient, migrated_engine: Engine, auth_header: Auth
) -> None:
    ids = ResultIds()
    results = [
        icmp(ids, "gw-icmp", T0 + timedelta(seconds=30 * i), [0.011, None, 0.012345])
        for i in range(20)
    ]
    batch = batch_of(results)
    response = client.post(
        URL,
        content=gzip.compress(encode_batch(batch)),
        headers={
            **auth_header("bridge1"),
            "Content-Type": COMPACT_CONTENT_TYPE,
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 20
    with Session(migrated_engine) as session:
        rows = {r.result_id: r for r in session.scalars(select(Result))}
    for sent in results:
        row = rows[sent.result_id]
        assert row.measured_at == sent.measured_at
        assert row.rtts_s == [0.011, None, 0.012345]
        assert row.clock_offset_s == -0.25
        assert row.jitter_s == sent.jitter_s


def test_the_server_answers_a_bad_compact_body_with_422_naming_the_result_field(
    client: TestClient, migrated_engine: Engine, auth_header: Auth
) -> None:
    ids = ResultIds()
    batch = batch_of([icmp(ids, "gw-icmp", T0 + timedelta(seconds=i), [0.01]) for i in range(3)])
    body = spoiled(batch, lambda d: d["cols"]["jitter_s"].__setitem__(2, -5))
    response = client.post(
        URL, content=body, headers={**auth_header("bridge1"), "Content-Type": COMPACT_CONTENT_TYPE}
    )
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "results", 2, "jitter_s"]
    assert problem["msg"].startswith("results[2].jitter_s: ")
    with Session(migrated_engine) as session:
        assert session.scalars(select(Result)).first() is None
