"""The lab comes up and goes down cleanly, twice; status, cut/restore, leftovers, root check.

These tests build a lab of their own (prefix ``lwu<pid>``), not the session's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.lab import netns
from monitor.lab.impairment import SITE_ORDER
from monitor.lab.lab import Lab

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

REPO = Path(__file__).resolve().parents[2]
NO_OUTAGES = {site: {"outages_per_day": 0.0} for site in SITE_ORDER}


@pytest.fixture
def own_lab() -> Iterator[Lab]:
    lab = Lab(f"lwu{os.getpid() % 100_000}")
    try:
        yield lab
    finally:
        lab.down()


def _routes(namespace: str | None) -> list[dict[str, Any]]:
    where = ["-n", namespace] if namespace else []
    found: list[dict[str, Any]] = []
    for family in ("-4", "-6"):
        out = netns.ip(*where, family, "-j", "route", "show", "table", "all")
        found += json.loads(out) if out.strip() else []
    return found


def _host_view() -> tuple[list[str], list[dict[str, Any]]]:
    links = json.loads(netns.ip("-j", "link", "show"))
    return sorted(str(link["ifname"]) for link in links), _routes(None)


def _probe(lab: Lab, site: str, host: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "monitor", "probe", "icmp", host, "--count", "3"]
    argv += ["--interval", "0.05", "--timeout", "0.5", "--json"]
    done = lab.exec_in(site, argv, timeout_s=30, cwd=REPO)
    assert done.stdout.strip(), done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_lab_comes_up_and_down_cleanly_twice_in_a_row(own_lab: Lab) -> None:
    host_before = _host_view()
    for _ in range(2):
        status = own_lab.up(NO_OUTAGES)
        assert status.up
        assert status.responder_alive
        assert [s.site.id for s in status.sites] == list(SITE_ORDER)
        assert all(s.present and s.cut is None for s in status.sites)
        assert status.leftovers == ()
        names = {own_lab.gateway_namespace, *(s.site.namespace for s in status.sites)}
        assert names <= set(netns.list_namespaces())
        assert all((netns.NETNS_ETC / name / "resolv.conf").exists() for name in names)
        assert _probe(own_lab, "lpq", own_lab.gateway)["status"] == "up"

        removed = own_lab.down()
        assert set(removed) == names
        after = own_lab.status()
        assert not after.up
        assert after.sites == ()
        assert not after.gateway_present
        assert not (set(netns.list_namespaces()) & names)
        assert not any((netns.NETNS_ETC / name).exists() for name in names)
        assert not own_lab.state_dir.exists()
        assert _host_view() == host_before  # nothing leaked into the host's namespace
    assert own_lab.down() == []  # idempotent


def test_no_namespace_has_a_default_route_and_every_route_stays_in_the_lab(own_lab: Lab) -> None:
    status = own_lab.up(NO_OUTAGES, sites=["ftb2", "btn"])
    allowed = ("10.200.", "fd00:200:", "fe80:", "ff00:", "127.", "::1", "multicast", "ff")
    for namespace in [own_lab.gateway_namespace, *(s.site.namespace for s in status.sites)]:
        for route in _routes(namespace):
            dst = str(route.get("dst", ""))
            assert dst != "default", (namespace, route)
            assert dst.startswith(allowed) or dst in ("localhost",), (namespace, route)
            gateway = str(route.get("gateway", ""))
            assert gateway == "" or gateway.startswith(("10.200.", "fd00:200:")), route


def test_cut_silences_a_site_and_restore_brings_it_back(own_lab: Lab) -> None:
    own_lab.up(NO_OUTAGES, sites=["ftb2", "ftb3"])
    own_lab.cut("ftb2")
    assert {s.site.id: s.cut for s in own_lab.status().sites} == {"ftb2": "link", "ftb3": None}
    cut = _probe(own_lab, "ftb2", own_lab.gateway)
    assert (cut["status"], cut["received"]) == ("down", 0)
    assert _probe(own_lab, "ftb3", own_lab.gateway)["status"] == "up"
    own_lab.restore("ftb2")
    assert all(s.cut is None for s in own_lab.status().sites)
    restored = _probe(own_lab, "ftb2", own_lab.gateway)
    assert restored["status"] == "up"
    # the site's LAN is reachable through the gateway again (its route was re-added)
    assert _probe(own_lab, "ftb3", own_lab.site("ftb2").lan_host(7))["status"] == "up"


def test_down_after_a_crash_removes_the_leftovers(own_lab: Lab) -> None:
    status = own_lab.up(NO_OUTAGES, sites=["pkz"])
    assert status.responder_pid is not None
    os.kill(status.responder_pid, signal.SIGKILL)
    shutil.rmtree(own_lab.state_dir)  # the state is lost too
    crashed = own_lab.status()
    assert not crashed.up
    assert set(crashed.leftovers) == {own_lab.gateway_namespace, f"{own_lab.prefix}-pkz"}
    removed = own_lab.down()
    assert set(removed) == set(crashed.leftovers)
    assert own_lab.status().leftovers == ()


def test_the_cli_reports_the_lab_it_built(own_lab: Lab) -> None:
    command = [sys.executable, "-m", "monitor", "lab"]
    prefix = ["--prefix", own_lab.prefix]
    up = subprocess.run(
        [*command, "up", *prefix, "--site", "dsv"], capture_output=True, text=True, timeout=60
    )
    assert up.returncode == 0, up.stderr
    assert f"lab {own_lab.prefix}: up" in up.stdout
    done = subprocess.run(
        [*command, "status", *prefix, "--json"], capture_output=True, text=True, timeout=60
    )
    shown = json.loads(done.stdout)
    assert shown["up"] is True
    assert [(s["id"], s["address"], s["gateway"]) for s in shown["sites"]] == [
        ("dsv", "10.200.6.2", "10.200.6.1")
    ]
    assert shown["sites"][0]["impairment"]["delay_s"] == 0.12
    cut = subprocess.run(
        [*command, "cut", "dsv", *prefix, "--family", "6"], capture_output=True, text=True
    )
    assert cut.stdout.strip() == "dsv: IPv6 path cut"
    assert own_lab.status().sites[0].cut == "ipv6"
    down = subprocess.run([*command, "down", *prefix], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0
    assert "is down (2 namespace(s) removed)" in down.stdout


def test_the_lab_refuses_without_root_in_one_sentence() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    # A new user namespace without a uid mapping: the process is uid 65534 there.
    done = subprocess.run(
        ["unshare", "--user", sys.executable, "-m", "monitor", "lab", "up", "--prefix", "lwx"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "linkwatch: the lab needs root (it creates network namespaces and raw sockets): "
        "run it with sudo or as root\n"
    )
