"""``linkwatch probe KIND TARGET...``: probe targets once from the command line, fping style.

Every target is probed concurrently with the same probe functions the agent uses. ICMP
sends one round of ``--count`` echo requests ``--interval`` seconds apart through one shared
ICMP engine; TCP, HTTP and DNS make ``--count`` attempts ``--interval`` seconds apart and
report them the same way (a failed attempt is a lost sample). Output is one line per
target, readable or (``--json``) one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from probes import run_probe
from probes.context import ProbeContext
from probes.icmp.engine import IcmpEngine
from probes.icmp.errors import IcmpEngineError
from probes.icmp.stats import RoundStats, summarize
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import DnsTarget, HttpTarget, IcmpTarget, TargetSpec, TcpTarget

_DEADLINE_MARGIN_S = 2.0
_MAX_COUNT = 1000
_ARGUMENT_OF_FIELD = {
    "host": "TARGET",
    "url": "TARGET",
    "count": "--count",
    "spacing_s": "--interval",
    "timeout_s": "--timeout",
    "port": "--port",
    "query_name": "--name",
    "record_type": "--type",
}


class BadArgument(ValueError):
    """A command-line argument is invalid; ``str()`` is one sentence naming it."""


@dataclass(frozen=True, slots=True)
class TargetReport:
    """What the command found for one TARGET argument.

    Attributes:
        kind: the probe kind.
        target: the TARGET argument as given.
        status: UP if any attempt (ICMP: any request) succeeded, DOWN if none did, ERROR if
            the monitor could not measure.
        address: the address probed, ``None`` if never resolved.
        family: 4 or 6, ``None`` if never resolved.
        rtts_s: one sample per request/attempt in send order, ``None`` for a lost one.
        stats: loss and RTT figures; ``None`` when nothing was sent.
        error: why the status is DOWN or ERROR, one sentence; ``None`` when UP.
        detail: the kind-specific facts of the (last) result.
    """

    kind: ProbeKind
    target: str
    status: ProbeStatus
    address: str | None
    family: int | None
    rtts_s: tuple[float | None, ...]
    stats: RoundStats | None
    error: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Return the report as a JSON-ready mapping (seconds; ``null`` for no data)."""
        stats = self.stats
        return {
            "kind": self.kind.value,
            "target": self.target,
            "status": self.status.value,
            "address": self.address,
            "family": self.family,
            "sent": stats.sent if stats else None,
            "received": stats.received if stats else None,
            "duplicates": stats.duplicates if stats else None,
            "packet_loss": stats.packet_loss if stats else None,
            "rtts_s": list(self.rtts_s),
            "rtt_min_s": stats.rtt_min_s if stats else None,
            "rtt_avg_s": stats.rtt_avg_s if stats else None,
            "rtt_max_s": stats.rtt_max_s if stats else None,
            "jitter_s": stats.jitter_s if stats else None,
            "error": self.error,
            "detail": self.detail,
        }

    def line(self) -> str:
        """Return one readable line, fping style, RTTs in milliseconds."""
        name = self.target
        if self.address is not None and self.address != self.target:
            name = f"{self.target} ({self.address})"
        stats = self.stats
        if stats is None:
            return f"{name} : error: {self.error}"
        parts = [f"xmt/rcv/%loss = {stats.sent}/{stats.received}/{_percent(stats.packet_loss)}"]
        if stats.rtt_min_s is not None and stats.rtt_avg_s is not None:
            assert stats.rtt_max_s is not None
            parts.append(
                f"min/avg/max = {_ms(stats.rtt_min_s)}/{_ms(stats.rtt_avg_s)}/"
                f"{_ms(stats.rtt_max_s)} ms"
            )
        if stats.jitter_s is not None:
            parts.append(f"jitter = {_ms(stats.jitter_s)} ms")
        if stats.duplicates:
            parts.append(f"{stats.duplicates} duplicate{'s' if stats.duplicates != 1 else ''}")
        text = f"{name} : {', '.join(parts)}"
        if self.error:
            text += f" : {'error: ' if self.status is ProbeStatus.ERROR else ''}{self.error}"
        return text


def run_probe_command(
    kind: str,
    targets: list[str],
    *,
    count: int,
    interval_s: float,
    timeout_s: float,
    as_json: bool,
    port: int | None,
    query_name: str | None,
    record_type: str,
) -> int:
    """Probe every target once, print one line per target, return the exit code.

    Args:
        kind: ``icmp``, ``tcp``, ``http`` or ``dns``.
        targets: ICMP: host names or addresses; TCP: ``host:port`` (``[v6]:port``) or a host
            with ``port``; HTTP: URLs; DNS: the server's address, optionally ``host:port``
            (``[v6]:port``; else ``port``, else 53).
        count: ICMP echo requests per target, or attempts per target for other kinds.
        interval_s: seconds between requests (attempts) to one target.
        timeout_s: seconds each request (attempt) may take.
        as_json: print one JSON object per target instead of a readable line.
        port: TCP port when a TARGET carries none; DNS server port.
        query_name: the name a DNS probe asks for (required for ``dns``).
        record_type: the DNS record type (``A``, ``AAAA``, ...).

    Returns:
        0 when every target is UP, 1 when any is DOWN (and none ERROR), 2 on a bad argument
        (one sentence naming it on stderr) or when the monitor could not measure (ERROR).
    """
    try:
        probe_kind = _parse_kind(kind)
        _check_numbers(probe_kind, count, interval_s, timeout_s)
        if not targets:
            raise BadArgument("give at least one TARGET to probe")
        specs = [
            _spec(probe_kind, target, count, interval_s, timeout_s, port, query_name, record_type)
            for target in targets
        ]
    except BadArgument as exc:
        print(f"linkwatch probe: {exc}", file=sys.stderr)
        return 2
    reports = asyncio.run(_probe_all(probe_kind, targets, specs, count, interval_s, timeout_s))
    for report in reports:
        print(json.dumps(report.as_json(), default=str) if as_json else report.line())
    statuses = {report.status for report in reports}
    if ProbeStatus.ERROR in statuses:
        return 2
    return 1 if ProbeStatus.DOWN in statuses else 0


def _parse_kind(kind: str) -> ProbeKind:
    try:
        return ProbeKind(kind.lower())
    except ValueError:
        choices = ", ".join(k.value for k in ProbeKind)
        raise BadArgument(f"KIND {kind!r} is not one of {choices}") from None


def _check_numbers(kind: ProbeKind, count: int, interval_s: float, timeout_s: float) -> None:
    if not 1 <= count <= _MAX_COUNT:
        raise BadArgument(f"--count must be between 1 and {_MAX_COUNT} (got {count})")
    if interval_s < 0:
        raise BadArgument(f"--interval must not be negative (got {interval_s:g} s)")
    if timeout_s <= 0:
        raise BadArgument(f"--timeout must be above 0 seconds (got {timeout_s:g})")


def _spec(
    kind: ProbeKind,
    target: str,
    count: int,
    interval_s: float,
    timeout_s: float,
    port: int | None,
    query_name: str | None,
    record_type: str,
) -> TargetSpec:
    """Build the target spec for one TARGET argument; raise BadArgument naming the culprit."""
    common: dict[str, Any] = {"id": "cli", "timeout_s": timeout_s}
    try:
        if kind is ProbeKind.ICMP:
            return IcmpTarget(
                host=target,
                count=count,
                spacing_s=interval_s,
                interval_s=(count - 1) * interval_s + timeout_s,
                **common,
            )
        if kind is ProbeKind.TCP:
            host, target_port = _split_host_port(target)
            chosen = target_port if target_port is not None else port
            if chosen is None:
                raise BadArgument(f"TARGET {target!r} needs a port: write host:port or add --port")
            return TcpTarget(host=host, port=chosen, **common)
        if kind is ProbeKind.HTTP:
            if not target.startswith(("http://", "https://")):
                raise BadArgument(f"TARGET {target!r} must be an http:// or https:// URL")
            return HttpTarget(url=target, **common)
        if not query_name:
            raise BadArgument("--name is required for dns probes (the name to ask the server)")
        server, server_port = _split_host_port(target)
        if server_port is not None and port is not None and server_port != port:
            raise BadArgument(f"TARGET {target!r} names port {server_port} but --port is {port}")
        return DnsTarget(
            host=server,
            port=server_port or port or 53,
            query_name=query_name,
            record_type=record_type.upper(),  # pydantic checks the type
            **common,
        )
    except ValidationError as exc:
        raise BadArgument(_sentence(exc, target)) from None


def _sentence(exc: ValidationError, target: str) -> str:
    """Turn the first pydantic error into one sentence naming the command-line argument."""
    first = exc.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    argument = _ARGUMENT_OF_FIELD.get(name, "TARGET")
    value = first.get("input", target)
    shown = value if not isinstance(value, dict) else target
    return f"{argument} {shown!r} is invalid: {first['msg']}"


def _split_host_port(target: str) -> tuple[str, int | None]:
    """Split ``host:port``, ``[v6]:port``, ``host`` or a bare IPv6 literal."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise BadArgument(f"TARGET {target!r} is not [address]:port")
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:
        return target, None
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise BadArgument(f"TARGET {target!r} has an invalid port (use 1-65535)")
    return host, int(port_text)


async def _probe_all(
    kind: ProbeKind,
    targets: Sequence[str],
    specs: Sequence[TargetSpec],
    count: int,
    interval_s: float,
    timeout_s: float,
) -> list[TargetReport]:
    ctx = ProbeContext()
    engine: IcmpEngine | None = None
    if kind is ProbeKind.ICMP:
        try:
            engine = await IcmpEngine.open()
        except IcmpEngineError as exc:
            ctx.icmp_error = str(exc)
        ctx.icmp = engine
    try:
        runs = await asyncio.gather(
            *(_attempts(kind, spec, ctx, count, interval_s, timeout_s) for spec in specs)
        )
    finally:
        if engine is not None:
            engine.close()
    return [_report(kind, target, results) for target, results in zip(targets, runs, strict=True)]


async def _attempts(
    kind: ProbeKind,
    spec: TargetSpec,
    ctx: ProbeContext,
    count: int,
    interval_s: float,
    timeout_s: float,
) -> list[ProbeResult]:
    if kind is ProbeKind.ICMP:
        deadline_s = (count - 1) * interval_s + timeout_s + _DEADLINE_MARGIN_S
        return [await _guarded(kind, spec, ctx, deadline_s)]
    loop = asyncio.get_running_loop()
    start_s = loop.time()
    results: list[ProbeResult] = []
    for index in range(count):
        delay_s = start_s + index * interval_s - loop.time()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        results.append(await _guarded(kind, spec, ctx, timeout_s + _DEADLINE_MARGIN_S))
    return results


async def _guarded(
    kind: ProbeKind, spec: TargetSpec, ctx: ProbeContext, deadline_s: float
) -> ProbeResult:
    """Run one probe under the caller's deadline; a probe that breaks becomes an ERROR."""
    started = time.monotonic()
    try:
        return await asyncio.wait_for(run_probe(spec, ctx), deadline_s)
    except TimeoutError:
        why = f"the {kind.value} probe did not finish within {deadline_s:g} s"
    except Exception as exc:
        why = f"the {kind.value} probe failed inside the monitor ({type(exc).__name__}: {exc})"
    return ProbeResult(kind, ProbeStatus.ERROR, time.monotonic() - started, error=why)


def _report(kind: ProbeKind, target: str, results: list[ProbeResult]) -> TargetReport:
    last = results[-1]
    address = next((r.address for r in results if r.address is not None), None)
    family = next((r.family for r in results if r.family is not None), None)
    if kind is ProbeKind.ICMP:
        rtts = last.rtts_s
        stats = summarize(rtts, last.duplicates or 0) if rtts else None
        return TargetReport(
            kind, target, last.status, address, family, rtts, stats, last.error, dict(last.detail)
        )
    rtts = tuple(r.rtt_s if r.status is ProbeStatus.UP else None for r in results)
    statuses = [r.status for r in results]
    if ProbeStatus.UP in statuses:
        status, error = ProbeStatus.UP, None
    else:
        status = ProbeStatus.ERROR if ProbeStatus.ERROR in statuses else ProbeStatus.DOWN
        error = next((r.error for r in results if r.status is status), last.error)
    nothing_sent = status is ProbeStatus.ERROR and len(results) == 1
    stats = None if nothing_sent else summarize(rtts, 0)
    return TargetReport(
        kind, target, status, address, family, rtts, stats, error, dict(last.detail)
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _percent(ratio: float) -> str:
    text = f"{ratio * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"
