"""C12: site 5's own resolver answers SERVFAIL: its results are ERROR, never target DOWN.

Two lab resolvers run in the gateway namespace (``monitor.dns_responder.DnsResponder`` on
port 53): 10.200.0.53 answers the zone, 10.200.0.54 answers SERVFAIL for every name of it.
Site 5 (pkz) is pointed at the failing one through /etc/netns/<ns>/resolv.conf; the other
six sites keep the good one. Each site probes 20 monitors by host name (10 ICMP, 10 TCP);
pkz also probes the same two targets by IP address. How such results become alerts, uptime
and the status page is the alerting and availability code's business, not this test's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from lab_testkit import REPO, child_argv, start_child, stop

from monitor.lab.impairment import SITE_ORDER
from monitor.lab.lab import Lab

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

GOOD, FAILING = "10.200.0.53", "10.200.0.54"
PING_NAMES = [f"p{n:02}.lab.test" for n in range(1, 11)]
TCP_NAMES = [f"t{n:02}.lab.test" for n in range(1, 11)]
ZONE = {name: [["A", "10.200.0.1"]] for name in PING_NAMES} | {
    name: [["A", GOOD]] for name in TCP_NAMES
}


@pytest.fixture
def resolvers(lab: Lab) -> Iterator[None]:
    plan = {
        "zones": {
            GOOD: {"zone": ZONE},
            FAILING: {"zone": ZONE, "servfail": list(ZONE)},
        },
        "max_s": 60,
    }
    server = start_child(lab, "gw", "dns", plan)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready", server.stderr
        lab.set_nameservers("pkz", [FAILING])
        yield
    finally:
        lab.set_nameservers("pkz", [lab.resolver])
        stop(server)


def _monitors(hosts_icmp: list[str], hosts_tcp: list[str]) -> list[dict[str, Any]]:
    icmp = [
        {
            "kind": "icmp",
            "id": f"i{n}",
            "host": h,
            "count": 2,
            "spacing_s": 0.1,
            "timeout_s": 2.0,
            "interval_s": 10.0,
        }
        for n, h in enumerate(hosts_icmp)
    ]
    tcp = [
        {"kind": "tcp", "id": f"t{n}", "host": h, "port": 53, "timeout_s": 3.0}
        for n, h in enumerate(hosts_tcp)
    ]
    return icmp + tcp


def test_a_failing_probe_resolver_is_an_error_at_that_site_only(lab: Lab, resolvers: None) -> None:
    by_name = {"probes": _monitors(PING_NAMES, TCP_NAMES)}
    by_ip = {"probes": _monitors(["10.200.0.1"], [GOOD])}
    children = {
        site: lab.popen_in(
            site,
            child_argv("probe", by_name),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for site in SITE_ORDER
    }
    direct = lab.popen_in(
        "pkz", child_argv("probe", by_ip), stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    results: dict[str, list[dict[str, Any]]] = {}
    for site, child in children.items():
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err[-2000:]
        results[site] = json.loads(out.strip().splitlines()[-1])["results"]
    out, _ = direct.communicate(timeout=60)
    reachable_by_ip = json.loads(out.strip().splitlines()[-1])["results"]

    failed = results.pop("pkz")
    assert len(failed) == 20
    pattern = re.compile(
        r"DNS resolution of [pt]\d\d\.lab\.test failed at the probe: .+ \(resolver 10\.200\.0\.54\)"
    )
    for result in failed:
        assert result["status"] == "error", result  # monitor-side: never "down"
        assert pattern.fullmatch(result["error"]), result["error"]
        assert result["address"] is None
    assert [r["status"] for r in reachable_by_ip] == ["up", "up"]
    for site, site_results in results.items():
        assert [r["status"] for r in site_results] == ["up"] * 20, (site, site_results)
