"""The engine against the responder's ground truth: loss exactly, RTT within a tolerance.

Site dsv's link is set to 20 ms and 10 % loss (seeded, no jitter); the engine, in dsv's
namespace, pings 50 gateway addresses 20 times each. Every request is matched to the
responder's record of it (the k-th request to an address arrives k-th).
"""

from __future__ import annotations

import os
import statistics

import pytest
from lab_testkit import run_child

from monitor.lab.lab import Lab
from monitor.lab.topology import bulk_targets
from monitor.lab.truth import by_destination

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

SITE = "dsv"
TARGETS = 50
COUNT = 20
RTT_TOLERANCE_S = 0.002  # correctness, not speed: the benchmark measures the real error


def test_engine_loss_is_the_responders_true_loss_and_rtt_its_true_hold(lab: Lab) -> None:
    lab.set_impairment(SITE, {"delay_s": 0.02, "jitter_s": 0.0, "loss": 0.1})
    try:
        offset = lab.truth_offset()
        addresses = bulk_targets(TARGETS)
        plan = {"rounds": [[a, 4, COUNT, 0.02, 1.0] for a in addresses]}
        run = run_child(lab, SITE, plan)
        truth = by_destination(lab.wait_truth(offset, TARGETS * COUNT))
    finally:
        lab.set_impairment(SITE, {"delay_s": 0.12, "jitter_s": 0.04, "loss": 0.03})

    errors_s: list[float] = []
    true_lost = 0
    for outcome in run["outcomes"]:
        records = [r for r in truth[outcome["address"]] if r.ident == run["identifier"]]
        assert len(records) == COUNT  # the responder saw every request
        assert all(r.site == SITE for r in records)
        truly_received = sum(not r.dropped for r in records)
        assert outcome["received"] == truly_received, outcome["address"]
        assert outcome["packet_loss"] == 1 - truly_received / COUNT
        for rtt_s, record in zip(outcome["rtts_s"], records, strict=True):
            assert (rtt_s is None) == record.dropped  # the very same requests were lost
            if record.dropped:
                assert record.why == "loss"
                continue
            assert record.hold_s is not None and record.plan_s == 0.02
            assert record.hold_s >= record.plan_s  # a reply never leaves before it is due
            errors_s.append(rtt_s - record.hold_s)
        true_lost += sum(r.dropped for r in records)
        mean_rtt = statistics.fmean(r for r in outcome["rtts_s"] if r is not None)
        mean_hold = statistics.fmean(r.hold_s for r in records if r.hold_s is not None)
        assert abs(mean_rtt - mean_hold) < RTT_TOLERANCE_S, outcome["address"]
    mean_error_ms = statistics.fmean(errors_s) * 1e3
    worst_ms = max(errors_s, key=abs) * 1e3
    print(f"\nRTT minus true hold: mean {mean_error_ms:+.4f} ms, worst {worst_ms:+.4f} ms")
    assert 0 < true_lost < TARGETS * COUNT * 0.2  # seeded 10 %: the drops did happen
    assert run["counters"]["socket_drops"] == 0
    assert run["counters"]["stray_replies"] == 0
