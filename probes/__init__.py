"""Probes: one async function per probe kind, one signature, one registry.

Every probe is ``async def probe(target, ctx) -> ProbeResult``. A target-side failure is a
DOWN result, a monitor-side failure an ERROR result; a probe never raises for either. The
caller owns the deadline: it runs each probe under ``timeout_s`` plus a small margin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from probes.context import ProbeContext
from probes.dns import probe_dns
from probes.http import probe_http
from probes.icmp import probe_icmp
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import DnsTarget, HttpTarget, IcmpTarget, TargetSpec, TcpTarget
from probes.tcp import probe_tcp

ProbeFn = Callable[[Any, ProbeContext], Awaitable[ProbeResult]]

PROBES: dict[ProbeKind, ProbeFn] = {
    ProbeKind.ICMP: probe_icmp,
    ProbeKind.TCP: probe_tcp,
    ProbeKind.HTTP: probe_http,
    ProbeKind.DNS: probe_dns,
}


async def run_probe(target: TargetSpec, ctx: ProbeContext) -> ProbeResult:
    """Run the probe registered for ``target.kind`` and return its result (never raises)."""
    return await PROBES[ProbeKind(target.kind)](target, ctx)


__all__ = [
    "PROBES",
    "DnsTarget",
    "HttpTarget",
    "IcmpTarget",
    "ProbeContext",
    "ProbeFn",
    "ProbeKind",
    "ProbeResult",
    "ProbeStatus",
    "TargetSpec",
    "TcpTarget",
    "run_probe",
]
