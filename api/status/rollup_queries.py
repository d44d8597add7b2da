"""Read the rollup tables for the status page's charts.

Every read is a primary-key range (site, target, time) and selects only the columns the
charts show (never the sketches), so its cost depends on the window asked for, not on the
history kept. Rows come back as frozen records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.storage.rollups import Resolution
from monitor.storage.rollups_job import table_of


@dataclass(frozen=True, slots=True)
class Point:
    """One rollup bucket of one target, as the charts read it.

    ``start`` aware UTC; counts of rounds by status; RTT quantiles in seconds (``None``
    when the bucket has no RTT sample); ``sent``/``received`` echo requests and replies.
    """

    start: datetime
    rounds: int
    up: int
    down: int
    error: int
    sent: int
    received: int
    rtt_min_s: float | None
    rtt_p10_s: float | None
    rtt_p50_s: float | None
    rtt_p90_s: float | None
    rtt_max_s: float | None

    @property
    def loss(self) -> float | None:
        """The bucket's loss, ratio 0-1: lost/sent packets when packets were counted, else
        the share of measured rounds that were DOWN; ``None`` when nothing was measured."""
        if self.sent > 0:
            return max(0.0, min(1.0, (self.sent - self.received) / self.sent))
        measured = self.up + self.down
        return self.down / measured if measured else None


def target_points(
    session: Session,
    resolution: Resolution,
    site_id: str,
    target_ids: Iterable[str],
    start: datetime,
    end: datetime,
) -> dict[str, list[Point]]:
    """Return each target's buckets with ``start <= bucket_start < end``, oldest first.

    Targets without a bucket in the window are absent.
    """
    table = table_of(resolution)
    c = table.c
    stmt = (
        select(
            c.target_id,
            c.bucket_start,
            c.rounds,
            c.up,
            c.down,
            c.error,
            c.sent,
            c.received,
            c.rtt_min_s,
            c.rtt_p10_s,
            c.rtt_p50_s,
            c.rtt_p90_s,
            c.rtt_max_s,
        )
        .where(
            c.site_id == site_id,
            c.target_id.in_(list(target_ids)),
            c.bucket_start >= start,
            c.bucket_start < end,
        )
        .order_by(c.target_id, c.bucket_start)
    )
    out: dict[str, list[Point]] = defaultdict(list)
    for row in session.execute(stmt):
        out[row.target_id].append(
            Point(
                start=row.bucket_start,
                rounds=row.rounds,
                up=row.up,
                down=row.down,
                error=row.error,
                sent=row.sent,
                received=row.received,
                rtt_min_s=row.rtt_min_s,
                rtt_p10_s=row.rtt_p10_s,
                rtt_p50_s=row.rtt_p50_s,
                rtt_p90_s=row.rtt_p90_s,
                rtt_max_s=row.rtt_max_s,
            )
        )
    return dict(out)
