"""Read what one scrape needs from the database, in few queries and with light rows.

The status page's snapshot (``api.status.snapshot``) reads the same latest results as ORM
objects; at 10,000 targets that alone took about 0.45 s, over the scrape budget. Here a
scrape reads in two steps: the ``results.id`` of every target's newest round (one backward
index seek per target on ``ix_results_site_target_time``, only the id: on SQLite the index
covers it), then, by id, only the rounds the collector has not formatted before, as light
rows with the RTT samples left as JSON text. A stored round never changes, so its id is a
change marker read from the database at each scrape: what the collector keeps between
scrapes is only ever reused for the same id.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Dialect,
    FromClause,
    String,
    Text,
    any_,
    bindparam,
    cast,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from monitor.alerting.outbox import delivery_backlog, delivery_counts
from monitor.storage.agent_reports import AgentBacklog
from monitor.storage.models import Result, SiteAgent, Target
from monitor.storage.models_agent import AgentReport


class _FastUTC(TypeDecorator[datetime]):
    """Read a ``UTCDateTime`` column quickly: SQLite's text through ``fromisoformat``.

    SQLAlchemy's SQLite ``DateTime`` parses each value with a regular expression (about
    15 µs a row, 0.15 s at 10,000 targets); PostgreSQL's driver returns datetimes already.
    Used only in ``type_coerce`` on reads; same result as ``UTCDateTime``.
    """

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LatestRound:
    """The newest stored round of one target (satisfies :class:`monitor.state.ResultLike`).

    ``row_id`` is the ``results.id`` (rows never change, so it keys caches); ``status`` a
    ``ProbeStatus`` value; RTT and jitter in seconds, loss a ratio, ``None`` when not
    measured; ``rtts_json`` the round's RTT samples as stored (JSON text, ``null`` for a
    lost request), ``None`` if absent. ``error`` is not read (always ``None``): /metrics
    never exports error text.
    """

    row_id: int
    site_id: str
    target_id: str
    status: str
    measured_at: datetime
    rtt_s: float | None
    packet_loss: float | None
    jitter_s: float | None
    duplicates: int | None
    rtts_json: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AgentRow:
    """What the server knows of a site's agent (``site_agents``); see its model."""

    site_id: str
    last_upload_at: datetime
    clock_offset_s: float | None
    uploads: int
    results_stored: int


@dataclass(frozen=True, slots=True)
class Readings:
    """Everything one scrape reads up front, in one read-only transaction.

    The rounds themselves are read afterwards, in the same transaction, only for the ids
    the collector has not formatted yet (:func:`rounds_by_id`).

    Attributes:
        newest: the ``results.id`` of every target's newest round, by site, then target
            (:func:`newest_round_ids`); a target without any round is absent.
        agents: ``site_agents`` rows by site.
        backlogs: each site's newest agent spool report (:func:`spool_reports`).
        clock_offsets: each site's best clock-offset estimate, seconds
            (:func:`best_clock_offsets`).
        attempts: finished notification attempts by ``(channel, outcome)``
            (``monitor.alerting.outbox.delivery_counts``).
        deliveries: notification deliveries by ``(channel, status)`` (``delivery_backlog``).
    """

    newest: dict[str, dict[str, int]]
    agents: dict[str, AgentRow]
    backlogs: dict[str, AgentBacklog]
    clock_offsets: dict[str, float]
    attempts: dict[tuple[str, str], int]
    deliveries: dict[tuple[str, str], int]


def read_all(session: Session, now: datetime) -> Readings:
    """Read what a scrape needs; ``now`` (aware) dates the agents' oldest unsent results.

    Raises whatever SQLAlchemy raises when the database cannot be read.
    """
    agents = agent_rows(session)
    backlogs = spool_reports(session, now)
    return Readings(
        newest=newest_round_ids(session),
        agents=agents,
        backlogs=backlogs,
        clock_offsets=best_clock_offsets(agents, backlogs),
        attempts=delivery_counts(session),
        deliveries=delivery_backlog(session),
    )


def spool_reports(session: Session, now: datetime) -> dict[str, AgentBacklog]:
    """Return each site's newest spool report, as :func:`monitor.storage.agent_reports.
    agent_backlogs` does (same records), read as tuples: its ORM load cost about 30 ms at
    1,000 sites, an eighth of the scrape budget. The tests compare both."""
    reports = AgentReport.__table__
    stmt = select(
        reports.c.site_id,
        type_coerce(reports.c.reported_at, _FastUTC()),
        reports.c.backlog,
        type_coerce(reports.c.oldest_unsent_at, _FastUTC()),
        reports.c.dropped_total,
        reports.c.rejected_total,
        reports.c.clock_offset_s,
    )
    out: dict[str, AgentBacklog] = {}
    for site_id, reported_at, backlog, oldest, dropped, rejected, offset_s in session.execute(
        stmt
    ).all():
        out[site_id] = AgentBacklog(
            site_id=site_id,
            reported_at=reported_at,
            backlog=backlog,
            oldest_unsent_at=oldest,
            oldest_unsent_age_s=None if oldest is None else (now - oldest).total_seconds(),
            dropped_total=dropped,
            rejected_total=rejected,
            clock_offset_s=offset_s,
        )
    return out


def best_clock_offsets(
    agents: Mapping[str, AgentRow], reports: Mapping[str, AgentBacklog]
) -> dict[str, float]:
    """Return each site's best clock-offset estimate, seconds, by the rule of
    :func:`monitor.storage.agent_reports.clock_offsets`: the agent's own estimate from its
    newest report when there is one, else the offset measured at its last upload."""
    out = {s: a.clock_offset_s for s, a in agents.items() if a.clock_offset_s is not None}
    for site_id, report in reports.items():
        if report.clock_offset_s is not None:
            out[site_id] = report.clock_offset_s
    return out


RoundRow = Sequence[Any]
"""A row of :func:`rounds_by_id`: the fields of :class:`LatestRound`, in order (``row[0]``
the ``results.id``, ``row[4]`` ``measured_at``); ``LatestRound(*row)`` makes the record."""

_IDS_PER_STATEMENT = 2000
"""Ids bound in one ``IN (...)`` of :func:`rounds_by_id` (SQLite allows 32,766 variables)."""


def newest_round_ids(session: Session) -> dict[str, dict[str, int]]:
    """Return the ``results.id`` of every target's newest round, by site, then target.

    Newest is the greatest ``measured_at``, then the greatest id (as the status page picks
    it). Targets without a stored round are absent. One statement whose cost grows with
    the number of targets, not with the history kept: a correlated scalar subquery per
    target, which both databases run as one backward seek on
    ``ix_results_site_target_time`` (SQLite reads the rowid from the index, never the
    table; PostgreSQL runs it as a subplan, a little faster there than a ``LATERAL`` join;
    an ``id IN (...)`` form made PostgreSQL hash-join a scan of every stored result).
    Nested string-keyed dicts rather than ``(site, target)`` keys: no tuple per target for
    the garbage collector to track while the scrape runs.
    """
    results = Result.__table__
    targets = Target.__table__
    newest = results.alias("newest")
    seek = (
        select(newest.c.id)
        .where(
            newest.c.site_id == targets.c.site_id,
            newest.c.target_id == targets.c.target_id,
        )
        .order_by(newest.c.measured_at.desc(), newest.c.id.desc())
        .limit(1)
        .correlate(targets)
        .scalar_subquery()
    )
    stmt = select(targets.c.site_id, targets.c.target_id, seek)
    out: dict[str, dict[str, int]] = {}
    for site_id, target_id, row_id in session.execute(stmt):
        if row_id is not None:
            out.setdefault(site_id, {})[target_id] = row_id
    return out


def rounds_by_id(session: Session, ids: Collection[int]) -> dict[int, RoundRow]:
    """Return the rounds with these ``results.id`` values, by id (an id not found is absent).

    Rows, not records: making a record of every row cost more than the query at 10,000
    targets; the collector makes one only for a round it formats. On PostgreSQL the ids
    go as one array (``id = ANY(:ids)``: binding 2,500 separate parameters cost twice the
    query); on SQLite in statements of at most :data:`_IDS_PER_STATEMENT` ids.
    """
    results = Result.__table__
    wanted = sorted(ids)
    if not wanted:
        return {}
    columns = _round_columns(results)
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam("ids", wanted, type_=postgresql.ARRAY(BigInteger))
        statements = [select(*columns).where(results.c.id == any_(array))]
    else:
        statements = [
            select(*columns).where(results.c.id.in_(wanted[i : i + _IDS_PER_STATEMENT]))
            for i in range(0, len(wanted), _IDS_PER_STATEMENT)
        ]
    return {row[0]: row for stmt in statements for row in session.execute(stmt)}


def _round_columns(table: FromClause) -> list[ColumnElement[Any]]:
    """The columns of :class:`LatestRound`, in its field order."""
    c = table.c
    return [
        c.id,
        c.site_id,
        c.target_id,
        c.status,
        type_coerce(c.measured_at, _FastUTC()).label("measured_at"),
        c.rtt_s,
        c.packet_loss,
        c.jitter_s,
        c.duplicates,
        cast(c.rtts_s, Text).label("rtts_json"),
    ]


def agent_rows(session: Session) -> dict[str, AgentRow]:
    """Return the ``site_agents`` row of every site that ever uploaded, by site id."""
    agents = SiteAgent.__table__
    stmt = select(
        agents.c.site_id,
        type_coerce(agents.c.last_upload_at, _FastUTC()),
        agents.c.clock_offset_s,
        agents.c.uploads,
        agents.c.results_stored,
    )
    return {row[0]: AgentRow(*row) for row in session.execute(stmt)}


@dataclass(frozen=True, slots=True)
class RttHistogram:
    """One round's RTT samples in buckets: ``cumulative[i]`` samples ``<= bounds[i]``.

    ``cumulative`` has one entry per bound plus the ``+Inf`` one (the sample count);
    ``sum_s`` is the sum of the samples, seconds.
    """

    cumulative: tuple[int, ...]
    sum_s: float


def bucket_samples(samples: Sequence[float], bounds: Sequence[float]) -> RttHistogram:
    """Count ``samples`` (seconds) into cumulative buckets with upper bounds ``bounds``.

    A sample equal to a bound counts in that bound's bucket (Prometheus ``le``). Samples
    must not be NaN (the wire model refuses NaN and infinity).
    """
    ordered = sorted(samples)
    cumulative = (*(bisect_right(ordered, bound) for bound in bounds), len(ordered))
    return RttHistogram(cumulative, float(sum(samples)))


def round_samples(latest: LatestRound) -> list[float]:
    """Return a round's RTT samples, seconds (lost requests are not samples).

    A round stored without its samples counts its headline RTT as its one sample.
    """
    samples = _samples(latest.rtts_json)
    if not samples and latest.rtt_s is not None:
        samples = [latest.rtt_s]
    return samples


def _samples(rtts_json: str | None) -> list[float]:
    if not rtts_json:
        return []
    decoded = json.loads(rtts_json)
    if not isinstance(decoded, list):
        return []
    floats = [v for v in decoded if type(v) is float]
    if len(floats) + decoded.count(None) == len(decoded):  # as stored: floats and nulls
        return floats
    return [float(v) for v in decoded if isinstance(v, int | float) and not isinstance(v, bool)]
