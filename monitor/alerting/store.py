"""The evaluator's reads and writes: results in, periods, checkpoints, progress, incidents out.

Every function takes the caller's session and never commits. Results are read in
``(measured_at, id)`` order, the order the state machine is fed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from monitor.alerting.events import IncidentKind
from monitor.alerting.state_machine import Segment, Snapshot
from monitor.storage.models import Result
from monitor.storage.models_incidents import (
    EvaluatorCursor,
    Incident,
    TargetCheckpoint,
    TargetProgress,
    TargetStatePeriod,
)

_PERIODS: Table = TargetStatePeriod.__table__  # type: ignore[assignment]

Key = tuple[datetime, int]
"""A result's place in a target's order: ``(measured_at, results.id)``."""

CURSOR_NAME = "results"
HOURLY_CHECKPOINTS_KEPT_H = 8 * 24
"""Hourly checkpoints are kept this long (hours of measured time); one a day after that."""


@dataclass(frozen=True, slots=True)
class Progress:
    """A target's evaluation progress (see ``models_incidents.TargetProgress``)."""

    last: Key | None
    max_seq: int | None
    snapshot: Snapshot
    behind: bool


@dataclass(frozen=True, slots=True)
class ResultRow:
    """The columns of a result the state machine reads."""

    id: int
    status: str
    measured_at: datetime
    rtt_s: float | None
    packet_loss: float | None
    jitter_s: float | None
    error: str | None


def load_progress(session: Session) -> dict[tuple[str, str], Progress]:
    """Return every target's progress by ``(site_id, target_id)``."""
    out: dict[tuple[str, str], Progress] = {}
    for row in session.scalars(select(TargetProgress)):
        last = (row.last_at, row.last_seq) if row.last_at and row.last_seq is not None else None
        out[(row.site_id, row.target_id)] = Progress(
            last, row.max_seq, Snapshot.from_json(row.snapshot), row.behind
        )
    return out


def save_progress(
    session: Session, rows: Sequence[tuple[str, str, Progress]], now: datetime
) -> None:
    """Insert or replace targets' progress rows ``(site_id, target_id, progress)``."""
    values = [
        {
            "site_id": site_id,
            "target_id": target_id,
            "last_at": progress.last[0] if progress.last else None,
            "last_seq": progress.last[1] if progress.last else None,
            "max_seq": progress.max_seq,
            "snapshot": progress.snapshot.to_json(),
            "behind": progress.behind,
            "updated_at": now,
        }
        for site_id, target_id, progress in rows
    ]
    if not values:
        return
    insert = _insert(session)(TargetProgress.__table__)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["site_id", "target_id"],
            set_={
                name: insert.excluded[name]
                for name in ("last_at", "last_seq", "max_seq", "snapshot", "behind", "updated_at")
            },
        ),
        values,
    )


def _after(key: Key | None) -> Any:
    if key is None:
        return True
    at, seq = key
    return or_(Result.measured_at > at, and_(Result.measured_at == at, Result.id > seq))


def load_results(
    session: Session,
    site_id: str,
    target_id: str,
    after: Key | None,
    up_to_id: int,
    limit: int,
) -> list[ResultRow]:
    """Return up to ``limit`` results of a target after ``after``, ids ``<= up_to_id``."""
    stmt = (
        select(
            Result.id,
            Result.status,
            Result.measured_at,
            Result.rtt_s,
            Result.packet_loss,
            Result.jitter_s,
            Result.error,
        )
        .where(Result.site_id == site_id, Result.target_id == target_id, Result.id <= up_to_id)
        .where(_after(after))
        .order_by(Result.measured_at, Result.id)
        .limit(limit)
    )
    return [ResultRow(*row) for row in session.execute(stmt)]


def checkpoint_before(
    session: Session, site_id: str, target_id: str, key: Key
) -> tuple[Key, Snapshot] | None:
    """Return the newest checkpoint of a target strictly before ``key``, or ``None``."""
    at, seq = key
    row = session.scalars(
        select(TargetCheckpoint)
        .where(TargetCheckpoint.site_id == site_id, TargetCheckpoint.target_id == target_id)
        .where(
            or_(
                TargetCheckpoint.at < at,
                and_(TargetCheckpoint.at == at, TargetCheckpoint.seq < seq),
            )
        )
        .order_by(TargetCheckpoint.at.desc(), TargetCheckpoint.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return (row.at, row.seq), Snapshot.from_json(row.snapshot)


def drop_checkpoints_from(
    session: Session, site_id: str, target_id: str, rewrite_from: datetime
) -> None:
    """Drop a target's checkpoints at or after ``rewrite_from`` (they are evaluated again)."""
    session.execute(
        delete(TargetCheckpoint).where(
            TargetCheckpoint.site_id == site_id,
            TargetCheckpoint.target_id == target_id,
            TargetCheckpoint.at >= rewrite_from,
        )
    )


def add_checkpoints(session: Session, rows: Sequence[tuple[str, str, Snapshot]]) -> None:
    """Store checkpoints ``(site_id, target_id, settled snapshot)``; an hour keeps its first."""
    values = [
        {
            "site_id": site_id,
            "target_id": target_id,
            "bucket": int(cp.last_at.timestamp()) // 3600,
            "at": cp.last_at,
            "seq": cp.last_seq,
            "snapshot": cp.to_json(),
        }
        for site_id, target_id, cp in rows
        if cp.last_at is not None and cp.last_seq is not None
    ]
    if values:
        insert = _insert(session)(TargetCheckpoint.__table__)
        session.execute(insert.on_conflict_do_nothing(), values)


def prune_checkpoints(session: Session, now: datetime) -> int:
    """Thin out old checkpoints: hourly ones older than 8 days go, one a day stays."""
    oldest_hourly = int(now.timestamp()) // 3600 - HOURLY_CHECKPOINTS_KEPT_H
    result = session.execute(
        delete(TargetCheckpoint).where(
            TargetCheckpoint.bucket < oldest_hourly, TargetCheckpoint.bucket % 24 != 0
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def write_periods(
    session: Session,
    site_id: str,
    target_id: str,
    rewrite_from: datetime,
    segments: Sequence[Segment],
) -> None:
    """Replace a target's periods from ``rewrite_from`` on by ``segments``.

    Periods starting at or after ``rewrite_from`` are deleted, the one spanning it is cut
    there, and ``segments`` are stored, the first merged into the one before when they
    touch and agree.
    """
    table = TargetStatePeriod
    mine = (table.site_id == site_id, table.target_id == target_id)
    session.execute(delete(table).where(*mine, table.start_at >= rewrite_from))
    before = session.scalars(
        select(table).where(*mine, table.start_at < rewrite_from).order_by(table.start_at.desc())
    ).first()
    pending = list(segments)
    if before is not None:
        if before.end_at > rewrite_from:
            before.end_at = rewrite_from
        if pending and before.state == pending[0].state and before.end_at == pending[0].start:
            before.end_at = pending[0].end
            pending = pending[1:]
    session.add_all(
        table(
            site_id=site_id,
            target_id=target_id,
            state=seg.state.value,
            start_at=seg.start,
            end_at=seg.end,
        )
        for seg in pending
    )


def append_periods(
    session: Session, items: Sequence[tuple[str, str, datetime, Sequence[Segment]]]
) -> None:
    """Append segments to targets' periods: ``(site_id, target_id, start, segments)``.

    For targets evaluated on from their last round (no period starts at or after
    ``start``): the newest period is cut at ``start`` (or extended by the first segment
    when they touch and agree), the rest are inserted; a few statements for all targets.
    """
    if not items:
        return
    table = TargetStatePeriod
    newer = aliased(TargetStatePeriod)
    newest = (
        select(func.max(newer.start_at))
        .where(newer.site_id == table.site_id, newer.target_id == table.target_id)
        .correlate(table)
        .scalar_subquery()
    )
    keys = [(site_id, target_id) for site_id, target_id, _, _ in items]
    tails = {
        (row.site_id, row.target_id): row
        for row in session.execute(
            select(table.id, table.site_id, table.target_id, table.state, table.end_at).where(
                tuple_(table.site_id, table.target_id).in_(keys), table.start_at == newest
            )
        )
    }
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for site_id, target_id, start, segments in items:
        pending = list(segments)
        tail = tails.get((site_id, target_id))
        if tail is not None:
            end = min(tail.end_at, start)
            if pending and tail.state == pending[0].state.value and end == pending[0].start:
                end = pending.pop(0).end
            if end != tail.end_at:
                updates.append({"b_id": tail.id, "b_end": end})
        inserts += [
            {
                "site_id": site_id,
                "target_id": target_id,
                "state": seg.state.value,
                "start_at": seg.start,
                "end_at": seg.end,
            }
            for seg in pending
        ]
    if updates:
        session.execute(
            update(_PERIODS)
            .where(_PERIODS.c.id == bindparam("b_id"))
            .values(end_at=bindparam("b_end")),
            updates,
        )
    if inserts:
        session.execute(_PERIODS.insert(), inserts)


def open_key(kind: IncidentKind, *parts: str) -> str:
    """Return the ``incidents.open_key`` of an open incident."""
    return ":".join((kind.value, *parts))


def reconcile_target_incidents(
    session: Session,
    site_id: str,
    target_id: str,
    boundary: datetime,
    spans: Iterable[tuple[datetime, datetime | None, datetime | None]],
    now: datetime,
) -> None:
    """Make a target's incidents from ``boundary`` on match the DOWN ``spans``.

    ``spans``: ``(start, end or None while open, confirmed_at)`` from the state machine;
    incidents ending before ``boundary`` are final and untouched. An existing incident is
    kept (with its id and alert flags) when a span overlaps it and updated to the span; a
    span with no incident gets a new one; an incident no span supports any more (late
    results showed the target was not down) is closed where the evaluation restarted and
    marked retracted.
    """
    existing = list(
        session.scalars(
            select(Incident)
            .where(
                Incident.kind == IncidentKind.TARGET.value,
                Incident.site_id == site_id,
                Incident.target_id == target_id,
                or_(Incident.ended_at.is_(None), Incident.ended_at >= boundary),
            )
            .order_by(Incident.started_at)
        )
    )
    key = open_key(IncidentKind.TARGET, site_id, target_id)
    unmatched = list(existing)
    updates: list[tuple[Incident, tuple[datetime, datetime | None, datetime | None]]] = []
    new: list[tuple[datetime, datetime | None, datetime | None]] = []
    for span in spans:
        match = next((inc for inc in unmatched if _overlaps(inc, span)), None)
        if match is None:
            new.append(span)
        else:
            unmatched.remove(match)
            updates.append((match, span))
    for incident in unmatched:
        incident.ended_at = max(incident.started_at, boundary)
        incident.open_key = None
        incident.closed_at = now
        incident.suppressed = incident.suppressed or "retracted"
        incident.detail = {**incident.detail, "retracted": True}
    for incident, (start, end, confirmed) in updates:
        if end is not None and incident.ended_at is None:
            incident.closed_at = now
        incident.started_at, incident.ended_at = start, end
        incident.confirmed_at = confirmed or incident.confirmed_at
        if end is not None:
            incident.open_key = None
    session.flush()  # free the open key before it is given to the open one
    for incident, (_, end, _) in updates:
        if end is None:
            incident.open_key, incident.closed_at = key, None
    session.flush()
    for start, end, confirmed in new:
        session.add(
            Incident(
                kind=IncidentKind.TARGET.value,
                site_id=site_id,
                target_id=target_id,
                open_key=key if end is None else None,
                started_at=start,
                ended_at=end,
                confirmed_at=confirmed,
                detected_at=now,
                closed_at=now if end is not None else None,
                detail={},
            )
        )
    session.flush()


def _overlaps(incident: Incident, span: tuple[datetime, datetime | None, datetime | None]) -> bool:
    start, end, _ = span
    if incident.started_at == start:
        return True
    inc_end = incident.ended_at
    starts_before_span_ends = end is None or incident.started_at < end
    span_starts_before_inc_ends = inc_end is None or start < inc_end
    return starts_before_span_ends and span_starts_before_inc_ends


def load_cursor(session: Session) -> tuple[int, str | None]:
    """Return the results scan position (``0`` before the first pass) and the last pass's token."""
    row = session.get(EvaluatorCursor, CURSOR_NAME)
    return (row.low_id, row.pass_token) if row else (0, None)


def save_cursor(session: Session, low_id: int, token: str, now: datetime) -> None:
    """Store the results scan position and this pass's token."""
    row = session.get(EvaluatorCursor, CURSOR_NAME)
    if row is None:
        session.add(
            EvaluatorCursor(name=CURSOR_NAME, low_id=low_id, pass_token=token, updated_at=now)
        )
    else:
        row.low_id, row.pass_token, row.updated_at = low_id, token, now


def max_result_id(session: Session) -> int:
    """Return the largest ``results.id`` (0 when empty)."""
    return int(session.scalar(select(func.max(Result.id))) or 0)


def _insert(session: Session) -> Any:
    name = session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert
