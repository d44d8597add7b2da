"""C13 and C14 from the agent to the page: the real scheduler's rounds, the real evaluator.

The agent's scheduler runs with a fake clock and a fake ICMP probe (seams we own) and a
real spool; each result it spools is uploaded through the server's own ingest two seconds
after it was measured, and an evaluator pass runs right after (real database: SQLite, and
PostgreSQL when available). The clock puts the target's first regular slot at 11:55:00.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alerting_testkit import T0, World, WorldFactory, icmp, site_config

from monitor.agent.scheduler import Scheduler, first_offset_s
from monitor.agent.spool import Spool
from monitor.alerting.events import AlertKind
from monitor.wire import ResultIn
from probes.context import ProbeContext
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import TargetSpec

SITE = "bridge1"
NOON = T0.replace(hour=12)
UPLOAD_LAG = timedelta(seconds=2)

Script = Callable[[datetime], ProbeStatus]


class FakeAgentClock:
    """The agent's clock seam: time moves only when the scheduler sleeps or a probe runs."""

    def __init__(self, wall0: datetime) -> None:
        self.mono_s = 1000.0
        self.wall0 = wall0

    def wall(self) -> datetime:
        return self.wall0 + timedelta(seconds=self.mono_s - 1000.0)

    def monotonic(self) -> float:
        return self.mono_s

    async def sleep(self, seconds: float) -> None:
        self.mono_s += max(0.0, seconds)
        await asyncio.sleep(0)


def icmp_round(status: ProbeStatus) -> ProbeResult:
    """Return a 3-request ICMP round: all answered in 12 ms (UP) or none (DOWN)."""
    if status is ProbeStatus.UP:
        return ProbeResult(
            ProbeKind.ICMP,
            status,
            duration_s=0.5,
            rtt_s=0.012,
            packet_loss=0.0,
            jitter_s=0.0,
            sent=3,
            received=3,
            duplicates=0,
            rtts_s=(0.012, 0.012, 0.012),
        )
    return ProbeResult(
        ProbeKind.ICMP,
        status,
        duration_s=0.5,
        packet_loss=1.0,
        sent=3,
        received=0,
        duplicates=0,
        rtts_s=(None, None, None),
        error="no echo reply within 5 s",
    )


def fails_from(start: datetime, until: datetime | None = None) -> Script:
    """Return a target failing from ``start`` (to ``until``); 1 s slack: the clock is float."""

    def script(at: datetime) -> ProbeStatus:
        failing = at >= start - timedelta(seconds=1) and (until is None or at < until)
        return ProbeStatus.DOWN if failing else ProbeStatus.UP

    return script


async def agent_rounds(
    tmp_path: Path, world: World, script: Script, rounds: int, first_slot: datetime
) -> list[ResultIn]:
    """Run the real scheduler for ``rounds`` rounds of the site's only target; return them."""
    site = world.config.sites[SITE]
    target = site.targets[0]
    offset_s = first_offset_s(SITE, target.id, target.interval_s)
    clock = FakeAgentClock(first_slot - timedelta(seconds=offset_s))
    stop = asyncio.Event()
    spooled: list[ResultIn] = []

    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        status = script(clock.wall())
        clock.mono_s += 0.5
        if len(spooled) + 1 == rounds:
            stop.set()
        return icmp_round(status)

    with Spool(tmp_path / "spool.db", clock=lambda: first_slot + timedelta(days=1)) as spool:
        sched = Scheduler(
            SITE,
            site.targets,
            spool,
            ProbeContext(),
            max_concurrency=4,
            run_probe=probe,
            clock=clock,
            on_result=spooled.append,
            site=site,
        )
        await asyncio.wait_for(sched.run(stop), timeout=30)
        assert spool.backlog() == rounds
    assert len(spooled) == rounds
    return spooled


def deliver(world: World, results: list[ResultIn]) -> dict[AlertKind, datetime]:
    """Upload each result 2 s after it was measured, run a pass; return when alerts first went."""
    first: dict[AlertKind, datetime] = {}
    for r in results:
        world.clock.set(r.measured_at + UPLOAD_LAG)
        world.upload(SITE, [r])
        world.run()
        for event in world.sink.events:
            first.setdefault(event.kind, world.clock())
    return first


def minutes_after(results: list[ResultIn], origin: datetime) -> list[float]:
    return [round((r.measured_at - origin).total_seconds() / 60, 4) for r in results]


def c14_config(**target: Any) -> Any:
    return site_config({SITE: [icmp("gw", interval_s=300, **target)]})


async def test_three_retries_from_the_agent_declare_down_at_twelve_oh_three(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    # C14: interval 300 s, 3 retries 60 s apart (failures_to_down = 3 + 1 = 4); the target
    # fails hard at 12:00:00, just before a scheduled check.
    config = c14_config(retry_interval_s=60, failures_to_down=4)
    first_slot = NOON - timedelta(minutes=5)
    with make_world(config) as world:
        results = await agent_rounds(tmp_path, world, fails_from(NOON), 7, first_slot)
        assert minutes_after(results, NOON) == [-5, 0, 1, 2, 3, 5, 10]
        sent = deliver(world, results)
        assert list(sent) == [AlertKind.TARGET_DOWN]
        down_at = sent[AlertKind.TARGET_DOWN]
        # Declared at the third retry, 12:03:00 plus the upload lag: not 12:01, not 12:08+.
        assert abs((down_at - (NOON + timedelta(minutes=3) + UPLOAD_LAG)).total_seconds()) < 0.01
        (event,) = world.sink.events
        assert abs((event.started_at - NOON).total_seconds()) < 0.01


async def test_no_retries_from_the_agent_page_within_seconds_of_the_first_failure(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    # C14 with 0 retries: failures_to_down 1.
    config = c14_config(retry_interval_s=60, failures_to_down=1)
    first_slot = NOON - timedelta(minutes=5)
    with make_world(config) as world:
        results = await agent_rounds(tmp_path, world, fails_from(NOON), 4, first_slot)
        assert minutes_after(results, NOON) == [-5, 0, 5, 10]
        sent = deliver(world, results)
        assert list(sent) == [AlertKind.TARGET_DOWN]
        assert abs((sent[AlertKind.TARGET_DOWN] - (NOON + UPLOAD_LAG)).total_seconds()) < 0.01


async def test_without_a_retry_interval_the_same_target_is_declared_down_ten_minutes_late(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    # The fault C14 describes, kept as the contrast: the failure is only re-checked at the
    # regular slots, so the 4th failed round is 12:15.
    config = c14_config(failures_to_down=4)
    first_slot = NOON - timedelta(minutes=5)
    with make_world(config) as world:
        results = await agent_rounds(tmp_path, world, fails_from(NOON), 5, first_slot)
        assert minutes_after(results, NOON) == [-5, 0, 5, 10, 15]
        sent = deliver(world, results)
        target_down = sent[AlertKind.TARGET_DOWN] - (NOON + timedelta(minutes=15) + UPLOAD_LAG)
        assert abs(target_down.total_seconds()) < 0.01


async def test_one_transient_timeout_with_retries_pages_nobody_and_stays_up(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    # C13 through the agent: 60 s interval, threshold 3, retries 20 s apart; the 10:00 check
    # times out once and the retry at 10:00:20 already succeeds.
    config = site_config(
        {SITE: [icmp("gw", interval_s=60, retry_interval_s=20, failures_to_down=3)]}
    )
    ten = T0.replace(hour=10)
    first_slot = ten - timedelta(minutes=5)
    blip = fails_from(ten, until=ten + timedelta(seconds=10))
    with make_world(config) as world:
        results = await agent_rounds(tmp_path, world, blip, 17, first_slot)
        assert minutes_after(results, ten)[4:8] == [-1, 0, round(20 / 60, 4), 1]
        assert [r.status for r in results].count(ProbeStatus.DOWN) == 1
        sent = deliver(world, results)
        assert sent == {}
        assert world.incidents() == []
        assert {state for _, _, state in world.periods(SITE, "gw")} == {"up"}
