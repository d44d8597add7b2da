"""The per-site upload budget for metered links: at most N bytes in any hour.

A sliding window, not a token bucket: every upload attempt (acknowledged or not: the bytes
crossed the link either way) is logged with its time and size, and a new one may start only
while the bytes logged in the last hour plus its own stay within the budget. So no 60-minute
window ever carries more than the budget, which is what a metered contract counts, and
a post that was offline does not get to burst more than one hour's worth when it returns.

Counted per attempt: the request body as sent (compressed), plus
:data:`REQUEST_OVERHEAD_BYTES` for what is not seen from here (HTTP headers both ways, the
acknowledgement's small body up to :data:`RESPONSE_INCLUDED_BYTES`, TCP/IP and TLS framing,
the TCP and TLS handshakes of a new connection, amortised), plus any response body beyond
:data:`RESPONSE_INCLUDED_BYTES` (a long error answer, known only once it came).

One exception keeps a tiny budget from stalling the agent for ever: when the window is
empty, one upload may exceed what is left (the uploader then sends the smallest batch it
can: one result).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

WINDOW_S = 3600.0
REQUEST_OVERHEAD_BYTES = 1024
"""Bytes counted per upload on top of the request body (headers, ack, framing); an estimate."""
RESPONSE_INCLUDED_BYTES = 256
"""Response body bytes covered by :data:`REQUEST_OVERHEAD_BYTES` (an ack is about 130)."""


class UploadBudget:
    """Track bytes uploaded in the last hour against ``bytes_per_hour``.

    Args:
        bytes_per_hour: the budget, bytes per any 3600 s window.
        history: earlier attempts ``(sent_at, bytes)`` (e.g. from the spool, across a
            restart); older than one hour ones are ignored.

    Times are aware datetimes of the agent's wall clock.
    """

    def __init__(self, bytes_per_hour: int, history: Iterable[tuple[datetime, int]] = ()) -> None:
        if bytes_per_hour < 1:
            raise ValueError("bytes_per_hour must be positive")
        self.bytes_per_hour = bytes_per_hour
        self._log: deque[tuple[datetime, int]] = deque(sorted(history))

    def _prune(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=WINDOW_S)
        while self._log and self._log[0][0] <= horizon:
            self._log.popleft()

    def used_bytes(self, now: datetime) -> int:
        """Return the bytes logged in the hour before ``now``."""
        self._prune(now)
        return sum(n for _, n in self._log)

    def available_bytes(self, now: datetime) -> int:
        """Return how many bytes may still go now (never negative)."""
        return max(0, self.bytes_per_hour - self.used_bytes(now))

    def window_empty(self, now: datetime) -> bool:
        """Return whether nothing was sent in the hour before ``now``."""
        self._prune(now)
        return not self._log

    def wait_s(self, now: datetime, needed_bytes: int) -> float:
        """Return seconds from ``now`` until ``needed_bytes`` fit in the window (0: now).

        More than the whole budget fits once the window is empty (see the module's note).
        """
        self._prune(now)
        free = self.bytes_per_hour - sum(n for _, n in self._log)
        if needed_bytes <= free or not self._log:
            return 0.0
        for sent_at, size in self._log:
            free += size
            if free >= needed_bytes:
                return max(0.0, (sent_at - now).total_seconds() + WINDOW_S)
        last = self._log[-1][0]
        return max(0.0, (last - now).total_seconds() + WINDOW_S)

    def record(self, now: datetime, sent_bytes: int) -> None:
        """Log an attempt of ``sent_bytes`` at ``now``."""
        self._log.append((now, sent_bytes))
