"""The compact batch encoding: exact round trips, smaller bodies, field-named 422s.

Version 3 (packed RTT samples, fields sent against predictions) is what agents send;
version 2 bodies, from agents not yet upgraded, must still be read and stored exactly.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

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
from monitor.wire_samples import pack
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


@pytest.mark.parametrize("version", [3, 2])
def test_a_batch_decodes_to_exactly_the_batch_encoded(version: Literal[2, 3]) -> None:
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
    body = encode_batch(batch, version=version)
    assert json.loads(body)["v"] == version
    decoded = decode_batch(body)
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
    for value in (0.0, 0.05, 12.000001, 1e-06, 1 / 3, 1e300, 1e308, -2.5):
        assert decode_number(encode_number(value)) == value
    assert encode_number(1e308) == 1e308  # too large for an integer of millionths: a float


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


def same_values(mine: list[float | None], theirs: list[float | None]) -> bool:
    """Return whether two sample lists hold the very same values: None, type, bits, sign."""
    return len(mine) == len(theirs) and all(
        (a is None and b is None)
        or (
            type(a) is type(b)
            and a == b
            and math.copysign(1.0, a or 1.0) == math.copysign(1.0, b or 1.0)
            and str(a) == str(b)
        )
        for a, b in zip(mine, theirs, strict=True)
    )


EDGE_ROUNDS: list[list[float | None]] = [
    [0.011, None, None, 0.012345, None, 0.0105],  # lost requests in the middle
    [None] * 20,  # nothing answered
    [None],
    [],  # not an ICMP round: no samples
    [0.010001, 0.3, 0.1 + 0.2, 0.012],  # 0.1 + 0.2 is not whole microseconds
    [1e-9, None, 0.02],  # below a microsecond
    [-0.0, 0.0, 0.000001],  # negative zero keeps its sign (sent unpacked)
    [0.0, 0.0, 0.0],
    [1e300, 0.01],  # far beyond 2**53 microseconds
    [9007199254.74099, -9007199254.74099],  # 2**53 - 2 microseconds, both signs
    [-2.5, -0.000001, 3.25],  # negative values (never measured, still exact)
    [5e-324, None],  # the smallest subnormal
    [round(0.6123 + k * 0.000137, 6) for k in range(20)],  # 20 samples, code order > 0
    [float(i) for i in range(1000)],  # as many as a result may carry
]


@pytest.mark.parametrize("rtts", EDGE_ROUNDS, ids=lambda rtts: f"{len(rtts)}-samples")
def test_every_kind_of_sample_list_round_trips_exactly_in_version_3(
    rtts: list[float | None],
) -> None:
    ids = ResultIds()
    result = icmp(ids, "gw-icmp", T0, [0.01], rtts_s=rtts, rtt_s=0.5, duration_s=1.0)
    batch = batch_of([result])
    body = encode_batch(batch)
    decoded = decode_batch(body)
    assert decoded == batch
    assert same_values(result.rtts_s, decoded.results[0].rtts_s)
    [cell] = json.loads(body)["cols"]["rtts"]
    whole = all(x is None or isinstance(encode_number(x), int) for x in rtts)
    assert isinstance(cell, str) == whole  # packed exactly when every sample is whole µs


def test_fields_far_from_their_prediction_and_odd_details_round_trip_exactly() -> None:
    ids = ResultIds()
    rtts: list[float | None] = [0.02, None, 0.021, 0.025]
    odd = [
        icmp(ids, "gw-icmp", T0, rtts, rtt_s=7.5, jitter_s=0.0),  # nothing like the samples
        icmp(ids, "gw-icmp", T0, rtts, rtt_s=1 / 3, jitter_s=-0.0 + 1e-7),  # not whole µs
        icmp(ids, "gw-icmp", T0, [None, None], rtt_s=0.03, jitter_s=0.001),  # no prediction
        icmp(
            ids,
            "gw-icmp",
            T0,
            rtts,
            detail={
                "rtt_min_s": 0.019,  # not the smallest sample
                "rtt_max_s": 0.025,
                "wait_s": 5,  # an integer under a seconds name stays an integer
                "flag_s": True,
                "zero_s": -0.0,
                "tiny_s": 1 / 3,
                "huge_s": 1e300,
                "ratio": 0.25,
                "nested": {"x_s": 0.5, "l": [0.001, None]},
            },
        ),
        icmp(ids, "gw-icmp", T0, [1 / 3, 0.02], detail={"rtt_min_s": 0.02, "rtt_max_s": 1 / 3}),
    ]
    batch = batch_of(odd)
    decoded = decode_batch(encode_batch(batch))
    assert decoded == batch
    for mine, theirs in zip(batch.results, decoded.results, strict=True):
        assert mine.model_dump_json() == theirs.model_dump_json()  # same keys, order, types
    detail = decoded.results[3].detail
    assert type(detail["wait_s"]) is int and detail["flag_s"] is True
    assert str(detail["zero_s"]) == "-0.0"


def test_the_round_summary_is_sent_as_its_difference_from_the_samples() -> None:
    ids = ResultIds()
    rtts: list[float | None] = [0.0121, 0.0135, None, 0.0128]
    result = icmp(
        ids,
        "gw-icmp",
        T0,
        rtts,
        rtt_s=0.012801,  # the mean is 12.8 ms: 1 µs off
        jitter_s=0.001050,  # (1400 + 700) / 2 = 1050 µs: exact
        detail={"rtt_min_s": 0.0121, "rtt_max_s": 0.0135, "late_replies": 0},
    )
    cols = json.loads(encode_batch(batch_of([result])))["cols"]
    assert cols["rtt_s"] == [1]
    assert cols["jitter_s"] == [0]
    assert cols["rtts_ref_us"] == [12100]
    assert cols["detail"] == [{"rtt_min_s": 0, "rtt_max_s": 0, "late_replies": 0}]
    assert cols["detail_us"] == [["rtt_min_s", "rtt_max_s"]]


def test_twenty_echo_rounds_cost_far_fewer_bytes_in_version_3_than_in_version_2() -> None:
    ids = ResultIds()
    rng = random.Random(3)
    results = []
    for i in range(2000):
        rtts: list[float | None] = [
            None if rng.random() < 0.02 else round(0.045 + rng.expovariate(1 / 0.008), 6)
            for _ in range(20)
        ]
        got = [x for x in rtts if x is not None]
        results.append(
            icmp(
                ids,
                f"gw-{i % 10}",
                T0 + timedelta(seconds=i, microseconds=rng.randrange(900)),
                rtts,
                rtt_s=round(math.fsum(got) / len(got), 6),
                detail={"rtt_min_s": min(got), "rtt_max_s": max(got), "late_replies": 0},
            )
        )
    batch = batch_of(results)
    v2 = len(gzip.compress(encode_batch(batch, version=2), 9))
    v3 = len(gzip.compress(encode_batch(batch, version=3), 9))
    assert decode_batch(encode_batch(batch)) == batch
    assert v3 < 0.85 * v2, (v2 / len(results), v3 / len(results))


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
        (lambda d: d.__setitem__("v", 4), ("v",), "must be 2 or 3"),
        (
            lambda d: d["cols"]["id_hi"]["values"].__setitem__(0, "XYZ"),
            ("cols", "id_hi", "values", 0),
            "16 lowercase hex",
        ),
        (lambda d: d.pop("v"), ("v",), "must be 2 or 3"),
        (lambda d: d["cols"].pop("rtts"), ("cols", "rtts"), "Field required"),
        (
            lambda d: d["cols"]["rtts"].__setitem__(1, "not base64!"),
            ("results", 1, "rtts_s"),
            "not base64",
        ),
        (  # k = 0, then a code whose 11 bits run past the end
            lambda d: d["cols"]["rtts"].__setitem__(1, "AAE="),
            ("results", 1, "rtts_s"),
            "packed sample 0 is cut short",
        ),
        (  # k = 0, one lost request, then 10 zero bits
            lambda d: d["cols"]["rtts"].__setitem__(1, "BAA="),
            ("results", 1, "rtts_s"),
            "end in 10 zero bits",
        ),
        (
            lambda d: d["cols"]["rtts"].__setitem__(1, pack([None] * 1001)[0]),
            ("results", 1, "rtts_s"),
            "more than 1000 samples",
        ),
        (
            lambda d: d["cols"]["rtts_ref_us"].__setitem__(1, None),
            ("results", 1, "rtts_s"),
            "rtts_ref_us is null",
        ),
        (
            lambda d: d["cols"]["rtts_ref_us"].__setitem__(1, 2**60),
            ("results", 1, "rtts_s"),
            "2**53",
        ),
        (
            lambda d: d["cols"]["rtts_ref_us"].__setitem__(1, "10000"),
            ("results", 1, "rtts_s"),
            "valid integer",
        ),
        (
            lambda d: d["cols"]["rtts"].__setitem__(1, 10000),
            ("results", 1, "rtts_s"),
            "packed samples (a string) or a list",
        ),
        (
            lambda d: d["cols"]["rtts"].__setitem__(1, [10000, "late"]),
            ("results", 1, "rtts_s"),
            "a number",
        ),
        (
            lambda d: d["cols"]["rtt_s"].__setitem__(1, 2**53 - 1),
            ("results", 1, "rtt_s"),
            "2**53 or more",
        ),
        (
            lambda d: d["cols"]["rtt_s"].__setitem__(1, 10**400),
            ("results", 1, "rtt_s"),
            "below 2**53",
        ),
        (
            lambda d: d["cols"]["detail_us"].__setitem__(1, ["late_replies", "nope"]),
            ("results", 1, "detail", "nope"),
            "not an integer",
        ),
        (
            lambda d: d["cols"]["detail_us"].__setitem__(1, ["rtt_min_s", "rtt_min_s"]),
            ("results", 1, "detail", "rtt_min_s"),
            "twice",
        ),
        (
            lambda d: d["cols"]["detail_us"].__setitem__(1, "rtt_min_s"),
            ("results", 1, "detail"),
            "valid array",
        ),
        (
            lambda d: d["cols"]["detail"][1].__setitem__("rtt_min_s", 2**53),
            ("results", 1, "detail", "rtt_min_s"),
            "2**53 or more",
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
        "no-version",
        "no-rtts-column",
        "rtts-not-base64",
        "rtts-cut-short",
        "rtts-long-padding",
        "rtts-too-many",
        "rtts-no-reference",
        "rtts-huge-reference",
        "rtts-reference-not-int",
        "rtts-cell-number",
        "rtts-list-bad-item",
        "rtt-beyond-2-53",
        "rtt-huge-integer",
        "detail-us-missing-key",
        "detail-us-twice",
        "detail-us-not-list",
        "detail-us-huge",
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


def test_a_version_2_body_is_checked_against_the_version_2_columns() -> None:
    ids = ResultIds()
    batch = batch_of([icmp(ids, "gw-icmp", T0 + timedelta(seconds=i), [0.01]) for i in range(3)])
    document = json.loads(encode_batch(batch, version=2))
    document["cols"]["rtts"] = list(document["cols"]["rtts_s"])
    document["cols"]["rtts_s"][2] = "AAA="  # packed samples are not version 2
    with pytest.raises(CompactBodyError) as caught:
        decode_batch(json.dumps(document).encode())
    problems = {tuple(e["loc"]): e["msg"] for e in caught.value.errors}
    assert "Extra inputs" in problems[("cols", "rtts")]
    assert "valid array" in problems[("results", 2, "rtts_s")]


# A body made by the version 2 encoder before version 3 existed (three rounds: one request
# lost, all lost, a sample of 1/3 s), kept verbatim: the server must store it as it was.
V2_BODY = (
    '{"v":2,"batch_id":"5f0c7a52-3c1e-5d55-9a0e-2f7e4c1d0b33","site_id":"bridge1",'
    '"agent_sent_at":"2025-03-01T09:00:00.123457+00:00","spool":null,"n":3,"cols":{'
    '"id_hi":{"values":["123456789abc8def"],"index":[0,0,0]},'
    '"id_lo":[9223372036854775808,1,1],'
    '"target_id":{"values":["gw-icmp"],"index":[0,0,0]},'
    '"kind":{"values":["icmp"],"index":[0,0,0]},'
    '"status":{"values":["up","down"],"index":[0,1,0]},'
    '"address":{"values":["192.0.2.1"],"index":[0,0,0]},'
    '"error":{"values":["no echo reply to 3 requests"],"index":[null,0,null]},'
    '"measured_at_us":[1740816000123457,30000000,30000000],'
    '"duration_s":[4812345,4812345,4812345],"rtt_s":[11672,null,118644],'
    '"packet_loss":[0.33333333333333337,1000000,0],"jitter_s":[412,null,412],'
    '"clock_offset_s":[-250000,-250000,-250000],"sent":[3,3,3],"received":[2,0,3],'
    '"duplicates":[0,0,0],"family":[4,4,4],'
    '"rtts_s":[[11000,null,12345],[null,null,null],[10500,0.3333333333333333,12100]],'
    '"phases_s":[{"resolve":12},{"resolve":12},{"resolve":12}],'
    '"detail":[{"rtt_min_s":0.011,"late_replies":0,"unreachable":[]},'
    '{"rtt_min_s":null,"late_replies":0,"unreachable":[]},'
    '{"rtt_min_s":0.0105,"late_replies":0,"unreachable":[]}]}}'
)


def test_the_server_still_stores_a_version_2_body_exactly(
    client: TestClient, migrated_engine: Engine, auth_header: Auth
) -> None:
    response = client.post(
        URL,
        content=gzip.compress(V2_BODY.encode()),
        headers={
            **auth_header("bridge1"),
            "Content-Type": COMPACT_CONTENT_TYPE,
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 3
    with Session(migrated_engine) as session:
        rows = list(session.scalars(select(Result).order_by(Result.measured_at)))
    assert [r.result_id for r in rows] == [
        "12345678-9abc-8def-8000-000000000000",
        "12345678-9abc-8def-8000-000000000001",
        "12345678-9abc-8def-8000-000000000002",
    ]
    assert [r.measured_at for r in rows] == [
        T0 + timedelta(hours=0, seconds=30 * i) for i in range(3)
    ]
    assert [r.rtts_s for r in rows] == [
        [0.011, None, 0.012345],
        [None, None, None],
        [0.0105, 1 / 3, 0.0121],
    ]
    assert [r.rtt_s for r in rows] == [0.011672, None, 0.118644]
    assert [r.jitter_s for r in rows] == [0.000412, None, 0.000412]
    assert [r.packet_loss for r in rows] == [1 - 2 / 3, 1.0, 0.0]
    assert rows[0].detail == {"rtt_min_s": 0.011, "late_replies": 0, "unreachable": []}


def test_the_server_refuses_a_version_3_body_with_bad_packed_samples_naming_the_result(
    client: TestClient, migrated_engine: Engine, auth_header: Auth
) -> None:
    ids = ResultIds()
    batch = batch_of([icmp(ids, "gw-icmp", T0 + timedelta(seconds=i), [0.01]) for i in range(3)])
    body = spoiled(batch, lambda d: d["cols"]["rtts"].__setitem__(1, "AAE="))
    response = client.post(
        URL, content=body, headers={**auth_header("bridge1"), "Content-Type": COMPACT_CONTENT_TYPE}
    )
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "results", 1, "rtts_s"]
    assert "cut short" in problem["msg"]
    huge = spoiled(batch, lambda d: d["cols"]["duration_s"].__setitem__(0, 10**400))
    response = client.post(
        URL, content=huge, headers={**auth_header("bridge1"), "Content-Type": COMPACT_CONTENT_TYPE}
    )
    assert response.status_code == 422, response.text  # not a 500 from an OverflowError
    assert response.json()["detail"][0]["loc"] == ["body", "results", 0, "duration_s"]
    with Session(migrated_engine) as session:
        assert session.scalars(select(Result)).first() is None
