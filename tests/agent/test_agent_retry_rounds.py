"""Retry rounds (case C14): after a DOWN round the scheduler probes again sooner.

Probes are fakes at our own seam (the scheduler's ``run_probe``) that answer by the fake
clock's wall time; the spool is real. Times are wall-clock minutes after 11:55, the
target's first regular slot (interval 300 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from agent_testkit import T0, SteppingClock, spool_now

from monitor.agent.scheduler import Scheduler, first_offset_s, retry_due_s
from monitor.agent.spool import Spool
from monitor.alerting.state_machine import failures_to_down_for, rules_for
from monitor.config import Config, ConfigError, SiteConfig
from monitor.config_loader import load_config
from monitor.wire import ResultIn
from probes.context import ProbeContext
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import TargetSpec, TcpTarget

SITE = "bridge1"
NOON = T0.replace(hour=12)
FIRST_SLOT = NOON - timedelta(minutes=5)

Script = Callable[[datetime], ProbeStatus]
"""What the target answers at a wall time."""


def tcp(**extra: float | int | None) -> TcpTarget:
    return TcpTarget.model_validate(
        {"id": "gw", "host": "192.0.2.1", "port": 443, "interval_s": 300.0, **extra}
    )


def fails_from_noon(at: datetime) -> ProbeStatus:
    # The fake clock's wall time is float arithmetic: the noon round may read 11:59:59.999999.
    return ProbeStatus.DOWN if at >= NOON - timedelta(seconds=1) else ProbeStatus.UP


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.db", clock=spool_now) as s:
        yield s


async def run_rounds(
    spool: Spool,
    target: TcpTarget,
    script: Script,
    rounds: int,
    *,
    site: SiteConfig | None = None,
) -> tuple[list[float], Scheduler]:
    """Run ``rounds`` rounds; return their start times (minutes after 11:55) and the scheduler.

    The fake clock puts the target's first regular slot at 11:55:00 wall time.
    """
    offset_s = first_offset_s(SITE, target.id, target.interval_s)
    clock = SteppingClock(wall0=FIRST_SLOT - timedelta(seconds=offset_s))
    stop = asyncio.Event()
    starts: list[datetime] = []

    async def probe(_t: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        at = clock.wall()
        starts.append(at)
        clock.advance(0.5)
        if len(starts) == rounds:
            stop.set()
        status = script(at)
        error = None if status is ProbeStatus.UP else f"scripted {status} at {at:%H:%M:%S}"
        rtt_s = 0.01 if status is ProbeStatus.UP else None
        return ProbeResult(ProbeKind.TCP, status, duration_s=0.5, rtt_s=rtt_s, error=error)

    seen: list[ResultIn] = []
    sched = Scheduler(
        SITE,
        [target],
        spool,
        ProbeContext(),
        max_concurrency=4,
        run_probe=probe,
        clock=clock,
        on_result=seen.append,
        site=site,
    )
    await asyncio.wait_for(sched.run(stop), timeout=30)
    assert [r.measured_at for r in seen] == starts
    return [round((at - FIRST_SLOT).total_seconds() / 60, 6) for at in starts], sched


async def test_three_retries_a_minute_apart_follow_a_failure_at_noon_then_the_cadence_resumes(
    spool: Spool,
) -> None:
    # C14: interval 300 s, 3 retries 60 s apart (failures_to_down = 3 + 1), fails at 12:00.
    target = tcp(retry_interval_s=60.0, failures_to_down=4)
    minutes, sched = await run_rounds(spool, target, fails_from_noon, 8)
    # 11:55 up; 12:00 fails; retries 12:01, 12:02, 12:03 (the 4th failure: DOWN); then the
    # regular slots 12:05, 12:10, 12:15 while it stays down.
    assert minutes == [0, 5, 6, 7, 8, 10, 15, 20]
    stats = sched.stats.targets["gw"]
    assert stats.retry_rounds_total == 3
    assert stats.skipped_slots_total == 0
    assert spool.backlog() == 8


async def test_no_retries_keeps_the_regular_cadence_through_a_failure(spool: Spool) -> None:
    # With failures_to_down 1 the first failed round is already DOWN: nothing to retry.
    minutes, sched = await run_rounds(
        spool, tcp(retry_interval_s=60.0, failures_to_down=1), fails_from_noon, 4
    )
    assert minutes == [0, 5, 10, 15]
    assert sched.stats.targets["gw"].retry_rounds_total == 0


async def test_without_a_retry_interval_a_failure_waits_for_the_next_regular_slot(
    spool: Spool,
) -> None:
    minutes, sched = await run_rounds(spool, tcp(failures_to_down=4), fails_from_noon, 4)
    assert minutes == [0, 5, 10, 15]
    assert sched.stats.targets["gw"].retry_rounds_total == 0


async def test_error_rounds_start_no_retries(spool: Spool) -> None:
    # A monitor-side failure (status error) must not hasten anything that pages.
    def errors_from_noon(at: datetime) -> ProbeStatus:
        return ProbeStatus.ERROR if at >= NOON else ProbeStatus.UP

    minutes, sched = await run_rounds(
        spool, tcp(retry_interval_s=60.0, failures_to_down=4), errors_from_noon, 4
    )
    assert minutes == [0, 5, 10, 15]
    assert sched.stats.targets["gw"].retry_rounds_total == 0


async def test_an_error_round_neither_extends_nor_breaks_the_run_of_failures(
    spool: Spool,
) -> None:
    # 12:00 DOWN (1), 12:01 ERROR: no retry after it, the run stays at 1; 12:05 DOWN (2),
    # retries 12:06 (3) and 12:07 (4 = failures_to_down); then the regular 12:10.
    def script(at: datetime) -> ProbeStatus:
        if at < NOON - timedelta(seconds=1):
            return ProbeStatus.UP
        first_retry = abs((at - NOON).total_seconds() - 60) < 1  # the fake clock is float
        return ProbeStatus.ERROR if first_retry else ProbeStatus.DOWN

    minutes, sched = await run_rounds(
        spool, tcp(retry_interval_s=60.0, failures_to_down=4), script, 8
    )
    assert minutes == [0, 5, 6, 10, 11, 12, 15, 20]
    assert sched.stats.targets["gw"].retry_rounds_total == 3


async def test_a_good_retry_returns_the_target_to_its_original_phase(spool: Spool) -> None:
    # 12:00 and 12:01 fail, the 12:02 retry succeeds: back on 12:05, 12:10.
    def blip(at: datetime) -> ProbeStatus:
        failed = NOON - timedelta(seconds=1) <= at < NOON + timedelta(seconds=90)
        return ProbeStatus.DOWN if failed else ProbeStatus.UP

    minutes, sched = await run_rounds(
        spool, tcp(retry_interval_s=60.0, failures_to_down=4), blip, 6
    )
    assert minutes == [0, 5, 6, 7, 10, 15]
    assert sched.stats.targets["gw"].retry_rounds_total == 2


async def test_a_retry_that_would_run_into_the_next_slot_gives_way_to_it(spool: Spool) -> None:
    # Retries 120 s apart, failures_to_down 5: 12:00, 12:02, 12:04; a retry at 12:06 would
    # pass the 12:05 slot, so 12:05 runs (4th failure), its retry at 12:07 is the 5th.
    minutes, sched = await run_rounds(
        spool, tcp(retry_interval_s=120.0, failures_to_down=5), fails_from_noon, 7
    )
    assert minutes == [0, 5, 7, 9, 10, 12, 15]
    assert sched.stats.targets["gw"].retry_rounds_total == 3
    assert sched.stats.targets["gw"].skipped_slots_total == 0


def test_a_retry_due_too_close_to_the_next_slot_to_finish_is_not_scheduled() -> None:
    target = tcp(retry_interval_s=60.0, timeout_s=5.0, failures_to_down=4)
    # Failed round due at 1000 s, next slot at 1300 s: the retry is due at 1060 s.
    assert retry_due_s(target, ProbeStatus.DOWN, 1, 4, 1000.0, 1300.0) == 1060.0
    # A retry at 1060 s that may take 5 s cannot finish before a slot at 1064 s.
    assert retry_due_s(target, ProbeStatus.DOWN, 1, 4, 1000.0, 1064.0) is None
    assert retry_due_s(target, ProbeStatus.DOWN, 4, 4, 1000.0, 1300.0) is None
    assert retry_due_s(target, ProbeStatus.ERROR, 1, 4, 1000.0, 1300.0) is None


async def test_the_site_failures_to_down_ends_the_retries_as_the_evaluator_counts(
    spool: Spool,
) -> None:
    # The target sets no failures_to_down; its site says 2: one retry, as the evaluator
    # confirms DOWN at the second failed round.
    config = Config.model_validate(
        {
            "sites": {
                SITE: {
                    "name": "Bridge 1",
                    "token": "token-bridge1-0123456789",
                    "failures_to_down": 2,
                    "targets": [tcp(retry_interval_s=60.0).model_dump()],
                }
            }
        }
    )
    site = config.sites[SITE]
    target = site.targets[0]
    assert isinstance(target, TcpTarget)
    assert failures_to_down_for(target, site) == rules_for(config, SITE, "gw").failures_to_down
    assert failures_to_down_for(target, site) == 2
    minutes, sched = await run_rounds(spool, target, fails_from_noon, 5, site=site)
    assert minutes == [0, 5, 6, 10, 15]
    assert sched.stats.targets["gw"].retry_rounds_total == 1


def test_a_retry_interval_longer_than_the_interval_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "linkwatch.yaml"
    path.write_text(
        "sites:\n"
        "  lab:\n"
        "    name: Lab\n"
        "    token_env: LINKWATCH_TOKEN_LAB\n"
        "    targets:\n"
        "      - {id: gw, kind: tcp, host: 127.0.0.1, port: 443, interval_s: 30,"
        " retry_interval_s: 60}\n"
        "      - {id: lo, kind: icmp, host: 127.0.0.1, interval_s: 300, retry_interval_s: 5}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    messages = caught.value.messages
    assert len(messages) == 2
    assert "retry_interval_s 60 is longer than interval_s 30" in messages[0]
    assert "sites.lab.targets[gw]" in messages[0]
    assert "longer than retry_interval_s 5" in messages[1]
    assert "sites.lab.targets[lo]" in messages[1]
    assert not any("Traceback" in m for m in messages)
