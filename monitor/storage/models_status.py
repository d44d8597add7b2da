"""Tables of the status page: rollups of the results, and its users and sessions.

Rollups (maintained by :mod:`monitor.storage.rollups_job`, read by the status page):

- ``rollup_5m``, ``rollup_hour``, ``rollup_day``: one row per target per bucket. Buckets
  are aligned on the *site's* local clock (5 minutes, hours, calendar days in the site's
  time zone); ``bucket_start`` is the bucket's first instant in UTC and ``local_date`` the
  site-local calendar day it belongs to. The measures are those of
  :class:`monitor.storage.rollups.BucketStats`; ``sketch`` holds the mergeable RTT
  histogram (index -> count, see :class:`monitor.storage.rollups.RttSketch`).
- ``rollup_progress``: how far into the results (by ``received_at``, then ``id``) the
  rollups have read.
- ``availability_day``: each complete local day's seconds per state, per site and per
  target, cached from the availability engine (:mod:`monitor.storage.availability_days`);
  ``status_marks``: named values the jobs keep (the digest of the cache's inputs).

Accounts (:mod:`monitor.accounts`): ``status_users`` (a name, a role, a password hash) and
``status_sessions`` (server-side login sessions: only the SHA-256 of the cookie's token is
stored, next to the session's CSRF token).

Also puts the index ``ix_results_received_at`` on ``results``: the rollups read the results
received since their watermark, which without it would scan the whole table.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.storage.models import Base, BigIntPk, Result

Index("ix_results_received_at", Result.received_at, Result.id)


class TargetRollupColumns:
    """The columns of a target rollup row (shared by the 5-minute, hour and day tables).

    Units: seconds for RTT and jitter; counts for rounds and packets. ``rtt_*_s`` are
    ``None`` when the bucket holds no RTT sample. ``jitter_sum_s`` sums the rounds' jitter
    over ``jitter_rounds`` rounds that measured one.
    """

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    local_date: Mapped[date] = mapped_column(Date)
    rounds: Mapped[int] = mapped_column(Integer)
    up: Mapped[int] = mapped_column(Integer)
    down: Mapped[int] = mapped_column(Integer)
    error: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    received: Mapped[int] = mapped_column(Integer)
    rtt_samples: Mapped[int] = mapped_column(Integer)
    rtt_sum_s: Mapped[float] = mapped_column(Float)
    rtt_min_s: Mapped[float | None] = mapped_column(Float)
    rtt_p10_s: Mapped[float | None] = mapped_column(Float)
    rtt_p50_s: Mapped[float | None] = mapped_column(Float)
    rtt_p90_s: Mapped[float | None] = mapped_column(Float)
    rtt_max_s: Mapped[float | None] = mapped_column(Float)
    jitter_rounds: Mapped[int] = mapped_column(Integer)
    jitter_sum_s: Mapped[float] = mapped_column(Float)
    sketch: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_measured_at: Mapped[datetime]
    last_measured_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Rollup5m(TargetRollupColumns, Base):
    """One target's results over 5 site-local minutes."""

    __tablename__ = "rollup_5m"
    __table_args__ = (Index("ix_rollup_5m_bucket_start", "bucket_start"),)


class RollupHour(TargetRollupColumns, Base):
    """One target's results over one site-local hour."""

    __tablename__ = "rollup_hour"
    __table_args__ = (Index("ix_rollup_hour_bucket_start", "bucket_start"),)


class RollupDay(TargetRollupColumns, Base):
    """One target's results over one site-local calendar day."""

    __tablename__ = "rollup_day"
    __table_args__ = (Index("ix_rollup_day_bucket_start", "bucket_start"),)


class RollupProgress(Base):
    """How far the rollups have read the results: the last ``(received_at, id)`` read."""

    __tablename__ = "rollup_progress"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    received_at: Mapped[datetime]
    result_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class AvailabilityDay(Base):
    """A complete local day's seconds in each state, of a site (``target_id`` ``"*"``) or of
    one target: a cache of the availability engine's figures
    (:mod:`monitor.storage.availability_days`).

    ``start_at``/``end_at`` the UTC span of the day; the five ``*_s`` add up to it.
    ``stale_until``: late results arrived for this day; until then it is recomputed and
    not read (``None``: current).
    """

    __tablename__ = "availability_day"

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    local_date: Mapped[date] = mapped_column(Date, primary_key=True)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    up_s: Mapped[float] = mapped_column(Float)
    degraded_s: Mapped[float] = mapped_column(Float)
    down_s: Mapped[float] = mapped_column(Float)
    unknown_s: Mapped[float] = mapped_column(Float)
    maintenance_s: Mapped[float] = mapped_column(Float)
    stale_until: Mapped[datetime | None]
    computed_at: Mapped[datetime]


class StatusMark(Base):
    """A named value the status-page jobs keep between cycles (e.g. an inputs digest)."""

    __tablename__ = "status_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime]


class StatusUser(Base):
    """A person who may log in to the status page, with one role (viewer/operator/admin).

    ``username`` is stored case-folded (NFKC, casefold) so "Somchai" and "somchai" are one
    user; ``password_hash`` is a self-describing scrypt hash (:mod:`monitor.accounts.passwords`).
    """

    __tablename__ = "status_users"

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class StatusSession(Base):
    """A login session: the SHA-256 (hex) of the cookie token, its user and CSRF token.

    The cookie token itself is never stored, so a copy of the database does not let anyone
    log in. ``expires_at`` is the absolute end; ``last_seen_at`` moves with use.
    """

    __tablename__ = "status_sessions"
    __table_args__ = (
        ForeignKeyConstraint(["user_id"], ["status_users.id"], ondelete="CASCADE"),
        Index("ix_status_sessions_expires_at", "expires_at"),
    )

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntPk)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
