"""Render a notification as people read it: a title and a body, in English and in Lao.

The evaluator's one-line summaries (``summary_en``, ``summary_lo``) are kept word for word;
around them this module adds what kind of message it is (problem, resolved, reminder,
delivery failed), the site and target with their names (the Lao name in Lao script, from the
configuration), the times in the server's zone with the zone named, how long the problem
lasted, and the event id last (``ref <event id>``), so a person can match a repeat.

The Lao wording is a first draft by a non-native engineer, like the status page's
catalogue: a Lao speaker should review :data:`LAO`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from monitor.alerting.channels.base import Notification, NotificationKind, RenderedMessage

SUBJECT_PREFIX = "[Linkwatch]"


class SiteNames(Protocol):
    """What rendering reads of a site: its English name and, when given, its Lao name."""

    @property
    def name(self) -> str: ...

    @property
    def name_lo(self) -> str | None: ...


ENGLISH: dict[str, str] = {
    "problem": "PROBLEM",
    "test": "TEST",
    "resolved": "RESOLVED",
    "reminder": "REMINDER {n}, not acknowledged",
    "delivery_failed": "DELIVERY FAILED on channel {channel}",
    "site": "Site",
    "target": "Target",
    "since": "Since",
    "at": "Event at",
    "duration": "Duration",
    "incident": "Incident",
    "error": "Last error",
    "hours": "h",
    "minutes": "min",
    "seconds": "s",
}

LAO: dict[str, str] = {
    "problem": "ມີບັນຫາ",
    "test": "ທົດສອບ",
    "resolved": "ແກ້ໄຂແລ້ວ",
    "reminder": "ແຈ້ງເຕືອນຊ້ຳຄັ້ງທີ {n}, ຍັງບໍ່ມີຜູ້ຮັບຊາບ",
    "delivery_failed": "ສົ່ງແຈ້ງເຕືອນທາງຊ່ອງທາງ {channel} ບໍ່ສຳເລັດ",
    "site": "ສະຖານທີ່",
    "target": "ເປົ້າໝາຍ",
    "since": "ຕັ້ງແຕ່",
    "at": "ເວລາເກີດເຫດ",
    "duration": "ໄລຍະເວລາ",
    "incident": "ເຫດການ",
    "error": "ຂໍ້ຜິດພາດຫຼ້າສຸດ",
    "hours": "ຊົ່ວໂມງ",
    "minutes": "ນາທີ",
    "seconds": "ວິນາທີ",
}


def _label(words: Mapping[str, str], n: Notification) -> str:
    if n.kind is NotificationKind.REMINDER:
        return words["reminder"].format(n=n.reminder)
    if n.kind is NotificationKind.DELIVERY_FAILED:
        return words["delivery_failed"].format(channel=n.failed_channel or "?")
    if n.kind is NotificationKind.TEST:
        return words["test"]
    return words["resolved"] if n.resolved else words["problem"]


def format_duration(seconds: float, words: Mapping[str, str]) -> str:
    """Return ``seconds`` as ``1 h 5 min`` (``37 s`` under a minute) in ``words``' units."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} {words['hours']} {minutes} {words['minutes']}"
    if minutes:
        return f"{minutes} {words['minutes']}"
    return f"{secs} {words['seconds']}"


def format_local(moment: datetime, zone: ZoneInfo) -> str:
    """Return ``moment`` in ``zone`` as ``2025-03-01 15:00:00 +07 (Asia/Vientiane)``."""
    local = moment.astimezone(zone)
    offset = f"{local:%z}"
    if offset.endswith("00"):
        offset = offset[:-2]
    return f"{local:%Y-%m-%d %H:%M:%S} {offset} ({zone.key})"


def _block(
    words: Mapping[str, str],
    title: str,
    n: Notification,
    zone: ZoneInfo,
    site_name: str | None,
) -> list[str]:
    lines = [title, ""]
    if n.site_id is not None:
        shown = f"{site_name} ({n.site_id})" if site_name else n.site_id
        lines.append(f"{words['site']}: {shown}")
    if n.target_id is not None:
        lines.append(f"{words['target']}: {n.target_id}")
    lines.append(f"{words['since']}: {format_local(n.started_at, zone)}")
    lines.append(f"{words['at']}: {format_local(n.occurred_at, zone)}")
    if n.resolved or n.kind is NotificationKind.REMINDER:
        seconds = (n.occurred_at - n.started_at).total_seconds()
        lines.append(f"{words['duration']}: {format_duration(seconds, words)}")
    if n.incident_id is not None:
        lines.append(f"{words['incident']}: {n.incident_id}")
    error = n.detail.get("error") if n.kind is NotificationKind.DELIVERY_FAILED else None
    if error:
        lines.append(f"{words['error']}: {error}")
    return lines


def render(
    notification: Notification,
    *,
    zone: str = "Asia/Vientiane",
    sites: Mapping[str, SiteNames] | None = None,
) -> RenderedMessage:
    """Return the title and body of ``notification`` in English and Lao.

    Args:
        notification: what to say.
        zone: IANA zone the times are shown in (the server's ``time_zone``).
        sites: site id → its names (``Config.sites``); an unknown site shows its id only.
    """
    n = notification
    tz = ZoneInfo(zone)
    site = (sites or {}).get(n.site_id) if n.site_id is not None else None
    title_en = f"{_label(ENGLISH, n)}: {n.summary_en}"
    title_lo = f"{_label(LAO, n)}: {n.summary_lo}"
    english = _block(ENGLISH, title_en, n, tz, site.name if site else None)
    lao = _block(LAO, title_lo, n, tz, (site.name_lo or site.name) if site else None)
    body = "\n".join([*english, "", *lao, "", f"ref {n.event_id}"]) + "\n"
    return RenderedMessage(
        title_en=title_en,
        title_lo=title_lo,
        subject=f"{SUBJECT_PREFIX} {title_en} / {title_lo}",
        body=body,
    )
