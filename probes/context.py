"""Shared resources a probe may use, owned and closed by the caller (agent or CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from probes.icmp.engine import IcmpEngine


@dataclass
class ProbeContext:
    """What the caller hands every probe.

    Attributes:
        icmp: the agent-wide ICMP engine (one socket per address family, shared by every
            target); ``None`` when it could not be opened, in which case ``icmp_error`` says
            why and what to fix, and ICMP probes return an ERROR result with that sentence.
        icmp_error: see ``icmp``; ``None`` when the engine is open.
    """

    icmp: IcmpEngine | None = None
    icmp_error: str | None = None
