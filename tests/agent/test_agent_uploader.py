"""The uploader against a real HTTP receiver under uvicorn on 127.0.0.1, with a real spool."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from agent_testkit import (
    TOKEN,
    ReceiverState,
    SteppingClock,
    bound_socket,
    build_receiver,
    make_result,
    make_results,
    serve,
    spool_now,
    wait_for,
)

from monitor.agent.spool import Spool
from monitor.agent.uploader import (
    Uploader,
    UploadOutcome,
    backoff_ceiling_s,
    backoff_s,
    batch_id_for,
    estimate_clock_offset_s,
)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.db", clock=spool_now) as s:
        yield s


@pytest.fixture
def receiver() -> Iterator[tuple[ReceiverState, str]]:
    state = ReceiverState()
    with serve(build_receiver(state), bound_socket()) as url:
        yield state, url


def make_uploader(spool: Spool, url: str, **kw: object) -> Uploader:
    args: dict[str, object] = {
        "site_id": "site-a",
        "server_url": url,
        "token": TOKEN,
        "batch_max_results": 100,
        "upload_interval_s": 0.05,
        "retry_max_s": 0.2,
        "upload_timeout_s": 5.0,
    }
    args.update(kw)
    return Uploader(spool, **args)  # type: ignore[arg-type]


def test_backoff_ceiling_doubles_from_the_base_and_stops_at_the_cap() -> None:
    ceilings = [backoff_ceiling_s(n, 5.0, 300.0) for n in range(10)]
    assert ceilings == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0, 300.0]
    assert backoff_ceiling_s(10_000, 5.0, 300.0) == 300.0


def test_backoff_is_full_jitter_under_the_ceiling() -> None:
    assert backoff_s(3, 5.0, 300.0, rand=lambda: 0.0) == 0.0
    assert backoff_s(3, 5.0, 300.0, rand=lambda: 0.5) == 20.0
    assert backoff_s(50, 5.0, 300.0, rand=lambda: 0.999) == pytest.approx(299.7)


def test_the_same_batch_gets_the_same_batch_id_and_another_batch_another() -> None:
    ids = [r.result_id for r in make_results(3)]
    assert batch_id_for(ids) == batch_id_for(list(ids))
    assert batch_id_for(ids) != batch_id_for(ids[:2])


def test_clock_offset_is_server_time_minus_the_exchange_midpoint() -> None:
    sent = make_result().measured_at
    assert estimate_clock_offset_s(sent + timedelta(seconds=10.5), sent, 1.0) == 10.0
    assert estimate_clock_offset_s(sent.replace(tzinfo=None), sent, 0.0) == 0.0


async def test_an_acknowledged_batch_leaves_the_spool_gzip_and_token_accepted(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    results = make_results(250)
    spool.put(results)
    up = make_uploader(spool, url)
    try:
        assert await up.upload_once() is UploadOutcome.ACKED
        assert spool.backlog() == 150
        assert await up.upload_once() is UploadOutcome.ACKED
        assert await up.upload_once() is UploadOutcome.ACKED
        assert await up.upload_once() is UploadOutcome.EMPTY
    finally:
        await up.aclose()
    assert state.batch_sizes == [100, 100, 50]
    assert set(state.stored) == {r.result_id for r in results}
    assert state.stored[results[0].result_id] == results[0]
    assert up.stats.results_acked_total == 250
    assert up.stats.last_success_at is not None


async def test_results_stay_in_the_spool_when_the_ack_is_lost(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    state.store_then_fail = 1  # the server stores the batch, then the answer is a 500
    spool.put(make_results(20))
    up = make_uploader(spool, url)
    try:
        assert await up.upload_once() is UploadOutcome.RETRY
        assert spool.backlog() == 20
        assert len(state.stored) == 20
        assert await up.upload_once() is UploadOutcome.ACKED
    finally:
        await up.aclose()
    assert spool.backlog() == 0
    assert up.stats.duplicates_total == 20
    assert len(state.stored) == 20


async def test_a_stalled_server_times_out_and_keeps_the_results(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    state.stall_s = 1.0
    spool.put(make_results(5))
    up = make_uploader(spool, url, upload_timeout_s=0.2)
    try:
        assert await up.upload_once() is UploadOutcome.RETRY
    finally:
        await up.aclose()
    assert spool.backlog() == 5
    assert up.stats.last_error is not None
    assert "did not answer within 0.2 s" in up.stats.last_error


async def test_a_refused_token_keeps_the_data_and_says_which_site(
    spool: Spool, receiver: tuple[ReceiverState, str], caplog: pytest.LogCaptureFixture
) -> None:
    state, url = receiver
    spool.put(make_results(5))
    up = make_uploader(spool, url, token="not-the-right-token")
    try:
        with caplog.at_level(logging.ERROR):
            assert await up.upload_once() is UploadOutcome.AUTH
    finally:
        await up.aclose()
    assert spool.backlog() == 5
    assert state.stored == {}
    assert "refused site site-a's upload token (HTTP 401)" in caplog.text
    assert "sites.site-a.token" in caplog.text


async def test_a_refused_token_backs_off_instead_of_spinning(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    spool.put(make_results(5))
    clock = SteppingClock()
    up = make_uploader(
        spool,
        url,
        token="wrong-token-000000",
        upload_interval_s=5.0,
        retry_max_s=60.0,
        clock=clock,
        rand=lambda: 1.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: state.requests >= 6, what="six refused attempts")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await up.aclose()
    # The fake clock advanced by the backoff delays: 5 + 10 + 20 + 40 + 60 (capped) ...
    assert clock.now_s - clock.mono0 >= 5 + 10 + 20 + 40 + 60
    assert spool.backlog() == 5


async def test_results_the_server_names_as_malformed_move_to_rejected_and_the_rest_go(
    spool: Spool, receiver: tuple[ReceiverState, str], caplog: pytest.LogCaptureFixture
) -> None:
    state, url = receiver
    state.refuse_targets = {"gone"}
    good = make_results(4)
    bad = make_result(99, target_id="gone")
    spool.put([good[0], bad, *good[1:]])
    up = make_uploader(spool, url)
    try:
        with caplog.at_level(logging.ERROR):
            assert await up.upload_once() is UploadOutcome.REJECTED
        assert await up.upload_once() is UploadOutcome.ACKED
    finally:
        await up.aclose()
    assert set(state.stored) == {r.result_id for r in good}
    counts = spool.counts()
    assert (counts.backlog, counts.rejected_total, counts.rejected_waiting) == (0, 1, 1)
    assert spool.rejected_reasons() == [(bad.result_id, "HTTP 422: target_id: unknown target")]
    assert "unknown target" in caplog.text


async def test_a_422_that_names_no_result_is_narrowed_down_to_the_bad_one(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    state.refuse_targets = {"gone"}
    state.refuse_plain = True
    results = make_results(16)
    bad = make_result(5, target_id="gone")
    results[5] = bad
    spool.put(results)
    up = make_uploader(spool, url, batch_max_results=16)
    try:
        for _ in range(40):
            if spool.backlog() == 0:
                break
            await up.upload_once()
    finally:
        await up.aclose()
    assert spool.backlog() == 0
    assert len(state.stored) == 15
    assert [rid for rid, _ in spool.rejected_reasons()] == [bad.result_id]


async def test_a_batch_too_large_for_the_server_is_split(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    state.max_batch = 30
    spool.put(make_results(100))
    up = make_uploader(spool, url)
    try:
        for _ in range(20):
            if spool.backlog() == 0:
                break
            await up.upload_once()
    finally:
        await up.aclose()
    assert spool.backlog() == 0
    assert len(state.stored) == 100
    assert max(state.batch_sizes) <= 30
    assert spool.counts().rejected_total == 0


async def test_the_clock_offset_to_the_server_is_recorded_on_ack(
    spool: Spool, receiver: tuple[ReceiverState, str], caplog: pytest.LogCaptureFixture
) -> None:
    state, url = receiver
    state.server_time_offset_s = 30.0
    spool.put(make_results(2))
    up = make_uploader(spool, url)
    try:
        with caplog.at_level(logging.WARNING):
            assert await up.upload_once() is UploadOutcome.ACKED
    finally:
        await up.aclose()
    assert up.stats.clock_offset_s is not None
    assert up.stats.clock_offset_s == pytest.approx(30.0, abs=2.0)
    assert "behind the server's" in caplog.text


async def test_server_down_then_up_delivers_every_result_exactly_once(spool: Spool) -> None:
    state = ReceiverState()
    sock = bound_socket()  # bound, not listening: connections are refused
    port = sock.getsockname()[1]
    results = make_results(730)
    spool.put(results)
    up = make_uploader(spool, f"http://127.0.0.1:{port}", retry_max_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: up.stats.failures_total >= 3, what="three failed attempts")
        assert spool.backlog() == 730
        state.fail_status, state.fail_times = 503, 2
        with serve(build_receiver(state), sock):
            await wait_for(lambda: spool.backlog() == 0, what="an empty spool")
            stop.set()
            await asyncio.wait_for(task, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await up.aclose()
    assert len(state.stored) == 730
    assert state.deliveries == 730  # no result was sent twice
    assert set(state.stored) == {r.result_id for r in results}
    assert up.stats.failures_total >= 5  # three refused connections and two 503s
