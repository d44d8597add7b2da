"""Rollup maths: the RTT sketch, summaries of rounds, merging, buckets on the local clock."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.storage.rollups import (
    RELATIVE_ACCURACY,
    Resolution,
    RttSketch,
    bucket_start,
    day_start,
    local_date,
    merge,
    sketch_index,
    summarize,
)

T = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Round:
    status: str = "up"
    measured_at: datetime = T
    rtt_s: float | None = None
    jitter_s: float | None = None
    sent: int | None = None
    received: int | None = None
    rtts_s: list[float | None] = field(default_factory=list)


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def test_sketch_quantiles_are_within_one_percent_of_a_true_sample() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-3.5, 0.6) for _ in range(5000)]
    counts: dict[int, int] = {}
    for v in values:
        counts[sketch_index(v)] = counts.get(sketch_index(v), 0) + 1
    sketch = RttSketch(counts)
    for q in (0.0, 0.1, 0.5, 0.9, 1.0):
        estimate = sketch.quantile(q)
        assert estimate is not None
        true = exact_quantile(values, q)
        assert abs(estimate - true) / true <= RELATIVE_ACCURACY + 1e-9, q


def test_an_empty_sketch_has_no_quantile_and_a_bad_quantile_is_refused() -> None:
    assert RttSketch().quantile(0.5) is None
    with pytest.raises(ValueError, match="outside 0-1"):
        RttSketch({1: 1}).quantile(1.5)


def test_sketch_survives_its_json_form() -> None:
    sketch = RttSketch({-150: 3, -120: 1})
    assert RttSketch.from_json(sketch.to_json()) == sketch
    assert RttSketch.from_json(None) == RttSketch()


def test_icmp_rounds_are_summarised_from_their_samples_and_loss_counts_packets() -> None:
    stats = summarize(
        [
            Round(
                rtt_s=0.011, jitter_s=0.002, sent=4, received=3, rtts_s=[0.01, None, 0.011, 0.012]
            ),
            Round(status="down", sent=4, received=0, rtts_s=[None] * 4),
            Round(status="error", rtt_s=5.0, sent=4, received=4, rtts_s=[5.0] * 4),
        ]
    )
    assert (stats.rounds, stats.up, stats.down, stats.error) == (3, 1, 1, 1)
    assert (stats.sent, stats.received) == (8, 3)
    assert stats.packet_loss == pytest.approx(5 / 8)
    assert stats.rtt_samples == 3
    assert (stats.rtt_min_s, stats.rtt_max_s) == (0.01, 0.012)
    assert stats.rtt_quantile(0.5) == pytest.approx(0.011, rel=RELATIVE_ACCURACY)
    assert stats.jitter_s == pytest.approx(0.002)


def test_rounds_of_other_kinds_use_their_rtt_and_have_no_packet_loss() -> None:
    stats = summarize([Round(rtt_s=0.02), Round(rtt_s=0.04), Round(status="down")])
    assert stats.rtt_samples == 2
    assert stats.packet_loss is None
    assert stats.jitter_s is None
    assert stats.rtt_mean_s == pytest.approx(0.03)


def test_merging_buckets_equals_summarising_all_their_rounds() -> None:
    rng = random.Random(3)
    rounds = [
        Round(
            measured_at=T + timedelta(seconds=10 * i),
            rtt_s=0.05,
            jitter_s=rng.random() / 100,
            sent=5,
            received=rng.randint(3, 5),
            rtts_s=[rng.uniform(0.02, 0.4) for _ in range(5)],
        )
        for i in range(360)
    ]
    parts = [summarize(rounds[i : i + 30]) for i in range(0, 360, 30)]
    whole = summarize(rounds)
    merged = merge(parts)
    assert merged.sketch == whole.sketch
    assert (merged.rounds, merged.sent, merged.received) == (
        whole.rounds,
        whole.sent,
        whole.received,
    )
    assert merged.rtt_sum_s == pytest.approx(whole.rtt_sum_s)
    assert merged.jitter_s == pytest.approx(whole.jitter_s)
    assert merged.first_measured_at == T
    assert merged.last_measured_at == T + timedelta(seconds=3590)


def test_buckets_follow_the_local_clock_of_a_zone_a_quarter_hour_off_utc() -> None:
    kathmandu = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
    instant = datetime(2024, 5, 1, 18, 20, tzinfo=UTC)  # 00:05 on 2 May in Kathmandu
    assert bucket_start(instant, Resolution.HOUR, kathmandu) == datetime(
        2024, 5, 1, 18, 15, tzinfo=UTC
    )
    assert bucket_start(instant, Resolution.FIVE_MIN, kathmandu) == datetime(
        2024, 5, 1, 18, 20, tzinfo=UTC
    )
    assert local_date(instant, kathmandu) == date(2024, 5, 2)
    assert bucket_start(instant, Resolution.DAY, kathmandu) == day_start(
        date(2024, 5, 2), kathmandu
    )
    assert day_start(date(2024, 5, 2), kathmandu) == datetime(2024, 5, 1, 18, 15, tzinfo=UTC)


def test_vientiane_days_start_at_17_utc() -> None:
    vientiane = ZoneInfo("Asia/Vientiane")
    assert day_start(date(2024, 5, 1), vientiane) == datetime(2024, 4, 30, 17, 0, tzinfo=UTC)


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        bucket_start(datetime(2024, 5, 1), Resolution.HOUR, ZoneInfo("UTC"))
