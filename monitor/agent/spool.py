"""The agent's local spool: every measured result waits here until the server acknowledged it.

One SQLite file per site agent, in WAL mode with ``synchronous=FULL``: a result counts as
taken only once its transaction is committed, and with FULL a committed transaction survives
a power cut as well as a killed process (NORMAL in WAL mode survives ``kill -9`` but may roll
back the last commits on power loss, and border posts lose power). The price is one fsync
per ``put``, a few per second at most for a site's targets.

Bounds: at most ``max_results`` results and none older than ``max_age_s`` (by
``measured_at``). Over a bound the OLDEST results are dropped first (oldest = spooled
first); every drop is counted in the persistent ``dropped_total`` (it survives restarts),
never silent. Results the server refused as malformed move to a ``rejected`` table with
the server's reason (also bounded by ``max_results``, also counted), from where
:meth:`Spool.requeue_rejected` can put them back once the server is fixed.

The spool is one process's: a second agent on the same file is refused (an exclusive
``flock`` on ``<spool>.lock``). Methods are thread-safe (one lock), so the async agent calls
them through ``asyncio.to_thread`` and an fsync never stalls the probes' event loop.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from monitor.wire import ResultIn

DEFAULT_MAX_RESULTS = 1_000_000
DEFAULT_MAX_AGE_S = 7 * 86_400.0
_REASON_MAX_CHARS = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id TEXT NOT NULL UNIQUE,
    measured_at_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    target_id TEXT
);
CREATE INDEX IF NOT EXISTS ix_results_measured_at ON results (measured_at_us);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id TEXT NOT NULL UNIQUE,
    measured_at_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    rejected_at_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    sent_at_us INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
"""
# Spools written before the target_id column get it (filled from the stored JSON) at open.
_TARGET_INDEX = "CREATE INDEX IF NOT EXISTS ix_results_target_seq ON results (target_id, seq)"
_UPLOAD_LOG_S = 3600

# Counter names in the ``counters`` table.
DROPPED_FULL = "dropped_full"
DROPPED_AGE = "dropped_age"
REJECTED = "rejected"
REJECTED_DROPPED = "rejected_dropped"


class SpoolError(Exception):
    """The spool file cannot be used; ``str(exc)`` names the file and what to do."""


@dataclass(frozen=True, slots=True)
class SpoolCounts:
    """A snapshot of the spool's counters.

    Attributes:
        backlog: results waiting for upload.
        dropped_full_total: results dropped because the spool held ``max_results``.
        dropped_age_total: results dropped because they were older than ``max_age_s``.
        rejected_total: results the server refused as malformed (moved to ``rejected``).
        rejected_waiting: results in the ``rejected`` table now.
        rejected_dropped_total: rejected results dropped to bound the ``rejected`` table.
    """

    backlog: int
    dropped_full_total: int
    dropped_age_total: int
    rejected_total: int
    rejected_waiting: int
    rejected_dropped_total: int

    @property
    def dropped_total(self) -> int:
        """Every result the spool dropped before it was uploaded, for any reason."""
        return self.dropped_full_total + self.dropped_age_total


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _to_us(moment: datetime) -> int:
    """Convert an aware datetime to integer microseconds since the Unix epoch (exact)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


class Spool:
    """A bounded, durable FIFO of :class:`ResultIn` in one SQLite file.

    Args:
        path: the SQLite file; created (with its parent folders) when missing.
        max_results: the most results kept waiting; over it the oldest are dropped.
        max_age_s: results measured longer ago than this (by ``clock``) are dropped.
        clock: returns "now" as an aware UTC datetime; used only for the age bound.

    Raises:
        SpoolError: the file cannot be opened as a spool, or another process holds it.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_results: int = DEFAULT_MAX_RESULTS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if max_results < 1:
            raise ValueError("max_results must be at least 1")
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        self.path = Path(path)
        self.max_results = max_results
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._lock_file = self._take_file_lock()
        try:
            self._db = self._connect()
            self._backlog = self._count("results")
            with self._transaction() as db:
                self._enforce_bounds(db)
        except BaseException:
            if hasattr(self, "_db"):
                self._db.close()
            self._lock_file.close()
            raise

    # -- opening -------------------------------------------------------------------------

    def _take_file_lock(self) -> IO[bytes]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = open(f"{self.path}.lock", "ab")  # noqa: SIM115 (held until close)
        except OSError as exc:
            raise SpoolError(f"cannot create the spool next to {self.path}: {exc}") from exc
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock_file.close()
            raise SpoolError(
                f"spool {self.path} is in use by another agent process; "
                "run one agent per site, or give this one another spool_path"
            ) from exc
        return lock_file

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"spool {self.path}: SQLite refused WAL mode (got {mode})")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
            if "target_id" not in columns:
                db.execute("ALTER TABLE results ADD COLUMN target_id TEXT")
            db.execute(
                "UPDATE results SET target_id = json_extract(body, '$.target_id') "
                "WHERE target_id IS NULL"
            )
            db.execute(_TARGET_INDEX)
        except sqlite3.DatabaseError as exc:
            raise SpoolError(
                f"spool {self.path} cannot be opened as an SQLite spool: {exc}; "
                "move the file aside to start an empty spool"
            ) from exc
        return db

    # -- the public interface ------------------------------------------------------------

    def put(self, results: Sequence[ResultIn]) -> int:
        """Store ``results`` in one transaction, then enforce the bounds; return how many.

        A ``result_id`` already waiting is ignored (the same result spooled twice is one
        result). Returns the number of new results stored; once this returns they are
        committed to disk (``synchronous=FULL``).
        """
        rows = [
            (r.result_id, _to_us(r.measured_at), r.model_dump_json(exclude_none=True), r.target_id)
            for r in results
        ]
        if not rows:
            return 0
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO results (result_id, measured_at_us, body, target_id) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            stored = db.total_changes - before
            self._backlog += stored
            self._enforce_bounds(db)
        return stored

    def peek_batch(self, max_results: int) -> list[ResultIn]:
        """Return up to ``max_results`` waiting results, oldest (first spooled) first.

        The results stay in the spool until :meth:`ack`. A stored row that no longer parses
        as :class:`ResultIn` (written by another version) is moved to ``rejected`` with the
        parse error as the reason, never returned and never lost.
        """
        if max_results < 1:
            return []
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT result_id, body FROM results ORDER BY seq LIMIT ?", (max_results,)
            ).fetchall()
        return self._parse(rows)

    def peek_newest(self, newer_than_us: Mapping[str, int] | None = None) -> list[ResultIn]:
        """Return the newest waiting result of each target, by target id.

        A target whose newest waiting result was measured at or before
        ``newer_than_us[target_id]`` (microseconds since the Unix epoch) is left out: that
        result is backlog, not news. The results stay in the spool until :meth:`ack`.
        """
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT result_id, body, target_id, measured_at_us FROM results "
                "WHERE seq IN (SELECT MAX(seq) FROM results GROUP BY target_id) ORDER BY target_id"
            ).fetchall()
        after = newer_than_us or {}
        fresh = [
            (result_id, body)
            for result_id, body, target_id, measured_us in rows
            if target_id is None or int(measured_us) > after.get(str(target_id), -(2**62))
        ]
        return self._parse(fresh)

    def _parse(self, rows: Sequence[tuple[str, str]]) -> list[ResultIn]:
        out: list[ResultIn] = []
        unreadable: dict[str, str] = {}
        for result_id, body in rows:
            try:
                out.append(ResultIn.model_validate_json(body))
            except ValidationError as exc:
                unreadable[str(result_id)] = f"unreadable in the spool: {exc}"
        for result_id, reason in unreadable.items():
            self.reject([result_id], reason)
        return out

    def ack(self, result_ids: Iterable[str], *, clock_offset_s: float | None = None) -> int:
        """Delete the results the server acknowledged; return how many were deleted.

        ``clock_offset_s``, when given, is stored in the same transaction as the agent's
        newest clock-offset estimate (see :meth:`clock_offset_s`).
        """
        ids = [(i,) for i in result_ids]
        if not ids and clock_offset_s is None:
            return 0
        with self._transaction() as db:
            before = db.total_changes
            db.executemany("DELETE FROM results WHERE result_id = ?", ids)
            deleted = db.total_changes - before
            self._backlog -= deleted
            if clock_offset_s is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('clock_offset_s', ?)",
                    (repr(float(clock_offset_s)),),
                )
        return deleted

    def clock_offset_s(self) -> float | None:
        """Return the clock offset last stored by :meth:`ack`; ``None`` if never."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT value FROM meta WHERE name = 'clock_offset_s'"
            ).fetchone()
        return None if row is None else float(row[0])

    def record_upload(self, sent_at: datetime, sent_bytes: int) -> None:
        """Log an upload attempt of ``sent_bytes`` at ``sent_at`` (kept one hour, for the
        upload budget across restarts)."""
        at_us = _to_us(sent_at)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO uploads (sent_at_us, bytes) VALUES (?, ?)", (at_us, int(sent_bytes))
            )
            db.execute(
                "DELETE FROM uploads WHERE sent_at_us < ?", (at_us - _UPLOAD_LOG_S * 1_000_000,)
            )

    def recent_uploads(self) -> list[tuple[datetime, int]]:
        """Return the logged upload attempts ``(sent_at, bytes)``, oldest first."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT sent_at_us, bytes FROM uploads ORDER BY sent_at_us"
            ).fetchall()
        return [(_from_us(int(at)), int(n)) for at, n in rows]

    def reject(self, result_ids: Iterable[str], reason: str) -> int:
        """Move results the server refused to the ``rejected`` table with ``reason``.

        Counted in ``rejected_total``; the table is bounded by ``max_results`` (oldest
        dropped first, counted in ``rejected_dropped_total``). Returns how many moved.
        """
        ids = [(i,) for i in result_ids]
        if not ids:
            return 0
        now_us = _to_us(self._clock())
        reason = reason[:_REASON_MAX_CHARS]
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR REPLACE INTO rejected "
                "(result_id, measured_at_us, body, reason, rejected_at_us) "
                "SELECT result_id, measured_at_us, body, ?, ? FROM results WHERE result_id = ?",
                [(reason, now_us, i) for (i,) in ids],
            )
            moved = db.total_changes - before
            before = db.total_changes
            db.executemany("DELETE FROM results WHERE result_id = ?", ids)
            self._backlog -= db.total_changes - before
            self._bump(db, REJECTED, moved)
            over = self._count_in(db, "rejected") - self.max_results
            if over > 0:
                db.execute(
                    "DELETE FROM rejected WHERE seq IN "
                    "(SELECT seq FROM rejected ORDER BY seq LIMIT ?)",
                    (over,),
                )
                self._bump(db, REJECTED_DROPPED, over)
        return moved

    def requeue_rejected(self) -> int:
        """Move every rejected result back to the upload queue; return how many moved.

        For the operator, once the server that refused them is fixed. Requeued results go
        to the back of the queue and are subject to the bounds again.
        """
        with self._transaction() as db:
            before = db.total_changes
            db.execute(
                "INSERT OR IGNORE INTO results (result_id, measured_at_us, body, target_id) "
                "SELECT result_id, measured_at_us, body, json_extract(body, '$.target_id') "
                "FROM rejected ORDER BY seq"
            )
            moved = db.total_changes - before
            db.execute("DELETE FROM rejected")
            self._backlog += moved
            self._enforce_bounds(db)
        return moved

    def rejected_reasons(self, limit: int = 100) -> list[tuple[str, str]]:
        """Return up to ``limit`` ``(result_id, reason)`` pairs from ``rejected``, oldest first."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT result_id, reason FROM rejected ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    def backlog(self) -> int:
        """Return the number of results waiting for upload (kept in memory: no query)."""
        return self._backlog

    def oldest_measured_at(self, besides: Collection[str] = ()) -> datetime | None:
        """Return the earliest ``measured_at`` waiting (aware UTC), ``None`` when empty.

        Results whose id is in ``besides`` (e.g. the batch being sent) are not counted.
        """
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT result_id, measured_at_us FROM results ORDER BY measured_at_us LIMIT ?",
                (len(besides) + 1,),
            ).fetchall()
        skip = set(besides)
        for result_id, measured_us in rows:
            if result_id not in skip:
                return _from_us(int(measured_us))
        return None

    def prune_expired(self) -> int:
        """Drop results older than ``max_age_s`` now; return how many were dropped."""
        with self._transaction() as db:
            return self._drop_expired(db)

    @property
    def dropped_total(self) -> int:
        """Every result dropped before upload since the spool file was created."""
        return self.counts().dropped_total

    def counts(self) -> SpoolCounts:
        """Return a snapshot of the backlog and the persistent counters."""
        with self._lock:
            self._check_open()
            values = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            rejected_waiting = self._count_in(self._db, "rejected")
        return SpoolCounts(
            backlog=self._backlog,
            dropped_full_total=int(values.get(DROPPED_FULL, 0)),
            dropped_age_total=int(values.get(DROPPED_AGE, 0)),
            rejected_total=int(values.get(REJECTED, 0)),
            rejected_waiting=rejected_waiting,
            rejected_dropped_total=int(values.get(REJECTED_DROPPED, 0)),
        )

    def close(self) -> None:
        """Checkpoint and close the file and release the spool lock (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # On failure the WAL is replayed at the next open; nothing is lost.
            with suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._lock_file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._check_open()
            saved_backlog = self._backlog
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._backlog = saved_backlog
                raise
            self._db.execute("COMMIT")

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self.path} is closed")

    def _count(self, table: str) -> int:
        return self._count_in(self._db, table)

    @staticmethod
    def _count_in(db: sqlite3.Connection, table: str) -> int:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int) -> None:
        if by:
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    def _drop_expired(self, db: sqlite3.Connection) -> int:
        cutoff_us = _to_us(self._clock()) - int(self.max_age_s * 1_000_000)
        before = db.total_changes
        db.execute("DELETE FROM results WHERE measured_at_us < ?", (cutoff_us,))
        dropped = db.total_changes - before
        self._backlog -= dropped
        self._bump(db, DROPPED_AGE, dropped)
        return dropped

    def _enforce_bounds(self, db: sqlite3.Connection) -> None:
        """Drop expired results, then the oldest over ``max_results``; count both."""
        self._drop_expired(db)
        over = self._backlog - self.max_results
        if over > 0:
            before = db.total_changes
            db.execute(
                "DELETE FROM results WHERE seq IN (SELECT seq FROM results ORDER BY seq LIMIT ?)",
                (over,),
            )
            dropped = db.total_changes - before
            self._backlog -= dropped
            self._bump(db, DROPPED_FULL, dropped)
