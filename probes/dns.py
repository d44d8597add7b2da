"""DNS probe: ask one server for one record and judge the answer.

The check's job is to test the record on the server named in the target, so a server error
(SERVFAIL, REFUSED, ...) is DOWN like a wrong answer, but the sentence and
``detail["failure"]`` keep the two apart: ``"server_error"`` for an error rcode,
``"answer"`` for NXDOMAIN/NOERROR against expectation or an empty answer (case C12). Only a
failure of the probe host itself (it cannot resolve the server's name, open a socket) is
ERROR.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from probes.context import ProbeContext
from probes.resolve import ResolveError, endpoint, resolve_within
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import DnsTarget
from probes.tcp import describe_connect_error, seconds_text

MAX_ANSWERS = 20


def _judge(
    target: DnsTarget, response: dns.message.Message, where: str
) -> tuple[ProbeStatus, str | None, dict[str, Any]]:
    """Return ``(status, sentence, detail)`` for a response to the target's query."""
    rcode = dns.rcode.to_text(response.rcode())
    rdtype = dns.rdatatype.from_text(target.record_type)
    answers = [
        rdata.to_text() for rrset in response.answer if rrset.rdtype == rdtype for rdata in rrset
    ]
    detail: dict[str, Any] = {
        "rcode": rcode,
        "answers": answers[:MAX_ANSWERS],
        "authoritative": bool(response.flags & dns.flags.AA),
    }
    asked = f"{target.query_name} {target.record_type}"
    if rcode not in ("NOERROR", "NXDOMAIN"):
        detail["failure"] = "server_error"
        return (
            ProbeStatus.DOWN,
            f"DNS server {where} answered {rcode} for {asked}: a server error, "
            "not an answer about the record",
            detail,
        )
    if rcode != target.expect_rcode:
        detail["failure"] = "answer"
        if rcode == "NXDOMAIN":
            sentence = f"DNS server {where} says {target.query_name} does not exist (NXDOMAIN)"
        else:
            sentence = (
                f"DNS server {where} says {target.query_name} exists (NOERROR), expected NXDOMAIN"
            )
        return ProbeStatus.DOWN, sentence, detail
    if rcode == "NOERROR" and not answers:
        detail["failure"] = "answer"
        return (
            ProbeStatus.DOWN,
            f"DNS server {where} has no {target.record_type} record for {target.query_name} "
            "(NOERROR with an empty answer)",
            detail,
        )
    return ProbeStatus.UP, None, detail


async def probe_dns(target: DnsTarget, ctx: ProbeContext) -> ProbeResult:
    """Send one query for ``query_name``/``record_type`` to ``host:port`` and judge the answer.

    UP when the rcode equals ``expect_rcode`` and, for NOERROR, the answer holds at least one
    record of the asked type (an empty NOERROR answer, NODATA, is DOWN). ``rtt_s`` is the
    time from sending the query to the parsed answer (over UDP, a truncated answer is asked
    again over TCP and the time covers both). ``detail``: ``rcode`` (text), ``answers``
    (rdata text of the asked type, at most ``MAX_ANSWERS``), ``authoritative`` (AA flag),
    ``transport`` actually used, and ``failure`` when DOWN on an answer. The whole round is
    bounded by ``target.timeout_s``. Never raises.
    """
    started = time.perf_counter()
    try:
        return await _probe(target, started)
    except Exception as exc:  # a bug must not kill the scheduler: report it as ERROR
        return ProbeResult(
            kind=ProbeKind.DNS,
            status=ProbeStatus.ERROR,
            duration_s=time.perf_counter() - started,
            error=f"internal error in the dns probe ({type(exc).__name__}: {exc})",
        )


async def _probe(target: DnsTarget, started: float) -> ProbeResult:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + target.timeout_s
    phases: dict[str, float] = {}

    def done(status: ProbeStatus, error: str | None, **extra: Any) -> ProbeResult:
        return ProbeResult(
            kind=ProbeKind.DNS,
            status=status,
            duration_s=time.perf_counter() - started,
            error=error,
            phases_s=phases,
            **extra,
        )

    try:
        query = dns.message.make_query(target.query_name, target.record_type)
    except dns.exception.DNSException as exc:
        return done(ProbeStatus.ERROR, f"query_name {target.query_name!r} is not valid: {exc}")
    try:
        candidates, phases["resolve"] = await resolve_within(target.host, "prefer_ipv4", deadline)
    except ResolveError as exc:
        return done(ProbeStatus.ERROR, str(exc))
    server = candidates[0]
    where = endpoint(server.address, target.port)
    at = {"address": server.address, "family": server.family}
    sent = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline):
            remaining_s = max(0.001, deadline - loop.time())
            if target.transport == "tcp":
                response = await dns.asyncquery.tcp(
                    query, server.address, timeout=remaining_s, port=target.port
                )
                used_tcp = True
            else:
                response, used_tcp = await dns.asyncquery.udp_with_fallback(
                    query,
                    server.address,
                    timeout=remaining_s,
                    port=target.port,
                    ignore_unexpected=True,
                )
    except (TimeoutError, dns.exception.Timeout):
        sentence = f"no answer from DNS server {where} within {seconds_text(target.timeout_s)} s"
        return done(ProbeStatus.DOWN, sentence, **at)
    except OSError as exc:
        status, sentence = describe_connect_error(exc, where)
        return done(status, sentence, **at)
    except dns.exception.DNSException as exc:
        return done(ProbeStatus.DOWN, f"malformed answer from DNS server {where}: {exc}", **at)
    rtt_s = time.perf_counter() - sent
    status, error, detail = _judge(target, response, where)
    detail["transport"] = "tcp" if used_tcp else "udp"
    return done(status, error, rtt_s=rtt_s, detail=detail, **at)
