"""The scheduler: fixed cadence, skipped slots, concurrency limit, every round spooled.

Probes are fakes at our own seam (the scheduler's ``run_probe``); the spool is real.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_testkit import SteppingClock, spool_now, wait_for

from monitor.agent.scheduler import (
    Scheduler,
    backstop_s,
    first_offset_s,
    late_grace_s,
    next_slot,
    round_budget_s,
)
from monitor.agent.spool import Spool
from probes.context import ProbeContext
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import IcmpTarget, TargetSpec, TcpTarget


def tcp(target_id: str = "gw-tcp", interval_s: float = 10.0, timeout_s: float = 2.0) -> TcpTarget:
    return TcpTarget(
        id=target_id, host="192.0.2.1", port=443, interval_s=interval_s, timeout_s=timeout_s
    )


def up(duration_s: float = 0.01) -> ProbeResult:
    return ProbeResult(kind=ProbeKind.TCP, status=ProbeStatus.UP, duration_s=duration_s, rtt_s=0.01)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.db", clock=spool_now) as s:
        yield s


def test_next_slot_follows_the_cadence_when_a_round_fits() -> None:
    assert next_slot(100.0, 10.0, 0, 103.0) == 1
    assert next_slot(100.0, 10.0, 4, 149.9) == 5


def test_next_slot_skips_the_slots_a_long_round_passed() -> None:
    # Slot 1 ran at 110 and finished at 135: slots 2 (120) and 3 (130) are gone.
    assert next_slot(100.0, 10.0, 1, 135.0) == 4
    assert next_slot(100.0, 10.0, 1, 140.0) == 4  # due exactly now: run it


def test_next_slot_runs_a_slot_missed_by_less_than_the_grace_late() -> None:
    assert late_grace_s(10.0) == 1.0
    assert late_grace_s(2.0) == pytest.approx(0.2)
    assert next_slot(100.0, 10.0, 0, 110.5) == 1
    assert next_slot(100.0, 10.0, 0, 111.5) == 2


def test_first_offset_is_deterministic_within_the_interval_and_spreads_targets() -> None:
    offsets = [first_offset_s("site-a", f"t{i}", 30.0) for i in range(50)]
    assert offsets == [first_offset_s("site-a", f"t{i}", 30.0) for i in range(50)]
    assert all(0.0 <= o < 30.0 for o in offsets)
    assert len({round(o, 6) for o in offsets}) == 50
    assert first_offset_s("site-a", "t0", 30.0) != first_offset_s("site-b", "t0", 30.0)


def test_the_icmp_backstop_covers_the_whole_round_not_one_timeout() -> None:
    target = IcmpTarget(id="gw", host="192.0.2.1", count=20, spacing_s=0.5, timeout_s=2.0)
    assert round_budget_s(target) == pytest.approx(11.5)
    assert backstop_s(target, margin_s=2.0) == pytest.approx(11.5 + 2.0 + 1.15)
    assert round_budget_s(tcp(timeout_s=3.0)) == 3.0


async def test_rounds_start_on_a_fixed_cadence_without_drift(spool: Spool) -> None:
    clock = SteppingClock()
    stop = asyncio.Event()
    starts: list[float] = []
    target = tcp(interval_s=10.0)

    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        starts.append(clock.monotonic())
        clock.advance(3.7)  # each round takes 3.7 s
        if len(starts) == 6:
            stop.set()
        return up(3.7)

    sched = Scheduler(
        "site-a", [target], spool, ProbeContext(), max_concurrency=4, run_probe=probe, clock=clock
    )
    await sched.run(stop)
    base = clock.mono0 + first_offset_s("site-a", target.id, 10.0)
    assert starts == pytest.approx([base + 10.0 * k for k in range(6)], abs=1e-9)
    assert sched.stats.targets[target.id].skipped_slots_total == 0
    assert spool.backlog() == 6
    stamped = [r.measured_at for r in spool.peek_batch(10)]
    assert [(t - stamped[0]).total_seconds() for t in stamped] == pytest.approx(
        [10.0 * k for k in range(6)], abs=1e-5
    )


async def test_a_round_that_overruns_skips_missed_slots_and_counts_them(
    spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SteppingClock()
    stop = asyncio.Event()
    starts: list[float] = []
    durations = iter([1.0, 25.0, 1.0, 1.0])

    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        starts.append(clock.monotonic())
        d = next(durations)
        clock.advance(d)
        if len(starts) == 4:
            stop.set()
        return up(d)

    target = tcp(interval_s=10.0)
    sched = Scheduler(
        "site-a", [target], spool, ProbeContext(), max_concurrency=4, run_probe=probe, clock=clock
    )
    with caplog.at_level(logging.WARNING):
        await sched.run(stop)
    base = clock.mono0 + first_offset_s("site-a", target.id, 10.0)
    # Slot 1 ran 10..35: slots 2 and 3 are skipped, never stacked; the cadence stays.
    assert starts == pytest.approx([base, base + 10, base + 40, base + 50], abs=1e-9)
    assert sched.stats.targets[target.id].skipped_slots_total == 2
    assert "skipped 2 slot(s)" in caplog.text
    assert spool.backlog() == 4


async def test_no_more_rounds_run_at_once_than_max_concurrency(spool: Spool) -> None:
    stop = asyncio.Event()
    gate = asyncio.Event()
    running = 0
    peak = 0
    calls = 0

    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        nonlocal running, peak, calls
        calls += 1
        running += 1
        peak = max(peak, running)
        try:
            await gate.wait()
        finally:
            running -= 1
        return up()

    targets = [tcp(f"t{i}", interval_s=0.2) for i in range(10)]
    sched = Scheduler("site-a", targets, spool, ProbeContext(), max_concurrency=3, run_probe=probe)
    task = asyncio.create_task(sched.run(stop))
    await wait_for(lambda: running == 3, what="three rounds in flight")
    # Every target's first slot (within 0.2 s) has come; the others wait on the semaphore.
    await asyncio.sleep(0.4)
    assert running == 3
    gate.set()
    await wait_for(lambda: spool.backlog() >= 10, what="ten results spooled")
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert peak == 3
    assert spool.backlog() == sum(s.rounds_total for s in sched.stats.targets.values())


async def test_a_probe_that_raises_becomes_an_error_result_and_the_schedule_goes_on(
    spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SteppingClock()
    stop = asyncio.Event()
    calls = 0

    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("socket table exploded")
        if calls == 3:
            stop.set()
        return up()

    target = tcp()
    sched = Scheduler(
        "site-a", [target], spool, ProbeContext(), max_concurrency=1, run_probe=probe, clock=clock
    )
    with caplog.at_level(logging.ERROR):
        await sched.run(stop)
    results = spool.peek_batch(10)
    assert [r.status for r in results] == [ProbeStatus.ERROR, ProbeStatus.UP, ProbeStatus.UP]
    assert results[0].kind is ProbeKind.TCP
    assert results[0].error is not None
    assert "RuntimeError: socket table exploded" in results[0].error
    assert "not a target failure" in results[0].error
    stats = sched.stats.targets[target.id]
    assert (stats.probe_exceptions_total, stats.error_results_total) == (1, 1)
    assert "socket table exploded" in caplog.text


async def test_a_probe_past_its_backstop_becomes_an_error_result(spool: Spool) -> None:
    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        await asyncio.sleep(3600)
        return up()

    target = tcp(timeout_s=0.05)
    sched = Scheduler(
        "site-a",
        [target],
        spool,
        ProbeContext(),
        max_concurrency=1,
        run_probe=probe,
        backstop_margin_s=0.01,
    )
    result = await sched.run_round(target)
    assert result.status is ProbeStatus.ERROR
    assert result.error is not None and "did not finish within" in result.error
    assert sched.stats.targets[target.id].backstop_expired_total == 1
    assert spool.peek_batch(10) == [result]


async def test_a_probe_record_the_wire_refuses_becomes_an_error_result(spool: Spool) -> None:
    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        return ProbeResult(kind=ProbeKind.TCP, status=ProbeStatus.UP, duration_s=0.1, rtt_s=-1.0)

    target = tcp()
    sched = Scheduler("site-a", [target], spool, ProbeContext(), max_concurrency=1, run_probe=probe)
    result = await sched.run_round(target)
    assert result.status is ProbeStatus.ERROR
    assert result.error is not None and "ValidationError" in result.error
    assert spool.backlog() == 1


async def test_each_result_gets_its_own_uuid_and_the_wall_time_at_round_start(
    spool: Spool,
) -> None:
    clock = SteppingClock()

    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        clock.advance(2.0)
        return up(2.0)

    target = tcp()
    sched = Scheduler(
        "site-a", [target], spool, ProbeContext(), max_concurrency=1, run_probe=probe, clock=clock
    )
    first = await sched.run_round(target)
    second = await sched.run_round(target)
    assert first.result_id != second.result_id
    assert first.measured_at == clock.wall0
    assert (second.measured_at - first.measured_at).total_seconds() == 2.0
    assert first.target_id == "gw-tcp"
