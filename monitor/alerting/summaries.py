"""One-line alert texts in English and Lao, with local times and durations.

Times are shown in the site's zone (the server's for a gateway), 24-hour, with the UTC
offset: ``2025-03-01 15:04 (+07)``. The Lao wording needs review by a Lao speaker; site
names in Lao script are used as configured (``sites.<id>.name_lo``), the English name
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.alerting.events import AlertKind


@dataclass(frozen=True, slots=True)
class Subject:
    """What an alert is about, as people name it.

    ``site_name``/``site_name_lo``: the site (``None`` for a gateway); ``target_name``:
    the target (``None`` unless a target alert); ``gateway``: the host; ``zone``: the zone
    times are shown in; ``sites``: for a gateway, how many sites lost it and of how many.
    """

    zone: str
    site_name: str | None = None
    site_name_lo: str | None = None
    target_name: str | None = None
    gateway: str | None = None
    sites: tuple[int, int] | None = None


def local_time(at: datetime, zone: str) -> str:
    """Return ``at`` as ``YYYY-MM-DD HH:MM (+HH)`` in ``zone`` (``+0545`` style if needed)."""
    local = at.astimezone(ZoneInfo(zone))
    offset = local.strftime("%z")
    shown = offset[:3] if offset.endswith("00") else offset
    return f"{local:%Y-%m-%d %H:%M} ({shown})"


def duration_text(seconds: float, *, lao: bool = False) -> str:
    """Return a duration as ``2 h 05 min`` (``45 s`` under a minute); Lao units if asked."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    h, m, s = ("ຊົ່ວໂມງ", "ນາທີ", "ວິນາທີ") if lao else ("h", "min", "s")
    if hours:
        return f"{hours} {h} {minutes:02d} {m}"
    if minutes:
        return f"{minutes} {m}"
    return f"{secs} {s}"


def summaries(
    kind: AlertKind,
    subject: Subject,
    started_at: datetime,
    ended_at: datetime | None,
) -> tuple[str, str]:
    """Return ``(english, lao)`` one-line texts for an alert of ``kind``."""
    since = local_time(started_at, subject.zone)
    took = (ended_at - started_at).total_seconds() if ended_at else 0.0
    en_dur, lo_dur = duration_text(took), duration_text(took, lao=True)
    site = subject.site_name or ""
    site_lo = subject.site_name_lo or site
    target = subject.target_name or ""
    gateway = subject.gateway or ""
    lost, of = subject.sites or (0, 0)
    texts: Mapping[AlertKind, tuple[str, str]] = {
        AlertKind.TARGET_DOWN: (
            f"DOWN: {target} at {site}, since {since}",
            f"ຂາດການເຊື່ອມຕໍ່: {target} ທີ່ {site_lo}, ຕັ້ງແຕ່ {since}",
        ),
        AlertKind.TARGET_RECOVERED: (
            f"RECOVERED: {target} at {site}, after {en_dur} down (since {since})",
            f"ກັບມາເຊື່ອມຕໍ່ແລ້ວ: {target} ທີ່ {site_lo}, ຫຼັງຈາກຂາດ {lo_dur} (ຕັ້ງແຕ່ {since})",
        ),
        AlertKind.SITE_UNREACHABLE: (
            f"SITE UNREACHABLE: {site}: its probe agent has not reported since {since}",
            f"ຕິດຕໍ່ສະຖານທີ່ບໍ່ໄດ້: {site_lo}: ເອເຈັນບໍ່ໄດ້ສົ່ງຂໍ້ມູນຕັ້ງແຕ່ {since}",
        ),
        AlertKind.SITE_RECOVERED: (
            f"SITE BACK: {site} reports again, after {en_dur} of silence (since {since})",
            f"ຕິດຕໍ່ສະຖານທີ່ໄດ້ແລ້ວ: {site_lo} ສົ່ງຂໍ້ມູນອີກ, ຫຼັງຈາກງຽບ {lo_dur} (ຕັ້ງແຕ່ {since})",
        ),
        AlertKind.GATEWAY_DOWN: (
            f"GATEWAY DOWN: {gateway} lost by {lost} of {of} sites, since {since}",
            f"ເກດເວ ຂາດການເຊື່ອມຕໍ່: {gateway}, {lost} ຈາກ {of} ສະຖານທີ່, ຕັ້ງແຕ່ {since}",
        ),
        AlertKind.GATEWAY_RECOVERED: (
            f"GATEWAY RECOVERED: {gateway}, after {en_dur} (since {since})",
            f"ເກດເວ ກັບມາເຊື່ອມຕໍ່ແລ້ວ: {gateway}, ຫຼັງຈາກ {lo_dur} (ຕັ້ງແຕ່ {since})",
        ),
    }
    return texts[kind]


def detail_of(subject: Subject, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Return an event's JSON-able ``detail``: the subject's names plus ``extra``."""
    out: dict[str, Any] = {
        "site_name": subject.site_name,
        "site_name_lo": subject.site_name_lo,
        "target_name": subject.target_name,
        "gateway": subject.gateway,
        "zone": subject.zone,
    }
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}
