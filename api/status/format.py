"""Turn measures into the text the status page shows (seconds to ms, ratios to %, times).

A value that was not measured (``None``, or a non-finite float) is shown as :data:`NO_VALUE`,
never as 0, -1 or NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

NO_VALUE = "\u2014"  # em dash

Gettext = Callable[[str], str]


def _known(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def format_ms(seconds: float | None) -> str:
    """Return ``seconds`` as milliseconds: "0.35", "12.3", "612"; "—" when unknown."""
    value = _known(seconds)
    if value is None:
        return NO_VALUE
    ms = value * 1000.0
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def format_percent(ratio: float | None) -> str:
    """Return a 0-1 ratio as a percentage: "0", "2.5", "100"; "—" when unknown."""
    value = _known(ratio)
    if value is None:
        return NO_VALUE
    pct = value * 100.0
    text = f"{pct:.1f}"
    return text[:-2] if text.endswith(".0") else text


def format_count(count: int | None) -> str:
    """Return an integer count, "—" when unknown."""
    return NO_VALUE if count is None else str(count)


def local_time(instant: datetime | None, zone: str) -> str:
    """Return ``instant`` (aware) as "YYYY-MM-DD HH:MM:SS" in the IANA ``zone``; "—" if None."""
    if instant is None:
        return NO_VALUE
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def utc_offset(instant: datetime, zone: str) -> str:
    """Return the UTC offset of ``zone`` at ``instant`` as "UTC+07:00"."""
    offset = instant.astimezone(ZoneInfo(zone)).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def format_age(now: datetime, then: datetime | None, gettext: Gettext) -> str:
    """Return how long before ``now`` the instant ``then`` was ("45 s ago"), translated.

    Seconds under two minutes, minutes under two hours, hours under two days, else days;
    "—" when ``then`` is None; "just now" when ``then`` is ahead of ``now`` (clock skew).
    """
    if then is None:
        return NO_VALUE
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return gettext("just now")
    if seconds < 120:
        return gettext("%(n)d s ago") % {"n": seconds}
    if seconds < 7200:
        return gettext("%(n)d min ago") % {"n": seconds // 60}
    if seconds < 172_800:
        return gettext("%(n)d h ago") % {"n": seconds // 3600}
    return gettext("%(n)d d ago") % {"n": seconds // 86_400}


def format_availability(ratio: float | None) -> str:
    """Return an availability ratio as a percentage with two decimals: "99.95", "100".

    Never rounds up to "100" (99.996 % shows "99.99"): 100 means no DOWN round at all.
    "—" when unknown.
    """
    value = _known(ratio)
    if value is None:
        return NO_VALUE
    if value >= 1.0:
        return "100"
    return f"{math.floor(value * 10_000) / 100:.2f}"


def format_score(score: float | None) -> str:
    """Return a 0-100 score as a whole number ("87"); "—" when not scored."""
    value = _known(score)
    return NO_VALUE if value is None else f"{value:.0f}"


def format_offset(seconds: float | None) -> str:
    """Return a clock offset with its sign, in seconds: "+0.84 s", "-12 s"; "—" if unknown."""
    value = _known(seconds)
    if value is None:
        return NO_VALUE
    text = f"{value:+.2f}" if abs(value) < 10 else f"{value:+.0f}"
    return f"{text} s"


def format_duration(seconds: float | None, gettext: Gettext) -> str:
    """Return a duration as its two largest units: "45 s", "3 min 20 s", "5 h 2 min",
    "2 d 4 h" (translated); "—" when unknown."""
    value = _known(seconds)
    if value is None:
        return NO_VALUE
    total = max(0, int(value))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return gettext("%(d)d d %(h)d h") % {"d": days, "h": hours}
    if hours:
        return gettext("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    if minutes:
        return gettext("%(m)d min %(s)d s") % {"m": minutes, "s": secs}
    return gettext("%(s)d s") % {"s": secs}


def local_day(instant: datetime, zone: str) -> str:
    """Return the calendar day of ``instant`` in ``zone``: "2024-05-01"."""
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d")
