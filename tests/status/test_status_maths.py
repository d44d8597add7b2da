"""Pure parts of the status page: the quality score, chart layout, availability, formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.status.availability import AvailabilityLevel, Totals, availability_level
from api.status.charts import ChartRange, LossClass, build_chart, loss_class, window
from api.status.format import format_availability, format_duration, format_offset, format_score
from api.status.rollup_queries import Point
from api.status.score import ScoreBand, link_score, penalty, score_band
from monitor.config import LinkProfile

FIBRE = LinkProfile(rtt_degraded_s=0.1, packet_loss_degraded=0.02, jitter_degraded_s=0.02)
LAN = LinkProfile(rtt_degraded_s=0.02, packet_loss_degraded=0.0)
VIENTIANE = ZoneInfo("Asia/Vientiane")
NOW = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)


def test_a_link_using_half_its_thresholds_scores_full_marks() -> None:
    assert link_score(0.05, 0.01, 0.01, FIBRE) == 100.0


def test_one_measure_at_its_threshold_scores_60_and_two_score_36() -> None:
    assert link_score(0.1, 0.0, 0.0, FIBRE) == pytest.approx(60.0)
    assert link_score(0.1, 0.02, 0.0, FIBRE) == pytest.approx(36.0)


def test_twice_a_threshold_or_down_scores_zero() -> None:
    assert link_score(0.2, 0.0, 0.0, FIBRE) == 0.0
    assert link_score(None, None, None, FIBRE, down=True) == 0.0


def test_a_vsat_round_of_600_ms_is_judged_against_its_own_profile() -> None:
    vsat = LinkProfile(rtt_degraded_s=1.2, packet_loss_degraded=0.08, jitter_degraded_s=0.15)
    assert link_score(0.6, 0.0, 0.01, vsat) == 100.0


def test_unmeasured_values_and_missing_thresholds_are_left_out() -> None:
    assert link_score(None, None, None, FIBRE) is None
    assert link_score(0.01, None, 5.0, LAN) == 100.0  # LAN has no jitter threshold
    assert link_score(0.005, 0.001, None, LAN) == 0.0  # a zero loss threshold: any loss costs all


def test_penalties_and_bands_follow_the_documented_table() -> None:
    assert [penalty(x, 1.0) for x in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)] == [0, 20, 40, 70, 100, 100]
    assert [score_band(s) for s in (80, 79.9, 60, 59.9)] == [
        ScoreBand.GOOD,
        ScoreBand.FAIR,
        ScoreBand.FAIR,
        ScoreBand.POOR,
    ]


def point(start: datetime, p50_ms: float | None, *, sent: int = 20, received: int = 20) -> Point:
    rtt = None if p50_ms is None else p50_ms / 1000
    return Point(
        start=start,
        rounds=4,
        up=4 if rtt is not None else 0,
        down=0 if rtt is not None else 4,
        error=0,
        sent=sent,
        received=received if rtt is not None else 0,
        rtt_min_s=rtt and rtt * 0.8,
        rtt_p10_s=rtt and rtt * 0.9,
        rtt_p50_s=rtt,
        rtt_p90_s=rtt and rtt * 1.2,
        rtt_max_s=rtt and rtt * 2,
    )


def test_loss_classes_have_the_documented_limits() -> None:
    assert [loss_class(x) for x in (None, 0.0, 0.05, 0.051, 0.2, 0.5, 0.51, 1.0)] == [
        LossClass.NONE,
        LossClass.NONE,
        LossClass.LOW,
        LossClass.MID,
        LossClass.MID,
        LossClass.HIGH,
        LossClass.SEVERE,
        LossClass.SEVERE,
    ]


def test_a_chart_scales_to_the_90th_percentile_and_breaks_at_gaps() -> None:
    start, end = window(NOW, ChartRange.H3, VIENTIANE)
    step = timedelta(minutes=5)
    points = [point(start + i * step, 40.0) for i in range(10)]
    points += [point(start + i * step, 40.0, received=9) for i in range(20, 30)]
    points.append(point(start + 31 * step, None))
    chart = build_chart(points, start, end, ChartRange.H3, VIENTIANE)
    assert chart.y_ticks[-1].label == "100"  # 1.15 x 48 ms -> 55.2, 1.3 x 40 -> 52 -> 100
    assert chart.inner_band.count("M") == 2  # two runs, split by the gap
    assert [cls for cls, _ in chart.medians] == [LossClass.NONE, LossClass.SEVERE]
    assert chart.outages.count("M") == 1
    assert chart.summary.rounds == 84 and chart.summary.down_buckets == 1
    assert chart.summary.loss == pytest.approx((10 * 11 + 20) / 420)
    assert not chart.empty


def test_chart_ticks_fall_on_round_local_times() -> None:
    start, end = window(NOW, ChartRange.D1, VIENTIANE)
    assert end == datetime(2024, 5, 1, 7, 5, tzinfo=UTC)
    chart = build_chart([], start, end, ChartRange.D1, VIENTIANE)
    assert [t.label for t in chart.x_ticks] == [
        "15:00",
        "18:00",
        "21:00",
        "00:00",
        "03:00",
        "06:00",
        "09:00",
        "12:00",
    ]
    assert chart.empty and chart.summary.median_s is None
    year = build_chart([], *window(NOW, ChartRange.Y1, VIENTIANE), ChartRange.Y1, VIENTIANE)
    assert year.x_ticks[0].label == "2023-06" and year.x_ticks[-1].label == "2024-05"


def test_availability_levels_and_coverage_follow_the_documented_bands() -> None:
    assert [availability_level(x) for x in (1.0, 0.999, 0.99, 0.95, 0.9499, None)] == [
        AvailabilityLevel.FULL,
        AvailabilityLevel.FULL,
        AvailabilityLevel.HIGH,
        AvailabilityLevel.MEDIUM,
        AvailabilityLevel.LOW,
        AvailabilityLevel.NO_DATA,
    ]
    assert availability_level(None, maintenance=True) is AvailabilityLevel.MAINTENANCE
    day = Totals(36_000, 18_000, 0, 0, 14_400, 3_600)
    assert day.coverage == pytest.approx(18_000 / 32_400) and day.availability == 1.0
    assert Totals(0, 0, 0, 0, 0, 0).coverage is None
    assert Totals(0, 0, 0, 0, 0, 0).availability is None


def test_availability_never_rounds_up_to_100() -> None:
    assert format_availability(0.99996) == "99.99"
    assert format_availability(1.0) == "100"
    assert format_availability(0.5) == "50.00"
    assert format_availability(None) == "\u2014"


def test_durations_offsets_and_scores_read_naturally() -> None:
    def identity(message: str) -> str:
        return message

    assert format_duration(45, identity) == "45 s"
    assert format_duration(200, identity) == "3 min 20 s"
    assert format_duration(5 * 3600 + 120, identity) == "5 h 2 min"
    assert format_duration(2 * 86400 + 4 * 3600, identity) == "2 d 4 h"
    assert format_offset(-0.841) == "-0.84 s" and format_offset(12.4) == "+12 s"
    assert format_score(87.4) == "87" and format_score(None) == "\u2014"
