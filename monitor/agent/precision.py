"""Record durations to the microsecond: the precision the agent spools and uploads.

A probe measures with the monotonic clock (and ICMP with kernel timestamps in nanoseconds),
so its floats carry digits below a microsecond that are noise: the event loop alone adds
tens of microseconds. Rounding every value in seconds to 1 µs before the result is spooled
keeps what is meaningful (fping prints 10 µs, SmokePing stores milliseconds) and lets the
compact upload encoding send each value as a small exact integer of microseconds
(:mod:`monitor.wire_compact`), which is most of why a result costs tens of bytes, not
hundreds. Ratios (``packet_loss``) and counts are left exactly as measured.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from probes.result import ProbeResult

DIGITS = 6
"""Decimal digits of a second kept: 6 is one microsecond."""


def to_microsecond(value: float | None) -> float | None:
    """Return ``value`` (seconds) rounded to the nearest microsecond; ``None`` stays ``None``."""
    return None if value is None else round(value, DIGITS)


def _detail_value(key: str, value: Any) -> Any:
    if key.endswith("_s") and isinstance(value, float):
        return round(value, DIGITS)
    return value


def quantize(result: ProbeResult) -> ProbeResult:
    """Return ``result`` with every value in seconds rounded to the microsecond.

    Rounded: ``duration_s``, ``rtt_s``, ``jitter_s``, each of ``rtts_s`` (``None`` for a
    lost request stays), each of ``phases_s``, and the float values of ``detail`` whose key
    ends in ``_s`` (e.g. ICMP ``rtt_min_s``). Everything else is unchanged.
    """
    return dataclasses.replace(
        result,
        duration_s=round(result.duration_s, DIGITS),
        rtt_s=to_microsecond(result.rtt_s),
        jitter_s=to_microsecond(result.jitter_s),
        rtts_s=tuple(to_microsecond(x) for x in result.rtts_s),
        phases_s={k: round(v, DIGITS) for k, v in result.phases_s.items()},
        detail={k: _detail_value(k, v) for k, v in result.detail.items()},
    )
