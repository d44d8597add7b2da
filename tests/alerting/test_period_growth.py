"""The periods table grows with state changes and gaps, never with rounds.

Results enter through the server's ingest and are evaluated pass after pass, as on a
running server; the stored periods must be what one evaluation of the whole series in order
gives (:func:`monitor.alerting.state_machine.advance`), and an all-UP day one period.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from alerting_testkit import T0, World, WorldFactory, icmp, result, site_config

from monitor.agent.scheduler import first_offset_s
from monitor.alerting.state_machine import Sample, Snapshot, advance, classify, rules_for

MINUTE = 60.0


Periods = list[tuple[datetime, datetime, str]]


def _one_shot(
    world: World, site: str, target: str, rounds: Sequence[tuple[datetime, str]]
) -> Periods:
    """Return the periods of one evaluation of ``rounds`` (``(measured_at, obs)``) in order."""
    rules = rules_for(world.config, site, target)
    samples = [
        Sample(at, i + 1, classify(result(target, at, obs), rules.profile), rules.cap_s)
        for i, (at, obs) in enumerate(sorted(rounds))
    ]
    return [(s.start, s.end, s.state.value) for s in advance(Snapshot(), samples, rules).segments]


def test_a_day_of_up_rounds_with_jitter_is_one_period_not_one_per_round(
    make_world: WorldFactory,
) -> None:
    # 1 target, 60 s interval, 24 h of UP, each round measured up to 2 s early or late.
    # The first half hour is uploaded and evaluated round by round (consecutive passes
    # append one round each); the rest as the agent's spool would send it after short
    # hiccups, 10 minutes at a time. 1,440 rounds, one period.
    config = site_config({"bridge1": [icmp("gw", interval_s=MINUTE)]})
    rng = random.Random(11)
    rounds = [
        (T0 + timedelta(seconds=k * MINUTE + rng.uniform(-2.0, 2.0)), "up") for k in range(1440)
    ]
    with make_world(config) as world:
        for i in range(30):
            world.clock.set(rounds[i][0] + timedelta(seconds=2))
            world.upload("bridge1", [result("gw", *rounds[i])])
            world.run()
        for i in range(30, len(rounds), 10):
            chunk = rounds[i : i + 10]
            world.clock.set(chunk[-1][0] + timedelta(seconds=2))
            world.upload("bridge1", [result("gw", at, obs) for at, obs in chunk])
            world.run()
        periods = world.periods("bridge1", "gw")
        assert periods == [(rounds[0][0], rounds[-1][0] + timedelta(seconds=90), "up")]
        assert periods == _one_shot(world, "bridge1", "gw", rounds)


def test_the_agents_own_cadence_gives_one_period_per_target(make_world: WorldFactory) -> None:
    # Three targets at 10, 30 and 60 s, each at its scheduler phase (first_offset_s), each
    # round measured when it gets its slot (up to 0.8 s late behind the concurrency
    # semaphore) and spooled when it ends 0.5-4 s later; the agent uploads its spool every
    # 5 s and the evaluator runs every 5 s, 20 minutes long.
    intervals = {"fast": 10.0, "mid": 30.0, "slow": 60.0}
    config = site_config(
        {
            "bridge1": [
                icmp(t, host=f"192.0.2.{i}", interval_s=s)
                for i, (t, s) in enumerate(intervals.items(), start=1)
            ]
        }
    )
    rng = random.Random(3)
    start = T0 + timedelta(seconds=0.37)  # the scheduler's start
    due: list[tuple[datetime, datetime, str]] = []  # (spooled at, measured at, target)
    for target, interval_s in intervals.items():
        base_s = first_offset_s("bridge1", target, interval_s)
        for k in range(int(20 * MINUTE / interval_s)):
            at = start + timedelta(seconds=base_s + k * interval_s + rng.uniform(0.0, 0.8))
            due.append((at + timedelta(seconds=rng.uniform(0.5, 4.0)), at, target))
    due.sort()
    sent: dict[str, list[tuple[datetime, str]]] = {t: [] for t in intervals}
    with make_world(config) as world:
        for tick in range(1, int(22 * MINUTE / 5) + 1):
            world.clock.set(T0 + timedelta(seconds=tick * 5.0))
            ready = [(at, target) for spooled, at, target in due if spooled <= world.clock()]
            due = [d for d in due if d[0] > world.clock()]
            if ready:
                world.upload("bridge1", [result(target, at, "up") for at, target in ready])
                for at, target in ready:
                    sent[target].append((at, "up"))
            world.run()
        assert due == []
        for target in intervals:
            periods = world.periods("bridge1", target)
            assert len(periods) == 1, (target, periods)
            assert periods == _one_shot(world, "bridge1", target, sent[target])


def test_a_round_within_the_grace_extends_the_period_and_one_beyond_it_leaves_a_gap(
    make_world: WorldFactory,
) -> None:
    # A 60 s round stands for at most 90 s. Rounds 89 s apart (a slot run late) leave no
    # gap: one period. A round 91 s after the last leaves 1 s unknown: two periods, and
    # the unknown second is counted on neither side.
    config = site_config({"bridge1": [icmp("gw", interval_s=MINUTE)]})
    offsets_s = [0.0, 60.0, 149.0, 209.0, 300.0, 360.0]
    with make_world(config) as world:
        for offset_s in offsets_s:
            at = T0 + timedelta(seconds=offset_s)
            world.clock.set(at + timedelta(seconds=2))
            world.upload("bridge1", [result("gw", at, "up")])
            world.run()
        assert world.periods("bridge1", "gw") == [
            (T0, T0 + timedelta(seconds=299), "up"),
            (T0 + timedelta(seconds=300), T0 + timedelta(seconds=450), "up"),
        ]


def test_rounds_further_apart_than_the_interval_allows_are_warned_about_once(
    make_world: WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The server says 30 s, the agent probes every 60 s: each round counts for 45 s and the
    # next 15 s are unknown, so every round is a period of its own (the availability rule
    # is kept); the evaluator says so once in the log. The 60 s target beside it is fine.
    config = site_config({"bridge1": [icmp("gw", interval_s=30.0), icmp("ok", host="192.0.2.2")]})
    level = caplog.at_level(logging.WARNING, logger="linkwatch.alerting.evaluator")
    with level, make_world(config) as world:
        for k in range(45):
            at = T0 + timedelta(seconds=k * MINUTE)
            world.clock.set(at + timedelta(seconds=2))
            world.upload("bridge1", [result("gw", at, "up"), result("ok", at, "up")])
            world.run()
        assert len(world.periods("bridge1", "gw")) == 45
        assert len(world.periods("bridge1", "ok")) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "target gw of site bridge1" in warnings[0] and "interval_s is 30 s" in warnings[0]
