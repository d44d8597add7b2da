"""Result ids count up under a random prefix; durations are kept to the microsecond."""

from __future__ import annotations

import uuid

from monitor.agent.ids import ResultIds
from monitor.agent.precision import quantize
from probes.result import ProbeKind, ProbeResult, ProbeStatus


def test_ids_are_version_8_uuids_counting_up_under_one_prefix() -> None:
    ids = ResultIds(prefix_bits=0x123456789ABCDEF)
    first, second = ids.next_id(), ids.next_id()
    assert first == "12345678-9abc-8def-8000-000000000000"
    assert second == "12345678-9abc-8def-8000-000000000001"
    assert uuid.UUID(first).version == 8
    assert uuid.UUID(first).variant == uuid.RFC_4122


def test_two_agent_runs_draw_different_prefixes() -> None:
    assert ResultIds().next_id()[:18] != ResultIds().next_id()[:18]


def test_seconds_are_rounded_to_the_microsecond_and_the_rest_is_kept() -> None:
    raw = ProbeResult(
        kind=ProbeKind.ICMP,
        status=ProbeStatus.UP,
        duration_s=4.7512345678,
        rtt_s=0.0123456789,
        packet_loss=1 / 3,
        jitter_s=0.00041234,
        sent=3,
        received=2,
        rtts_s=(0.0123451111, None, 0.0123462222),
        phases_s={"resolve": 1.23456e-05},
        detail={"rtt_min_s": 0.0123451111, "late_replies": 0, "note_s": "text"},
    )
    kept = quantize(raw)
    assert kept.duration_s == 4.751235
    assert kept.rtt_s == 0.012346
    assert kept.jitter_s == 0.000412
    assert kept.rtts_s == (0.012345, None, 0.012346)
    assert kept.phases_s == {"resolve": 1.2e-05}
    assert kept.detail == {"rtt_min_s": 0.012345, "late_replies": 0, "note_s": "text"}
    assert kept.packet_loss == 1 / 3
    assert (kept.sent, kept.received) == (3, 2)
