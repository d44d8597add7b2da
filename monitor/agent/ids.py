"""Result ids that are unique, valid UUIDs, and cheap to send: a random prefix and a counter.

Each id is a UUID version 8 (RFC 9562 section 5.8, "custom"): the first 64 bits hold 60
random bits drawn once per :class:`ResultIds` (once per agent start) plus the version
nibble; the last 64 bits hold the variant bits and a counter that starts at 0 and goes up
by one per result. So the ids of one agent run share their first half, and consecutive
results differ by one in their second half: the compact upload encoding sends the first
half once per batch and the second as a delta of 1 (a few bits after gzip), where a random
UUID4 would cost 16 incompressible bytes per result.

Uniqueness: within a run by the counter; between runs (and sites) by the 60 random bits: two
of ``k`` agent runs share a prefix with probability about ``k**2 / 2**61`` (for a million
runs, under one in a million).
"""

from __future__ import annotations

import secrets
import threading

_VERSION = 0x8
_VARIANT = 0b10
_COUNTER_BITS = 62


class ResultIds:
    """Make result ids for one agent run; thread-safe.

    ``prefix_bits`` (60 bits) may be given for tests; by default it is drawn from
    :mod:`secrets`.
    """

    def __init__(self, prefix_bits: int | None = None) -> None:
        bits = secrets.randbits(60) if prefix_bits is None else prefix_bits
        if not 0 <= bits < 1 << 60:
            raise ValueError("prefix_bits must be a 60-bit non-negative integer")
        high = ((bits >> 12) << 16) | (_VERSION << 12) | (bits & 0xFFF)
        self._high_hex = f"{high:016x}"
        self._next = 0
        self._lock = threading.Lock()

    def next_id(self) -> str:
        """Return the next result id (canonical lowercase UUID text)."""
        with self._lock:
            counter = self._next
            self._next += 1
        if counter >= 1 << _COUNTER_BITS:
            raise OverflowError("result id counter exhausted")  # 4.6e18 results in one run
        low = (_VARIANT << _COUNTER_BITS) | counter
        text = f"{self._high_hex}{low:016x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
