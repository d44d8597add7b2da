"""The pure state machine: hysteresis, backdating, unknown time, resumability."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.alerting.state_machine import (
    Observation,
    Rules,
    Sample,
    Segment,
    Snapshot,
    Spacing,
    advance,
    classify,
    rules_for,
    tally_spacing,
)
from monitor.config import DEFAULT_LINK_PROFILES, Config
from monitor.state import TargetState

T0 = datetime(2025, 1, 1, 10, tzinfo=UTC)
RULES = Rules(DEFAULT_LINK_PROFILES["fibre"], 3, 2, 60.0, 90.0)
LETTERS = {"u": "up", "g": "degraded", "d": "down", "e": "error"}


def _samples(pattern: str, step_s: float = 60.0) -> list[Sample]:
    return [
        Sample(T0 + timedelta(seconds=i * step_s), i, Observation(LETTERS[c]), 90.0)
        for i, c in enumerate(pattern)
    ]


def _states(segments: tuple[Segment, ...]) -> list[tuple[int, int, str]]:
    minutes = [(int((s.start - T0).total_seconds() // 60), s.end, s.state.value) for s in segments]
    return [(a, int((end - T0).total_seconds() // 60), state) for a, end, state in minutes]


def test_two_failed_rounds_inside_up_stay_up() -> None:
    run = advance(Snapshot(), _samples("uuudduuuu"), RULES)
    assert {s.state for s in run.segments} == {TargetState.UP}
    assert [t.after for t in run.transitions] == [TargetState.UP]


def test_down_is_backdated_to_the_first_failed_round_and_up_to_the_first_good_one() -> None:
    run = advance(Snapshot(), _samples("uuudddduuu"), RULES)
    assert _states(run.segments)[:2] == [(0, 3, "up"), (3, 7, "down")]
    down = run.transitions[1]
    assert (down.at, down.confirmed_at) == (T0 + timedelta(minutes=3), T0 + timedelta(minutes=5))
    assert run.down_spans == (
        (T0 + timedelta(minutes=3), T0 + timedelta(minutes=7), down.confirmed_at),
    )


def test_one_good_round_inside_down_does_not_recover_it() -> None:
    run = advance(Snapshot(), _samples("uuudddudduu"), RULES)
    assert _states(run.segments) == [(0, 3, "up"), (3, 9, "down"), (9, 11, "up")]


def test_a_monitor_side_error_is_unknown_time_and_never_down() -> None:
    run = advance(Snapshot(), _samples("uueeeeeeuu"), RULES)
    assert _states(run.segments) == [(0, 2, "up"), (2, 8, "unknown"), (8, 10, "up")]
    assert all(t.after is not TargetState.DOWN for t in run.transitions)


def test_errors_inside_a_failing_streak_neither_extend_nor_break_it() -> None:
    run = advance(Snapshot(), _samples("uudedduu"), RULES)
    assert _states(run.segments) == [
        (0, 2, "up"),
        (2, 3, "down"),
        (3, 4, "unknown"),
        (4, 6, "down"),
        (6, 8, "up"),
    ]


def test_degraded_needs_the_same_rounds_as_down_and_down_rounds_count_toward_it() -> None:
    run = advance(Snapshot(), _samples("uugdguu"), RULES)
    assert _states(run.segments) == [(0, 2, "up"), (2, 5, "degraded"), (5, 7, "up")]


def test_a_gap_longer_than_one_and_a_half_intervals_is_unknown() -> None:
    samples = [*_samples("uu"), Sample(T0 + timedelta(minutes=10), 9, Observation.UP, 90.0)]
    run = advance(Snapshot(), samples, RULES)
    assert [(s.start, s.end) for s in run.segments] == [
        (T0, T0 + timedelta(minutes=1, seconds=90)),
        (T0 + timedelta(minutes=10), T0 + timedelta(minutes=11, seconds=30)),
    ]


def test_the_first_rounds_of_a_new_target_that_fail_are_down_from_the_first() -> None:
    run = advance(Snapshot(), _samples("dddd"), RULES)
    assert _states(run.segments) == [(0, 4, "down")]
    assert run.down_spans == ((T0, None, T0 + timedelta(minutes=2)),)


def test_feeding_rounds_in_chunks_gives_the_same_periods_as_feeding_them_at_once() -> None:
    rng = random.Random(3)
    for _ in range(200):
        pattern = "".join(rng.choice("uuddge") for _ in range(50))
        samples = _samples(pattern)
        whole = advance(Snapshot(), samples, RULES)
        snapshot, stored, i = Snapshot(), list[Segment](), 0
        while i < len(samples):
            n = rng.randint(1, 6)
            run = advance(snapshot, samples[i : i + n], RULES)
            assert run.rewrite_from is not None
            stored = [
                Segment(s.start, min(s.end, run.rewrite_from), s.state)
                for s in stored
                if s.start < run.rewrite_from
            ]
            for seg in run.segments:
                if stored and stored[-1].state is seg.state and stored[-1].end == seg.start:
                    stored[-1] = Segment(stored[-1].start, seg.end, seg.state)
                else:
                    stored.append(seg)
            snapshot = Snapshot.from_json(run.snapshot.to_json())
            i += n
        assert stored == list(whole.segments), pattern
        assert snapshot == whole.snapshot


def test_a_resolver_failure_result_classifies_as_error_never_down() -> None:
    class Row:
        status = "error"
        measured_at = T0
        rtt_s = None
        packet_loss = None
        jitter_s = None
        error = "the probe host's resolver answered SERVFAIL"

    assert classify(Row(), DEFAULT_LINK_PROFILES["fibre"]) is Observation.ERROR


def test_a_600_ms_round_is_up_on_a_satellite_link_and_a_target_may_set_its_own_threshold() -> None:
    config = Config.model_validate(
        {
            "sites": {
                "vsat": {
                    "name": "Remote post",
                    "token": "token-vsat-0123456789",
                    "link_profile": "vsat",
                    "failures_to_down": 5,
                    "targets": [
                        {"kind": "icmp", "id": "gw", "host": "192.0.2.1", "count": 3},
                        {
                            "kind": "icmp",
                            "id": "strict",
                            "host": "192.0.2.1",
                            "count": 3,
                            "rtt_degraded_s": 0.3,
                            "successes_to_recover": 4,
                        },
                    ],
                }
            }
        }
    )

    class Row:
        status = "up"
        measured_at = T0
        rtt_s = 0.6
        packet_loss = 0.0
        jitter_s = 0.01
        error = None

    gw, strict = rules_for(config, "vsat", "gw"), rules_for(config, "vsat", "strict")
    assert classify(Row(), gw.profile) is Observation.UP
    assert classify(Row(), strict.profile) is Observation.DEGRADED
    assert (gw.failures_to_down, gw.successes_to_recover) == (5, 2)
    assert (strict.failures_to_down, strict.successes_to_recover) == (5, 4)
    assert gw.cap_s == 45.0


def test_one_long_silence_is_not_taken_for_rounds_spaced_beyond_their_interval() -> None:
    # 21 rounds a minute apart with one 10-minute gap: 1 of 20 gaps beyond 90 s.
    samples = _samples("u" * 10) + [
        Sample(T0 + timedelta(minutes=20 + i), 10 + i, Observation.UP, 90.0) for i in range(11)
    ]
    spacing = tally_spacing(Spacing(), None, samples)
    assert spacing == Spacing(gaps=20, beyond=1) and not spacing.mostly_beyond
    # The same target probed every 2 minutes, fed in two chunks: every gap is beyond.
    apart = _samples("u" * 21, step_s=120.0)
    first = tally_spacing(Spacing(), None, apart[:7])
    both = tally_spacing(first, apart[6].at, apart[7:])
    assert both == Spacing(gaps=20, beyond=20) and both.mostly_beyond
