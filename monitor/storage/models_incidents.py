"""Tables of the state evaluator: state periods, its progress, incidents, maintenance windows.

Written only by :mod:`monitor.alerting.evaluator` (periods, progress, checkpoints,
incidents, the scan cursor) and by the maintenance CLI/API (``maintenance_windows``). All
instants are UTC (``UTCDateTime``); maintenance times are local wall-clock text in the
window's own zone, never instants, so a daily 02:30 stays 02:30 across DST changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from monitor.storage.models import Base, BigIntPk


class TargetStatePeriod(Base):
    """A span of one state of one target seen from one site: ``[start_at, end_at)``.

    ``state`` is a :class:`monitor.state.TargetState` value among up, degraded, down and
    unknown (maintenance is never stored: windows are applied when read). Periods of a
    target never overlap; time covered by no period is unknown (no data). The newest
    period ends where its last result stops standing for the target (its time plus the
    target's interval and grace), which may be in the future.
    """

    __tablename__ = "target_state_periods"
    __table_args__ = (
        Index("ix_target_state_periods_site_target_start", "site_id", "target_id", "start_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(16))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]


class TargetProgress(Base):
    """How far the evaluator has read one target's results, and its state machine there.

    ``last_at``/``last_seq``: the ``measured_at`` and ``results.id`` of the last result
    evaluated (results are evaluated in ``(measured_at, id)`` order); ``None`` before the
    first. ``max_seq``: the largest ``results.id`` evaluated (a result of the target with a
    larger id and an earlier time arrived late). ``snapshot``: the state machine after it (see
    :meth:`monitor.alerting.state_machine.Snapshot.to_json`). ``behind``: more results were
    stored than one pass evaluates; the next pass goes on.
    """

    __tablename__ = "target_progress"

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    last_at: Mapped[datetime | None]
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    max_seq: Mapped[int | None] = mapped_column(BigInteger)
    snapshot: Mapped[dict[str, Any]]
    behind: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime]


class TargetCheckpoint(Base):
    """A settled state-machine snapshot of a target, at most one per hour of measured time.

    Late results are evaluated again from the newest checkpoint before them, so a backfill
    never replays more than about an hour of results it did not bring. ``bucket`` is the
    hour (Unix time // 3600) of ``at``; ``at``/``seq`` the last result the snapshot includes.
    """

    __tablename__ = "target_checkpoints"

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigInteger)
    snapshot: Mapped[dict[str, Any]]


class Incident(Base):
    """A DOWN period of a target, an unreachable period of a site, or a gateway outage.

    ``kind``: a :class:`monitor.alerting.events.IncidentKind` value. ``started_at`` and
    ``ended_at`` are when it really began and ended (measured time for a target: the first
    failed round, the first good round; server time for a site); ``ended_at`` is ``None``
    while open. ``open_key`` is set only while open and is unique, so a target, site or
    gateway never has two open incidents. ``confirmed_at``: the measured time of the round
    that confirmed it. ``detected_at``/``closed_at``: the server's clock when the evaluator
    opened/closed it. ``down_notified_at``/``recovery_notified_at``: when its alert and its
    recovery notice were queued (``None``: not queued). ``suppressed``: why it was not
    (yet) paged (maintenance, site unreachable, gateway, backfilled, correlating, retracted).
    """

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_site_target_start", "site_id", "target_id", "started_at"),
        Index("ix_incidents_started_at", "started_at"),
        Index("ix_incidents_ended_at", "ended_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(63))
    gateway: Mapped[str | None] = mapped_column(String(255))
    open_key: Mapped[str | None] = mapped_column(String(400), unique=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    detected_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    down_notified_at: Mapped[datetime | None]
    recovery_notified_at: Mapped[datetime | None]
    suppressed: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]]


class MaintenanceWindow(Base):
    """A maintenance window: alerts suppressed, time excluded from availability.

    Scope: ``site_id`` (``None``: every site) and ``target_id`` (``None``: every target of
    the scope). ``repeat``: once, daily or weekly (a
    :class:`monitor.alerting.maintenance.Repeat` value). ``start_local``/``end_local``: the
    first occurrence in wall-clock time of ``zone``, ISO text without offset
    (``2025-03-29T02:30``); a recurring window repeats the same wall-clock times every day
    or every 7 days. ``until_local``: last local date an occurrence may start (ISO date), or
    ``None`` for no end. Occurrences are computed when asked, never stored.
    """

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(String(200))
    zone: Mapped[str] = mapped_column(String(64))
    repeat: Mapped[str] = mapped_column(String(16))
    start_local: Mapped[str] = mapped_column(String(19))
    end_local: Mapped[str] = mapped_column(String(19))
    until_local: Mapped[str | None] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class EvaluatorCursor(Base):
    """The evaluator's scan position in ``results`` (by ``results.id``), one row.

    ``low_id``: every result with ``id <= low_id`` has been seen; results above it are
    scanned again (committed late on PostgreSQL, ids are not committed in order).
    ``pass_token``: written by every pass (evaluator instance and pass number); an evaluator
    that finds another's token drops what it keeps in memory and reads the tables again.
    """

    __tablename__ = "evaluator_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    low_id: Mapped[int] = mapped_column(BigInteger)
    pass_token: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]
