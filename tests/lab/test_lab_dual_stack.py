"""C10: a dual-stack target whose IPv6 path is broken from one site only.

The case's input, moved into the lab: ``www.example.net`` has A 10.200.0.80 and AAAA
fd00:200::80 (the case's 203.0.113.80 and 2001:db8::80 are documentation addresses and
never probed), served by one dual-stack HTTP server in the gateway namespace. The name comes
from the site's own /etc/hosts (``ip netns exec`` bind-mounts /etc/netns/<ns>/hosts), never
from a real resolver. From site 3 (ftb4) the IPv6 path drops every packet: the gateway
blackholes IPv6 back to ftb4, so SYNs arrive and nothing returns. HTTP check, 5 s timeout.

ICMP has no fallback: a round resolves once and pings the address its policy picks; the
fallback belongs to the TCP and HTTP probes (``probes.tcp.connect_in_order``).
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from lab_testkit import run_child

from monitor.lab.lab import Lab

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

PORT = 8080
A, AAAA = "10.200.0.80", "fd00:200::80"
URL = f"http://www.example.net:{PORT}/"
HOSTS = {"www.example.net": [A, AAAA], "v6only.example.net": [AAAA]}


@pytest.fixture(scope="module")
def web_server(lab: Lab) -> Iterator[None]:
    """Serve HTTP on [::]:8080 (IPv4 too) inside the gateway namespace."""
    with tempfile.TemporaryDirectory() as folder:
        server = lab.popen_in(
            "gw",
            [sys.executable, "-m", "http.server", "--bind", "::", str(PORT), "-d", folder],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            ready, _w, _x = select.select([server.stdout], [], [], 20)
            assert ready and "Serving HTTP" in server.stdout.readline()
            for site in ("ftb4", "ftb2"):
                lab.set_hosts(site, HOSTS)
            yield
        finally:
            server.terminate()
            server.communicate(timeout=10)
            for site in ("ftb4", "ftb2"):
                lab.set_hosts(site, {})


def _http(ip_family: str, url: str = URL) -> dict[str, Any]:
    return {"kind": "http", "id": "www", "url": url, "timeout_s": 5.0, "ip_family": ip_family}


def test_broken_ipv6_path_falls_back_to_ipv4_only_where_allowed(lab: Lab, web_server: None) -> None:
    lab.cut("ftb4", family=6)
    try:
        plan = {
            "probes": [
                _http("prefer_ipv6"),
                _http("ipv6"),
                _http("ipv4"),
                _http("ipv4", f"http://v6only.example.net:{PORT}/"),
                {
                    "kind": "tcp",
                    "id": "www-tcp",
                    "host": "www.example.net",
                    "port": PORT,
                    "timeout_s": 5.0,
                    "ip_family": "prefer_ipv6",
                },
            ]
        }
        preferred, v6_only, v4_only, v4_no_a, tcp = run_child(lab, "ftb4", plan)["results"]
        elsewhere = run_child(lab, "ftb2", {"probes": [_http("prefer_ipv6")]})["results"][0]
    finally:
        lab.restore("ftb4", family=6)

    # prefer IPv6: UP through IPv4 within the 5 s budget, with the IPv6 failure visible
    assert (preferred["status"], preferred["family"], preferred["address"]) == ("up", 4, A)
    assert preferred["detail"]["status_code"] == 200
    assert re.fullmatch(
        rf"no answer from \[{AAAA}\]:{PORT} within 2\.\d s; used IPv4 {A}:{PORT} instead",
        preferred["detail"]["fallback"],
    ), preferred["detail"]["fallback"]
    assert tcp["status"] == "up" and tcp["family"] == 4
    assert f"no answer from [{AAAA}]:{PORT}" in tcp["detail"]["fallback"]
    # IPv6 only: DOWN, saying the IPv6 address did not answer; the family used is recorded
    assert (v6_only["status"], v6_only["family"], v6_only["address"]) == ("down", 6, AAAA)
    assert re.fullmatch(rf"no answer from \[{AAAA}\]:{PORT} within [45](\.\d)? s", v6_only["error"])
    # IPv4 only: AAAA records are never used, not even when they are all there is
    assert (v4_only["status"], v4_only["family"], v4_only["address"]) == ("up", 4, A)
    assert "fallback" not in v4_only["detail"]
    # (its hosts entry is AAAA only, so the A lookup goes on to the lab resolver, which does
    # not run here: a monitor-side ERROR, and the IPv6 address is never tried)
    assert (v4_no_a["status"], v4_no_a["address"], v4_no_a["family"]) == ("error", None, None)
    assert v4_no_a["error"].startswith(
        "DNS resolution of v6only.example.net (IPv4 only) failed at the probe"
    )
    # from another site the IPv6 path works and is used
    assert (elsewhere["status"], elsewhere["family"], elsewhere["address"]) == ("up", 6, AAAA)
    assert "fallback" not in elsewhere["detail"]
