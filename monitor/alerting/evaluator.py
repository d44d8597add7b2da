"""The state evaluator: results in, state periods, incidents and alerts out.

Every ``server.evaluate_every_s`` the server runs one *pass* (:meth:`Evaluator.run_pass`) in
a worker thread, so it never blocks the event loop, ingest or the page:

1. **Scan** results stored since the last pass (by ``results.id``, at most ``scan_limit``
   rows a pass). A result newer than what its target's machine has seen is appended; one
   older (a late upload, a backfill) makes the target re-evaluate from its newest
   checkpoint before it, so UNKNOWN time becomes UP or DOWN once the results arrive.
2. **Evaluate** each touched target with :func:`monitor.alerting.state_machine.advance`
   (at most ``target_limit`` results each; a target with more goes on next pass) and
   rewrite its periods, checkpoints, progress and DOWN incidents from the first
   re-evaluated round on.
3. **Sites and gateways**: open or close SITE incidents (agent silent for
   ``server.site_silent_after_s``) and GATEWAY incidents (see
   :mod:`monitor.alerting.correlation`).
4. **Alerts**: an open incident not yet announced is announced when nothing holds it
   (:func:`monitor.alerting.correlation.target_hold`); a closed one that was announced gets
   its recovery. Both go to the :class:`~monitor.alerting.events.AlertSink` in the same
   transaction as the incident write, with keys ``"<incident id>:<kind>"``, so a restart
   never announces an incident twice and a recovery that happened while the server was
   down is announced exactly once. An incident that opened and closed before anyone
   could be told (a backfill of a problem already over) is recorded, never paged.

One evaluator at a time: on PostgreSQL each pass holds ``pg_try_advisory_lock`` (a replica
that does not get it skips the pass); on SQLite one server process is assumed. The read
phase and the write phase are separate transactions, so on SQLite the write lock is held
only for the short write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting import store
from monitor.alerting.correlation import (
    CENTRAL_GROUP,
    GatewayGroup,
    GatewayVerdict,
    Hold,
    MemberView,
    TargetFacts,
    central_outage,
    gateway_groups,
    gateway_started_at,
    judge_gateway,
    settle_until,
    site_silent,
    target_hold,
)
from monitor.alerting.events import AlertEvent, AlertKind, AlertSink, IncidentKind, event_key
from monitor.alerting.maintenance import Window, active_window, list_windows
from monitor.alerting.state_machine import (
    SPACING_GAPS,
    Observation,
    Rules,
    Sample,
    Snapshot,
    Spacing,
    advance,
    classify,
    rules_for,
    tally_spacing,
)
from monitor.alerting.summaries import Subject, detail_of, summaries
from monitor.config import Config
from monitor.state import TargetState
from monitor.storage.db import read_only
from monitor.storage.models import Result, SiteAgent
from monitor.storage.models_incidents import Incident

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger("linkwatch.alerting.evaluator")

ADVISORY_LOCK_KEY = 0x4C57_4556_414C
"""The PostgreSQL advisory lock key of the evaluator ("LWEVAL")."""

TargetKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PassSummary:
    """What one pass did.

    ``skipped``: another evaluator held the lock; ``caught_up``: every stored result was
    evaluated (no scan or target limit was hit); ``events``: alerts queued as new;
    ``read_s``/``write_s``: wall time of the read and of the write transaction, seconds
    (on SQLite ingest waits for the write one).
    """

    skipped: bool = False
    results_scanned: int = 0
    targets_evaluated: int = 0
    transitions: int = 0
    events: tuple[AlertEvent, ...] = ()
    caught_up: bool = True
    read_s: float = 0.0
    write_s: float = 0.0


@dataclass(frozen=True, slots=True)
class _ScanRow:
    id: int
    site_id: str
    target_id: str
    measured_at: datetime
    received_at: datetime
    status: str
    rtt_s: float | None
    packet_loss: float | None
    jitter_s: float | None
    error: str | None
    from_gap: bool


_SCAN_COLUMNS = (
    Result.id,
    Result.site_id,
    Result.target_id,
    Result.measured_at,
    Result.received_at,
    Result.status,
    Result.rtt_s,
    Result.packet_loss,
    Result.jitter_s,
    Result.error,
)


@dataclass(frozen=True, slots=True)
class _Scan:
    rows: tuple[_ScanRow, ...]
    truncated: bool
    high: int
    low: int


@dataclass
class _Scanner:
    """Which results the evaluator has seen, by ``results.id``.

    ``high``: the largest id scanned; ``seen``: ids above ``low`` already scanned. Ids are
    not committed in order on PostgreSQL, so ids at or below ``high`` that appear later
    are found by counting ``(low, high]`` and picked up ("gap" rows, always late).
    ``low`` follows ``high`` with a delay of ``overlap_s``.
    """

    overlap_s: float
    low: int | None = None
    high: int = 0
    seen: set[int] = field(default_factory=set)
    marks: deque[tuple[datetime, int]] = field(default_factory=deque)

    def reset(self, low: int) -> None:
        self.low, self.high = low, low
        self.seen.clear()
        self.marks.clear()

    def plan(self, session: Session, now: datetime, limit: int) -> _Scan:
        assert self.low is not None
        rows = list(
            session.execute(
                select(*_SCAN_COLUMNS)
                .where(Result.id > self.high)
                .order_by(Result.id)
                .limit(limit + 1)
            )
        )
        truncated = len(rows) > limit
        found = [_ScanRow(**r._asdict(), from_gap=False) for r in rows[:limit]]
        if self.high > self.low:
            span = (Result.id > self.low, Result.id <= self.high)
            count = int(session.scalar(select(func.count()).where(*span)) or 0)
            if count > len(self.seen):
                found += [
                    _ScanRow(**r._asdict(), from_gap=True)
                    for r in session.execute(select(*_SCAN_COLUMNS).where(*span))
                    if r[0] not in self.seen
                ]
        high = max([self.high, *(r.id for r in found if not r.from_gap)])
        cutoff = now - timedelta(seconds=self.overlap_s)
        low = max([self.low, *(h for at, h in self.marks if at <= cutoff)])
        return _Scan(tuple(found), truncated, high, min(low, high))

    def apply(self, scan: _Scan, now: datetime) -> None:
        self.high = scan.high
        self.seen.update(r.id for r in scan.rows)
        self.marks.append((now, scan.high))
        self.low = scan.low
        while self.marks and self.marks[0][1] <= self.low:
            self.marks.popleft()
        self.seen = {i for i in self.seen if i > self.low}


@dataclass(frozen=True, slots=True)
class _Work:
    key: TargetKey
    run_from: datetime | None
    segments: Sequence[Any]
    checkpoints: Sequence[Snapshot]
    spans: Sequence[tuple[datetime, datetime | None, datetime | None]]
    progress: store.Progress
    transitions: int
    appending: bool


@dataclass(frozen=True, slots=True)
class _SiteFacts:
    last_upload_at: datetime | None
    clock_offset_s: float | None


class Evaluator:
    """Turns stored results into periods, incidents and alerts; see the module docstring.

    Args:
        config: the configuration (targets, thresholds, hysteresis, sites).
        engine: the database.
        sessions: a session factory bound to ``engine``.
        clock: the server's clock (aware UTC).
        sink: where alerts go, inside the pass's write transaction.
        scan_limit: most results scanned per pass.
        target_limit: most results evaluated per target per pass.
        overlap_s: how long result ids are rescanned for late commits (PostgreSQL).
    """

    def __init__(
        self,
        config: Config,
        engine: Engine,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        sink: AlertSink,
        *,
        scan_limit: int = 20_000,
        target_limit: int = 5_000,
        overlap_s: float = 300.0,
    ) -> None:
        self._config = config
        self._engine = engine
        self._sessions = sessions
        self._clock = clock
        self._sink = sink
        self._scan_limit = scan_limit
        self._target_limit = target_limit
        self._scanner = _Scanner(overlap_s)
        self._instance = uuid.uuid4().hex[:12]
        self._passes = 0
        self._token: str | None = None
        self._progress: dict[TargetKey, store.Progress] | None = None
        self._open_gateways: dict[str, Incident] = {}
        self._rules: dict[TargetKey, Rules] = {
            (site_id, target.id): rules_for(config, site_id, target.id)
            for site_id, site in config.sites.items()
            for target in site.targets
        }
        self._groups: dict[str, GatewayGroup] = gateway_groups(config)
        self._group_of: dict[TargetKey, str] = {
            member: group.key for group in self._groups.values() for member in group.members
        }
        self._listening_since: datetime | None = None
        self._back_at: dict[str, datetime] = {}
        self._pruned_at: datetime | None = None
        self._checkpointed: dict[TargetKey, int] = {}
        self._gateway_closed: dict[str, datetime] = {}
        self._spacing: dict[TargetKey, Spacing] = {}
        self._spacing_warned: set[TargetKey] = set()
        self._fraction = config.server.gateway_down_fraction
        self._postgres = engine.dialect.name == "postgresql"

    # -- the pass ---------------------------------------------------------------------

    def run_pass(self) -> PassSummary:
        """Run one pass (blocking; call it from a worker thread). See the module docstring.

        Returns what it did; ``skipped`` when another evaluator holds the PostgreSQL lock.
        Raises the database's errors (the pass is then rolled back and can be retried).
        """
        lock = self._lock() if self._postgres else None
        if self._postgres and lock is None:
            return PassSummary(skipped=True)
        try:
            return self._pass()
        finally:
            if lock is not None:
                self._unlock(lock)

    def _lock(self) -> Connection | None:
        conn = self._engine.connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar()
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if got:
            return conn
        conn.close()
        return None

    def _unlock(self, conn: Connection) -> None:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            conn.commit()
        finally:
            conn.close()

    def _pass(self) -> PassSummary:
        now = self._clock()
        if self._listening_since is None:
            self._listening_since = now
        began = time.monotonic()
        with self._sessions(bind=read_only(self._engine)) as rs:
            if self._postgres:
                rs.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            saved_low, token = store.load_cursor(rs)
            if self._progress is None or self._scanner.low is None or token != self._token:
                # First pass, or another evaluator ran since ours: read the state afresh.
                self._scanner.reset(saved_low)
                self._progress = store.load_progress(rs)
                self._checkpointed.clear()
            scan = self._scanner.plan(rs, now, self._scan_limit)
            progress = dict(self._progress)
            works = self._evaluate(rs, scan, progress)
            agents = {
                row.site_id: _SiteFacts(row.last_upload_at, row.clock_offset_s)
                for row in rs.scalars(select(SiteAgent))
            }
            windows = list_windows(rs)
        for work in works:
            progress[work.key] = work.progress
        self._note_backlogs(scan, agents, now)
        events: list[AlertEvent] = []
        self._passes += 1
        token = f"{self._instance}:{self._passes}"
        read_s = time.monotonic() - began
        began = time.monotonic()
        with self._sessions() as ws, ws.begin():
            self._write_targets(ws, works, now)
            self._open_gateways = {
                incident.gateway or "": incident
                for incident in ws.scalars(
                    select(Incident).where(
                        Incident.kind == IncidentKind.GATEWAY.value, Incident.ended_at.is_(None)
                    )
                )
            }
            silent = self._sites(ws, now, agents)
            verdicts = self._gateways(ws, now, progress, silent)
            events = self._announce(ws, now, scan, progress, agents, silent, verdicts, windows)
            store.save_cursor(ws, scan.low, token, now)
            if self._pruned_at is None or now - self._pruned_at > timedelta(hours=1):
                store.prune_checkpoints(ws, now)
                self._pruned_at = now
        write_s = time.monotonic() - began
        self._scanner.apply(scan, now)
        self._progress, self._token = progress, token
        caught_up = not scan.truncated and not any(w.progress.behind for w in works)
        return PassSummary(
            results_scanned=len(scan.rows),
            targets_evaluated=len(works),
            transitions=sum(w.transitions for w in works),
            events=tuple(events),
            caught_up=caught_up,
            read_s=read_s,
            write_s=write_s,
        )

    # -- targets ----------------------------------------------------------------------

    def _evaluate(
        self, rs: Session, scan: _Scan, progress: Mapping[TargetKey, store.Progress]
    ) -> list[_Work]:
        new: dict[TargetKey, list[_ScanRow]] = {}
        late: dict[TargetKey, store.Key] = {}
        for row in scan.rows:
            key = (row.site_id, row.target_id)
            if key not in self._rules:
                continue
            known = progress.get(key)
            place = (row.measured_at, row.id)
            if known is None or known.last is None or place > known.last:
                new.setdefault(key, []).append(row)
            elif row.from_gap or known.max_seq is None or row.id > known.max_seq:
                late[key] = min(late.get(key, place), place)
        works = []
        for key, rules in self._rules.items():
            known = progress.get(key)
            behind = known is not None and known.behind
            if key not in new and key not in late and not behind:
                continue
            # A target evaluated up to date before this scan has exactly its scanned rows to
            # read (every older row was evaluated); any other is read from the database.
            scanned = new.get(key) if key not in late and not behind else None
            works.append(self._advance(rs, key, rules, known, late.get(key), scan.high, scanned))
        return works

    def _advance(
        self,
        rs: Session,
        key: TargetKey,
        rules: Rules,
        known: store.Progress | None,
        late: store.Key | None,
        up_to_id: int,
        scanned: list[_ScanRow] | None = None,
    ) -> _Work:
        snapshot = known.snapshot if known else Snapshot()
        after = known.last if known else None
        if late is not None:
            found = store.checkpoint_before(rs, key[0], key[1], late)
            after, snapshot = found if found else (None, Snapshot())
            log.info("late results for %s/%s: evaluating again from %s", *key, after)
        rows: Sequence[_ScanRow | store.ResultRow]
        if scanned is not None:
            rows, behind = sorted(scanned, key=lambda r: (r.measured_at, r.id)), False
        else:
            found_rows = store.load_results(
                rs, key[0], key[1], after, up_to_id, self._target_limit + 1
            )
            behind = len(found_rows) > self._target_limit
            rows = found_rows[: self._target_limit]
        samples = [
            Sample(r.measured_at, r.id, classify(r, rules.profile), rules.cap_s) for r in rows
        ]
        if late is None:
            self._note_spacing(key, rules, snapshot.last_at, samples)
        run = advance(snapshot, samples, rules)
        last = run.snapshot.last_at, run.snapshot.last_seq
        ids = [r.id for r in rows]
        max_seq = max([*ids, *([known.max_seq] if known and known.max_seq else [])], default=None)
        progress = store.Progress(
            last=(last[0], last[1]) if last[0] is not None and last[1] is not None else after,
            max_seq=max_seq,
            snapshot=run.snapshot,
            behind=behind,
        )
        return _Work(
            key=key,
            run_from=run.rewrite_from,
            segments=run.segments,
            checkpoints=run.checkpoints,
            spans=run.down_spans,
            progress=progress,
            transitions=len(run.transitions),
            appending=late is None
            and not snapshot.pending
            and (after is None or (run.rewrite_from is not None and run.rewrite_from > after[0])),
        )

    def _note_spacing(
        self, key: TargetKey, rules: Rules, last_at: datetime | None, samples: Sequence[Sample]
    ) -> None:
        """Warn once per target whose rounds come further apart than its interval allows.

        Each of its rounds is then a period of its own with UNKNOWN time after it (the
        periods table grows with its rounds): almost always the agent probing it at a longer
        interval than the server's configuration says. Judged over
        :data:`~monitor.alerting.state_machine.SPACING_GAPS` gaps at a time.
        """
        spacing = tally_spacing(self._spacing.get(key, Spacing()), last_at, samples)
        if spacing.gaps >= SPACING_GAPS:
            if spacing.mostly_beyond and key not in self._spacing_warned:
                self._spacing_warned.add(key)
                log.warning(
                    "target %s of site %s: %d of its last %d rounds came more than %g s "
                    "after the one before, though its interval_s is %g s here; each such "
                    "round counts for at most %g s and the time after it is unknown. "
                    "Does the agent use the server's interval_s for it?",
                    key[1],
                    key[0],
                    spacing.beyond,
                    spacing.gaps,
                    rules.cap_s,
                    rules.interval_s,
                    rules.cap_s,
                )
            spacing = Spacing()
        self._spacing[key] = spacing

    def _write_targets(self, ws: Session, works: Sequence[_Work], now: datetime) -> None:
        """Write what the pass evaluated: periods, checkpoints, incidents, progress.

        Targets evaluated on from their last round (the usual case) are written together in
        a few statements; a target evaluated again from a checkpoint, or whose unfinished
        streak was re-labelled, has its periods and checkpoints replaced from that point.
        """
        open_targets = {
            (site_id, target_id)
            for site_id, target_id in ws.execute(
                select(Incident.site_id, Incident.target_id).where(
                    Incident.kind == IncidentKind.TARGET.value, Incident.ended_at.is_(None)
                )
            )
        }
        appended: list[tuple[str, str, datetime, Sequence[Any]]] = []
        checkpoints: list[tuple[str, str, Snapshot]] = []
        for work in works:
            if work.run_from is None:
                continue
            site_id, target_id = work.key
            if work.appending:
                appended.append((site_id, target_id, work.run_from, work.segments))
            else:
                store.write_periods(ws, site_id, target_id, work.run_from, work.segments)
                store.drop_checkpoints_from(ws, site_id, target_id, work.run_from)
                self._checkpointed.pop(work.key, None)
            written = self._checkpointed.get(work.key)
            fresh = [
                cp
                for cp in work.checkpoints
                if cp.last_at is not None
                and (written is None or int(cp.last_at.timestamp()) // 3600 > written)
            ]
            checkpoints += [(site_id, target_id, cp) for cp in fresh]
            if fresh and fresh[-1].last_at is not None:
                self._checkpointed[work.key] = int(fresh[-1].last_at.timestamp()) // 3600
            if work.spans or not work.appending or work.key in open_targets:
                store.reconcile_target_incidents(
                    ws, site_id, target_id, work.run_from, work.spans, now
                )
        store.append_periods(ws, appended)
        store.add_checkpoints(ws, checkpoints)
        store.save_progress(ws, [(*work.key, work.progress) for work in works], now)

    # -- sites and gateways ---------------------------------------------------------

    def _note_backlogs(self, scan: _Scan, agents: Mapping[str, _SiteFacts], now: datetime) -> None:
        """Note the sites whose results arrive late: they are flushing a backlog.

        A result is late when it reached the server (clock offset applied) more than its
        target's interval plus three upload intervals plus 10 s after it was measured. Its
        site then counts as "just back": its targets' DOWN alerts wait for fresh rounds
        (see :func:`monitor.alerting.correlation.settle_until`).
        """
        for row in scan.rows:
            rules = self._rules.get((row.site_id, row.target_id))
            if rules is None:
                continue
            facts = agents.get(row.site_id)
            offset = (facts.clock_offset_s if facts else None) or 0.0
            lateness = (row.received_at - row.measured_at).total_seconds() - offset
            upload_s = self._config.site_agent(row.site_id).upload_interval_s
            if lateness > rules.interval_s + 3 * upload_s + 10.0:
                known = self._back_at.get(row.site_id)
                self._back_at[row.site_id] = max(known, now) if known else now

    def _sites(self, ws: Session, now: datetime, agents: Mapping[str, _SiteFacts]) -> set[str]:
        """Open/close SITE incidents; note when sites came back; return the silent sites."""
        assert self._listening_since is not None
        server = self._config.server
        silent: set[str] = set()
        for site_id in self._config.sites:
            facts = agents.get(site_id)
            last = facts.last_upload_at if facts else None
            if site_silent(last, now, server.site_silent_after_s, self._listening_since):
                silent.add(site_id)
        open_sites = {
            inc.site_id: inc
            for inc in ws.scalars(
                select(Incident).where(
                    Incident.kind == IncidentKind.SITE.value, Incident.ended_at.is_(None)
                )
            )
        }
        for site_id in sorted(silent - open_sites.keys()):
            facts = agents.get(site_id)
            started = facts.last_upload_at if facts and facts.last_upload_at else None
            ws.add(
                Incident(
                    kind=IncidentKind.SITE.value,
                    site_id=site_id,
                    open_key=store.open_key(IncidentKind.SITE, site_id),
                    started_at=started or self._listening_since,
                    detected_at=now,
                    detail={"never_uploaded": started is None},
                )
            )
        for open_site, incident in open_sites.items():
            if open_site is None or open_site in silent:
                continue
            facts = agents.get(open_site)
            back = facts.last_upload_at if facts and facts.last_upload_at else now
            incident.ended_at = max(back, incident.started_at)
            incident.closed_at, incident.open_key = now, None
            self._back_at[open_site] = incident.ended_at
        for closed_site, ended in ws.execute(
            select(Incident.site_id, func.max(Incident.ended_at))
            .where(Incident.kind == IncidentKind.SITE.value, Incident.ended_at.is_not(None))
            .group_by(Incident.site_id)
        ):
            if closed_site is not None and ended is not None:
                known = self._back_at.get(closed_site)
                self._back_at[closed_site] = max(known, ended) if known else ended
        self._central(ws, now, silent, agents)
        ws.flush()
        return silent

    def _central(
        self, ws: Session, now: datetime, silent: set[str], agents: Mapping[str, _SiteFacts]
    ) -> None:
        fraction = self._config.server.gateway_down_fraction
        current = self._open_gateway(ws, CENTRAL_GROUP)
        down = central_outage(silent, self._config.sites, fraction)
        if down and current is None:
            starts = [(agents[s].last_upload_at if s in agents else None) or now for s in silent]
            self._open_gateway_incident(
                ws,
                CENTRAL_GROUP,
                gateway_started_at(starts, len(self._config.sites), fraction),
                now,
                {"sites": sorted(silent), "considered": sorted(self._config.sites)},
            )
        elif not down and current is not None:
            self._close_gateway_incident(current, now, now)

    def _open_gateway(self, ws: Session, key: str) -> Incident | None:
        return self._open_gateways.get(key)

    def _open_gateway_incident(
        self, ws: Session, key: str, started: datetime, now: datetime, detail: dict[str, Any]
    ) -> None:
        incident = Incident(
            kind=IncidentKind.GATEWAY.value,
            gateway=key,
            open_key=store.open_key(IncidentKind.GATEWAY, key),
            started_at=started,
            detected_at=now,
            detail=detail,
        )
        ws.add(incident)
        self._open_gateways[key] = incident

    def _close_gateway_incident(self, incident: Incident, ended: datetime, now: datetime) -> None:
        incident.ended_at = max(ended, incident.started_at)
        incident.closed_at, incident.open_key = now, None
        key = incident.gateway or ""
        self._open_gateways.pop(key, None)
        self._gateway_closed[key] = now

    def _gateways(
        self,
        ws: Session,
        now: datetime,
        progress: Mapping[TargetKey, store.Progress],
        silent: set[str],
    ) -> dict[str, GatewayVerdict]:
        """Judge every gateway; open/close GATEWAY incidents; return the verdicts by key."""
        fraction = self._config.server.gateway_down_fraction
        reachable = set(self._config.sites) - silent
        members = {
            key: MemberView(p.snapshot.level, p.snapshot.last_obs, p.snapshot.last_at)
            for key, p in progress.items()
        }
        verdicts: dict[str, GatewayVerdict] = {}
        for gateway, closed in ws.execute(
            select(Incident.gateway, func.max(Incident.closed_at))
            .where(Incident.kind == IncidentKind.GATEWAY.value, Incident.closed_at.is_not(None))
            .group_by(Incident.gateway)
        ):
            if gateway is not None and closed is not None:
                self._gateway_closed[gateway] = closed
        for group in self._groups.values():
            verdict = judge_gateway(group, members, reachable, fraction)
            verdicts[group.key] = verdict
            current = self._open_gateway(ws, group.key)
            if verdict.is_down and current is None:
                starts = self._down_starts(ws, group, verdict.down, progress)
                self._open_gateway_incident(
                    ws,
                    group.key,
                    gateway_started_at(starts, len(verdict.considered), fraction),
                    now,
                    {"sites": list(verdict.down), "considered": list(verdict.considered)},
                )
            elif current is not None and verdict.is_down is False:
                self._close_gateway_incident(
                    current, self._gateway_end(ws, group, current, now), now
                )
            elif current is not None and verdict.is_down:
                current.detail = {
                    **current.detail,
                    "sites": sorted(set(current.detail.get("sites", [])) | set(verdict.down)),
                    "considered": list(verdict.considered),
                }
        ws.flush()
        return verdicts

    def _down_starts(
        self,
        ws: Session,
        group: GatewayGroup,
        down_sites: Iterable[str],
        progress: Mapping[TargetKey, store.Progress],
    ) -> list[datetime]:
        wanted = set(down_sites)
        starts: dict[str, datetime] = {}
        for incident in ws.scalars(
            select(Incident).where(
                Incident.kind == IncidentKind.TARGET.value,
                Incident.ended_at.is_(None),
                Incident.site_id.in_(sorted(wanted)),
            )
        ):
            key = (incident.site_id or "", incident.target_id or "")
            if key in group.members:
                site = key[0]
                starts[site] = min(starts.get(site, incident.started_at), incident.started_at)
        for site_id, target_id in group.members:
            known = progress.get((site_id, target_id))
            since = known.snapshot.since if known else None
            if site_id in wanted and site_id not in starts and since is not None:
                starts[site_id] = since
        return list(starts.values())

    def _gateway_end(
        self, ws: Session, group: GatewayGroup, current: Incident, now: datetime
    ) -> datetime:
        ends = [
            incident.ended_at
            for incident in ws.scalars(
                select(Incident).where(
                    Incident.kind == IncidentKind.TARGET.value,
                    Incident.ended_at >= current.started_at,
                    Incident.site_id.in_(sorted(group.sites)),
                )
            )
            if (incident.site_id, incident.target_id) in group.members
            and incident.ended_at is not None
        ]
        return max(min(ends), current.started_at) if ends else max(now, current.started_at)

    # -- alerts -------------------------------------------------------------------------

    def _announce(
        self,
        ws: Session,
        now: datetime,
        scan: _Scan,
        progress: Mapping[TargetKey, store.Progress],
        agents: Mapping[str, _SiteFacts],
        silent: set[str],
        verdicts: Mapping[str, GatewayVerdict],
        windows: Sequence[Window],
    ) -> list[AlertEvent]:
        """Queue the alerts due now; mark what is held and why. Returns the new events."""
        for incident in ws.scalars(
            select(Incident).where(
                Incident.kind == IncidentKind.TARGET.value, Incident.ended_at.is_(None)
            )
        ):
            if (incident.site_id or "", incident.target_id or "") not in self._rules:
                # The target left the configuration: its outage is over as far as we know.
                incident.ended_at = max(now, incident.started_at)
                incident.closed_at, incident.open_key = now, None
                incident.detail = {**incident.detail, "removed_from_config": True}
        for incident in ws.scalars(
            select(Incident).where(
                Incident.ended_at.is_not(None),
                Incident.down_notified_at.is_(None),
                Incident.suppressed.is_(None),
            )
        ):
            incident.suppressed = Hold.BACKFILLED.value
        due = ws.scalars(
            select(Incident)
            .where(
                or_(
                    and_(Incident.ended_at.is_(None), Incident.down_notified_at.is_(None)),
                    and_(
                        Incident.ended_at.is_not(None),
                        Incident.down_notified_at.is_not(None),
                        Incident.recovery_notified_at.is_(None),
                    ),
                )
            )
            .order_by(Incident.id)
        ).all()
        open_gateways: set[str | None] = set(self._open_gateways)
        events: list[AlertEvent] = []
        for incident in due:
            kind = IncidentKind(incident.kind)
            if incident.ended_at is not None:
                event = self._event(incident, _RECOVERY[kind])
                incident.recovery_notified_at = now
            else:
                hold = self._hold(
                    incident, now, scan, progress, agents, silent, verdicts, windows, open_gateways
                )
                if hold is not None:
                    incident.suppressed = hold.value
                    continue
                event = self._event(incident, _PROBLEM[kind])
                incident.down_notified_at = now
                incident.suppressed = None
            if self._sink.enqueue(ws, event):
                events.append(event)
        return events

    def _hold(
        self,
        incident: Incident,
        now: datetime,
        scan: _Scan,
        progress: Mapping[TargetKey, store.Progress],
        agents: Mapping[str, _SiteFacts],
        silent: set[str],
        verdicts: Mapping[str, GatewayVerdict],
        windows: Sequence[Window],
        open_gateways: set[str | None],
    ) -> Hold | None:
        kind = IncidentKind(incident.kind)
        if kind is IncidentKind.SITE:
            site_id = incident.site_id or ""
            if active_window(windows, site_id, None, now):
                return Hold.MAINTENANCE
            central_closed_s = self._since_gateway_closed(CENTRAL_GROUP, now)
            wait_max_s = self._config.server.site_silent_after_s
            if CENTRAL_GROUP in open_gateways or (
                central_closed_s is not None and central_closed_s < wait_max_s
            ):
                return Hold.CENTRAL
            waited_s = (now - incident.detected_at).total_seconds()
            if waited_s < self._config.server.site_silent_after_s and central_outage(
                self._quiet_sites(now, agents), self._config.sites, self._fraction
            ):
                return Hold.CORRELATING
            return None
        if kind is IncidentKind.GATEWAY:
            if incident.gateway == CENTRAL_GROUP:
                return None
            return self._gateway_hold(incident, now, scan, progress, agents, verdicts, windows)
        key = (incident.site_id or "", incident.target_id or "")
        rules = self._rules.get(key)
        known = progress.get(key)
        if rules is None or known is None:
            return Hold.BEHIND
        group = self._group_of.get(key)
        verdict = verdicts.get(group) if group else None
        facts = TargetFacts(
            caught_up=not scan.truncated and not known.behind,
            site_reachable=key[0] not in silent,
            settled=self._settled(key, incident.started_at, known, agents),
            in_maintenance=active_window(windows, key[0], key[1], now) is not None,
            gateway_open=group is not None and group in open_gateways,
            gateway_closed_s=self._since_gateway_closed(group, now),
            recovering=known.snapshot.last_obs in (Observation.UP, Observation.DEGRADED),
            verdict=verdict,
            peers_lagging=self._peers_lagging(key, group, incident, progress, silent),
            waited_s=(now - incident.detected_at).total_seconds(),
            wait_max_s=self._config.server.site_silent_after_s,
        )
        return target_hold(facts)

    def _quiet_sites(self, now: datetime, agents: Mapping[str, _SiteFacts]) -> set[str]:
        """Return the sites silent for half the silent bound: about to count as silent."""
        half_s = self._config.server.site_silent_after_s / 2
        quiet = set()
        for site_id in self._config.sites:
            facts = agents.get(site_id)
            last = facts.last_upload_at if facts else None
            if last is None or (now - last).total_seconds() > half_s:
                quiet.add(site_id)
        return quiet

    def _since_gateway_closed(self, group: str | None, now: datetime) -> float | None:
        closed = self._gateway_closed.get(group) if group else None
        return None if closed is None else (now - closed).total_seconds()

    def _settled(
        self,
        key: TargetKey,
        started_at: datetime,
        known: store.Progress,
        agents: Mapping[str, _SiteFacts],
    ) -> bool:
        back = self._back_at.get(key[0])
        if back is None:
            return True
        rules = self._rules[key]
        facts = agents.get(key[0])
        offset = facts.clock_offset_s if facts else None
        agent_back = settle_until(back, offset, rules.interval_s, 0)
        if started_at >= agent_back:
            return True
        need = settle_until(back, offset, rules.interval_s, rules.successes_to_recover)
        last = known.snapshot.last_at
        return last is not None and last >= need

    def _peers_lagging(
        self,
        key: TargetKey,
        group: str | None,
        incident: Incident,
        progress: Mapping[TargetKey, store.Progress],
        silent: set[str],
    ) -> bool:
        if group is None or incident.confirmed_at is None:
            return False
        newest: dict[str, datetime | None] = {}
        for member in self._groups[group].members:
            if member[0] == key[0] or member[0] in silent:
                continue
            known = progress.get(member)
            at = known.snapshot.last_at if known else None
            if at is not None:
                prior = newest.get(member[0])
                newest[member[0]] = at if prior is None else max(prior, at)
            else:
                newest.setdefault(member[0], None)
        return any(at is None or at < incident.confirmed_at for at in newest.values())

    def _gateway_hold(
        self,
        incident: Incident,
        now: datetime,
        scan: _Scan,
        progress: Mapping[TargetKey, store.Progress],
        agents: Mapping[str, _SiteFacts],
        verdicts: Mapping[str, GatewayVerdict],
        windows: Sequence[Window],
    ) -> Hold | None:
        if scan.truncated:
            return Hold.BEHIND
        group = self._groups.get(incident.gateway or "")
        verdict = verdicts.get(incident.gateway or "")
        if group is None or verdict is None:
            return None
        down_members = [
            m
            for m in group.members
            if m[0] in verdict.down
            and (p := progress.get(m)) is not None
            and p.snapshot.level is not None
            and p.snapshot.level is TargetState.DOWN
        ]
        for member in down_members:
            known = progress[member]
            if known.behind:
                return Hold.BEHIND
            if not self._settled(member, known.snapshot.since or now, known, agents):
                return Hold.SITE_SETTLING
        if down_members and all(active_window(windows, s, t, now) for s, t in down_members):
            return Hold.MAINTENANCE
        return None

    def _event(self, incident: Incident, kind: AlertKind) -> AlertEvent:
        subject = self._subject(incident)
        ended = incident.ended_at if kind.is_recovery else None
        english, lao = summaries(kind, subject, incident.started_at, ended)
        extra: dict[str, Any] = {
            "incident_kind": incident.kind,
            "started_at": incident.started_at.isoformat(),
        }
        if ended is not None:
            extra["ended_at"] = ended.isoformat()
            extra["duration_s"] = (ended - incident.started_at).total_seconds()
        if incident.gateway is not None:
            extra["sites"] = incident.detail.get("sites", [])
        if incident.suppressed:
            extra["held_for"] = incident.suppressed
        return AlertEvent(
            key=event_key(incident.id, kind),
            kind=kind,
            incident_id=incident.id,
            site_id=incident.site_id,
            target_id=incident.target_id,
            started_at=incident.started_at,
            occurred_at=ended or incident.started_at,
            summary_en=english,
            summary_lo=lao,
            detail=detail_of(subject, extra),
        )

    def _subject(self, incident: Incident) -> Subject:
        server = self._config.server
        if incident.kind == IncidentKind.GATEWAY.value:
            sites = incident.detail.get("sites", [])
            considered = incident.detail.get("considered", [])
            name = (
                "the central server's link (uploads from most sites stopped)"
                if incident.gateway == CENTRAL_GROUP
                else incident.gateway
            )
            return Subject(zone=server.time_zone, gateway=name, sites=(len(sites), len(considered)))
        site = self._config.sites.get(incident.site_id or "")
        if site is None:
            return Subject(zone=server.time_zone, site_name=incident.site_id)
        target_name = None
        if incident.target_id is not None:
            spec = next((t for t in site.targets if t.id == incident.target_id), None)
            target_name = spec.display_name if spec else incident.target_id
        return Subject(
            zone=self._config.site_zone(incident.site_id or ""),
            site_name=site.name,
            site_name_lo=site.name_lo,
            target_name=target_name,
        )


_PROBLEM = {
    IncidentKind.TARGET: AlertKind.TARGET_DOWN,
    IncidentKind.SITE: AlertKind.SITE_UNREACHABLE,
    IncidentKind.GATEWAY: AlertKind.GATEWAY_DOWN,
}
_RECOVERY = {
    IncidentKind.TARGET: AlertKind.TARGET_RECOVERED,
    IncidentKind.SITE: AlertKind.SITE_RECOVERED,
    IncidentKind.GATEWAY: AlertKind.GATEWAY_RECOVERED,
}


def evaluator_for(services: Services, sink: AlertSink | None = None) -> Evaluator:
    """Return the server's evaluator; alerts go to ``sink`` or the notification outbox."""
    if sink is None:
        from monitor.alerting.outbox import OutboxSink

        sink = OutboxSink(services.config.notifications, services.clock)
    return Evaluator(services.config, services.engine, services.sessions, services.clock, sink)


async def run_evaluator(services: Services, stop: asyncio.Event) -> None:
    """Run evaluator passes every ``server.evaluate_every_s`` until ``stop`` is set.

    Each pass runs in a worker thread. A pass that did not catch up (a backfill) is
    followed at once by the next; a failing pass is logged and retried next period.
    """
    evaluator = evaluator_for(services)
    period = services.config.server.evaluate_every_s
    failures = 0
    while not stop.is_set():
        delay = period
        try:
            summary = await asyncio.to_thread(evaluator.run_pass)
            failures = 0
            if not summary.caught_up:
                delay = 0.05
        except SQLAlchemyError as exc:
            failures += 1
            if failures == 1:
                log.warning("state evaluation failed, retrying every %gs: %s", period, exc)
            else:
                log.debug("state evaluation failed again: %s", exc)
        except Exception:
            failures += 1
            log.exception("state evaluation failed; retrying in %gs", period)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
