"""Target and site state derivation (monitor/state.py), with exact inputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.config import DEFAULT_LINK_PROFILES, LinkProfile
from monitor.state import (
    Reason,
    SiteState,
    TargetState,
    assess_target,
    site_state,
    stale_bound_s,
    target_state,
)

NOW = datetime(2024, 5, 1, 7, 0, 0, tzinfo=UTC)
VSAT = DEFAULT_LINK_PROFILES["vsat"]
FIBRE = DEFAULT_LINK_PROFILES["fibre"]


@dataclass(frozen=True)
class FakeResult:
    status: str = "up"
    measured_at: datetime = NOW - timedelta(seconds=10)
    rtt_s: float | None = 0.01
    packet_loss: float | None = 0.0
    jitter_s: float | None = 0.001
    error: str | None = None


def state_of(result: FakeResult | None, profile: LinkProfile = FIBRE) -> TargetState:
    return target_state(result, profile, NOW, interval_s=30.0, stale_after_s=120.0)


def test_600_ms_rtt_is_up_on_vsat() -> None:
    assert state_of(FakeResult(rtt_s=0.6), VSAT) is TargetState.UP


def test_600_ms_rtt_is_degraded_on_fibre() -> None:
    assessment = assess_target(FakeResult(rtt_s=0.6), FIBRE, NOW, 30.0, 120.0)
    assert assessment.state is TargetState.DEGRADED
    assert assessment.reason is Reason.RTT_OVER


def test_rtt_exactly_at_the_threshold_is_still_up() -> None:
    assert state_of(FakeResult(rtt_s=FIBRE.rtt_degraded_s)) is TargetState.UP


def test_packet_loss_over_the_profile_is_degraded() -> None:
    assessment = assess_target(FakeResult(packet_loss=0.25), FIBRE, NOW, 30.0, 120.0)
    assert (assessment.state, assessment.reason) == (
        TargetState.DEGRADED,
        Reason.PACKET_LOSS_OVER,
    )


def test_jitter_over_the_profile_is_degraded() -> None:
    assessment = assess_target(FakeResult(jitter_s=0.05), FIBRE, NOW, 30.0, 120.0)
    assert (assessment.state, assessment.reason) == (TargetState.DEGRADED, Reason.JITTER_OVER)


def test_jitter_is_ignored_by_a_profile_without_a_jitter_threshold() -> None:
    lan = DEFAULT_LINK_PROFILES["lan"]
    assert lan.jitter_degraded_s is None
    assert state_of(FakeResult(rtt_s=0.001, jitter_s=5.0), lan) is TargetState.UP


def test_unmeasured_values_never_make_a_target_degraded() -> None:
    result = FakeResult(rtt_s=None, packet_loss=None, jitter_s=None)
    assert state_of(result) is TargetState.UP


def test_down_result_is_down_and_keeps_the_probe_sentence() -> None:
    assessment = assess_target(
        FakeResult(status="down", rtt_s=None, error="no echo reply"), FIBRE, NOW, 30.0, 120.0
    )
    assert (assessment.state, assessment.reason) == (TargetState.DOWN, Reason.TARGET_DOWN)
    assert assessment.detail == "no echo reply"


def test_error_result_is_unknown_not_down_and_keeps_the_reason() -> None:
    error = "no permission to open an ICMP socket"
    assessment = assess_target(
        FakeResult(status="error", rtt_s=None, error=error), FIBRE, NOW, 30.0, 120.0
    )
    assert assessment.state is TargetState.UNKNOWN
    assert assessment.reason is Reason.MONITOR_ERROR
    assert assessment.detail == error


def test_no_result_is_unknown() -> None:
    assessment = assess_target(None, FIBRE, NOW, 30.0, 120.0)
    assert (assessment.state, assessment.reason) == (TargetState.UNKNOWN, Reason.NO_DATA)


def test_result_older_than_interval_plus_grace_is_unknown() -> None:
    bound_s = stale_bound_s(30.0, 120.0)
    assert bound_s == 150.0
    just_fresh = FakeResult(measured_at=NOW - timedelta(seconds=150))
    stale = FakeResult(measured_at=NOW - timedelta(seconds=150.001))
    assert state_of(just_fresh) is TargetState.UP
    stale_assessment = assess_target(stale, FIBRE, NOW, 30.0, 120.0)
    assert (stale_assessment.state, stale_assessment.reason) == (
        TargetState.UNKNOWN,
        Reason.STALE,
    )


def test_stale_down_result_is_unknown_not_down() -> None:
    old_down = FakeResult(status="down", measured_at=NOW - timedelta(hours=1))
    assert state_of(old_down) is TargetState.UNKNOWN


def test_result_from_an_agent_clock_ahead_counts_as_fresh() -> None:
    assert state_of(FakeResult(measured_at=NOW + timedelta(seconds=30))) is TargetState.UP


def test_silent_agent_makes_the_site_unreachable_whatever_its_targets_say() -> None:
    last = NOW - timedelta(seconds=121)
    states = [TargetState.UP, TargetState.DOWN]
    assert site_state(last, states, NOW, silent_after_s=120.0) is SiteState.UNREACHABLE


def test_agent_never_seen_makes_the_site_unreachable() -> None:
    assert site_state(None, [TargetState.UP], NOW, 120.0) is SiteState.UNREACHABLE


def test_site_unreachable_is_distinct_from_down() -> None:
    assert SiteState.UNREACHABLE.value not in {s.value for s in TargetState}


def test_reachable_site_takes_the_worst_target_state() -> None:
    last = NOW - timedelta(seconds=120)
    worst = site_state(last, [TargetState.UP, TargetState.DEGRADED, TargetState.DOWN], NOW, 120.0)
    assert worst is SiteState.DOWN
    assert site_state(last, [TargetState.UP, TargetState.DEGRADED], NOW, 120.0) is (
        SiteState.DEGRADED
    )
    assert site_state(last, [TargetState.UP, TargetState.UNKNOWN], NOW, 120.0) is (
        SiteState.UNKNOWN
    )
    assert site_state(last, [TargetState.UP, TargetState.UP], NOW, 120.0) is SiteState.UP


def test_maintenance_counts_only_when_every_target_is_in_maintenance() -> None:
    last = NOW
    assert site_state(last, [TargetState.MAINTENANCE, TargetState.UP], NOW, 120.0) is (SiteState.UP)
    assert site_state(last, [TargetState.MAINTENANCE], NOW, 120.0) is SiteState.MAINTENANCE


def test_reachable_site_without_targets_is_unknown() -> None:
    assert site_state(NOW, [], NOW, 120.0) is SiteState.UNKNOWN
