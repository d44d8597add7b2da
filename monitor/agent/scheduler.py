"""Run each target's probe on a fixed cadence and spool every result at once.

Cadence: target ``t`` runs at ``base_t + k * interval_s`` on the monotonic clock, so the
period never drifts by a round's duration. ``base_t`` is the scheduler's start plus a start
jitter ``offset_t`` in ``[0, interval_s)`` derived from SHA-256 of ``"<site>/<target>"``:
deterministic (the same phase after every restart, so graphs and logs line up) and spread
evenly over the interval, so seven sites' targets do not all fire at once.

Retry rounds (case C14): when a target sets ``retry_interval_s``, a round whose status is
DOWN (a target-side failure; never ERROR, a monitor-side failure that must not hasten a
page) is followed by *retry rounds* ``retry_interval_s`` apart, counted from the failed
round's due time, until ``failures_to_down`` rounds in a row have failed (the evaluator has
then confirmed DOWN; :func:`monitor.alerting.state_machine.failures_to_down_for`, the same
count the evaluator uses) or a round succeeds. Retry rounds run *between* the regular slots,
which never move: a retry that could not finish (its :func:`round_budget_s`) before the next
regular slot gives way to that slot, so after the retries, and after a recovery, the target
is back on its original phase. An ERROR round neither extends nor breaks the run of failures
(like the evaluator's streak), but schedules no retry. So with ``interval_s`` 300,
``retry_interval_s`` 60 and ``failures_to_down`` 4 (3 retries), a target failing from a
12:00:00 slot is probed at 12:00, 12:01, 12:02 and 12:03 (DOWN confirmed), then at 12:05.

A round that overruns its slot does not stack: the next round runs at the first slot not
yet passed, and the slots passed over are counted (``skipped_slots_total``). A slot missed
by at most ``late_grace_s`` (min(1 s, 10 % of the interval)) still runs, late, so a round
sized exactly to its interval does not skip every other slot.

Every round becomes a result, whatever happens: a probe that raises (a bug) or runs past
its backstop deadline becomes an ERROR result saying so. Concurrency is bounded by an
``asyncio.Semaphore`` of ``max_concurrency``; ``measured_at`` is the wall clock when the
round starts (after it got its slot in the semaphore). Each result gets a counting id
(:mod:`monitor.agent.ids`), its durations rounded to the microsecond
(:mod:`monitor.agent.precision`), and the agent's clock-offset estimate at that moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.agent.clock import AgentClock, SystemClock, sleep_or_stop
from monitor.agent.ids import ResultIds
from monitor.agent.precision import quantize
from monitor.agent.spool import Spool
from monitor.alerting.state_machine import failures_to_down_for
from monitor.config import SiteConfig
from monitor.wire import ResultIn
from probes.context import ProbeContext
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import IcmpTarget, TargetSpec

log = logging.getLogger("linkwatch.agent.scheduler")

ProbeRunner = Callable[[TargetSpec, ProbeContext], Awaitable[ProbeResult]]
"""The seam the scheduler runs probes through (``probes.run_probe`` in production)."""

ResultObserver = Callable[[ResultIn], None]
"""Called with each result once it is committed to the spool (must not block)."""

DEFAULT_BACKSTOP_MARGIN_S = 2.0
DEFAULT_DRAIN_S = 3.0
ERROR_MAX_CHARS = 2000


def round_budget_s(target: TargetSpec) -> float:
    """Return the longest a healthy round of ``target`` may take, in seconds.

    ICMP: ``(count - 1) * spacing_s + timeout_s`` (the last request is sent after
    ``count - 1`` spacings and waited ``timeout_s``); other kinds: ``timeout_s``.
    """
    if isinstance(target, IcmpTarget):
        return (target.count - 1) * target.spacing_s + target.timeout_s
    return target.timeout_s


def backstop_s(target: TargetSpec, margin_s: float = DEFAULT_BACKSTOP_MARGIN_S) -> float:
    """Return the deadline the scheduler enforces on a round: its budget plus a margin.

    The probe owns its own ``timeout_s``; this backstop only catches a probe that fails to
    honour it. Margin: ``margin_s`` plus 10 % of the budget (slow event loops, resolution).
    """
    budget = round_budget_s(target)
    return budget + margin_s + 0.1 * budget


def first_offset_s(site_id: str, target_id: str, interval_s: float) -> float:
    """Return the start jitter of a target, in ``[0, interval_s)``, deterministic.

    Formula: the first 8 bytes of SHA-256(``"<site_id>/<target_id>"``) as an unsigned
    integer, divided by 2**64, times ``interval_s``.
    """
    digest = hashlib.sha256(f"{site_id}/{target_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 * interval_s


def late_grace_s(interval_s: float) -> float:
    """Return how late a slot may start and still run: min(1 s, 10 % of the interval)."""
    return min(1.0, 0.1 * interval_s)


def next_slot(base_s: float, interval_s: float, last_slot: int, now_s: float) -> int:
    """Return the index of the slot to run after slot ``last_slot`` finished at ``now_s``.

    Slot ``k`` is due at ``base_s + k * interval_s``. The next slot is ``last_slot + 1``
    unless it was passed by more than :func:`late_grace_s`; then it is the first slot due
    at or after ``now_s`` (the slots in between are skipped, never stacked).
    """
    following = last_slot + 1
    if now_s <= base_s + following * interval_s + late_grace_s(interval_s):
        return following
    return max(following, math.ceil((now_s - base_s) / interval_s))


def count_failures(failures: int, status: ProbeStatus | None) -> int:
    """Return the run of consecutive failed rounds after a round of ``status``.

    DOWN extends the run, UP ends it (0); ERROR, or ``None`` (no result: a bug of ours),
    leaves it as it was, as the evaluator's streak does.
    """
    if status is ProbeStatus.DOWN:
        return failures + 1
    if status is ProbeStatus.UP:
        return 0
    return failures


def retry_due_s(
    target: TargetSpec,
    status: ProbeStatus | None,
    failures: int,
    failures_to_down: int,
    last_due_s: float,
    next_slot_due_s: float,
) -> float | None:
    """Return when the retry round after a round due at ``last_due_s`` is due, or ``None``.

    A retry follows a round whose ``status`` was DOWN, while the run of ``failures`` (counting
    that round) is shorter than ``failures_to_down``, when the target sets
    ``retry_interval_s``; it is due ``retry_interval_s`` after ``last_due_s`` (monotonic
    seconds). ``None``: no retry, or one that could not finish (:func:`round_budget_s`) by
    ``next_slot_due_s``, the next regular slot, which then runs instead.
    """
    if target.retry_interval_s is None or status is not ProbeStatus.DOWN:
        return None
    if not 0 < failures < failures_to_down:
        return None
    due_s = last_due_s + target.retry_interval_s
    if due_s + round_budget_s(target) > next_slot_due_s:
        return None
    return due_s


@dataclass
class TargetStats:
    """Running counters for one target (mutable, read by the agent's status and metrics).

    Attributes:
        rounds_total: rounds run (each produced exactly one result).
        error_results_total: rounds whose result was ERROR (any cause).
        probe_exceptions_total: rounds whose probe raised (a bug), made ERROR.
        backstop_expired_total: rounds stopped by the backstop deadline, made ERROR.
        skipped_slots_total: cadence slots passed over because a round overran.
        retry_rounds_total: retry rounds run (after a DOWN round, ``retry_interval_s`` apart).
        spool_failures_total: results that could not be written to the spool (lost, logged).
        last_measured_at: ``measured_at`` of the latest round; ``None`` before the first.
        last_status: status of the latest round; ``None`` before the first.
    """

    rounds_total: int = 0
    error_results_total: int = 0
    probe_exceptions_total: int = 0
    backstop_expired_total: int = 0
    skipped_slots_total: int = 0
    retry_rounds_total: int = 0
    spool_failures_total: int = 0
    last_measured_at: datetime | None = None
    last_status: ProbeStatus | None = None


@dataclass
class SchedulerStats:
    """Per-target counters, by target id."""

    targets: dict[str, TargetStats] = field(default_factory=dict)


class SpoolWriter:
    """Write results to the spool off the event loop, coalescing concurrent writes.

    Each :meth:`write` returns once its result is committed. While one transaction runs
    (in a worker thread), later results gather and go together in the next one: one fsync
    for many results when many targets finish at once.
    """

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._pending: list[tuple[ResultIn, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def write(self, result: ResultIn) -> None:
        """Commit ``result`` to the spool; raise what the spool raised (e.g. disk full)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A writer cancelled while waiting still has its failure retrieved (no loop warning).
        fut.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self._pending.append((result, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="spool-writer")
        await asyncio.shield(fut)

    async def flush(self) -> None:
        """Wait until every result handed to :meth:`write` is committed (or failed)."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._spool.put, [r for r, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)


class Scheduler:
    """Probe a site's targets on their cadences and spool every result.

    Args:
        site_id: the site this agent runs at (used for the start jitter and logs).
        targets: the site's targets.
        spool: where each result is written as soon as it exists.
        ctx: the probe context (ICMP engine or the reason it is missing).
        max_concurrency: the most rounds running at once.
        run_probe: the probe runner; ``None`` means ``probes.run_probe``.
        clock: the clock seam; ``None`` means :class:`SystemClock`.
        backstop_margin_s: see :func:`backstop_s`.
        drain_s: on stop, how long rounds in flight may finish before they are cancelled
            (a cancelled round was not measured and leaves no result).
        on_result: called with each result after it is committed.
        result_ids: the id source; ``None`` means a new :class:`ResultIds`.
        clock_offset: returns the agent's current estimate of server minus agent clock
            (seconds, ``None`` if unknown), stamped on each result; ``None``: never known.
        site: the site's configuration, read only for its ``failures_to_down`` (how many
            failed rounds in a row end the retry rounds); ``None``: each target's own value,
            else the default 3.
    """

    def __init__(
        self,
        site_id: str,
        targets: Sequence[TargetSpec],
        spool: Spool,
        ctx: ProbeContext,
        *,
        max_concurrency: int,
        run_probe: ProbeRunner | None = None,
        clock: AgentClock | None = None,
        backstop_margin_s: float = DEFAULT_BACKSTOP_MARGIN_S,
        drain_s: float = DEFAULT_DRAIN_S,
        on_result: ResultObserver | None = None,
        result_ids: ResultIds | None = None,
        clock_offset: Callable[[], float | None] | None = None,
        site: SiteConfig | None = None,
    ) -> None:
        if run_probe is None:
            from probes import run_probe as default_runner

            run_probe = default_runner
        self.site_id = site_id
        self.targets = list(targets)
        self.ctx = ctx
        self.stats = SchedulerStats({t.id: TargetStats() for t in self.targets})
        self._run_probe = run_probe
        self._clock: AgentClock = clock or SystemClock()
        self._sem = asyncio.Semaphore(max_concurrency)
        self._writer = SpoolWriter(spool)
        self._margin_s = backstop_margin_s
        self._drain_s = drain_s
        self._on_result = on_result
        self._traced: set[tuple[str, str]] = set()
        self._ids = result_ids or ResultIds()
        self._clock_offset = clock_offset
        self._site = site

    async def run(self, stop: asyncio.Event) -> None:
        """Run every target's loop until ``stop`` is set; then drain and return.

        Rounds in flight get ``drain_s`` seconds to finish and be spooled; then they are
        cancelled. Every result handed to the spool is committed before this returns.
        """
        start_s = self._clock.monotonic()
        tasks = [
            asyncio.create_task(self._target_loop(t, start_s, stop), name=f"target-{t.id}")
            for t in self.targets
        ]
        try:
            await stop.wait()
            _done, pending = await asyncio.wait(tasks, timeout=self._drain_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._writer.flush()

    async def _target_loop(self, target: TargetSpec, start_s: float, stop: asyncio.Event) -> None:
        interval_s = target.interval_s
        base_s = start_s + first_offset_s(self.site_id, target.id, interval_s)
        stats = self.stats.targets[target.id]
        failures_to_down = failures_to_down_for(target, self._site)
        upcoming = 0  # the next regular slot not yet run
        retry_s: float | None = None  # when the next retry round is due, if one is
        failures = 0
        while True:
            due_s = base_s + upcoming * interval_s if retry_s is None else retry_s
            if await sleep_or_stop(self._clock, due_s - self._clock.monotonic(), stop):
                return
            status: ProbeStatus | None = None
            try:
                status = (await self.run_round(target)).status
            except Exception as exc:  # run_round guards probes; this is a bug of ours
                log.error("target %s: round failed unexpectedly: %s", target.id, exc, exc_info=True)
            if retry_s is not None:
                stats.retry_rounds_total += 1
            failures = count_failures(failures, status)
            last = upcoming if retry_s is None else upcoming - 1  # the last regular slot run
            following = next_slot(base_s, interval_s, last, self._clock.monotonic())
            skipped = following - last - 1
            if skipped > 0:
                stats.skipped_slots_total += skipped
                log.warning(
                    "target %s: round overran its %gs interval; skipped %d slot(s)",
                    target.id,
                    interval_s,
                    skipped,
                )
            upcoming = following
            retry_s = retry_due_s(
                target, status, failures, failures_to_down, due_s, base_s + upcoming * interval_s
            )
            if retry_s is not None:
                log.debug(
                    "target %s: round %d of %d in a row failed; retrying in %gs",
                    target.id,
                    failures,
                    failures_to_down,
                    target.retry_interval_s,
                )

    async def run_round(self, target: TargetSpec) -> ResultIn:
        """Run one round of ``target`` now (within the concurrency limit) and spool it.

        Returns the spooled result. Never raises for a probe's failure or bug; if the spool
        itself fails the result is counted in ``spool_failures_total`` and logged.
        """
        stats = self.stats.targets.setdefault(target.id, TargetStats())
        async with self._sem:
            measured_at = self._clock.wall()
            started_s = self._clock.monotonic()
            probe_result = await self._measure(target, started_s, stats)
            result = self._wrap(target, probe_result, measured_at, started_s, stats)
        stats.rounds_total += 1
        stats.last_measured_at = measured_at
        stats.last_status = result.status
        if result.status is ProbeStatus.ERROR:
            stats.error_results_total += 1
        try:
            await self._writer.write(result)
        except Exception as exc:
            stats.spool_failures_total += 1
            log.error(
                "target %s: could not write a result to the spool, it is lost: %s", target.id, exc
            )
            return result
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception as exc:
                log.error("target %s: result observer failed: %s", target.id, exc, exc_info=True)
        return result

    async def _measure(
        self, target: TargetSpec, started_s: float, stats: TargetStats
    ) -> ProbeResult:
        deadline = backstop_s(target, self._margin_s)
        timer = asyncio.timeout(deadline)
        try:
            async with timer:
                return await self._run_probe(target, self.ctx)
        except TimeoutError as exc:
            if not timer.expired():
                return self._bug(target, exc, started_s, stats)
            stats.backstop_expired_total += 1
            log.error(
                "target %s: the %s probe did not finish within its %.3gs backstop deadline",
                target.id,
                target.kind,
                deadline,
            )
            return self._error(
                target,
                started_s,
                f"the {target.kind} probe did not finish within {deadline:.3g} s "
                f"(its own timeout plus a margin); a Linkwatch bug or an overloaded agent host",
            )
        except Exception as exc:
            return self._bug(target, exc, started_s, stats)

    def _bug(
        self, target: TargetSpec, exc: BaseException, started_s: float, stats: TargetStats
    ) -> ProbeResult:
        stats.probe_exceptions_total += 1
        key = (target.id, type(exc).__name__)
        # The first time a target's probe fails this way, keep the traceback for developers;
        # after that one line per round.
        log.error(
            "target %s: the %s probe raised %s: %s",
            target.id,
            target.kind,
            type(exc).__name__,
            exc,
            exc_info=key not in self._traced,
        )
        self._traced.add(key)
        return self._error(
            target,
            started_s,
            f"the {target.kind} probe failed with {type(exc).__name__}: {exc} "
            "(a Linkwatch bug, not a target failure)",
        )

    def _error(self, target: TargetSpec, started_s: float, message: str) -> ProbeResult:
        return ProbeResult(
            kind=ProbeKind(target.kind),
            status=ProbeStatus.ERROR,
            duration_s=max(0.0, self._clock.monotonic() - started_s),
            error=message[:ERROR_MAX_CHARS],
        )

    def _wrap(
        self,
        target: TargetSpec,
        probe_result: ProbeResult,
        measured_at: datetime,
        started_s: float,
        stats: TargetStats,
    ) -> ResultIn:
        result_id = self._ids.next_id()
        offset_s = self._offset()
        try:
            return ResultIn.from_probe(
                quantize(probe_result),
                result_id=result_id,
                target_id=target.id,
                measured_at=measured_at,
                clock_offset_s=offset_s,
            )
        except Exception as exc:  # a probe returned a record the wire format refuses
            bad = self._bug(target, exc, started_s, stats)
            return ResultIn.from_probe(
                quantize(bad),
                result_id=result_id,
                target_id=target.id,
                measured_at=measured_at,
                clock_offset_s=offset_s,
            )

    def _offset(self) -> float | None:
        if self._clock_offset is None:
            return None
        try:
            return self._clock_offset()
        except Exception as exc:  # never lose a result over the offset
            log.error("could not read the clock offset: %s", exc)
            return None
