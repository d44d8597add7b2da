"""The target state machine with hysteresis: a pure function over time-ordered results.

Each result is one *round* and becomes one :class:`Observation`: UP, DEGRADED (reachable
but over a threshold of the site's link profile or the target's own), DOWN (target-side
failure) or ERROR (monitor-side failure: never DOWN, see case C12).

The machine keeps a *confirmed level* (UP < DEGRADED < DOWN, or none yet):

- It worsens after ``failures_to_down`` consecutive rounds worse than the confirmed level,
  to the best level among those rounds (UP, DEG, DOWN with 3 -> DEGRADED); it improves
  after ``successes_to_recover`` consecutive rounds better than it, to the worst among them.
  A round at the confirmed level breaks a streak. ERROR rounds neither extend nor break a
  streak. Before anything is confirmed, an UP or DEGRADED round is believed at once; DOWN
  needs its ``failures_to_down`` rounds like any other worsening.
- A change is *backdated* to the first round of the streak that confirmed it: a target
  that failed at 11:30 and was confirmed DOWN at 11:32 was DOWN from 11:30; it recovers
  from its first good round. Unconfirmed rounds keep the confirmed level (a single failed
  round inside UP is UP time: cases C13, C25).
- Retries: a probe with N retries maps to ``failures_to_down = N + 1``: each retry is a
  round like any other, so DOWN is declared at the last retry (case C14), and at the first
  failed round with no retries. The agent runs those rounds ``retry_interval_s`` apart
  (:mod:`monitor.agent.scheduler`, counting with :func:`failures_to_down_for`).

Time: each round stands for ``[measured_at, min(next round, measured_at + cap_s))`` where
``cap_s`` is the target's interval plus a grace of half an interval; time no round stands
for is UNKNOWN (no data), as is the time of an ERROR round.

The machine is resumable: :class:`Snapshot` holds the confirmed level and the rounds of an
unfinished streak, whose labels may still change. :func:`advance` re-labels those rounds
with the new ones, so feeding results in any number of chunks gives the same periods as
feeding them at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from monitor.config import Config, LinkProfile, SiteConfig
from monitor.state import ResultLike, TargetState, assess_target
from probes.result import ProbeStatus
from probes.specs import TargetSpec

DEFAULT_FAILURES_TO_DOWN = 3
DEFAULT_SUCCESSES_TO_RECOVER = 2
GRACE_RATIO = 0.5
"""A round stands for at most ``interval_s * (1 + GRACE_RATIO)`` seconds."""


class Observation(StrEnum):
    """What one round says about a target."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    ERROR = "error"


_LEVEL: Mapping[Observation | TargetState, int] = {
    Observation.UP: 0,
    Observation.DEGRADED: 1,
    Observation.DOWN: 2,
    TargetState.UP: 0,
    TargetState.DEGRADED: 1,
    TargetState.DOWN: 2,
}
_STATE_OF_LEVEL = (TargetState.UP, TargetState.DEGRADED, TargetState.DOWN)


@dataclass(frozen=True, slots=True)
class Rules:
    """How one target is judged.

    Attributes:
        profile: the thresholds (site's link profile overlaid with the target's own).
        failures_to_down: consecutive worse rounds to confirm a worse level (>= 1).
        successes_to_recover: consecutive better rounds to confirm a better level (>= 1).
        interval_s: the target's probe interval, seconds.
        cap_s: the longest a round stands for, seconds (interval plus grace).
    """

    profile: LinkProfile
    failures_to_down: int = DEFAULT_FAILURES_TO_DOWN
    successes_to_recover: int = DEFAULT_SUCCESSES_TO_RECOVER
    interval_s: float = 30.0
    cap_s: float = 45.0


def failures_to_down_for(target: TargetSpec, site: SiteConfig | None) -> int:
    """Return the consecutive failed rounds that confirm ``target`` DOWN (>= 1).

    The target's ``failures_to_down``, else its site's, else 3. ``site`` ``None``: no site
    value. The evaluator (:func:`rules_for`) and the agent's retry rounds
    (:mod:`monitor.agent.scheduler`) both use this, so they count the same rounds.
    """
    site_value = site.failures_to_down if site is not None else None
    return target.failures_to_down or site_value or DEFAULT_FAILURES_TO_DOWN


def rules_for(config: Config, site_id: str, target_id: str) -> Rules:
    """Return the rules of ``target_id`` at ``site_id`` from the configuration.

    Thresholds: the site's link profile, each overridden by the target's
    ``rtt_degraded_s``/``packet_loss_degraded``/``jitter_degraded_s`` when set. Hysteresis:
    the target's ``failures_to_down``/``successes_to_recover``, else the site's, else 3 and
    2. Raises KeyError for an unknown site or target.
    """
    site = config.sites[site_id]
    target = next(t for t in site.targets if t.id == target_id)
    profile = config.profiles[site.link_profile]
    overrides = {
        name: getattr(target, name)
        for name in ("rtt_degraded_s", "packet_loss_degraded", "jitter_degraded_s")
        if getattr(target, name) is not None
    }
    if overrides:
        profile = profile.model_copy(update=overrides)
    return Rules(
        profile=profile,
        failures_to_down=failures_to_down_for(target, site),
        successes_to_recover=target.successes_to_recover
        or site.successes_to_recover
        or DEFAULT_SUCCESSES_TO_RECOVER,
        interval_s=target.interval_s,
        cap_s=target.interval_s * (1 + GRACE_RATIO),
    )


def classify(result: ResultLike, profile: LinkProfile) -> Observation:
    """Return what one result says: the same rules as the status page's
    :func:`monitor.state.assess_target`, applied at the result's own time.

    A monitor-side error (status ``error``, e.g. the probe host's resolver failed) is
    ERROR, never DOWN.
    """
    if result.status == ProbeStatus.ERROR:
        return Observation.ERROR
    state = assess_target(result, profile, result.measured_at, 1.0, 0.0).state
    if state is TargetState.DOWN:
        return Observation.DOWN
    if state is TargetState.DEGRADED:
        return Observation.DEGRADED
    return Observation.UP


@dataclass(frozen=True, slots=True)
class Sample:
    """One round as the machine sees it.

    ``at``: measured time (aware); ``seq``: the result's database id (orders rounds with
    the same ``at``); ``cap_s``: the longest the round stands for, seconds.
    """

    at: datetime
    seq: int
    obs: Observation
    cap_s: float


@dataclass(frozen=True, slots=True)
class Segment:
    """``[start, end)`` in one state; consecutive segments may leave gaps (unknown)."""

    start: datetime
    end: datetime
    state: TargetState


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of the confirmed level.

    ``at``: when it took effect (backdated to the streak's first round); ``confirmed_at``:
    the measured time of the round that confirmed it; ``before`` is ``None`` when nothing
    was confirmed yet.
    """

    at: datetime
    confirmed_at: datetime
    before: TargetState | None
    after: TargetState


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The machine between two rounds.

    Attributes:
        level: the confirmed level (UP, DEGRADED or DOWN), ``None`` before the first.
        since: when ``level`` took effect, ``None`` with it.
        pending: rounds of an unfinished streak (and ERROR rounds after its start), oldest
            first; their labels may change. Empty when the machine is *settled*.
        last_at/last_seq: the last round fed in (``None`` before the first).
        last_obs: what that round said (``None`` before the first).
    """

    level: TargetState | None = None
    since: datetime | None = None
    pending: tuple[Sample, ...] = ()
    last_at: datetime | None = None
    last_seq: int | None = None
    last_obs: Observation | None = None

    @property
    def settled(self) -> bool:
        """Whether no streak is unfinished (a safe point to replay from)."""
        return not self.pending

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able dict (instants as ISO 8601 text)."""
        return {
            "level": self.level.value if self.level else None,
            "since": self.since.isoformat() if self.since else None,
            "pending": [[s.at.isoformat(), s.seq, s.obs.value, s.cap_s] for s in self.pending],
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "last_seq": self.last_seq,
            "last_obs": self.last_obs.value if self.last_obs else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """Rebuild a snapshot written by :meth:`to_json` (an empty dict: the initial one)."""

        def when(text: str | None) -> datetime | None:
            return datetime.fromisoformat(text) if text else None

        return cls(
            level=TargetState(data["level"]) if data.get("level") else None,
            since=when(data.get("since")),
            pending=tuple(
                Sample(datetime.fromisoformat(at), int(seq), Observation(obs), float(cap))
                for at, seq, obs, cap in data.get("pending", ())
            ),
            last_at=when(data.get("last_at")),
            last_seq=data.get("last_seq"),
            last_obs=Observation(data["last_obs"]) if data.get("last_obs") else None,
        )


@dataclass(frozen=True, slots=True)
class Run:
    """What :func:`advance` produced.

    Attributes:
        segments: the labelled time from ``rewrite_from`` on, merged, oldest first.
        rewrite_from: from this instant on, stored periods are replaced by ``segments``
            (the first re-labelled round); ``None`` when nothing was fed in.
        transitions: changes of the confirmed level, oldest first (all at or after
            ``rewrite_from``).
        down_spans: the DOWN spans touching ``rewrite_from`` or later: ``(start, end or
            None while DOWN, confirmed_at)``; one that began earlier keeps its start.
        snapshot: the machine after the last round.
        checkpoints: settled snapshots, the first one of each hour of measured time.
    """

    segments: tuple[Segment, ...]
    rewrite_from: datetime | None
    transitions: tuple[Transition, ...]
    down_spans: tuple[tuple[datetime, datetime | None, datetime | None], ...]
    snapshot: Snapshot
    checkpoints: tuple[Snapshot, ...] = field(default=())


def advance(snapshot: Snapshot, samples: Sequence[Sample], rules: Rules) -> Run:
    """Feed ``samples`` (after the snapshot's, in ``(at, seq)`` order) to the machine.

    Returns the labels of the snapshot's pending rounds and of the new ones, the confirmed
    changes, and the machine afterwards. Pure: no I/O, no clock.
    """
    rounds = list(snapshot.pending) + list(samples)
    if not rounds:
        return Run((), None, (), (), snapshot)
    machine = _Machine(snapshot.level, snapshot.since, rules, rounds)
    down_open: datetime | None = snapshot.since if snapshot.level is TargetState.DOWN else None
    checkpoints: dict[int, Snapshot] = {}
    for index in range(len(rounds)):
        machine.feed(index)
        if not machine.streak and index >= len(snapshot.pending):
            sample = rounds[index]
            checkpoints.setdefault(
                int(sample.at.timestamp()) // 3600,
                Snapshot(machine.level, machine.since, (), sample.at, sample.seq, sample.obs),
            )
    spans: list[tuple[datetime, datetime | None, datetime | None]] = []
    confirmed: datetime | None = None
    for change in machine.transitions:
        if change.after is TargetState.DOWN:
            down_open, confirmed = change.at, change.confirmed_at
        elif change.before is TargetState.DOWN and down_open is not None:
            spans.append((down_open, change.at, confirmed))
            down_open, confirmed = None, None
    if down_open is not None:
        spans.append((down_open, None, confirmed))
    last = rounds[-1]
    pending_from = machine.pending_start()
    after = Snapshot(
        level=machine.level,
        since=machine.since,
        pending=tuple(rounds[pending_from:]) if pending_from is not None else (),
        last_at=last.at,
        last_seq=last.seq,
        last_obs=last.obs,
    )
    return Run(
        segments=tuple(_segments(rounds, machine.labels)),
        rewrite_from=rounds[0].at,
        transitions=tuple(machine.transitions),
        down_spans=tuple(spans),
        snapshot=after,
        checkpoints=tuple(checkpoints[k] for k in sorted(checkpoints)),
    )


class _Machine:
    """The mutable working state of one :func:`advance` call."""

    def __init__(
        self,
        level: TargetState | None,
        since: datetime | None,
        rules: Rules,
        rounds: Sequence[Sample],
    ) -> None:
        self.level = level
        self.since = since
        self.rules = rules
        self.rounds = rounds
        self.labels: list[TargetState] = [TargetState.UNKNOWN] * len(rounds)
        self.streak: list[int] = []
        self.transitions: list[Transition] = []

    def pending_start(self) -> int | None:
        return self.streak[0] if self.streak else None

    def _provisional(self) -> TargetState:
        return self.level if self.level is not None else TargetState.UNKNOWN

    def feed(self, index: int) -> None:
        obs = self.rounds[index].obs
        if obs is Observation.ERROR:
            self.labels[index] = TargetState.UNKNOWN
            return
        self.labels[index] = self._provisional()
        level = _LEVEL[obs]
        if self.level is None:
            if level < _LEVEL[Observation.DOWN]:
                self.streak = []
                self._confirm(_STATE_OF_LEVEL[level], [index], index)
                return
            self.streak.append(index)
            if len(self.streak) >= self.rules.failures_to_down:
                self._confirm(TargetState.DOWN, self.streak, index)
                self.streak = []
            return
        current = _LEVEL[self.level]
        if level == current:
            self.streak = []
            return
        worse = level > current
        if self.streak and (_LEVEL[self.rounds[self.streak[0]].obs] > current) != worse:
            self.streak = []
        self.streak.append(index)
        needed = self.rules.failures_to_down if worse else self.rules.successes_to_recover
        if len(self.streak) < needed:
            return
        levels = [_LEVEL[self.rounds[i].obs] for i in self.streak]
        new = _STATE_OF_LEVEL[min(levels) if worse else max(levels)]
        streak = self.streak
        self._confirm(new, streak, index)
        target = _LEVEL[new]
        suffix: list[int] = []
        for i in reversed(streak):
            beyond = _LEVEL[self.rounds[i].obs]
            if (beyond > target) if worse else (beyond < target):
                suffix.insert(0, i)
            else:
                break
        self.streak = suffix

    def _confirm(self, new: TargetState, streak: Sequence[int], index: int) -> None:
        first = streak[0]
        at = self.rounds[first].at
        self.transitions.append(Transition(at, self.rounds[index].at, self.level, new))
        self.level, self.since = new, at
        for i in range(first, index + 1):
            if self.rounds[i].obs is not Observation.ERROR:
                self.labels[i] = new


SPACING_GAPS = 20
"""How many gaps between consecutive rounds :func:`tally_spacing` judges at a time."""


@dataclass(frozen=True, slots=True)
class Spacing:
    """Count the gaps between a target's consecutive rounds.

    ``gaps``: gaps seen; ``beyond``: those longer than the time a round stands for (the
    earlier round's ``cap_s``).
    """

    gaps: int = 0
    beyond: int = 0

    @property
    def mostly_beyond(self) -> bool:
        """Whether at least :data:`SPACING_GAPS` gaps were seen and most were beyond the cap.

        Then the target's rounds come further apart than its ``interval_s`` allows for (the
        agent probes it at a longer interval than the server's configuration says), and each
        round is a period of its own followed by UNKNOWN time.
        """
        return self.gaps >= SPACING_GAPS and 2 * self.beyond > self.gaps


def tally_spacing(spacing: Spacing, last_at: datetime | None, samples: Sequence[Sample]) -> Spacing:
    """Return ``spacing`` with the gaps of ``samples`` added.

    ``samples`` follow a round measured at ``last_at`` (``None``: no round before them). A
    gap is *beyond* when longer than its earlier round's ``cap_s``. Pure.
    """
    gaps, beyond = spacing.gaps, spacing.beyond
    previous: tuple[datetime, float] | None = None
    if last_at is not None and samples:
        previous = (last_at, samples[0].cap_s)
    for sample in samples:
        if previous is not None:
            gaps += 1
            beyond += int((sample.at - previous[0]).total_seconds() > previous[1])
        previous = (sample.at, sample.cap_s)
    return Spacing(gaps, beyond)


def _segments(rounds: Sequence[Sample], labels: Sequence[TargetState]) -> list[Segment]:
    out: list[Segment] = []
    for i, sample in enumerate(rounds):
        end = sample.at + timedelta(seconds=sample.cap_s)
        if i + 1 < len(rounds):
            end = min(end, rounds[i + 1].at)
        if end <= sample.at:
            continue
        state = labels[i]
        if out and out[-1].state is state and out[-1].end == sample.at:
            out[-1] = Segment(out[-1].start, end, state)
        else:
            out.append(Segment(sample.at, end, state))
    return out
