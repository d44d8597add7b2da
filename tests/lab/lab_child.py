"""Helper run inside a lab namespace by the lab tests (``python lab_child.py MODE PLAN_JSON``).

Modes:

- ``probe``: open the ICMP engine, run the plan's ``rounds`` (``[address, family, count,
  spacing_s, timeout_s]``) and ``probes`` (target specs as in the config, with ``kind``)
  concurrently, print one JSON object: ``outcomes`` (per round: address, rtts_s, received,
  packet_loss, duplicates, unreachable), ``results`` (per probe: the ProbeResult fields),
  ``counters`` (the engine's), ``identifier`` (the IPv4 echo identifier).
- ``dns``: serve ``zones`` (``{listen address: {"zone": {...}, "servfail": [names]}}``) with
  :class:`monitor.dns_responder.DnsResponder` on port 53 of each address, print ``ready``,
  and stop after ``max_s`` seconds (the test ends it sooner).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any

from pydantic import TypeAdapter

from monitor.dns_responder import DnsResponder
from probes import run_probe
from probes.context import ProbeContext
from probes.icmp.engine import IcmpEngine
from probes.specs import TargetSpec


async def probe(plan: dict[str, Any]) -> dict[str, Any]:
    engine = await IcmpEngine.open(max_send_rate_pps=plan.get("max_send_rate_pps", 20_000.0))
    try:
        ctx = ProbeContext(icmp=engine)
        adapter: TypeAdapter[TargetSpec] = TypeAdapter(TargetSpec)
        rounds = [
            engine.ping_round(a, f, count=c, spacing_s=s, timeout_s=t)
            for a, f, c, s, t in plan.get("rounds", [])
        ]
        probes = [run_probe(adapter.validate_python(spec), ctx) for spec in plan.get("probes", [])]
        round_outcomes, probe_results = await asyncio.gather(
            asyncio.gather(*rounds), asyncio.gather(*probes)
        )
        outcomes = [
            {
                "address": o.address,
                "rtts_s": list(o.rtts_s),
                "received": o.stats.received,
                "packet_loss": o.stats.packet_loss,
                "duplicates": o.duplicates,
                "unreachable": [u.sentence() for u in o.unreachable],
            }
            for o in round_outcomes
        ]
        results = [
            {
                "status": r.status.value,
                "error": r.error,
                "address": r.address,
                "family": r.family,
                "rtt_s": r.rtt_s,
                "sent": r.sent,
                "received": r.received,
                "packet_loss": r.packet_loss,
                "detail": dict(r.detail),
            }
            for r in probe_results
        ]
        return {
            "outcomes": outcomes,
            "results": results,
            "counters": dataclasses.asdict(engine.counters()),
            "identifier": engine.identifier(4),
        }
    finally:
        engine.close()


async def dns(plan: dict[str, Any]) -> None:
    responders = []
    for address, spec in plan["zones"].items():
        zone = {name: [tuple(rec) for rec in records] for name, records in spec["zone"].items()}
        responder = DnsResponder(zone, servfail_names=spec.get("servfail", []))
        await responder.start(address, 53)
        responders.append(responder)
    print("ready", flush=True)
    try:
        await asyncio.sleep(plan.get("max_s", 60))
    finally:
        for responder in responders:
            await responder.stop()


def main() -> int:
    mode, plan = sys.argv[1], json.loads(sys.argv[2])
    if mode == "probe":
        print(json.dumps(asyncio.run(probe(plan))))
    elif mode == "dns":
        asyncio.run(dns(plan))
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
