"""What each site's agent last said about its spool (store-and-forward, issue 4).

Every upload batch may carry a :class:`monitor.wire.SpoolReport`; the newest one per site
is kept here, so the centre can show how much a post still has to send, how old its oldest
unsent result is, how many results it had to drop, and its own clock-offset estimate.
The per-result clock offset is a column of ``results`` (``Result.clock_offset_s``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from monitor.storage.models import Base


class AgentReport(Base):
    """The newest spool report of one site's agent.

    ``reported_at`` is the server's clock when the batch carrying it was stored;
    ``backlog`` the results still waiting at the agent besides that batch;
    ``oldest_unsent_at`` the ``measured_at`` (agent clock) of the oldest of them, ``None``
    when none; ``dropped_total`` the results the agent dropped unsent since its spool was
    created (spool full or too old); ``rejected_total`` the results the server refused;
    ``clock_offset_s`` the agent's own estimate of server minus agent clock, seconds
    (NTP-style midpoint, so without the upload's transit time), ``None`` before its first.
    """

    __tablename__ = "agent_reports"

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reported_at: Mapped[datetime]
    backlog: Mapped[int] = mapped_column(BigInteger)
    oldest_unsent_at: Mapped[datetime | None]
    dropped_total: Mapped[int] = mapped_column(BigInteger)
    rejected_total: Mapped[int] = mapped_column(BigInteger)
    clock_offset_s: Mapped[float | None] = mapped_column(Float)
