"""State survives restarts; late and out-of-order results re-evaluate the window they touch."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from alerting_testkit import T0, WorldFactory, icmp, result, site_config
from sqlalchemy import text

from monitor.alerting.evaluator import ADVISORY_LOCK_KEY
from monitor.alerting.events import AlertKind
from monitor.alerting.state_machine import Observation, Sample, Snapshot, advance, rules_for

MINUTE = 60.0


def test_a_restart_never_announces_the_same_outage_twice(make_world: WorldFactory) -> None:
    config = site_config({"bridge1": [icmp("gw")]})
    with make_world(config) as world:
        world.play("bridge1", "gw", ["up"] * 3 + ["down"] * 5, T0, MINUTE)
        assert world.sink.count() == {AlertKind.TARGET_DOWN: 1}
        world.evaluator = world.new_evaluator()  # the server restarts
        world.play("bridge1", "gw", ["down"] * 5, T0 + timedelta(minutes=8), MINUTE)
        assert world.sink.count() == {AlertKind.TARGET_DOWN: 1}
        assert len(world.incidents("target")) == 1


def test_a_recovery_while_the_server_was_down_is_announced_exactly_once(
    make_world: WorldFactory,
) -> None:
    config = site_config({"bridge1": [icmp("gw")]})
    with make_world(config) as world:
        world.play("bridge1", "gw", ["up"] * 3 + ["down"] * 5, T0, MINUTE)
        # The evaluator is stopped; the target recovers; results keep being stored.
        for i in range(8, 14):
            at = T0 + timedelta(minutes=i)
            world.clock.set(at + timedelta(seconds=2))
            world.upload("bridge1", [result("gw", at, "up")])
        world.evaluator = world.new_evaluator()
        world.run_until_caught_up()
        world.run()
        world.evaluator = world.new_evaluator()  # and once more: nothing new to say
        world.run()
        assert world.sink.count() == {AlertKind.TARGET_DOWN: 1, AlertKind.TARGET_RECOVERED: 1}
        (incident,) = world.incidents("target")
        assert incident.started_at == T0 + timedelta(minutes=3)
        assert incident.ended_at == T0 + timedelta(minutes=8)


def test_a_backlog_turns_the_silent_gap_into_up_and_down_and_pages_no_target(
    make_world: WorldFactory,
) -> None:
    config = site_config({"bridge1": [icmp("gw")]})
    with make_world(config) as world:
        world.play("bridge1", "gw", ["up"] * 10, T0, MINUTE)
        for _ in range(30):  # the site's uplink is cut from 08:10 to 08:40
            world.clock.advance(MINUTE)
            world.run()
        assert world.sink.count() == {AlertKind.SITE_UNREACHABLE: 1}
        assert world.periods("bridge1", "gw")[-1][1] == T0 + timedelta(minutes=9, seconds=90)
        backlog = [
            result("gw", T0 + timedelta(minutes=m), "down" if 15 <= m < 25 else "up")
            for m in range(10, 41)
        ]
        world.upload("bridge1", backlog[:15])  # the agent flushes its spool in two batches
        world.run()
        world.upload("bridge1", backlog[15:])
        world.run_until_caught_up()
        for _ in range(3):
            world.clock.advance(MINUTE)
            at = world.clock() - timedelta(seconds=2)
            world.upload("bridge1", [result("gw", at, "up")])
            world.run()
        assert world.sink.count() == {AlertKind.SITE_UNREACHABLE: 1, AlertKind.SITE_RECOVERED: 1}
        states = [(a - T0, b - T0, s) for a, b, s in world.periods("bridge1", "gw")]
        assert states[:3] == [
            (timedelta(0), timedelta(minutes=15), "up"),
            (timedelta(minutes=15), timedelta(minutes=25), "down"),
            (timedelta(minutes=25), states[2][1], "up"),
        ]
        (incident,) = world.incidents("target")
        assert (incident.started_at, incident.ended_at) == (
            T0 + timedelta(minutes=15),
            T0 + timedelta(minutes=25),
        )
        assert incident.down_notified_at is None
        assert incident.suppressed == "site_settling"  # held while the backlog came in


def test_results_arriving_in_any_order_give_the_periods_of_one_evaluation_in_order(
    make_world: WorldFactory,
) -> None:
    config = site_config({"bridge1": [icmp("gw")]})
    rng = random.Random(5)
    pattern = "uuuuddddduuududdduuuueeuuudddddddduuuu" * 7  # about 4.5 hours, one a minute
    rounds = [
        result("gw", T0 + timedelta(minutes=i), {"u": "up", "d": "down", "e": "error"}[c])
        for i, c in enumerate(pattern)
    ]
    chunks = [rounds[i : i + 12] for i in range(0, len(rounds), 12)]
    rng.shuffle(chunks)
    with make_world(config, target_limit=40) as world:
        world.clock.set(T0 + timedelta(days=1))
        for chunk in chunks:
            world.upload("bridge1", chunk)
            world.run_until_caught_up()
        rules = rules_for(config, "bridge1", "gw")
        ordered = advance(
            Snapshot(),
            [
                Sample(r.measured_at, i, Observation(r.status.value), rules.cap_s)
                for i, r in enumerate(rounds)
            ],
            rules,
        )
        expected = [(s.start, s.end, s.state.value) for s in ordered.segments]
        assert world.periods("bridge1", "gw") == expected
        spans = [(i.started_at, i.ended_at) for i in world.incidents("target")]
        spans = [span for span in spans if span[0] != span[1]]
        assert sorted(spans) == sorted((a, b) for a, b, _ in ordered.down_spans)


def test_a_second_evaluator_skips_its_pass_while_another_holds_the_lock(
    make_world: WorldFactory, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's; on SQLite one server process is assumed")
    config = site_config({"bridge1": [icmp("gw")]})
    with make_world(config) as world:
        world.upload("bridge1", [result("gw", T0, "up")])
        with world.engine.connect() as other:
            assert other.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
            ).scalar()
            assert world.run().skipped
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
            other.commit()
        summary = world.run()
        assert not summary.skipped and summary.targets_evaluated == 1
