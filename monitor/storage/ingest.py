"""Store an uploaded batch exactly once: idempotent by ``result_id``, atomic per batch."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.storage.models import Batch, Result, SiteAgent, Target
from monitor.storage.models_agent import AgentReport
from monitor.wire import BatchAck, BatchIn, ResultIn, SpoolReport

log = logging.getLogger("linkwatch.storage.ingest")

_RESULTS: Table = Result.__table__  # type: ignore[assignment]
_BATCHES: Table = Batch.__table__  # type: ignore[assignment]
_AGENTS: Table = SiteAgent.__table__  # type: ignore[assignment]
_REPORTS: Table = AgentReport.__table__  # type: ignore[assignment]


class UnknownTargetsError(ValueError):
    """A batch names target ids its site does not have; nothing of the batch was stored.

    Attributes:
        site_id: the uploading site.
        unknown: ``(index in batch.results, target_id)`` of the first result per unknown id.
    """

    def __init__(self, site_id: str, unknown: Sequence[tuple[int, str]]) -> None:
        self.site_id = site_id
        self.unknown = tuple(unknown)
        ids = ", ".join(repr(target_id) for _, target_id in self.unknown)
        super().__init__(
            f"site {site_id!r} has no target {ids}; add it to the server's configuration "
            "or remove it from the agent's (nothing of this batch was stored)"
        )


def ingest_batch(session: Session, site_id: str, batch: BatchIn, now: datetime) -> BatchAck:
    """Store ``batch`` from ``site_id``'s agent; return how many results were new.

    Each result is inserted with ``ON CONFLICT (result_id) DO NOTHING``, so a batch (or a
    result) sent again is stored once: ``stored`` counts rows inserted now, ``duplicates``
    the rest (``stored + duplicates == len(batch.results)``). The batch id is recorded; a
    batch seen before is answered the same way (all duplicates, unless it carries results
    never stored). The site's agent row is updated: ``last_upload_at = now``,
    ``last_measured_at`` = newest ``measured_at`` ever uploaded, ``clock_offset_s = now -
    agent_sent_at`` (server minus agent clock, seconds, upload transit time included),
    ``uploads + 1``, ``results_stored + stored``. A batch carrying the agent's spool report
    (``batch.spool``) replaces the site's row in ``agent_reports`` (``reported_at = now``).

    ``now`` is the server's clock (aware UTC). The caller owns the transaction and commits.

    Raises:
        UnknownTargetsError: a result names a target id unknown for the site (any, active
            or not); nothing was written, the caller should roll back.
        ValueError: ``batch.site_id`` is not ``site_id``.
    """
    if batch.site_id != site_id:
        raise ValueError(f"batch is for site {batch.site_id!r}, not {site_id!r}")
    insert = _dialect_insert(session)
    _check_targets(session, site_id, batch.results)

    stored = 0
    if batch.results and session.get_bind().dialect.name == "postgresql":
        stored = _insert_results_postgresql(session, site_id, batch.results, now)
    elif batch.results:
        stmt = (
            insert(_RESULTS)
            .on_conflict_do_nothing(index_elements=["result_id"])
            .returning(_RESULTS.c.result_id)
        )
        rows = [_result_row(site_id, r, now) for r in batch.results]
        stored = len(session.execute(stmt, rows).all())
    duplicates = len(batch.results) - stored

    new_batch = session.execute(
        insert(_BATCHES)
        .values(
            batch_id=batch.batch_id,
            site_id=site_id,
            received_at=now,
            agent_sent_at=batch.agent_sent_at,
            results=len(batch.results),
            stored=stored,
        )
        .on_conflict_do_nothing(index_elements=["batch_id"])
        .returning(_BATCHES.c.batch_id)
    ).first()
    if new_batch is None:
        log.info(
            "site %s sent batch %s again: %d result(s), %d new",
            site_id,
            batch.batch_id,
            len(batch.results),
            stored,
        )

    newest = max((r.measured_at for r in batch.results), default=None)
    offset_s = (now - batch.agent_sent_at).total_seconds()
    upsert = insert(_AGENTS).values(
        site_id=site_id,
        last_upload_at=now,
        last_measured_at=newest,
        clock_offset_s=offset_s,
        uploads=1,
        results_stored=stored,
    )
    old, new = _AGENTS.c.last_measured_at, upsert.excluded.last_measured_at
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["site_id"],
            set_={
                "last_upload_at": upsert.excluded.last_upload_at,
                "last_measured_at": case(
                    (old.is_(None), new),
                    (new.is_(None), old),
                    (new > old, new),
                    else_=old,
                ),
                "clock_offset_s": upsert.excluded.clock_offset_s,
                "uploads": _AGENTS.c.uploads + 1,
                "results_stored": _AGENTS.c.results_stored + stored,
            },
        )
    )
    if batch.spool is not None:
        _store_report(session, insert, site_id, batch.spool, now)
    return BatchAck(batch_id=batch.batch_id, stored=stored, duplicates=duplicates, server_time=now)


def _store_report(
    session: Session, insert: Any, site_id: str, report: SpoolReport, now: datetime
) -> None:
    values = {
        "reported_at": now,
        "backlog": report.backlog,
        "oldest_unsent_at": report.oldest_unsent_at,
        "dropped_total": report.dropped_total,
        "rejected_total": report.rejected_total,
        "clock_offset_s": report.clock_offset_s,
    }
    upsert = insert(_REPORTS).values(site_id=site_id, **values)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["site_id"], set_={k: upsert.excluded[k] for k in values}
        )
    )


# PostgreSQL: the whole batch travels as one JSON parameter and is unpacked by the server
# (json_to_recordset), one statement for 5000 rows. A multi-row VALUES statement instead has
# 100,000 placeholders, which psycopg rewrites in Python on every execution (most of the
# ingest time, measured by bench/backfill.py). Numbers go through JSON exactly: Python
# writes the shortest repr that reads back to the same double, and PostgreSQL's float8
# input rounds correctly.
_PG_COLUMNS = (
    ("result_id", "varchar"),
    ("target_id", "varchar"),
    ("kind", "varchar"),
    ("status", "varchar"),
    ("measured_at", "timestamptz"),
    ("duration_s", "float8"),
    ("rtt_s", "float8"),
    ("packet_loss", "float8"),
    ("jitter_s", "float8"),
    ("sent", "integer"),
    ("received", "integer"),
    ("duplicates", "integer"),
    ("address", "varchar"),
    ("family", "integer"),
    ("error", "text"),
    ("rtts_s", "json"),
    ("phases_s", "json"),
    ("detail", "json"),
    ("clock_offset_s", "float8"),
)
_PG_INSERT = text(
    "INSERT INTO results (site_id, received_at, "
    + ", ".join(name for name, _ in _PG_COLUMNS)
    + ") SELECT :site_id, :received_at, "
    + ", ".join(f"r.{name}" for name, _ in _PG_COLUMNS)
    + " FROM json_to_recordset(CAST(:rows AS json)) AS r("
    + ", ".join(f"{name} {kind}" for name, kind in _PG_COLUMNS)
    + ") ON CONFLICT (result_id) DO NOTHING RETURNING result_id"
)


def _insert_results_postgresql(
    session: Session, site_id: str, results: Sequence[ResultIn], now: datetime
) -> int:
    """Insert ``results`` in one statement; return how many were new."""
    rows = [
        {
            **r.model_dump(mode="json", include={name for name, _ in _PG_COLUMNS}),
            "kind": r.kind.value,
            "status": r.status.value,
        }
        for r in results
    ]
    payload = json.dumps(rows, separators=(",", ":"), allow_nan=False)
    inserted = session.execute(
        _PG_INSERT, {"site_id": site_id, "received_at": now, "rows": payload}
    )
    return len(inserted.all())


def _dialect_insert(session: Session) -> Any:
    """Return the ``insert`` of the session's backend (both support ON CONFLICT)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"database backend {name!r} is not supported")


def _check_targets(session: Session, site_id: str, results: Sequence[ResultIn]) -> None:
    wanted = {r.target_id for r in results}
    if not wanted:
        return
    known = set(
        session.scalars(
            select(Target.target_id).where(
                Target.site_id == site_id, Target.target_id.in_(sorted(wanted))
            )
        )
    )
    if wanted <= known:
        return
    unknown: dict[str, int] = {}
    for index, r in enumerate(results):
        if r.target_id not in known and r.target_id not in unknown:
            unknown[r.target_id] = index
    raise UnknownTargetsError(site_id, [(i, t) for t, i in unknown.items()])


def _result_row(site_id: str, r: ResultIn, now: datetime) -> dict[str, Any]:
    return {
        "result_id": r.result_id,
        "site_id": site_id,
        "target_id": r.target_id,
        "kind": r.kind.value,
        "status": r.status.value,
        "measured_at": r.measured_at,
        "received_at": now,
        "duration_s": r.duration_s,
        "rtt_s": r.rtt_s,
        "packet_loss": r.packet_loss,
        "jitter_s": r.jitter_s,
        "sent": r.sent,
        "received": r.received,
        "duplicates": r.duplicates,
        "address": r.address,
        "family": r.family,
        "error": r.error,
        "rtts_s": list(r.rtts_s),
        "phases_s": dict(r.phases_s),
        "detail": dict(r.detail),
        "clock_offset_s": r.clock_offset_s,
    }
