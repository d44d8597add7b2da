"""Lay out a SmokePing-style latency chart as SVG geometry, from rollup points.

What is drawn per bucket (x = time, y = RTT in ms, linear from 0):

- the spread of the bucket's RTT samples: min-max as a light band, 10th-90th percentile as
  a darker band ("smoke");
- the median as a line coloured by the bucket's loss class (:class:`LossClass`);
- buckets whose rounds all failed (no RTT at all) as a full-height red column, and buckets
  whose rounds the monitor could not measure as a grey column;
- nothing where there is no round (a gap is a gap).

The y axis tops at 1.15 x the highest 90th percentile (at least 1.3 x the highest median),
rounded up to a 1-2-5 step, so one extreme sample cannot flatten the chart; what is above
is clipped. Ticks on x fall on round local times of the site's zone. Only numbers go into
path data; every text is escaped by the template that draws it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from api.status.rollup_queries import Point
from monitor.storage.rollups import Resolution

WIDTH = 720.0
HEIGHT = 200.0
LEFT = 44.0
RIGHT = 8.0
TOP = 8.0
BOTTOM = 22.0


class ChartRange(StrEnum):
    """The windows a chart can show."""

    H3 = "3h"
    D1 = "1d"
    D7 = "7d"
    D30 = "30d"
    Y1 = "1y"


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """A chart window: its length, the rollup level read, and the x-tick step."""

    span: timedelta
    resolution: Resolution
    tick: timedelta
    tick_format: str


RANGES: dict[ChartRange, RangeSpec] = {
    ChartRange.H3: RangeSpec(
        timedelta(hours=3), Resolution.FIVE_MIN, timedelta(minutes=30), "%H:%M"
    ),
    ChartRange.D1: RangeSpec(timedelta(days=1), Resolution.FIVE_MIN, timedelta(hours=3), "%H:%M"),
    ChartRange.D7: RangeSpec(timedelta(days=7), Resolution.HOUR, timedelta(days=1), "%m-%d"),
    ChartRange.D30: RangeSpec(timedelta(days=30), Resolution.HOUR, timedelta(days=5), "%m-%d"),
    ChartRange.Y1: RangeSpec(timedelta(days=365), Resolution.DAY, timedelta(days=30), "%Y-%m"),
}

BUCKET: dict[Resolution, timedelta] = {
    Resolution.FIVE_MIN: timedelta(minutes=5),
    Resolution.HOUR: timedelta(hours=1),
    Resolution.DAY: timedelta(days=1),
}


class LossClass(StrEnum):
    """How much of a bucket's traffic was lost, for the median's colour."""

    NONE = "0"  # no loss
    LOW = "1"  # up to 5 %
    MID = "2"  # up to 20 %
    HIGH = "3"  # up to 50 %
    SEVERE = "4"  # over 50 %


LOSS_LIMITS: tuple[tuple[float, LossClass], ...] = (
    (0.0, LossClass.NONE),
    (0.05, LossClass.LOW),
    (0.20, LossClass.MID),
    (0.50, LossClass.HIGH),
)


def loss_class(loss: float | None) -> LossClass:
    """Return the class of a loss ratio (``None``, no measure, counts as no loss)."""
    if loss is None:
        return LossClass.NONE
    for limit, cls in LOSS_LIMITS:
        if loss <= limit:
            return cls
    return LossClass.SEVERE


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis tick: its position (px in the SVG) and its label."""

    at: float
    label: str


@dataclass(frozen=True, slots=True)
class ChartSummary:
    """The window in numbers, for the text beside the chart (``None``: not measured)."""

    median_s: float | None
    p90_s: float | None
    loss: float | None
    rounds: int
    down_buckets: int


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template needs to draw one chart (paths hold numbers only)."""

    width: float
    height: float
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    outer_band: str
    inner_band: str
    medians: tuple[tuple[LossClass, str], ...]
    outages: str
    unknown: str
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    summary: ChartSummary
    empty: bool


def window(now: datetime, chart_range: ChartRange, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Return ``(start, end)`` of a chart window ending at the end of ``now``'s bucket."""
    from monitor.storage.rollups import bucket_start

    spec = RANGES[chart_range]
    end = bucket_start(now, spec.resolution, zone) + BUCKET[spec.resolution]
    return end - spec.span, end


def _nice_top_ms(value_ms: float) -> float:
    if value_ms <= 1.0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value_ms))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value_ms <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude  # pragma: no cover


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _ms_label(ms: float) -> str:
    return _fmt(ms) if ms < 10 else f"{ms:.0f}"


_Run = list[tuple[float, float, float, float, float]]
"""A run of contiguous buckets: (x start, x end, x middle, y high, y low) each."""


def _band(runs: Sequence[_Run]) -> str:
    """Return path data for one polygon per run, through the buckets' middles (a lone
    bucket spans its own width)."""
    parts: list[str] = []
    for run in runs:
        if not run:
            continue
        if len(run) == 1:
            xa, xb, _, hi, lo = run[0]
            edge = [(xa, hi, lo), (xb, hi, lo)]
        else:
            edge = [(xm, hi, lo) for _, _, xm, hi, lo in run]
        top = " L".join(f"{_fmt(x)},{_fmt(hi)}" for x, hi, _ in edge)
        bottom = " L".join(f"{_fmt(x)},{_fmt(lo)}" for x, _, lo in reversed(edge))
        parts.append(f"M{top} L{bottom} Z")
    return " ".join(parts)


def _columns(spans: Sequence[tuple[float, float]], top: float, bottom: float) -> str:
    return " ".join(
        f"M{_fmt(a)},{_fmt(top)} H{_fmt(b)} V{_fmt(bottom)} H{_fmt(a)} Z" for a, b in spans
    )


def _x_ticks(
    start: datetime,
    end: datetime,
    spec: RangeSpec,
    zone: ZoneInfo,
    x_of: Callable[[datetime], float],
) -> tuple[Tick, ...]:
    """Return ticks on round local times (wall-clock steps in ``zone``) inside the window."""
    local_start = start.astimezone(zone)
    if spec.tick >= timedelta(days=28):
        first = local_start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif spec.tick >= timedelta(days=1):
        first = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        step_min = int(spec.tick.total_seconds() // 60)
        minutes = local_start.hour * 60 + local_start.minute
        minutes -= minutes % step_min
        first = local_start.replace(
            hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0
        )
    ticks: list[Tick] = []
    current = first
    for _ in range(400):
        if current >= end:
            break
        if current >= start:
            ticks.append(Tick(x_of(current), current.strftime(spec.tick_format)))
        if spec.tick >= timedelta(days=28):
            year, month = (current.year + current.month // 12, current.month % 12 + 1)
            current = current.replace(year=year, month=month)
        else:
            current = current + spec.tick  # wall-clock arithmetic in the site's zone
    return tuple(ticks)


def build_chart(
    points: Sequence[Point],
    start: datetime,
    end: datetime,
    chart_range: ChartRange,
    zone: ZoneInfo,
) -> Chart:
    """Lay out the chart of ``points`` (one target's buckets, oldest first) over
    ``[start, end)``; times aware, ``zone`` the site's (for x-axis labels)."""
    spec = RANGES[chart_range]
    step = BUCKET[spec.resolution]
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = TOP, HEIGHT - BOTTOM
    span_s = (end - start).total_seconds()
    t0 = start.timestamp()
    scale = (x1 - x0) / span_s
    step_s = step.total_seconds()

    def x_at(ts: float) -> float:
        return x0 + scale * min(max(ts - t0, 0.0), span_s)

    def x_of(t: datetime) -> float:
        return x_at(t.timestamp())

    inside = [p for p in points if start <= p.start < end]
    medians = [p.rtt_p50_s for p in inside if p.rtt_p50_s is not None]
    p90s = [p.rtt_p90_s for p in inside if p.rtt_p90_s is not None]
    top_ms = _nice_top_ms(
        max(
            1.15 * max(p90s, default=0.0) * 1000,
            1.3 * max(medians, default=0.0) * 1000,
            1.0,
        )
    )

    y_scale = (y1 - y0) * 1000 / top_ms

    def y_of(seconds: float) -> float:
        return y1 - min(seconds * y_scale, y1 - y0)

    outer_runs: list[_Run] = [[]]
    inner_runs: list[_Run] = [[]]
    segments: list[tuple[LossClass, list[tuple[float, float]]]] = []
    outages: list[tuple[float, float]] = []
    unknown: list[tuple[float, float]] = []
    previous_end: float | None = None
    previous_point: tuple[float, float] | None = None
    for p in inside:
        ts = p.start.timestamp()
        xa, xb = x_at(ts), x_at(ts + step_s)
        xm = (xa + xb) / 2
        contiguous = previous_end is not None and ts <= previous_end + 1.0
        if not contiguous:
            outer_runs.append([])
            inner_runs.append([])
            previous_point = None
        previous_end = ts + step_s
        if p.rtt_p50_s is None:
            if p.up + p.down > 0:
                outages.append((xa, xb))
            elif p.error > 0:
                unknown.append((xa, xb))
            outer_runs.append([])
            inner_runs.append([])
            previous_point = None
            continue
        lo = p.rtt_min_s if p.rtt_min_s is not None else p.rtt_p50_s
        hi = p.rtt_max_s if p.rtt_max_s is not None else p.rtt_p50_s
        p10 = p.rtt_p10_s if p.rtt_p10_s is not None else p.rtt_p50_s
        p90 = p.rtt_p90_s if p.rtt_p90_s is not None else p.rtt_p50_s
        outer_runs[-1].append((xa, xb, xm, y_of(hi), y_of(lo)))
        inner_runs[-1].append((xa, xb, xm, y_of(p90), y_of(p10)))
        here = (xm, y_of(p.rtt_p50_s))
        cls = loss_class(p.loss)
        if segments and segments[-1][0] == cls and previous_point is not None:
            segments[-1][1].append(here)
        else:
            start_pts = [previous_point, here] if previous_point is not None else [here]
            segments.append((cls, start_pts))
        previous_point = here
    median_paths: dict[LossClass, list[str]] = {}
    for cls, pts in segments:
        if len(pts) == 1:
            x, y = pts[0]
            pts = [(x - 1.5, y), (x + 1.5, y)]
        d = "M" + " L".join(f"{_fmt(x)},{_fmt(y)}" for x, y in pts)
        median_paths.setdefault(cls, []).append(d)

    y_ticks = tuple(
        Tick(y_of(top_ms * f / 1000), _ms_label(top_ms * f)) for f in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    )
    sent = sum(p.sent for p in inside)
    received = sum(p.received for p in inside)
    up = sum(p.up for p in inside)
    down = sum(p.down for p in inside)
    if sent:
        loss: float | None = (sent - received) / sent
    else:
        loss = down / (up + down) if up + down else None
    ordered = sorted(medians)
    summary = ChartSummary(
        median_s=ordered[len(ordered) // 2] if ordered else None,
        p90_s=sorted(p90s)[int(0.9 * (len(p90s) - 1))] if p90s else None,
        loss=loss,
        rounds=sum(p.rounds for p in inside),
        down_buckets=len(outages),
    )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=x0,
        plot_right=x1,
        plot_top=y0,
        plot_bottom=y1,
        outer_band=_band(outer_runs),
        inner_band=_band(inner_runs),
        medians=tuple((cls, " ".join(paths)) for cls, paths in sorted(median_paths.items())),
        outages=_columns(outages, y0, y1),
        unknown=_columns(unknown, y0, y1),
        y_ticks=y_ticks,
        x_ticks=_x_ticks(start, end, spec, zone, x_of),
        summary=summary,
        empty=not inside,
    )
