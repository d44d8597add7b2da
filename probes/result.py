"""The record every probe returns, and the enums that classify it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ProbeKind(StrEnum):
    """What a target is probed with."""

    ICMP = "icmp"
    TCP = "tcp"
    HTTP = "http"
    DNS = "dns"


class ProbeStatus(StrEnum):
    """The outcome of one probe round.

    UP: the target answered as the target's spec expects.
    DOWN: a target-side failure (no answer, refused, wrong status, rcode, keyword missing).
    ERROR: a monitor-side failure: the probe could not measure (no ICMP permission, the probe
        host's own resolver failed, a bug). Never to be read as "target down".
    """

    UP = "up"
    DOWN = "down"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe round against one target, as measured (no site, no wall-clock time).

    The scheduler adds the site, the target id, the measurement time and a result id; a probe
    only measures durations (monotonic clock).

    Attributes:
        kind: the probe kind that produced this result.
        status: UP, DOWN (target-side failure) or ERROR (monitor-side failure).
        duration_s: wall duration of the whole round, seconds (monotonic clock).
        rtt_s: the headline latency in seconds: ICMP mean RTT over unique replies, TCP connect
            time, HTTP time to first byte of the final response, DNS answer time. ``None``
            when nothing answered.
        packet_loss: ratio 0-1 of requests without a unique reply (ICMP); ``None`` for other
            kinds.
        jitter_s: mean absolute difference of consecutive RTTs in send order (ICMP, RFC 3550
            section 6.4.1 style without smoothing); ``None`` with fewer than two replies.
        sent: echo requests sent (ICMP), else ``None``.
        received: unique echo replies (ICMP), else ``None``.
        duplicates: extra replies to an already answered request (ICMP), else ``None``.
        rtts_s: every RTT sample in send order, ``None`` for a lost request (ICMP).
        address: the IP address actually probed (after resolution), ``None`` if never resolved.
        family: 4 or 6, the address family used; ``None`` if never resolved.
        error: one human sentence saying why the status is DOWN or ERROR (what failed, and for
            ERROR what to fix); ``None`` when UP.
        phases_s: durations of the round's phases in seconds, by name (``resolve``,
            ``connect``, ``tls``, ``first_byte``); absent phases are left out.
        detail: kind-specific facts (HTTP ``status_code``, ``final_status``,
            ``redirects``; DNS ``rcode``, ``answers``; ICMP ``unreachable`` reasons).
    """

    kind: ProbeKind
    status: ProbeStatus
    duration_s: float
    rtt_s: float | None = None
    packet_loss: float | None = None
    jitter_s: float | None = None
    sent: int | None = None
    received: int | None = None
    duplicates: int | None = None
    rtts_s: tuple[float | None, ...] = ()
    address: str | None = None
    family: int | None = None
    error: str | None = None
    phases_s: Mapping[str, float] = field(default_factory=dict)
    detail: Mapping[str, Any] = field(default_factory=dict)
