"""Round statistics (loss, RTT min/avg/max, jitter) on the exact inputs of cases C03, C07, C08."""

from __future__ import annotations

import math

import pytest

from probes.icmp.stats import RoundStats, jitter, summarize

MS = 1e-3


def test_duplicate_replies_count_apart_and_never_lower_loss() -> None:
    # C03: 10 requests, sequences 0-6 answered, 0, 1 and 2 answered twice (10 reply packets).
    rtts = [10 * MS] * 7 + [None] * 3
    stats = summarize(rtts, duplicates=3)
    assert stats.sent == 10
    assert stats.received == 7
    assert stats.duplicates == 3
    assert stats.packet_loss == pytest.approx(0.30)


def test_average_is_over_received_replies_only() -> None:
    # C07 (a): 10 ms, 20 ms, lost, lost -> avg 15 ms (not 7.5 ms over sent, not a 30 ms sum).
    stats = summarize([10 * MS, 20 * MS, None, None], duplicates=0)
    assert stats.rtt_avg_s == pytest.approx(15 * MS)
    assert stats.rtt_min_s == pytest.approx(10 * MS)
    assert stats.rtt_max_s == pytest.approx(20 * MS)
    assert stats.packet_loss == pytest.approx(0.5)
    assert stats.received == 2


def test_all_lost_gives_full_loss_and_no_rtt_figures() -> None:
    # C07 (b): never 0 ms, -1 or NaN as a stand-in for "no data".
    stats = summarize([None, None, None, None], duplicates=0)
    assert stats == RoundStats(
        sent=4,
        received=0,
        duplicates=0,
        packet_loss=1.0,
        rtt_min_s=None,
        rtt_avg_s=None,
        rtt_max_s=None,
        jitter_s=None,
    )


def test_jitter_is_taken_in_send_order_not_sorted_order() -> None:
    # C08: 10, 90, 10, 90, 10, 90 ms -> 80 ms (sorted order would give 16 ms).
    stats = summarize([v * MS for v in (10, 90, 10, 90, 10, 90)], duplicates=0)
    assert stats.jitter_s == pytest.approx(80 * MS)


def test_jitter_skips_lost_requests_and_uses_consecutive_replies() -> None:
    stats = summarize([10 * MS, None, 30 * MS, 20 * MS], duplicates=0)
    assert stats.jitter_s == pytest.approx(15 * MS)  # (|30-10| + |20-30|) / 2


def test_jitter_of_one_sample_is_none() -> None:
    assert jitter([12 * MS]) is None
    assert jitter([]) is None
    assert summarize([12 * MS, None], duplicates=0).jitter_s is None


def test_loss_stays_between_zero_and_one_whatever_the_duplicates() -> None:
    stats = summarize([1 * MS, 2 * MS], duplicates=50)
    assert stats.packet_loss == 0.0
    assert stats.received == 2
    assert stats.duplicates == 50


def test_a_sample_that_cannot_be_real_is_refused() -> None:
    with pytest.raises(ValueError, match="RTT"):
        summarize([-0.001], duplicates=0)
    with pytest.raises(ValueError, match="RTT"):
        summarize([math.nan], duplicates=0)


def test_an_empty_round_or_negative_duplicates_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one request"):
        summarize([], duplicates=0)
    with pytest.raises(ValueError, match="duplicates"):
        summarize([1 * MS], duplicates=-1)
