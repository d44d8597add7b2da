"""Many deadlines on one event-loop timer.

An engine with thousands of rounds in flight had two asyncio timers per round (the round's
final wait, and forgetting its requests after the grace period). asyncio keeps timers in a
heap whose ``TimerHandle`` comparisons run in Python, so with 10,000 timers each timer
created or fired (every pass of the sender creates one too) cost a dozen Python-level
comparisons. :class:`Deadlines` keeps the engine's deadlines in its own heap of tuples
(compared in C) and arms a single asyncio timer for the earliest.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable


class Deadlines:
    """Call each callback at (or just after) its loop time; one asyncio timer for all.

    Callbacks run in deadline order, each once; there is no cancelling, so a callback must
    be harmless when what it ends has already ended (e.g. an idempotent ``finish``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = 0
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self._closed = False

    def __len__(self) -> int:
        """Deadlines not yet reached."""
        return len(self._heap)

    def call_at(self, when_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the loop's clock reaches ``when_s`` (seconds)."""
        if self._closed:
            return
        self._order += 1
        heapq.heappush(self._heap, (when_s, self._order, callback))
        if when_s < self._armed_at:
            self._arm(when_s)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` ``delay_s`` seconds from now."""
        self.call_at(self._loop.time() + delay_s, callback)

    def close(self) -> None:
        """Drop every deadline not yet reached, without calling it (idempotent)."""
        self._closed = True
        self._heap.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_at = math.inf

    def _arm(self, when_s: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when_s
        self._handle = self._loop.call_at(when_s, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        heap = self._heap
        now_s = self._loop.time()
        while heap and heap[0][0] <= now_s and not self._closed:
            _when, _order, callback = heapq.heappop(heap)
            callback()
        if heap and not self._closed:
            self._arm(heap[0][0])
