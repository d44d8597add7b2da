"""``linkwatch probe``: output, exit codes and argument errors, on real loopback sockets.

Dead targets exist only inside a network namespace the test creates (``lwtest-...``), where
10.200.64.128/25 is routed into ``lo`` and silently dropped (forwarding is off). That prefix is
a piece of the project's 10.200.0.0/16 that the lab's addressing plan (docs/lab.md) leaves
unused; ``tests/probes/test_icmp_engine.py`` has the other half, 10.200.64.0/25.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.probe_command import run_probe_command
from probes.context import ProbeContext
from probes.specs import TcpTarget
from probes.tcp import probe_tcp

REPO = Path(__file__).resolve().parents[2]
NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: raw ICMP, namespaces")
DEAD_PREFIX = "10.200.64.128/25"
"""Routed into ``lo`` in the test's namespace: nothing there answers."""
DEAD = "10.200.64.148"

JSON_FIELDS = {
    "kind",
    "target",
    "status",
    "address",
    "family",
    "sent",
    "received",
    "duplicates",
    "packet_loss",
    "rtts_s",
    "rtt_min_s",
    "rtt_avg_s",
    "rtt_max_s",
    "jitter_s",
    "error",
}


def _run(kind: str, targets: list[str], **options: Any) -> int:
    arguments: dict[str, Any] = {
        "count": 3,
        "interval_s": 0.01,
        "timeout_s": 1.0,
        "as_json": True,
        "port": None,
        "query_name": None,
        "record_type": "A",
    }
    arguments.update(options)
    return run_probe_command(kind, targets, **arguments)


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@NEEDS_ROOT
def test_icmp_json_prints_one_object_per_target_with_every_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = _run("icmp", ["127.0.0.1", "127.0.0.2"])
    lines = _json_lines(capsys.readouterr().out)
    assert code == 0
    assert [line["target"] for line in lines] == ["127.0.0.1", "127.0.0.2"]
    for line in lines:
        assert line.keys() >= JSON_FIELDS
        assert (line["kind"], line["status"], line["error"]) == ("icmp", "up", None)
        assert (line["sent"], line["received"], line["duplicates"]) == (3, 3, 0)
        assert line["packet_loss"] == 0.0
        assert len(line["rtts_s"]) == 3
        assert all(rtt > 0 for rtt in line["rtts_s"])
        assert line["rtt_min_s"] <= line["rtt_avg_s"] <= line["rtt_max_s"]
        assert line["jitter_s"] is not None


@NEEDS_ROOT
def test_icmp_readable_line_is_fping_like_in_milliseconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = _run("icmp", ["127.0.0.1"], as_json=False)
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("127.0.0.1 : xmt/rcv/%loss = 3/3/0%, min/avg/max = ")
    assert " ms, jitter = " in out
    assert out.count("\n") == 1


@pytest.fixture
def dead_end_namespace() -> Iterator[str]:
    name = f"lwtest-{os.getpid()}-{secrets.token_hex(2)}-cli"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    try:
        for command in (["link", "set", "lo", "up"], ["route", "add", DEAD_PREFIX, "dev", "lo"]):
            subprocess.run(
                ["ip", "-n", name, *command], check=True, capture_output=True, timeout=10
            )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


_COMMAND_CHILD = """
import json, sys
from monitor.probe_command import run_probe_command
options = json.loads(sys.argv[1])
sys.exit(run_probe_command(options.pop("kind"), options.pop("targets"), **options))
"""


def _run_in(namespace: str, prefix: tuple[str, ...] = (), **options: Any) -> tuple[int, str, str]:
    arguments: dict[str, Any] = {
        "kind": "icmp",
        "count": 3,
        "interval_s": 0.05,
        "timeout_s": 0.3,
        "as_json": True,
        "port": None,
        "query_name": None,
        "record_type": "A",
    }
    arguments.update(options)
    command = ["ip", "netns", "exec", namespace, *prefix, sys.executable, "-c", _COMMAND_CHILD]
    done = subprocess.run(
        [*command, json.dumps(arguments)], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    return done.returncode, done.stdout, done.stderr


@NEEDS_ROOT
def test_dead_target_exits_1_and_shows_no_data_as_null(dead_end_namespace: str) -> None:
    code, out, err = _run_in(dead_end_namespace, targets=["127.0.0.1", DEAD])
    assert code == 1, err
    alive, dead = _json_lines(out)
    assert alive["status"] == "up"
    assert dead["status"] == "down"
    assert (dead["sent"], dead["received"], dead["packet_loss"]) == (3, 0, 1.0)
    assert dead["rtts_s"] == [None, None, None]
    assert dead["rtt_min_s"] is dead["rtt_avg_s"] is dead["rtt_max_s"] is dead["jitter_s"] is None
    assert dead["error"] == "no echo reply to 3 requests"


@NEEDS_ROOT
def test_dead_target_readable_line_gives_loss_and_reason(dead_end_namespace: str) -> None:
    code, out, _err = _run_in(dead_end_namespace, targets=[DEAD], as_json=False)
    assert code == 1
    assert out == "10.200.64.148 : xmt/rcv/%loss = 3/0/100% : no echo reply to 3 requests\n"


@NEEDS_ROOT
def test_missing_icmp_permission_exits_2_and_says_what_to_fix(dead_end_namespace: str) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    drop_raw = ("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw")
    code, out, err = _run_in(dead_end_namespace, drop_raw, targets=["127.0.0.1"], as_json=False)
    assert code == 2, err
    assert out.startswith("127.0.0.1 : error: cannot open a raw or an unprivileged ICMP socket")
    assert "CAP_NET_RAW" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("kind", "targets", "options", "expected"),
    [
        ("icmp", ["127.0.0.1"], {"count": 0}, "--count must be between 1 and 1000 (got 0)"),
        ("icmp", ["127.0.0.1"], {"interval_s": -1.0}, "--interval must not be negative"),
        ("icmp", ["127.0.0.1"], {"timeout_s": 0.0}, "--timeout must be above 0 seconds"),
        ("icmp", ["127.0.0.1"], {"interval_s": 61.0}, "--interval 61.0 is invalid"),
        ("icmp", [], {}, "give at least one TARGET"),
        ("ftp", ["127.0.0.1"], {}, "KIND 'ftp' is not one of icmp, tcp, http, dns"),
        ("tcp", ["127.0.0.1"], {}, "TARGET '127.0.0.1' needs a port"),
        ("tcp", ["127.0.0.1:http"], {}, "TARGET '127.0.0.1:http' has an invalid port"),
        ("http", ["127.0.0.1"], {}, "TARGET '127.0.0.1' must be an http:// or https:// URL"),
        ("dns", ["127.0.0.1"], {}, "--name is required for dns probes"),
        ("dns", ["127.0.0.1"], {"query_name": "x.test", "record_type": "ZZ"}, "--type 'ZZ'"),
        (
            "dns",
            ["127.0.0.1:5353"],
            {"query_name": "x.test", "port": 53},
            "TARGET '127.0.0.1:5353' names port 5353 but --port is 53",
        ),
        ("dns", ["127.0.0.1:dns"], {"query_name": "x.test"}, "has an invalid port"),
    ],
)
def test_bad_argument_is_one_sentence_naming_it_and_exits_2(
    capsys: pytest.CaptureFixture[str],
    kind: str,
    targets: list[str],
    options: dict[str, Any],
    expected: str,
) -> None:
    code = _run(kind, targets, **options)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("linkwatch probe: ")
    assert expected in captured.err
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def _tcp_probe_is_written() -> bool:
    target = TcpTarget(id="t", host="127.0.0.1", port=9, timeout_s=0.5)
    try:
        asyncio.run(probe_tcp(target, ProbeContext()))
    except NotImplementedError:
        return False
    return True


def test_tcp_probe_of_listening_and_closed_loopback_ports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not _tcp_probe_is_written():
        pytest.skip("probes/tcp.py is still a placeholder")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = int(listener.getsockname()[1])
        up_code = _run("tcp", [f"127.0.0.1:{port}"], count=2)
        up = _json_lines(capsys.readouterr().out)[0]
    down_code = _run("tcp", ["127.0.0.1"], port=port, count=2)
    down = _json_lines(capsys.readouterr().out)[0]
    assert (up_code, up["status"], up["sent"], up["received"]) == (0, "up", 2, 2)
    assert up["rtt_avg_s"] > 0
    assert (down_code, down["status"], down["received"], down["packet_loss"]) == (1, "down", 0, 1.0)
    assert down["error"]


def test_dns_server_may_be_given_as_host_port(capsys: pytest.CaptureFixture[str]) -> None:
    # The help says "host:port" for TARGET; for DNS it names the server's port, as --port.
    from monitor.demo import _ResponderThread

    responder = _ResponderThread({"gw.demo.linkwatch.": [("A", "127.0.0.1")]}, {})
    port = responder.start()
    try:
        code = _run("dns", [f"127.0.0.1:{port}"], query_name="gw.demo.linkwatch.", count=2)
        with_flag = _run("dns", ["127.0.0.1"], port=port, query_name="gw.demo.linkwatch.", count=1)
    finally:
        responder.stop()
    first, second = _json_lines(capsys.readouterr().out)
    assert (code, with_flag) == (0, 0)
    assert (first["received"], first["packet_loss"], first["error"]) == (2, 0.0, None)
    assert (second["received"], second["error"]) == (1, None)
