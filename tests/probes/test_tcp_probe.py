"""The TCP probe against real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from probes.context import ProbeContext
from probes.resolve import Resolved
from probes.result import ProbeKind, ProbeStatus
from probes.specs import TcpTarget
from probes.tcp import ConnectFailed, connect_in_order, probe_tcp

INVALID_IDNA_NAME = "é" * 64 + ".invalid"  # refused by the IDNA codec: no query leaves


def _free_port(host: str = "127.0.0.1") -> int:
    """Return a port nothing listens on (bound, then closed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s
    s.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def needs_ipv6() -> None:
    if not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")


def _target(host: str, port: int, **kw: object) -> TcpTarget:
    return TcpTarget.model_validate({"id": "gw-tcp", "host": host, "port": port, **kw})


async def test_listening_port_is_up_with_its_connect_time(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = await probe_tcp(_target("127.0.0.1", port), ProbeContext())
    assert result.kind is ProbeKind.TCP
    assert result.status is ProbeStatus.UP
    assert result.error is None
    assert result.rtt_s is not None and result.rtt_s > 0
    assert result.rtt_s == result.phases_s["connect"]
    assert set(result.phases_s) == {"resolve", "connect"}
    assert (result.address, result.family) == ("127.0.0.1", 4)


async def test_closed_port_is_down_as_refused() -> None:
    port = _free_port()
    result = await probe_tcp(_target("127.0.0.1", port), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == f"connection refused by 127.0.0.1:{port}"
    assert result.rtt_s is None


async def test_full_accept_queue_is_down_with_no_answer_within_the_timeout() -> None:
    # A listener with backlog 0 holds one unaccepted connection; Linux then drops further
    # SYNs (tcp_abort_on_overflow=0), so the next handshake never completes: a loopback
    # stand-in for a silent host.
    with socket.socket() as server, socket.socket() as filler:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        filler.settimeout(2.0)
        filler.connect(("127.0.0.1", port))
        result = await probe_tcp(_target("127.0.0.1", port, timeout_s=0.3), ProbeContext())
    assert result.status is ProbeStatus.DOWN
    assert result.error == f"no answer from 127.0.0.1:{port} within 0.3 s"
    assert result.rtt_s is None


@pytest.mark.usefixtures("needs_ipv6")
async def test_ipv6_loopback_records_family_6() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as server:
        server.bind(("::1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        result = await probe_tcp(_target("::1", port, ip_family="ipv6"), ProbeContext())
    assert result.status is ProbeStatus.UP
    assert (result.address, result.family) == ("::1", 6)


async def test_literal_of_a_forbidden_family_is_error_not_down(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = await probe_tcp(_target("127.0.0.1", port, ip_family="ipv6"), ProbeContext())
    assert result.status is ProbeStatus.ERROR
    assert result.error == "127.0.0.1 is an IPv4 address but ip_family is ipv6"


async def test_resolver_failure_at_the_probe_is_error_not_down() -> None:
    result = await probe_tcp(_target(INVALID_IDNA_NAME, 80), ProbeContext())
    assert result.status is ProbeStatus.ERROR
    assert result.error is not None and "is not a valid host name" in result.error
    assert result.address is None


async def test_prefer_ipv6_name_still_connects_over_ipv4(listener: socket.socket) -> None:
    # localhost has no ::1 here, or has one where nothing listens on this port: either way
    # the round ends UP over IPv4.
    port = listener.getsockname()[1]
    result = await probe_tcp(_target("localhost", port, ip_family="prefer_ipv6"), ProbeContext())
    assert result.status is ProbeStatus.UP
    assert (result.address, result.family) == ("127.0.0.1", 4)


async def _open(cand: Resolved, port: int) -> asyncio.StreamWriter:
    _reader, writer = await asyncio.open_connection(cand.address, port)
    return writer


@pytest.mark.usefixtures("needs_ipv6")
async def test_failed_preferred_family_falls_back_and_says_so(listener: socket.socket) -> None:
    port = listener.getsockname()[1]  # listening on 127.0.0.1 only, so [::1] refuses
    candidates = [Resolved("::1", 6), Resolved("127.0.0.1", 4)]
    deadline = asyncio.get_running_loop().time() + 2.0
    done = await connect_in_order(candidates, port, deadline, lambda c: _open(c, port))
    done.conn.close()
    await done.conn.wait_closed()
    assert done.resolved == Resolved("127.0.0.1", 4)
    assert done.fallback == (
        f"connection refused by [::1]:{port}; used IPv4 127.0.0.1:{port} instead"
    )


@pytest.mark.usefixtures("needs_ipv6")
async def test_every_candidate_failing_names_each_attempt() -> None:
    port = _free_port()
    candidates = [Resolved("::1", 6), Resolved("127.0.0.1", 4)]
    deadline = asyncio.get_running_loop().time() + 2.0
    with pytest.raises(ConnectFailed) as info:
        await connect_in_order(candidates, port, deadline, lambda c: _open(c, port))
    assert info.value.status is ProbeStatus.DOWN
    assert str(info.value) == (
        f"connection refused by [::1]:{port}; then connection refused by 127.0.0.1:{port}"
    )
