"""The agent's clock seam: wall time for stamps, monotonic time and sleeping for cadence.

Tests replace :class:`SystemClock` with a fake that moves time by hand; nothing else in the
agent reads a clock or sleeps directly.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class AgentClock(Protocol):
    """What the scheduler and the uploader need from time."""

    def wall(self) -> datetime:
        """Return "now" as an aware UTC datetime (the stamp put on results)."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a clock that never jumps (for cadence and durations)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (monotonic); ``seconds <= 0`` only yields to the loop."""
        ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)``, ``time.monotonic``, ``asyncio.sleep``."""

    def wall(self) -> datetime:
        """Return the system's wall clock as an aware UTC datetime."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return ``time.monotonic()`` in seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` on the event loop."""
        await asyncio.sleep(max(0.0, seconds))


async def sleep_or_stop(clock: AgentClock, seconds: float, stop: asyncio.Event) -> bool:
    """Sleep ``seconds`` on ``clock`` unless ``stop`` is set first; return True if stopped."""
    if stop.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            if not task.done():
                task.cancel()
        await asyncio.gather(sleeper, stopper, return_exceptions=True)
    return stop.is_set()
