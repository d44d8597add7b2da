"""The server's background workers, started and stopped by the app's lifespan.

Each worker is ``async def worker(services, stop) -> None``: it runs until ``stop`` is set,
never raises for an expected failure (it logs and retries), and must not block the event
loop (database work goes to a thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.services import Services

Worker = Callable[["Services", asyncio.Event], Coroutine[Any, Any, None]]


def background_workers() -> list[tuple[str, Worker]]:
    """Return the server's workers by name, in start order."""
    from monitor.alerting.delivery import run_delivery
    from monitor.alerting.evaluator import run_evaluator
    from monitor.storage.rollups_job import run_rollups

    return [
        ("evaluator", run_evaluator),
        ("delivery", run_delivery),
        ("rollups", run_rollups),
    ]
