"""The uploader's store-and-forward duties: newest state first, spool report, compact
encoding with a JSON fallback, the clock offset kept across restarts, the upload budget."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from agent_testkit import (
    T0,
    TOKEN,
    ReceiverState,
    SteppingClock,
    bound_socket,
    build_receiver,
    make_result,
    serve,
    spool_now,
    wait_for,
)

from monitor.agent.budget import REQUEST_OVERHEAD_BYTES, WINDOW_S, UploadBudget
from monitor.agent.spool import Spool
from monitor.agent.uploader import UploadEncoding, Uploader, UploadOutcome
from monitor.wire import (
    COMPACT_CONTENT_TYPE,
    COMPACT_V2_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    ResultIn,
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
        "batch_max_results": 20,
        "upload_interval_s": 0.05,
        "retry_max_s": 0.2,
        "upload_timeout_s": 5.0,
    }
    args.update(kw)
    return Uploader(spool, **args)  # type: ignore[arg-type]


def interleaved(n_per_target: int, targets: list[str]) -> list[ResultIn]:
    """Results of several targets, spooled in measurement order (one per second)."""
    out = []
    for i in range(n_per_target):
        for j, target in enumerate(targets):
            out.append(make_result(i * len(targets) + j, target_id=target))
    return out


async def test_each_batch_starts_with_the_newest_result_of_every_target_then_the_oldest(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    results = interleaved(50, ["gw-a", "gw-b", "gw-c"])
    spool.put(results)
    newest = {r.target_id: r.result_id for r in results}  # the last of each target wins
    up = make_uploader(spool, url)
    try:
        assert await up.upload_once() is UploadOutcome.ACKED
        spool.put([make_result(500, target_id="gw-b")])  # news of gw-b only
        assert await up.upload_once() is UploadOutcome.ACKED
    finally:
        await up.aclose()
    first, second = state.orders
    assert first[:3] == [newest["gw-a"], newest["gw-b"], newest["gw-c"]]
    assert first[3:] == [r.result_id for r in results[:17]]
    fresh = spool.peek_newest()
    assert second[0] not in {r.result_id for r in fresh}  # gw-b's news went first
    assert second[1:] == [r.result_id for r in results[17:36]]


async def test_the_batch_carries_the_spool_state_besides_itself(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    spool.put(interleaved(10, ["gw-a"]))
    up = make_uploader(spool, url, batch_max_results=4)
    try:
        assert await up.upload_once() is UploadOutcome.ACKED
    finally:
        await up.aclose()
    [report] = state.reports
    assert report is not None
    assert report.backlog == 6
    # sent: the newest (9) and the three oldest (0, 1, 2); the oldest left is result 3
    assert report.oldest_unsent_at == T0 + timedelta(seconds=3)
    assert report.dropped_total == 0 and report.rejected_total == 0


async def test_uploads_are_compact_and_fall_back_to_json_for_an_older_server(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    state.refuse_compact = True
    results = interleaved(30, ["gw-a", "gw-b"])
    spool.put(results)
    up = make_uploader(spool, url, batch_max_results=100)
    try:
        assert up.encoding is UploadEncoding.COMPACT
        assert await up.upload_once() is UploadOutcome.DOWNGRADED
        assert await up.upload_once() is UploadOutcome.ACKED
    finally:
        await up.aclose()
    assert state.content_types == [COMPACT_CONTENT_TYPE, JSON_CONTENT_TYPE]
    assert set(state.stored) == {r.result_id for r in results}
    assert state.stored[results[0].result_id] == results[0]


async def test_an_agent_upgraded_before_its_server_falls_back_to_json(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    # A server that reads only layout 2 reads a layout 3 body (its own content type) as
    # JSON and answers 422 naming the compact envelope; the agent must switch to JSON.
    state, url = receiver
    state.compact_types = (COMPACT_V2_CONTENT_TYPE,)
    results = interleaved(12, ["gw-a", "gw-b"])
    spool.put(results)
    up = make_uploader(spool, url, batch_max_results=100)
    try:
        assert await up.upload_once() is UploadOutcome.DOWNGRADED
        assert await up.upload_once() is UploadOutcome.ACKED
    finally:
        await up.aclose()
    assert state.content_types == [COMPACT_CONTENT_TYPE, JSON_CONTENT_TYPE]
    assert [state.stored[r.result_id] for r in results] == results


async def test_a_compact_upload_reaches_the_receiver_exactly(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    results = interleaved(20, ["gw-a", "gw-b"])
    spool.put(results)
    up = make_uploader(spool, url, batch_max_results=100)
    try:
        assert await up.upload_once() is UploadOutcome.ACKED
    finally:
        await up.aclose()
    assert state.content_types == [COMPACT_CONTENT_TYPE]
    assert [state.stored[r.result_id] for r in results] == results


async def test_the_clock_offset_is_kept_in_the_spool_for_the_next_start(
    tmp_path: Path, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    state.server_time_offset_s = -12.0
    path = tmp_path / "spool.db"
    with Spool(path, clock=spool_now) as spool:
        assert make_uploader(spool, url).stats.clock_offset_s is None
        spool.put([make_result(0)])
        up = make_uploader(spool, url)
        try:
            assert await up.upload_once() is UploadOutcome.ACKED
        finally:
            await up.aclose()
    with Spool(path, clock=spool_now) as spool:
        kept = make_uploader(spool, url).stats.clock_offset_s
    assert kept == pytest.approx(-12.0, abs=2.0)


class LoggingBudget(UploadBudget):
    """The real budget, keeping every attempt for the test to check afterwards."""

    def __init__(self, bytes_per_hour: int) -> None:
        super().__init__(bytes_per_hour)
        self.attempts: list[tuple[datetime, int]] = []

    def record(self, now: datetime, sent_bytes: int) -> None:
        self.attempts.append((now, sent_bytes))
        super().record(now, sent_bytes)


async def test_a_budget_is_never_exceeded_in_any_hour_and_everything_arrives_once(
    spool: Spool, receiver: tuple[ReceiverState, str]
) -> None:
    state, url = receiver
    results = interleaved(400, ["gw-a", "gw-b", "gw-c"])  # 1200 results
    spool.put(results)
    budget = LoggingBudget(12_000)
    clock = SteppingClock(wall0=spool_now())  # the budget's hours pass in fake time
    up = make_uploader(
        spool, url, batch_max_results=500, upload_interval_s=5.0, budget=budget, clock=clock
    )
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: spool.backlog() == 0, timeout_s=60, what="an empty spool")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await up.aclose()
    assert len(state.stored) == 1200 and state.deliveries == 1200
    assert len(budget.attempts) >= 3  # the budget really spread the backlog over time
    for end, _ in budget.attempts:
        in_hour = sum(n for at, n in budget.attempts if 0 <= (end - at).total_seconds() < WINDOW_S)
        assert in_hour <= 12_000
    assert all(n > REQUEST_OVERHEAD_BYTES for _, n in budget.attempts)
    newest = {r.target_id: r.result_id for r in results}
    assert set(state.orders[0][:3]) == set(newest.values())
