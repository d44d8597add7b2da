"""The evaluator over real storage: hysteresis, retries, edge triggering (C12, C13, C14, C16)."""

from __future__ import annotations

from datetime import datetime, timedelta

from alerting_testkit import T0, WorldFactory, icmp, result, site_config

from monitor.alerting.events import AlertKind

MINUTE = 60.0


def test_one_timeout_with_threshold_three_pages_nobody_and_stays_up(
    make_world: WorldFactory,
) -> None:
    # C13: the 10:00 check times out once, every check from 10:01 on succeeds.
    config = site_config({"bridge1": [icmp("gw", failures_to_down=3)]})
    start = T0.replace(hour=9, minute=55)
    observations = ["up"] * 5 + ["down"] + ["up"] * 10
    with make_world(config) as world:
        world.play("bridge1", "gw", observations, start, MINUTE)
        assert world.sink.events == []
        assert {state for _, _, state in world.periods("bridge1", "gw")} == {"up"}
        assert world.incidents() == []


def test_one_timeout_with_threshold_one_gives_one_down_and_one_recovery_a_minute_apart(
    make_world: WorldFactory,
) -> None:
    # C13 with the threshold set to 1 (both ways).
    config = site_config({"bridge1": [icmp("gw", failures_to_down=1, successes_to_recover=1)]})
    start = T0.replace(hour=9, minute=55)
    observations = ["up"] * 5 + ["down"] + ["up"] * 10
    with make_world(config) as world:
        world.play("bridge1", "gw", observations, start, MINUTE)
        assert world.sink.count() == {AlertKind.TARGET_DOWN: 1, AlertKind.TARGET_RECOVERED: 1}
        down, recovered = world.sink.events
        assert down.occurred_at == T0.replace(hour=10)
        assert recovered.occurred_at == T0.replace(hour=10, minute=1)
        assert (recovered.occurred_at - down.occurred_at).total_seconds() == MINUTE
        assert down.incident_id == recovered.incident_id
        assert down.key == f"{down.incident_id}:target_down"


def test_three_retries_a_minute_apart_declare_down_at_the_third_retry_not_before(
    make_world: WorldFactory,
) -> None:
    # C14: interval 300 s, 3 retries 60 s apart (failures_to_down = retries + 1 = 4); the
    # target fails hard at 12:00:00. Each retry is a round the agent measures and uploads.
    config = site_config({"bridge1": [icmp("gw", interval_s=300, failures_to_down=4)]})
    noon = T0.replace(hour=12)
    with make_world(config) as world:
        world.clock.set(noon - timedelta(seconds=298))
        world.upload("bridge1", [result("gw", noon - timedelta(seconds=300), "up")])
        world.run()
        sent_at: dict[AlertKind, datetime] = {}
        for minute in range(4):  # the failure at 12:00 and retries at 12:01, 12:02, 12:03
            at = noon + timedelta(minutes=minute)
            world.clock.set(at + timedelta(seconds=2))  # upload and evaluation latency
            world.upload("bridge1", [result("gw", at, "down")])
            world.run()
            for event in world.sink.events:
                sent_at.setdefault(event.kind, world.clock())
        assert list(sent_at) == [AlertKind.TARGET_DOWN]
        assert sent_at[AlertKind.TARGET_DOWN] == noon + timedelta(minutes=3, seconds=2)
        assert world.sink.events[0].started_at == noon


def test_no_retries_pages_within_seconds_of_the_first_failed_check(
    make_world: WorldFactory,
) -> None:
    # C14 with 0 retries: failures_to_down = 1.
    config = site_config({"bridge1": [icmp("gw", interval_s=300, failures_to_down=1)]})
    noon = T0.replace(hour=12)
    with make_world(config) as world:
        world.clock.set(noon - timedelta(seconds=298))
        world.upload("bridge1", [result("gw", noon - timedelta(seconds=300), "up")])
        world.run()
        world.clock.set(noon + timedelta(seconds=2))
        world.upload("bridge1", [result("gw", noon, "down")])
        world.run()
        assert world.sink.count() == {AlertKind.TARGET_DOWN: 1}
        assert world.sink.events[0].started_at == noon


def test_ten_lost_rounds_then_ten_good_ones_raise_once_and_clear_once(
    make_world: WorldFactory,
) -> None:
    # C16: "loss for 3 rounds" (100 % loss is a failed round), edge-triggered.
    config = site_config({"bridge1": [icmp("gw", failures_to_down=3, successes_to_recover=2)]})
    with make_world(config) as world:
        passes = world.play("bridge1", "gw", ["up"] + ["down"] * 10 + ["up"] * 10, T0, MINUTE)
        raised_at = [
            i
            for i, p in enumerate(passes)
            if any(e.kind is AlertKind.TARGET_DOWN for e in p.events)
        ]
        cleared_at = [
            i
            for i, p in enumerate(passes)
            if any(e.kind is AlertKind.TARGET_RECOVERED for e in p.events)
        ]
        assert raised_at == [3]  # after the third lost round (round 0 was good)
        assert cleared_at == [12]  # after the second good round
        assert world.sink.count() == {AlertKind.TARGET_DOWN: 1, AlertKind.TARGET_RECOVERED: 1}


def test_a_resolver_failure_at_the_probe_is_unknown_never_down(make_world: WorldFactory) -> None:
    # C12: the probe host's own resolver fails for 3 minutes: status error, never DOWN.
    config = site_config({"bridge1": [icmp("gw", host="gw.example.test")]})
    with make_world(config) as world:
        world.play("bridge1", "gw", ["up"] * 3 + ["error"] * 3 + ["up"] * 3, T0, MINUTE)
        assert world.sink.events == []
        assert world.incidents() == []
        states = [state for _, _, state in world.periods("bridge1", "gw")]
        assert states == ["up", "unknown", "up"]
        unknown = [(a, b) for a, b, s in world.periods("bridge1", "gw") if s == "unknown"]
        assert unknown == [(T0 + timedelta(minutes=3), T0 + timedelta(minutes=6))]
