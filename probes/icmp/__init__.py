"""The ICMP probe: one round of echo requests through the agent's shared ICMP engine.

The measuring is :class:`probes.icmp.engine.IcmpEngine`'s (one socket per address family,
replies matched by source, identifier, sequence and a random token); this module turns one
round into a :class:`probes.result.ProbeResult`.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from probes.context import ProbeContext
from probes.icmp.engine import RoundOutcome, Unreachable
from probes.icmp.errors import IcmpEngineError
from probes.resolve import ResolveError, resolve_host
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import IcmpTarget


async def probe_icmp(target: IcmpTarget, ctx: ProbeContext) -> ProbeResult:
    """Resolve ``target.host`` once, send one round of echo requests, return the result.

    UP when at least one request got a unique echo reply from the probed address; DOWN when
    none did (``error`` names the ICMP error and its reporter, e.g. "host unreachable,
    reported by 192.0.2.1", or says no reply came); ERROR for monitor-side failures: the
    name does not resolve at the probe, the engine is missing (``ctx.icmp_error`` says why)
    or cannot send. Never raises for any of these; the caller owns the deadline and may
    cancel.
    """
    started = time.monotonic()
    try:
        resolved = await resolve_host(target.host, target.ip_family)
    except ResolveError as exc:
        return _error(started, str(exc))
    phases = {"resolve": time.monotonic() - started}
    address, family = resolved.address, resolved.family
    if ctx.icmp is None:
        why = ctx.icmp_error or "the ICMP engine is not open in this process"
        return _error(started, why, address=address, family=family, phases=phases)
    try:
        outcome = await ctx.icmp.ping_round(
            address,
            family,
            count=target.count,
            spacing_s=target.spacing_s,
            timeout_s=target.timeout_s,
            payload_bytes=target.payload_bytes,
        )
    except IcmpEngineError as exc:
        return _error(started, str(exc), address=address, family=family, phases=phases)
    except Exception as exc:  # a bug must not look like "target down" nor stop the agent
        why = f"the ICMP probe failed inside the monitor ({type(exc).__name__}: {exc})"
        return _error(started, why, address=address, family=family, phases=phases)
    return _result(started, outcome, phases)


def _result(started: float, outcome: RoundOutcome, phases: dict[str, float]) -> ProbeResult:
    stats = outcome.stats
    detail: dict[str, Any] = {
        "rtt_min_s": stats.rtt_min_s,
        "rtt_max_s": stats.rtt_max_s,
        "late_replies": outcome.late_replies,
        "unreachable": [{"reason": u.reason, "reporter": u.reporter} for u in outcome.unreachable],
    }
    up = stats.received > 0
    return ProbeResult(
        kind=ProbeKind.ICMP,
        status=ProbeStatus.UP if up else ProbeStatus.DOWN,
        duration_s=time.monotonic() - started,
        rtt_s=stats.rtt_avg_s,
        packet_loss=stats.packet_loss,
        jitter_s=stats.jitter_s,
        sent=stats.sent,
        received=stats.received,
        duplicates=stats.duplicates,
        rtts_s=outcome.rtts_s,
        address=outcome.address,
        family=outcome.family,
        error=None if up else _down_reason(outcome),
        phases_s=phases,
        detail=detail,
    )


def _down_reason(outcome: RoundOutcome) -> str:
    """Say why nothing answered: the most frequent ICMP error, else the bare count."""
    if outcome.unreachable:
        reason: Unreachable = Counter(outcome.unreachable).most_common(1)[0][0]
        return reason.sentence()
    sent = outcome.stats.sent
    text = f"no echo reply to {sent} request{'s' if sent != 1 else ''}"
    if outcome.late_replies:
        text += f" ({outcome.late_replies} came after the timeout)"
    return text


def _error(
    started: float,
    why: str,
    *,
    address: str | None = None,
    family: int | None = None,
    phases: dict[str, float] | None = None,
) -> ProbeResult:
    return ProbeResult(
        kind=ProbeKind.ICMP,
        status=ProbeStatus.ERROR,
        duration_s=time.monotonic() - started,
        address=address,
        family=family,
        error=why,
        phases_s=phases or {},
    )


__all__ = ["probe_icmp"]
