"""The link-quality score: 0-100, measured against the site's own link profile.

Why not the ITU-T G.107 E-model (R factor / MOS)? It rates a voice call, so it marks every
satellite link "poor" however well it works (600 ms RTT alone costs about 40 R points). The
posts' links are fibre, 4G and VSAT by design, and their profiles already say what is
normal for each (DESIGN: "thresholds belong to the link"). So each measure is compared with
its profile threshold:

    x = measure / threshold                    (RTT, packet loss, jitter)
    penalty(x) = 0                             when x <= 0.5
               = 40 * (x - 0.5) / 0.5          when 0.5 < x <= 1   (40 at the threshold)
               = 40 + 60 * min(x - 1, 1)       when x > 1          (100 at twice it)
    score = 100 * product over the measured m of (1 - penalty(x_m) / 100)

A link using up to half of every threshold scores 100; one measure at its DEGRADED
threshold scores 60; two at it, 36; any measure at twice its threshold, 0. A target that is
DOWN scores 0. A measure not taken (``None``), or a profile without a jitter threshold,
leaves that factor out; a zero threshold makes any non-zero value cost 100. No usable
round (UNKNOWN, stale, monitor error): no score (``None``).

Bands for the word shown beside the number: good >= 80, fair >= 60, poor below.
"""

from __future__ import annotations

import math
from enum import StrEnum

from monitor.config import LinkProfile


class ScoreBand(StrEnum):
    """The word for a score."""

    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"


GOOD_FROM = 80.0
FAIR_FROM = 60.0


def penalty(measure: float, threshold: float) -> float:
    """Return the penalty (0-100) of one measure against its threshold (same unit)."""
    if threshold <= 0:
        return 100.0 if measure > 0 else 0.0
    x = measure / threshold
    if x <= 0.5:
        return 0.0
    if x <= 1.0:
        return 40.0 * (x - 0.5) / 0.5
    return 40.0 + 60.0 * min(x - 1.0, 1.0)


def link_score(
    rtt_s: float | None,
    packet_loss: float | None,
    jitter_s: float | None,
    profile: LinkProfile,
    *,
    down: bool = False,
) -> float | None:
    """Return the link-quality score (0-100) of one round's measures; see the module docstring.

    Args:
        rtt_s: round-trip time, seconds; ``None`` if not measured.
        packet_loss: ratio 0-1; ``None`` if not measured.
        jitter_s: seconds; ``None`` if not measured.
        profile: the site's link profile (thresholds).
        down: the target is DOWN: the score is 0.

    Returns ``None`` when nothing was measured (and the target is not down).
    """
    if down:
        return 0.0
    pairs: list[tuple[float | None, float | None]] = [
        (rtt_s, profile.rtt_degraded_s),
        (packet_loss, profile.packet_loss_degraded),
        (jitter_s, profile.jitter_degraded_s),
    ]
    measured = [(m, t) for m, t in pairs if m is not None and math.isfinite(m) and t is not None]
    if not measured:
        return None
    score = 100.0
    for measure, threshold in measured:
        score *= 1.0 - penalty(measure, threshold) / 100.0
    return max(0.0, min(100.0, score))


def score_band(score: float) -> ScoreBand:
    """Return the band of a score: good (>= 80), fair (>= 60), poor."""
    if score >= GOOD_FROM:
        return ScoreBand.GOOD
    if score >= FAIR_FROM:
        return ScoreBand.FAIR
    return ScoreBand.POOR
