"""Summarise one ICMP round: loss, RTT minimum/average/maximum and jitter (pure maths)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True, slots=True)
class RoundStats:
    """The figures of one round of echo requests.

    Attributes:
        sent: echo requests sent (at least 1).
        received: requests with at least one reply (unique replies; duplicates never count).
        duplicates: extra replies to an already answered request, counted apart.
        packet_loss: ratio 0-1, ``1 - received / sent``; never below 0 or above 1.
        rtt_min_s: smallest RTT in seconds over received requests; ``None`` when nothing was
            received (never 0, -1 or NaN as a stand-in).
        rtt_avg_s: mean RTT in seconds over received requests only (lost requests are not
            zeros); ``None`` when nothing was received.
        rtt_max_s: largest RTT in seconds; ``None`` when nothing was received.
        jitter_s: mean absolute difference of consecutive RTTs in send order, seconds;
            ``None`` with fewer than two received requests. See :func:`jitter`.
    """

    sent: int
    received: int
    duplicates: int
    packet_loss: float
    rtt_min_s: float | None
    rtt_avg_s: float | None
    rtt_max_s: float | None
    jitter_s: float | None


def jitter(rtts_s: Sequence[float]) -> float | None:
    """Return the mean absolute difference of consecutive RTTs, in the order given (seconds).

    ``rtts_s`` must be the received RTTs in send order, lost requests left out: jitter on
    sorted samples would reduce to ``(max - min) / (n - 1)``. The definition is the simple
    mean ``sum(|r[i] - r[i-1]|) / (n - 1)``: the interarrival-jitter difference of RFC 3550
    section 6.4.1 without its 1/16 running smoothing, so every round stands on its own.
    Returns ``None`` with fewer than two samples (no division by zero).
    """
    if len(rtts_s) < 2:
        return None
    return math.fsum(abs(current - previous) for previous, current in pairwise(rtts_s)) / (
        len(rtts_s) - 1
    )


def summarize(rtts_s: Sequence[float | None], duplicates: int) -> RoundStats:
    """Return the statistics of one round.

    Args:
        rtts_s: one entry per request sent, in send order: the RTT in seconds of its first
            reply, or ``None`` when the request got no reply in time (lost).
        duplicates: replies beyond the first to any request.

    Raises:
        ValueError: no request was sent, ``duplicates`` is negative, or an RTT is negative,
            infinite or NaN (a sample that cannot be real must be discarded before this).
    """
    if not rtts_s:
        raise ValueError("a round needs at least one request")
    if duplicates < 0:
        raise ValueError(f"duplicates must not be negative (got {duplicates})")
    received = [rtt for rtt in rtts_s if rtt is not None]
    for rtt in received:
        if not math.isfinite(rtt) or rtt < 0:
            raise ValueError(f"an RTT must be a finite number of seconds >= 0 (got {rtt})")
    sent = len(rtts_s)
    if not received:
        return RoundStats(sent, 0, duplicates, 1.0, None, None, None, None)
    return RoundStats(
        sent=sent,
        received=len(received),
        duplicates=duplicates,
        packet_loss=1.0 - len(received) / sent,
        rtt_min_s=min(received),
        rtt_avg_s=math.fsum(received) / len(received),
        rtt_max_s=max(received),
        jitter_s=jitter(received),
    )
