"""Upload spooled results to the server in batches; a result leaves the spool only when acked.

Protocol (:mod:`monitor.wire`): ``POST {server}/api/v1/ingest``, body a gzip-compressed
:class:`BatchIn` (``Content-Encoding: gzip``) in the compact columnar encoding
(:mod:`monitor.wire_compact`), or JSON after a server said it does not know the compact one,
``Authorization: Bearer <site token>``; the server answers 200 with a :class:`BatchAck`.
The results are deleted from the spool only after an ack whose ``stored + duplicates``
equals the batch size. Each batch carries the spool's state (:class:`SpoolReport`).

Order: each batch starts with the newest waiting result of every target that has one newer
than what the server already acknowledged for it (so after an outage the centre sees the
current state at once), then the backlog, oldest first.

Upload budget (optional, :mod:`monitor.agent.budget`): no 60-minute window carries more than
``budget.bytes_per_hour``; a batch is cut to what fits, and after each upload the uploader
pauses at least as long as that upload's bytes take to earn back at the budget's rate
(``3600 * bytes / bytes_per_hour`` seconds), so batches grow and the per-request overhead
stays small on a metered link.

``batch_id`` is a UUID5 of the batch's result ids in order, so re-sending the exact same
batch carries the same id (an idempotency key the server may use); results are idempotent
server-side by ``result_id`` anyway, so a batch of different shape after a split or a
rejection simply gets another id.

Failures, and what happens to the results (they stay in the spool unless said otherwise):

- network error, timeout, 5xx, 408, 429, or an ack that does not add up: retry after an
  exponential backoff with full jitter, capped at ``retry_max_s`` (and no sooner than a
  ``Retry-After`` in seconds, itself capped at ``retry_max_s``);
- 401/403: one clear log line naming the site and its token; back off the same way;
- 413: the batch is too big for the server: halve the batch size and retry;
- 422 naming results (``loc = ["body", "results", i, ...]``): those results move to the
  spool's ``rejected`` table with the server's message (counted); the rest are retried. A
  refused ``target_id`` (a target the server's configuration lacks) rejects every result of
  that target in the batch at once;
- 422 naming only the envelope (``site_id``, ``batch_id``, an undecodable body): the data is
  fine and the exchange is wrong (token/site mismatch, a server that cannot read gzip):
  keep everything, log the server's message, back off;
- 422 of unknown shape: halve the batch until it is one result, then reject that result
  (backing off, so a server that refuses everything cannot empty the spool quickly);
- 415, or 422 naming the compact envelope (``cols``, ``v``, ``n``), to a compact body: the
  server predates the compact encoding; switch to JSON for good and retry at once;
- any other answer: log it (status and the start of the body), back off.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from pydantic import ValidationError

from monitor.agent.budget import REQUEST_OVERHEAD_BYTES, RESPONSE_INCLUDED_BYTES, UploadBudget
from monitor.agent.clock import AgentClock, SystemClock
from monitor.agent.spool import Spool
from monitor.wire import (
    COMPACT_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    BatchAck,
    BatchIn,
    ResultIn,
    SpoolReport,
)
from monitor.wire_compact import encode_batch, to_us

log = logging.getLogger("linkwatch.agent.uploader")

INGEST_PATH = "/api/v1/ingest"
USER_AGENT = "linkwatch-agent/0.1"
CLOCK_OFFSET_WARN_S = 5.0
GZIP_LEVEL = 9
_INITIAL_BYTES_PER_RESULT = 200.0
_BUDGET_FIT_TRIES = 4
_BATCH_ID_NAMESPACE = uuid.UUID("6f1c1f0e-52b4-4b8e-9d0b-6c1f3a1e7a55")
_BODY_SNIPPET_CHARS = 300
_TRANSIENT_STATUSES = frozenset({408, 425, 429})

FieldError = tuple[str, str]
"""``(field path inside the result, the server's message)`` from a 422 answer."""


class UploadOutcome(StrEnum):
    """What one upload attempt did."""

    EMPTY = "empty"  # nothing was waiting
    ACKED = "acked"  # the batch was acknowledged and removed from the spool
    REJECTED = "rejected"  # the server named bad results; they moved to ``rejected``
    SPLIT = "split"  # 413 or an unreadable 422: the next batch is smaller
    DOWNGRADED = "downgraded"  # the server does not know the compact encoding: now JSON
    BUDGET = "budget"  # the upload budget is spent for now: nothing was sent
    RETRY = "retry"  # network/server trouble: try again after a backoff
    AUTH = "auth"  # 401/403: the token is wrong; try again after a backoff
    REFUSED = "refused"  # another 4xx/3xx about the exchange, not the data; back off


class UploadEncoding(StrEnum):
    """How a batch is encoded on the wire (see :mod:`monitor.wire`)."""

    COMPACT = "compact"
    JSON = "json"


_BACKOFF_OUTCOMES = frozenset({UploadOutcome.RETRY, UploadOutcome.AUTH, UploadOutcome.REFUSED})
_PROGRESS_OUTCOMES = frozenset(
    {
        UploadOutcome.ACKED,
        UploadOutcome.REJECTED,
        UploadOutcome.SPLIT,
        UploadOutcome.DOWNGRADED,
    }
)
_COMPACT_ENVELOPE = frozenset({"cols", "v", "n"})


def backoff_ceiling_s(attempt: int, base_s: float, cap_s: float) -> float:
    """Return the backoff ceiling for the ``attempt``-th retry: ``min(cap_s, base_s * 2**n)``.

    ``attempt`` counts from 0 (the first retry waits up to ``base_s``).
    """
    exponent = min(max(attempt, 0), 62)
    return min(cap_s, base_s * 2.0**exponent)


def backoff_s(
    attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Return a retry delay in seconds, "full jitter": uniform in [0, ceiling).

    Source: Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.
    ``rand`` returns a float in [0, 1) (the seam tests replace).
    """
    return rand() * backoff_ceiling_s(attempt, base_s, cap_s)


def batch_id_for(result_ids: Sequence[str]) -> str:
    """Return the batch id of a batch: UUID5 of its result ids joined by commas, in order."""
    return str(uuid.uuid5(_BATCH_ID_NAMESPACE, ",".join(result_ids)))


def estimate_clock_offset_s(server_time: datetime, sent_at: datetime, round_trip_s: float) -> float:
    """Return how far the server's clock is ahead of ours, in seconds (negative: behind).

    Assumes the server stamped ``server_time`` at the midpoint of the exchange:
    ``offset = server_time - (sent_at + round_trip_s / 2)`` (NTP's symmetric-path
    assumption, RFC 5905 section 8). A naive ``server_time`` is taken as UTC.
    """
    if server_time.tzinfo is None:
        server_time = server_time.replace(tzinfo=UTC)
    midpoint = sent_at + timedelta(seconds=round_trip_s / 2)
    return (server_time - midpoint).total_seconds()


@dataclass
class UploadStats:
    """Running counters of the uploader (mutable, read by the agent's status and metrics).

    Attributes:
        batches_acked_total: batches the server acknowledged.
        results_acked_total: results removed from the spool after an ack.
        duplicates_total: acked results the server already had (an earlier attempt landed).
        results_rejected_total: results moved to ``rejected`` on the server's word.
        failures_total: attempts that failed (any reason).
        consecutive_failures: failed attempts since the last success.
        last_success_at: wall time of the last acknowledged batch; ``None`` before it.
        last_error: one sentence about the last failure; ``None`` after a success.
        clock_offset_s: the server's clock minus ours at the last ack (kept in the spool
            across restarts); ``None`` before the first.
        requests_total: upload requests sent (any answer, or none).
        bytes_sent_total: bytes counted for those requests (bodies both ways plus the
            estimated per-request overhead, see :mod:`monitor.agent.budget`).
        last_batch_results: results in the last batch sent.
        last_batch_body_bytes: compressed request body of the last batch sent.
        budget_waits_total: times the uploader waited for the upload budget.
    """

    batches_acked_total: int = 0
    results_acked_total: int = 0
    duplicates_total: int = 0
    results_rejected_total: int = 0
    failures_total: int = 0
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_error: str | None = None
    clock_offset_s: float | None = None
    requests_total: int = 0
    bytes_sent_total: int = 0
    last_batch_results: int = 0
    last_batch_body_bytes: int = 0
    budget_waits_total: int = 0


class Uploader:
    """Move results from the spool to the server.

    Args:
        spool: the site's spool.
        site_id: the site this agent runs at (``BatchIn.site_id``).
        server_url: the server's base URL (``config.server.agent_url``).
        token: the site's bearer token.
        batch_max_results: the most results per batch.
        upload_interval_s: the pause between uploads when the backlog is small, and the
            base of the backoff.
        retry_max_s: the backoff cap.
        upload_timeout_s: the HTTP timeout of one upload.
        clock: the clock seam; ``None`` means :class:`SystemClock`.
        client: an ``httpx.AsyncClient`` to use; ``None`` means one made here (and closed by
            :meth:`aclose`).
        rand: uniform [0, 1) source for the backoff jitter.
        encoding: the body encoding to start with (compact; JSON after a 415).
        budget: the upload budget; ``None`` means no cap.
        clock_offset_warn_s: log a warning when the clock offset exceeds this, seconds.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        site_id: str,
        server_url: str,
        token: str,
        batch_max_results: int,
        upload_interval_s: float,
        retry_max_s: float,
        upload_timeout_s: float,
        clock: AgentClock | None = None,
        client: httpx.AsyncClient | None = None,
        rand: Callable[[], float] = random.random,
        encoding: UploadEncoding = UploadEncoding.COMPACT,
        budget: UploadBudget | None = None,
        clock_offset_warn_s: float = CLOCK_OFFSET_WARN_S,
    ) -> None:
        self.spool = spool
        self.site_id = site_id
        self.url = server_url.rstrip("/") + INGEST_PATH
        self.batch_max_results = batch_max_results
        self.upload_interval_s = upload_interval_s
        self.retry_max_s = retry_max_s
        self.upload_timeout_s = upload_timeout_s
        self.stats = UploadStats(clock_offset_s=spool.clock_offset_s())
        self.encoding = encoding
        self.budget = budget
        self.clock_offset_warn_s = clock_offset_warn_s
        self._token = token
        self._clock: AgentClock = clock or SystemClock()
        self._own_client = client is None
        # The whole exchange is bounded by ``upload_timeout_s`` (asyncio.timeout); httpx's
        # per-phase timeouts sit just above it as a backstop.
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(upload_timeout_s + 1.0))
        self._rand = rand
        self._batch_limit = batch_max_results
        self._backoff_attempt = 0
        self._wake = asyncio.Event()
        self._offset_warned = False
        self._retry_after_s: float | None = None
        self._budget_wait_s = 0.0
        self._pace_s = 0.0
        self._bytes_per_result = _INITIAL_BYTES_PER_RESULT
        self._acked_newest_us: dict[str, int] = {}
        self._refused_targets: set[str] = set()

    # -- the loop ------------------------------------------------------------------------

    def note_spooled(self) -> None:
        """Tell the uploader results were spooled; it wakes early once a batch is full."""
        if self.spool.backlog() >= self._batch_limit:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Upload until ``stop`` is set: every ``upload_interval_s``, at once while a full
        batch waits, after a backoff when the server cannot be reached or refuses."""
        while not stop.is_set():
            try:
                outcome = await self.upload_once()
            except Exception as exc:  # a bug or a broken spool: keep the loop, back off
                log.error("upload attempt failed unexpectedly: %s", _describe(exc), exc_info=True)
                outcome = self._failed(UploadOutcome.RETRY, _describe(exc), quiet=True)
            if outcome in _BACKOFF_OUTCOMES:
                delay_s = backoff_s(
                    self._backoff_attempt, self.upload_interval_s, self.retry_max_s, self._rand
                )
                if self._retry_after_s is not None:  # the server asked for at least this
                    delay_s = min(self.retry_max_s, max(delay_s, self._retry_after_s))
                self._backoff_attempt += 1
                await self._pause(delay_s, stop, wakeable=False)
            elif outcome is UploadOutcome.BUDGET:
                await self._pause(self._budget_wait_s, stop, wakeable=False)
            elif outcome in (UploadOutcome.SPLIT, UploadOutcome.DOWNGRADED):
                continue
            elif self.budget is not None and outcome is UploadOutcome.ACKED:
                await self._pause(max(self.upload_interval_s, self._pace_s), stop, wakeable=False)
            elif self.spool.backlog() >= self._batch_limit or outcome is UploadOutcome.REJECTED:
                await asyncio.sleep(0)
            else:
                await self._pause(self.upload_interval_s, stop, wakeable=True)

    async def flush(self, timeout_s: float) -> None:
        """Upload what is waiting until the spool is empty, an attempt fails, or
        ``timeout_s`` passes (results not sent stay in the spool for the next start)."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    outcome = await self.upload_once()
                    if outcome not in _PROGRESS_OUTCOMES:
                        break
        except TimeoutError:
            log.warning(
                "final upload did not finish within %gs; %d result(s) stay in the spool",
                timeout_s,
                self.spool.backlog(),
            )

    async def aclose(self) -> None:
        """Close the HTTP client if this uploader made it."""
        if self._own_client:
            await self._client.aclose()

    async def _pause(self, delay_s: float, stop: asyncio.Event, *, wakeable: bool) -> None:
        self._wake.clear()
        if wakeable and self.spool.backlog() >= self._batch_limit:
            return
        waits = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._clock.sleep(delay_s)),
        ]
        if wakeable:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    # -- one attempt ---------------------------------------------------------------------

    def select_batch(self, limit: int) -> tuple[list[ResultIn], SpoolReport]:
        """Return up to ``limit`` waiting results in upload order, and the spool's report.

        Order: the newest waiting result of each target newer than the newest the server
        acknowledged for it, then the oldest waiting. A target the server refused as unknown
        gets no place in front (its newest result would spoil every batch) until a batch
        with it is acknowledged. Blocking (SQLite): call it in a thread.
        """
        newest = [
            r
            for r in self.spool.peek_newest(self._acked_newest_us)
            if r.target_id not in self._refused_targets
        ][:limit]
        chosen = {r.result_id for r in newest}
        oldest = [r for r in self.spool.peek_batch(limit) if r.result_id not in chosen]
        batch = newest + oldest[: limit - len(newest)]
        ids = {r.result_id for r in batch}
        counts = self.spool.counts()
        report = SpoolReport(
            backlog=max(0, counts.backlog - len(batch)),
            oldest_unsent_at=self.spool.oldest_measured_at(besides=ids),
            dropped_total=counts.dropped_total,
            rejected_total=counts.rejected_total,
            clock_offset_s=self.stats.clock_offset_s,
        )
        return batch, report

    def encode(self, batch_id: str, batch: list[ResultIn], report: SpoolReport) -> bytes:
        """Return the gzip-compressed body of a batch in the current encoding."""
        body = BatchIn(
            batch_id=batch_id,
            site_id=self.site_id,
            agent_sent_at=self._clock.wall(),
            results=batch,
            spool=report,
        )
        if self.encoding is UploadEncoding.COMPACT:
            raw = encode_batch(body)
        else:  # fields left out are null: what a server before them accepts
            raw = body.model_dump_json(exclude_none=True).encode("utf-8")
        return gzip.compress(raw, compresslevel=GZIP_LEVEL)

    async def _prepare(self) -> tuple[list[ResultIn], str, bytes] | UploadOutcome:
        """Choose the batch (within the budget, if any) and encode it."""
        limit = self._batch_limit
        now = self._clock.wall()
        budget = self.budget
        if budget is not None:
            backlog = max(1, min(limit, self.spool.backlog()))
            want = min(
                budget.bytes_per_hour // 12,
                REQUEST_OVERHEAD_BYTES + int(self._bytes_per_result * backlog),
            )
            available = budget.available_bytes(now)
            if available < want and not budget.window_empty(now):
                return self._over_budget(budget.wait_s(now, want))
            room = available - REQUEST_OVERHEAD_BYTES
            limit = max(1, min(limit, int(room / self._bytes_per_result)))
        for _ in range(_BUDGET_FIT_TRIES):
            batch, report = await asyncio.to_thread(self.select_batch, limit)
            if not batch:
                return UploadOutcome.EMPTY
            batch_id = batch_id_for([r.result_id for r in batch])
            payload = await asyncio.to_thread(self.encode, batch_id, batch, report)
            self._bytes_per_result = max(1.0, len(payload) / len(batch))
            if budget is None:
                return batch, batch_id, payload
            room = budget.available_bytes(now) - REQUEST_OVERHEAD_BYTES
            if len(payload) <= room or budget.window_empty(now):
                return batch, batch_id, payload
            if len(batch) == 1:  # even one result does not fit: wait (only an empty window
                break  # may be overrun, see monitor.agent.budget)
            limit = max(1, min(len(batch) - 1, int(len(batch) * room / len(payload) * 0.9)))
        assert budget is not None  # the loop returns without a budget
        return self._over_budget(budget.wait_s(now, REQUEST_OVERHEAD_BYTES + len(payload)))

    def _over_budget(self, wait_s: float) -> UploadOutcome:
        self._budget_wait_s = max(wait_s, 0.001)
        self.stats.budget_waits_total += 1
        log.debug("upload budget spent for now; next upload in %.0f s", wait_s)
        return UploadOutcome.BUDGET

    def _count_bytes(self, sent_bytes: int) -> None:
        now = self._clock.wall()
        self.stats.bytes_sent_total += sent_bytes
        if self.budget is not None:
            self.budget.record(now, sent_bytes)
            self._pace_s = 3600.0 * sent_bytes / self.budget.bytes_per_hour
        try:
            self.spool.record_upload(now, sent_bytes)
        except Exception as exc:  # the log only serves the budget across restarts
            log.warning("could not log an upload in the spool: %s", exc)

    async def upload_once(self) -> UploadOutcome:
        """Send one batch (newest state first, then the oldest) and act on the answer."""
        self._retry_after_s = None
        prepared = await self._prepare()
        if isinstance(prepared, UploadOutcome):
            return prepared
        batch, batch_id, payload = prepared
        sent_at = self._clock.wall()
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": COMPACT_CONTENT_TYPE
            if self.encoding is UploadEncoding.COMPACT
            else JSON_CONTENT_TYPE,
            "Content-Encoding": "gzip",
            "User-Agent": USER_AGENT,
        }
        self.stats.requests_total += 1
        self.stats.last_batch_results = len(batch)
        self.stats.last_batch_body_bytes = len(payload)
        started_s = self._clock.monotonic()
        try:
            async with asyncio.timeout(self.upload_timeout_s):  # the whole exchange
                response = await self._client.post(self.url, content=payload, headers=headers)
        except httpx.ConnectError as exc:  # nothing crossed the link
            return self._failed(
                UploadOutcome.RETRY, f"cannot reach the server at {self.url}: {_describe(exc)}"
            )
        except httpx.HTTPError as exc:
            self._count_bytes(len(payload) + REQUEST_OVERHEAD_BYTES)
            return self._failed(
                UploadOutcome.RETRY, f"cannot reach the server at {self.url}: {_describe(exc)}"
            )
        except TimeoutError:
            self._count_bytes(len(payload) + REQUEST_OVERHEAD_BYTES)
            return self._failed(
                UploadOutcome.RETRY,
                f"the server at {self.url} did not answer within {self.upload_timeout_s:g} s",
            )
        round_trip_s = self._clock.monotonic() - started_s
        beyond = max(0, len(response.content) - RESPONSE_INCLUDED_BYTES)
        await asyncio.to_thread(self._count_bytes, len(payload) + REQUEST_OVERHEAD_BYTES + beyond)
        status = response.status_code
        self._retry_after_s = _retry_after_s(response)
        if self.encoding is UploadEncoding.COMPACT and _compact_unknown(response):
            self.encoding = UploadEncoding.JSON
            log.warning(
                "the server at %s does not accept the compact upload encoding (HTTP %d); "
                "sending JSON from now on (larger uploads): upgrade the server",
                self.url,
                status,
            )
            return UploadOutcome.DOWNGRADED
        if status == 200:
            return await self._on_ack(response, batch_id, batch, sent_at, round_trip_s)
        if status in (401, 403):
            return self._failed(
                UploadOutcome.AUTH,
                f"the server refused site {self.site_id}'s upload token (HTTP {status}): "
                f"check sites.{self.site_id}.token or token_env against the server's "
                f"configuration; {self.spool.backlog()} result(s) keep waiting in the spool",
            )
        if status == 413:
            return await self._too_large(batch)
        if status == 422:
            return await self._unprocessable(response, batch)
        if status >= 500 or status in _TRANSIENT_STATUSES:
            return self._failed(
                UploadOutcome.RETRY,
                f"the server at {self.url} answered HTTP {status}: {_snippet(response)}",
            )
        return self._failed(
            UploadOutcome.REFUSED,
            f"the server at {self.url} answered HTTP {status}: {_snippet(response)}; "
            "check server.public_url",
        )

    async def _on_ack(
        self,
        response: httpx.Response,
        batch_id: str,
        batch: list[ResultIn],
        sent_at: datetime,
        round_trip_s: float,
    ) -> UploadOutcome:
        ids = [r.result_id for r in batch]
        try:
            ack = BatchAck.model_validate_json(response.content)
        except ValidationError:
            return self._failed(
                UploadOutcome.RETRY,
                f"the server at {self.url} answered 200 without a batch acknowledgement: "
                f"{_snippet(response)}",
            )
        if ack.batch_id != batch_id or ack.stored + ack.duplicates != len(ids):
            return self._failed(
                UploadOutcome.RETRY,
                f"the server acknowledged batch {ack.batch_id} with {ack.stored} stored + "
                f"{ack.duplicates} duplicates for batch {batch_id} of {len(ids)} results; "
                "keeping them and retrying",
            )
        offset_s = self._record_offset(ack.server_time, sent_at, round_trip_s)
        await asyncio.to_thread(self._ack, ids, offset_s)
        self.note_acked(batch)
        if self.stats.consecutive_failures:
            log.info(
                "upload recovered after %d failed attempt(s); %d result(s) still waiting",
                self.stats.consecutive_failures,
                self.spool.backlog(),
            )
        stats = self.stats
        stats.batches_acked_total += 1
        stats.results_acked_total += len(ids)
        stats.duplicates_total += ack.duplicates
        stats.consecutive_failures = 0
        stats.last_success_at = self._clock.wall()
        stats.last_error = None
        self._backoff_attempt = 0
        self._batch_limit = min(self.batch_max_results, self._batch_limit * 2)
        log.debug(
            "uploaded batch %s: %d stored, %d duplicates", batch_id, ack.stored, ack.duplicates
        )
        return UploadOutcome.ACKED

    def _ack(self, ids: list[str], offset_s: float) -> None:
        """Remove acknowledged results (and keep the offset) in one spool transaction."""
        self.spool.ack(ids, clock_offset_s=offset_s)

    def note_acked(self, batch: Sequence[ResultIn]) -> None:
        """Remember the newest measurement acknowledged per target (for the batch order)."""
        for r in batch:
            self._refused_targets.discard(r.target_id)
            us = to_us(r.measured_at)
            if us > self._acked_newest_us.get(r.target_id, -(2**62)):
                self._acked_newest_us[r.target_id] = us

    async def _too_large(self, batch: list[ResultIn]) -> UploadOutcome:
        if len(batch) > 1:
            self._batch_limit = max(1, len(batch) // 2)
            log.warning(
                "the server found a batch of %d results too large (HTTP 413); sending %d at a time",
                len(batch),
                self._batch_limit,
            )
            return UploadOutcome.SPLIT
        return await self._reject(
            batch, "the server refused this single result as too large (HTTP 413)", backoff=True
        )

    async def _unprocessable(
        self, response: httpx.Response, batch: list[ResultIn]
    ) -> UploadOutcome:
        per_result, envelope = _validation_errors(response, len(batch))
        if per_result:
            reasons = _spread_target_errors(per_result, batch)
            self._refused_targets.update(
                batch[i].target_id
                for i, why in reasons.items()
                if any(field == "target_id" for field, _ in why)
            )
            rejected = 0
            for index, why in sorted(reasons.items()):
                text = "; ".join(_reason(field, msg) for field, msg in why)
                rejected += await asyncio.to_thread(
                    self.spool.reject, [batch[index].result_id], f"HTTP 422: {text}"
                )
            self.stats.results_rejected_total += rejected
            log.error(
                "the server refused %d result(s) as malformed (HTTP 422), moved to the spool's "
                "rejected table: %s",
                rejected,
                _shorten("; ".join(sorted({_reason(*r) for rs in reasons.values() for r in rs}))),
            )
            return UploadOutcome.REJECTED
        if envelope:
            return self._failed(
                UploadOutcome.REFUSED,
                f"the server refused the batch itself (HTTP 422): {_shorten('; '.join(envelope))}; "
                f"the results are kept",
            )
        if len(batch) > 1:
            self._batch_limit = max(1, len(batch) // 2)
            log.warning(
                "the server refused a batch of %d results (HTTP 422) without naming one: %s; "
                "sending %d at a time to find it",
                len(batch),
                _snippet(response),
                self._batch_limit,
            )
            return UploadOutcome.SPLIT
        return await self._reject(batch, f"HTTP 422: {_snippet(response)}", backoff=True)

    async def _reject(self, batch: list[ResultIn], reason: str, *, backoff: bool) -> UploadOutcome:
        moved = await asyncio.to_thread(self.spool.reject, [r.result_id for r in batch], reason)
        self.stats.results_rejected_total += moved
        log.error("moved %d result(s) to the spool's rejected table: %s", moved, reason)
        if backoff:
            return self._failed(UploadOutcome.REFUSED, reason, quiet=True)
        return UploadOutcome.REJECTED

    def _failed(
        self, outcome: UploadOutcome, message: str, *, quiet: bool = False
    ) -> UploadOutcome:
        self.stats.failures_total += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = message
        if not quiet:
            level = logging.ERROR if outcome is not UploadOutcome.RETRY else logging.WARNING
            log.log(
                level, "upload failed (attempt %d): %s", self.stats.consecutive_failures, message
            )
        return outcome

    def _record_offset(
        self, server_time: datetime, sent_at: datetime, round_trip_s: float
    ) -> float:
        offset_s = estimate_clock_offset_s(server_time, sent_at, round_trip_s)
        self.stats.clock_offset_s = offset_s
        off = abs(offset_s) > self.clock_offset_warn_s
        if off and not self._offset_warned:
            log.warning(
                "this agent's clock is %.1f s %s the server's; measurement times are off by "
                "that much: enable NTP on the agent host",
                abs(offset_s),
                "behind" if offset_s > 0 else "ahead of",
            )
        self._offset_warned = off
        return offset_s


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _shorten(text: str, limit: int = _BODY_SNIPPET_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _snippet(response: httpx.Response) -> str:
    try:
        text = response.text
    except Exception:
        return "<unreadable body>"
    return _shorten(" ".join(text.split())) or "<empty body>"


def _reason(field: str, msg: str) -> str:
    return msg if field in msg else f"{field}: {msg}"


def _spread_target_errors(
    per_result: dict[int, list[FieldError]], batch: Sequence[ResultIn]
) -> dict[int, list[FieldError]]:
    """Extend a ``target_id`` refusal to every result of that target in the batch.

    The server names the first result per unknown target id; the others of the same target
    would be refused one request at a time. Returns ``{result index: [reasons]}``.
    """
    out = {i: list(rs) for i, rs in per_result.items()}
    for index, reasons in per_result.items():
        target_reasons = [r for r in reasons if r[0] == "target_id"]
        if not target_reasons:
            continue
        target_id = batch[index].target_id
        for other, result in enumerate(batch):
            if result.target_id == target_id and other not in out:
                out[other] = target_reasons
    return out


def _compact_unknown(response: httpx.Response) -> bool:
    """Return whether an answer to a compact body says the server cannot read that encoding:
    415, or a 422 naming the compact envelope's fields (``cols``, ``v``, ``n``) as unknown."""
    if response.status_code == 415:
        return True
    if response.status_code != 422:
        return False
    try:
        data: Any = json.loads(response.content)
    except ValueError:
        return False
    errors = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(e, dict)
        and e.get("type") == "extra_forbidden"
        and isinstance(e.get("loc"), list)
        and e["loc"][-1:] != []
        and e["loc"][-1] in _COMPACT_ENVELOPE
        for e in errors
    )


def _retry_after_s(response: httpx.Response) -> float | None:
    """Return a ``Retry-After: <seconds>`` header's delay; ``None`` if absent or a date."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


def _validation_errors(
    response: httpx.Response, batch_size: int
) -> tuple[dict[int, list[FieldError]], list[str]]:
    """Split a FastAPI-style 422 ``detail`` list into per-result and envelope messages.

    Returns ``({result index: [(field, message)]}, [envelope messages])``; both empty when the body
    is not a ``{"detail": [{"loc": [...], "msg": ...}, ...]}`` list.
    """
    try:
        data: Any = json.loads(response.content)
    except ValueError:
        return {}, []
    errors = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return {}, []
    per_result: dict[int, list[FieldError]] = {}
    envelope: list[str] = []
    for err in errors:
        if not isinstance(err, dict) or not isinstance(err.get("loc"), list):
            return {}, []
        loc: list[Any] = err["loc"]
        msg = str(err.get("msg", "invalid"))
        if (
            len(loc) >= 3
            and loc[:2] == ["body", "results"]
            and isinstance(loc[2], int)
            and 0 <= loc[2] < batch_size
        ):
            field = ".".join(str(p) for p in loc[3:]) or "result"
            per_result.setdefault(loc[2], []).append((field, msg))
        else:
            envelope.append(f"{'.'.join(str(p) for p in loc)}: {msg}")
    return per_result, envelope
