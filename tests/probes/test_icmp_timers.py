"""The engine's deadline heap: one asyncio timer for many deadlines, fired in order."""

from __future__ import annotations

import asyncio
import functools

from probes.icmp.timers import Deadlines


async def test_deadlines_fire_in_time_order_each_once_and_not_early() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    fired: list[tuple[str, float]] = []
    start = loop.time()

    def note(name: str, due: float) -> None:
        fired.append((name, due))
        assert loop.time() >= due  # never early

    for name, delay in (("c", 0.06), ("a", 0.02), ("b", 0.04), ("a2", 0.02)):
        deadlines.call_at(start + delay, functools.partial(note, name, start + delay))
    assert len(deadlines) == 4
    await asyncio.sleep(0.1)
    assert [name for name, _ in fired] == ["a", "a2", "b", "c"]
    assert len(deadlines) == 0


async def test_an_earlier_deadline_added_later_rearms_the_timer() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    fired: list[str] = []
    deadlines.call_later(0.5, lambda: fired.append("late"))
    deadlines.call_later(0.01, lambda: fired.append("early"))
    await asyncio.sleep(0.05)
    assert fired == ["early"]
    deadlines.close()


async def test_closed_deadlines_call_nothing_and_take_nothing_new() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    fired: list[str] = []
    deadlines.call_later(0.01, lambda: fired.append("dropped"))
    deadlines.close()
    deadlines.call_later(0.0, lambda: fired.append("after close"))
    await asyncio.sleep(0.05)
    assert fired == []
    assert len(deadlines) == 0
