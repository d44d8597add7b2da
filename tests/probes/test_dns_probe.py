"""The DNS probe against the loopback DnsResponder."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from monitor.dns_responder import DnsResponder
from probes.context import ProbeContext
from probes.dns import probe_dns
from probes.result import ProbeKind, ProbeStatus
from probes.specs import DnsTarget

ZONE = {
    "gw.demo.linkwatch.": [("A", "127.0.0.1")],
    "slow.demo.linkwatch.": [("A", "127.0.0.2")],
    "broken.demo.linkwatch.": [("A", "127.0.0.3")],
}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int]]:
    responder = DnsResponder(
        ZONE,
        delays={"slow.demo.linkwatch.": 1.0},
        servfail_names={"broken.demo.linkwatch."},
    )
    address = await responder.start("127.0.0.1", 0)
    yield address
    await responder.stop()


def _target(server: tuple[str, int], name: str, **kw: object) -> DnsTarget:
    host, port = server
    spec = {"id": "gw-dns", "host": host, "port": port, "query_name": name, **kw}
    return DnsTarget.model_validate(spec)


async def test_existing_a_record_is_up_with_its_answer(server: tuple[str, int]) -> None:
    result = await probe_dns(_target(server, "gw.demo.linkwatch."), ProbeContext())
    assert result.kind is ProbeKind.DNS
    assert result.status is ProbeStatus.UP
    assert result.error is None
    assert result.rtt_s is not None and result.rtt_s > 0
    assert result.detail["rcode"] == "NOERROR"
    assert result.detail["answers"] == ["127.0.0.1"]
    assert result.detail["authoritative"] is True
    assert result.detail["transport"] == "udp"
    assert (result.address, result.family) == ("127.0.0.1", 4)


async def test_query_over_tcp_is_up(server: tuple[str, int]) -> None:
    target = _target(server, "gw.demo.linkwatch", transport="tcp")
    result = await probe_dns(target, ProbeContext())
    assert result.status is ProbeStatus.UP
    assert result.detail["transport"] == "tcp"


async def test_nxdomain_is_down_as_a_missing_answer(server: tuple[str, int]) -> None:
    result = await probe_dns(_target(server, "nope.demo.linkwatch."), ProbeContext())
    host, port = server
    assert result.status is ProbeStatus.DOWN
    assert result.detail["rcode"] == "NXDOMAIN"
    assert result.detail["failure"] == "answer"
    assert result.error == (
        f"DNS server {host}:{port} says nope.demo.linkwatch. does not exist (NXDOMAIN)"
    )


async def test_nxdomain_is_up_when_it_is_the_expected_rcode(server: tuple[str, int]) -> None:
    target = _target(server, "nope.demo.linkwatch.", expect_rcode="NXDOMAIN")
    result = await probe_dns(target, ProbeContext())
    assert result.status is ProbeStatus.UP
    assert result.detail["rcode"] == "NXDOMAIN"


async def test_existing_name_is_down_when_nxdomain_is_expected(server: tuple[str, int]) -> None:
    target = _target(server, "gw.demo.linkwatch.", expect_rcode="NXDOMAIN")
    result = await probe_dns(target, ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.detail["failure"] == "answer"


async def test_servfail_is_down_as_a_server_error(server: tuple[str, int]) -> None:
    result = await probe_dns(_target(server, "broken.demo.linkwatch."), ProbeContext())
    host, port = server
    assert result.status is ProbeStatus.DOWN
    assert result.detail["rcode"] == "SERVFAIL"
    assert result.detail["failure"] == "server_error"
    assert result.error == (
        f"DNS server {host}:{port} answered SERVFAIL for broken.demo.linkwatch. A: "
        "a server error, not an answer about the record"
    )


async def test_empty_noerror_answer_is_down(server: tuple[str, int]) -> None:
    target = _target(server, "gw.demo.linkwatch.", record_type="AAAA")
    result = await probe_dns(target, ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.detail["rcode"] == "NOERROR"
    assert result.detail["answers"] == []
    assert result.detail["failure"] == "answer"


async def test_answer_slower_than_the_timeout_is_down(server: tuple[str, int]) -> None:
    host, port = server
    target = _target(server, "slow.demo.linkwatch.", timeout_s=0.3)
    result = await probe_dns(target, ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == f"no answer from DNS server {host}:{port} within 0.3 s"
    assert result.rtt_s is None


async def test_closed_tcp_port_is_down_as_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    target = _target(("127.0.0.1", port), "gw.demo.linkwatch.", transport="tcp")
    result = await probe_dns(target, ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == f"connection refused by 127.0.0.1:{port}"


async def test_unresolvable_server_name_is_error_not_down() -> None:
    target = _target(("é" * 64 + ".invalid", 53), "gw.demo.linkwatch.")
    result = await probe_dns(target, ProbeContext())
    assert result.status is ProbeStatus.ERROR
    assert result.error is not None and "is not a valid host name" in result.error


async def test_invalid_query_name_is_error_naming_the_field(server: tuple[str, int]) -> None:
    result = await probe_dns(_target(server, "a" * 64 + ".demo."), ProbeContext())
    assert result.status is ProbeStatus.ERROR
    assert result.error is not None and result.error.startswith("query_name ")
