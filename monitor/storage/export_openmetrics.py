"""Render stored results as OpenMetrics text with a timestamp per sample, for backfilling.

The server's live ``/metrics`` shows each target's *latest* result, stamped by the scrape:
it cannot carry a backlog that arrives hours late, and Prometheus drops samples older than
its head block (or its out-of-order window). This renders the stored history instead, each
sample at its measurement time, for ``promtool tsdb create-blocks-from openmetrics``; the
operator's procedure is in ``docs/store-and-forward.md``.

Families and their meaning match the live ones of :mod:`api.metrics` (same names, same
labels ``site``, ``target``, ``kind``, optionally ``job`` and ``instance`` so the backfilled
series are the scraped ones): ``linkwatch_probe_success`` (1 up, 0 down; none for a
monitor-side error), ``linkwatch_probe_monitor_error`` (1 or 0),
``linkwatch_probe_rtt_seconds``, ``linkwatch_probe_packet_loss_ratio``,
``linkwatch_probe_jitter_seconds``, ``linkwatch_probe_duplicates`` (none when not measured
or on a monitor-side error). Timestamps are Unix seconds with microseconds; Prometheus keeps
milliseconds.

Format (OpenMetrics 1.0): each family's samples are contiguous, each series' samples in
increasing time (a second result at the very same instant is left out), and the text ends
with ``# EOF``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.storage.models import Result, Target
from monitor.wire_compact import to_us
from probes.result import ProbeStatus

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_CHUNK_LINES = 5000
_YIELD_PER = 5000


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    help: str
    value: Callable[[str, float | None, float | None, float | None, int | None], float | None]


def _success(status: str, *_: object) -> float | None:
    if status == ProbeStatus.ERROR:
        return None
    return 1.0 if status == ProbeStatus.UP else 0.0


def _monitor_error(status: str, *_: object) -> float | None:
    return 1.0 if status == ProbeStatus.ERROR else 0.0


def _measure(index: int) -> Callable[..., float | None]:
    def pick(status: str, *measures: float | int | None) -> float | None:
        value = measures[index]
        if status == ProbeStatus.ERROR or value is None:
            return None
        return float(value)

    return pick


FAMILIES: tuple[_Family, ...] = (
    _Family("linkwatch_probe_success", "Round: target answered (1) or not (0).", _success),
    _Family(
        "linkwatch_probe_monitor_error",
        "Round: the monitor could not measure (1, not a target failure) or could (0).",
        _monitor_error,
    ),
    _Family("linkwatch_probe_rtt_seconds", "Round's round-trip time (ICMP: mean).", _measure(0)),
    _Family("linkwatch_probe_packet_loss_ratio", "Round's packet loss, ratio 0-1.", _measure(1)),
    _Family("linkwatch_probe_jitter_seconds", "Round's jitter (RFC 3550 style).", _measure(2)),
    _Family("linkwatch_probe_duplicates", "Round's duplicate echo replies.", _measure(3)),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}"
    return repr(value)


def _timestamp(moment: datetime) -> str:
    us = to_us(moment)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def render_openmetrics(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    site_id: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Yield the OpenMetrics text of the results measured in ``[start, end)``, in chunks.

    Args:
        session: a read-only session (kept open while the text is yielded).
        start, end: aware datetimes; results with ``start <= measured_at < end``.
        site_id: only this site's targets; ``None``: every site.
        extra_labels: labels added to every sample (e.g. ``job``, ``instance``) so the
            series match those Prometheus scraped; they come first, then ``site``,
            ``target``, ``kind``.

    Targets no longer configured are included (their history is still history).
    """
    stmt = select(Target.site_id, Target.target_id, Target.kind).order_by(
        Target.site_id, Target.target_id
    )
    if site_id is not None:
        stmt = stmt.where(Target.site_id == site_id)
    targets = [(str(s), str(t), str(k)) for s, t, k in session.execute(stmt)]
    extra = sorted((extra_labels or {}).items())
    lines: list[str] = []
    for family in FAMILIES:
        lines.append(f"# TYPE {family.name} gauge")
        lines.append(f"# HELP {family.name} {family.help}")
        for site, target, kind in targets:
            labels = _labels([*extra, ("site", site), ("target", target), ("kind", kind)])
            rows = session.execute(
                select(
                    Result.measured_at,
                    Result.status,
                    Result.rtt_s,
                    Result.packet_loss,
                    Result.jitter_s,
                    Result.duplicates,
                )
                .where(
                    Result.site_id == site,
                    Result.target_id == target,
                    Result.measured_at >= start,
                    Result.measured_at < end,
                )
                .order_by(Result.measured_at, Result.id)
                .execution_options(yield_per=_YIELD_PER)
            )
            last_stamp = ""
            for measured_at, status, rtt_s, loss, jitter_s, dups in rows:
                value = family.value(status, rtt_s, loss, jitter_s, dups)
                stamp = _timestamp(measured_at)
                if value is None or stamp == last_stamp:
                    continue
                last_stamp = stamp
                lines.append(f"{family.name}{{{labels}}} {_number(value)} {stamp}")
                if len(lines) >= _CHUNK_LINES:
                    yield "\n".join(lines) + "\n"
                    lines = []
    lines.append("# EOF")
    yield "\n".join(lines) + "\n"
