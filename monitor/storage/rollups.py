"""Rollup maths: summarise probe rounds into buckets, merge buckets, place instants in buckets.

Pure functions and frozen records; no I/O (the job that reads results and writes rollup
rows is :mod:`monitor.storage.rollups_job`).

A bucket's RTT distribution is kept in an :class:`RttSketch`: a histogram over
logarithmic bins (the DDSketch layout: Masson, Rim and Lee, "DDSketch: a fast and
fully-mergeable quantile sketch with relative-error guarantees", VLDB 2019). Any quantile
read from it is within :data:`RELATIVE_ACCURACY` (1 %) of a true sample value, and two
sketches merge exactly by adding counts, so an hour is the exact merge of its twelve
5-minute buckets and a day of its hours: percentiles never become "medians of medians".

Which RTTs go in: for an ICMP round each reply's RTT (``rtts_s``, SmokePing-style: the
spread of a round's own samples is what the chart shades); for other kinds, or an ICMP
round stored without samples, the round's ``rtt_s``. A round whose status is ``error``
(the monitor could not measure) adds to ``error`` and to nothing else.

Buckets are aligned on the site's local clock: 5-minute and hour buckets start at local
:00/:05... and :00, days at local midnight, so a zone at UTC+05:45 still gets whole local
hours and an hour never straddles two local days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from probes.result import ProbeStatus

GAMMA = 1.02
"""Ratio between consecutive sketch bins."""

RELATIVE_ACCURACY = (GAMMA - 1) / (GAMMA + 1)
"""Worst relative error of a quantile read from a sketch (about 0.0099)."""

MIN_RTT_S = 1e-6
"""RTTs below this (1 µs) share the sketch's lowest bin; 0 s is counted there too."""

_LOG_GAMMA = math.log(GAMMA)


class Resolution(StrEnum):
    """The size of a rollup bucket."""

    FIVE_MIN = "5m"
    HOUR = "1h"
    DAY = "1d"


class RoundLike(Protocol):
    """What a rollup reads of one stored probe round (a ``results`` row or a record).

    ``status`` is a :class:`probes.result.ProbeStatus` value; times aware; RTTs and jitter
    in seconds (``None``: not measured); ``sent``/``received`` echo counts (``None`` for
    kinds that send no packets); ``rtts_s`` the per-request RTTs, ``None`` for a lost one.
    """

    @property
    def status(self) -> str: ...
    @property
    def measured_at(self) -> datetime: ...
    @property
    def rtt_s(self) -> float | None: ...
    @property
    def jitter_s(self) -> float | None: ...
    @property
    def sent(self) -> int | None: ...
    @property
    def received(self) -> int | None: ...
    @property
    def rtts_s(self) -> Sequence[float | None] | None: ...


def sketch_index(rtt_s: float) -> int:
    """Return the sketch bin of ``rtt_s`` (seconds, >= 0): ceil(log_gamma(max(rtt, 1 µs)))."""
    return math.ceil(math.log(max(rtt_s, MIN_RTT_S)) / _LOG_GAMMA)


def sketch_value(index: int) -> float:
    """Return the value (seconds) standing for bin ``index``: 2 * GAMMA**i / (GAMMA + 1)."""
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


@dataclass(frozen=True, slots=True)
class RttSketch:
    """A mergeable RTT histogram: bin index -> number of samples (see module docstring)."""

    counts: Mapping[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of samples counted."""
        return sum(self.counts.values())

    def quantile(self, q: float) -> float | None:
        """Return the ``q``-quantile (0-1) in seconds, ``None`` when empty.

        Nearest rank on the bins: the bin holding the sample of rank ``q·(n-1)`` (0-based).
        Raises ValueError when ``q`` is outside 0-1.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} is outside 0-1")
        total = self.total
        if total == 0:
            return None
        rank = q * (total - 1)
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen > rank:
                return sketch_value(index)
        return sketch_value(max(self.counts))  # pragma: no cover - rank < total always

    def to_json(self) -> dict[str, int]:
        """Return the sketch as a JSON object (bin index as text -> count)."""
        return {str(index): count for index, count in sorted(self.counts.items())}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RttSketch:
        """Read what :meth:`to_json` wrote; ``None`` or ``{}`` is an empty sketch."""
        return cls({int(index): int(count) for index, count in (data or {}).items()})


@dataclass(frozen=True, slots=True)
class BucketStats:
    """The summary of the rounds of one target in one bucket.

    Counts: ``rounds`` = ``up + down + error`` (by ``ProbeStatus``); ``sent``/``received``
    echo requests and unique replies of the rounds that count packets (ICMP).
    RTT: ``rtt_samples`` samples, their sum, exact min and max (seconds, ``None`` when
    there are none) and the sketch for quantiles. Jitter: the sum of the rounds' jitter
    over ``jitter_rounds`` rounds that measured it. ``first``/``last_measured_at``: the
    earliest and latest round (``None`` only for an empty bucket).
    """

    rounds: int = 0
    up: int = 0
    down: int = 0
    error: int = 0
    sent: int = 0
    received: int = 0
    rtt_samples: int = 0
    rtt_sum_s: float = 0.0
    rtt_min_s: float | None = None
    rtt_max_s: float | None = None
    jitter_rounds: int = 0
    jitter_sum_s: float = 0.0
    sketch: RttSketch = field(default_factory=RttSketch)
    first_measured_at: datetime | None = None
    last_measured_at: datetime | None = None

    @property
    def packet_loss(self) -> float | None:
        """Lost requests / sent requests (ratio 0-1) over the bucket; ``None``: none sent."""
        if self.sent <= 0:
            return None
        return max(0.0, min(1.0, (self.sent - self.received) / self.sent))

    @property
    def jitter_s(self) -> float | None:
        """Mean of the rounds' jitter, seconds; ``None`` when no round measured it."""
        return self.jitter_sum_s / self.jitter_rounds if self.jitter_rounds else None

    @property
    def rtt_mean_s(self) -> float | None:
        """Mean RTT of the samples, seconds; ``None`` when there are none."""
        return self.rtt_sum_s / self.rtt_samples if self.rtt_samples else None

    def rtt_quantile(self, q: float) -> float | None:
        """Return the ``q``-quantile RTT (seconds), clamped to the exact min/max."""
        value = self.sketch.quantile(q)
        if value is None or self.rtt_min_s is None or self.rtt_max_s is None:
            return None
        return min(max(value, self.rtt_min_s), self.rtt_max_s)


def summarize(rounds: Iterable[RoundLike]) -> BucketStats:
    """Summarise probe rounds into one :class:`BucketStats` (see the module docstring)."""
    counts: dict[int, int] = {}
    n = up = down = error = sent = received = samples = jitter_n = 0
    rtt_sum = jitter_sum = 0.0
    rtt_min = rtt_max = None
    first = last = None
    for r in rounds:
        n += 1
        first = r.measured_at if first is None or r.measured_at < first else first
        last = r.measured_at if last is None or r.measured_at > last else last
        if r.status == ProbeStatus.ERROR:
            error += 1
            continue
        if r.status == ProbeStatus.UP:
            up += 1
        else:
            down += 1
        if r.sent is not None:
            sent += r.sent
            received += min(r.received or 0, r.sent)
        if r.jitter_s is not None:
            jitter_n += 1
            jitter_sum += r.jitter_s
        values = [v for v in (r.rtts_s or ()) if v is not None]
        if not values and r.rtt_s is not None:
            values = [r.rtt_s]
        for value in values:
            if not math.isfinite(value) or value < 0:
                continue
            samples += 1
            rtt_sum += value
            rtt_min = value if rtt_min is None or value < rtt_min else rtt_min
            rtt_max = value if rtt_max is None or value > rtt_max else rtt_max
            index = sketch_index(value)
            counts[index] = counts.get(index, 0) + 1
    return BucketStats(
        rounds=n,
        up=up,
        down=down,
        error=error,
        sent=sent,
        received=received,
        rtt_samples=samples,
        rtt_sum_s=rtt_sum,
        rtt_min_s=rtt_min,
        rtt_max_s=rtt_max,
        jitter_rounds=jitter_n,
        jitter_sum_s=jitter_sum,
        sketch=RttSketch(counts),
        first_measured_at=first,
        last_measured_at=last,
    )


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def merge(parts: Iterable[BucketStats]) -> BucketStats:
    """Merge bucket summaries into one, exactly (counts, sums and sketches add)."""
    counts: dict[int, int] = {}
    fields: dict[str, Any] = {
        "rounds": 0,
        "up": 0,
        "down": 0,
        "error": 0,
        "sent": 0,
        "received": 0,
        "rtt_samples": 0,
        "rtt_sum_s": 0.0,
        "jitter_rounds": 0,
        "jitter_sum_s": 0.0,
    }
    lo = hi = first = last = None
    for part in parts:
        for name in fields:
            fields[name] += getattr(part, name)
        lo, hi = _min(lo, part.rtt_min_s), _max(hi, part.rtt_max_s)
        first, last = _min(first, part.first_measured_at), _max(last, part.last_measured_at)
        for index, count in part.sketch.counts.items():
            counts[index] = counts.get(index, 0) + count
    return BucketStats(
        **fields,
        rtt_min_s=lo,
        rtt_max_s=hi,
        sketch=RttSketch(counts),
        first_measured_at=first,
        last_measured_at=last,
    )


_BUCKET_MINUTES = {Resolution.FIVE_MIN: 5, Resolution.HOUR: 60}


def bucket_start(instant: datetime, resolution: Resolution, zone: ZoneInfo) -> datetime:
    """Return the UTC start of the ``resolution`` bucket holding ``instant`` in ``zone``.

    ``instant`` must be aware (ValueError otherwise). Buckets are floored on the local
    clock; around a DST change an hour is still one hour of real time (``fold`` kept).
    """
    if instant.tzinfo is None:
        raise ValueError("naive datetime given where an aware instant is required")
    local = instant.astimezone(zone)
    if resolution is Resolution.DAY:
        return day_start(local.date(), zone)
    minutes = _BUCKET_MINUTES[resolution]
    floored = local.replace(minute=local.minute - local.minute % minutes, second=0, microsecond=0)
    return floored.astimezone(UTC)


def bucket_length(resolution: Resolution) -> timedelta:
    """Return the nominal length of a bucket (a day is 24 h; a DST day differs)."""
    if resolution is Resolution.DAY:
        return timedelta(days=1)
    return timedelta(minutes=_BUCKET_MINUTES[resolution])


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """Return the calendar day of ``instant`` (aware) in ``zone``."""
    return instant.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of local midnight starting ``day`` in ``zone``."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_end(day: date, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of local midnight ending ``day`` in ``zone``."""
    return day_start(day + timedelta(days=1), zone)
