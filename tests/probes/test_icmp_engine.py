"""The ICMP engine and probe on real sockets: loopback, and private network namespaces.

Only 127.0.0.0/8 and ::1 are pinged in the test process. Dead, blackholed and unreachable
targets exist only inside network namespaces these tests create (names start with
``lwtest-``, always deleted), where a child process runs the engine. Their addresses are
10.200.64.0/25, fd00:200:0:f0::/64 and fd00:200:0:f1::/64: pieces of the project's
10.200.0.0/16 and fd00:200::/48 that the lab's addressing plan (docs/lab.md) leaves unused
(``tests/probes/test_probe_command.py`` has 10.200.64.128/25). Documentation addresses
appear only in the parsing tests, which send nothing.

    probe ns  a0 10.200.64.2/25       <-veth->  b0 10.200.64.1/25       router ns
                 fd00:200:0:f0::2/64                fd00:200:0:f0::1/64
    router ns r1 10.200.64.49/28      <-veth->  l1 (no address)         lan ns
    router: 10.200.64.16/28 blackhole (silent drop); 10.200.64.50 on r1 has no ARP answer, so
            the router reports host unreachable (ICMP 3/1); 10.200.64.60 prohibit route
            (ICMP 3/13); fd00:200:0:f1::50 unreachable route (ICMPv6 1/0)
    probe:  10.200.64.40 on a0 has no ARP answer (the probe host reports 3/1 to itself);
            10.200.64.70 blackhole and 10.200.64.80 unreachable locally (sendto fails)

The kernel rate-limits errors for unreachable/prohibit routes per source (a burst of 5, then
1 per second, a global sysctl we leave alone), so only the prohibit route uses one, 4 times.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from probes.context import ProbeContext
from probes.icmp import probe_icmp
from probes.icmp.engine import IcmpEngine
from probes.icmp.errors import IcmpEngineError
from probes.icmp.packets import (
    TOKEN_BYTES,
    EchoReply,
    ErrorReport,
    build_echo_request,
    checksum,
    parse_message,
)
from probes.icmp.receive import parse_transmit_stamp, receive_rtt_ns, transmit_stamp_of
from probes.icmp.rounds import RoundOutcome
from probes.icmp.sockets import SO_TIMESTAMPING, open_icmp_socket
from probes.result import ProbeStatus
from probes.specs import IcmpTarget

REPO = Path(__file__).resolve().parents[2]
MS = 1e-3

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: raw ICMP sockets, namespaces"),
]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
async def engine() -> AsyncIterator[IcmpEngine]:
    opened = await IcmpEngine.open()
    try:
        yield opened
    finally:
        opened.close()


# -- packets and clock (pure) -------------------------------------------------------------


def test_echo_request_carries_identifier_sequence_token_and_a_valid_checksum() -> None:
    token = bytes(range(TOKEN_BYTES))
    packet = build_echo_request(4, 0x1234, 0xFFFF, token, 56)
    assert len(packet) == 8 + 56
    assert packet[0] == 8
    assert struct.unpack("!HH", packet[4:8]) == (0x1234, 0xFFFF)
    assert packet[8:16] == token
    assert checksum(packet) == 0  # a correct checksum makes the whole message sum to zero


def test_icmp_error_is_matched_through_the_quoted_request() -> None:
    request = build_echo_request(4, 4242, 7, b"T" * TOKEN_BYTES, 56)
    quoted_ip = bytes([0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0]) + bytes(
        [192, 0, 2, 2, 192, 0, 2, 50]
    )
    error = bytes([3, 1, 0, 0, 0, 0, 0, 0]) + quoted_ip + request[:28]
    outer_ip = bytes([0x45]) + bytes(19)
    report = parse_message(4, outer_ip + error, has_ip_header=True)
    assert report == ErrorReport("host unreachable", "192.0.2.50", 4242, 7, b"T" * TOKEN_BYTES)


def test_icmpv6_error_is_matched_through_the_quoted_request() -> None:
    request = build_echo_request(6, 99, 3, b"K" * TOKEN_BYTES, 16)
    destination = socket.inet_pton(socket.AF_INET6, "2001:db8:1::50")
    quoted_ip = bytes([0x60, 0, 0, 0, 0, 24, 58, 64]) + bytes(16) + destination
    report = parse_message(
        6, bytes([1, 0, 0, 0, 0, 0, 0, 0]) + quoted_ip + request, has_ip_header=False
    )
    assert report == ErrorReport("no route to destination", "2001:db8:1::50", 99, 3, b"K" * 8)


def test_only_echo_replies_parse_as_replies() -> None:
    reply = bytes([0, 0, 0, 0, 0, 5, 0, 9]) + b"abcdefgh"
    assert parse_message(4, reply, has_ip_header=False) == EchoReply(5, 9, b"abcdefgh")
    request = build_echo_request(4, 5, 9, b"abcdefgh", 8)
    assert parse_message(4, request, has_ip_header=False) is None


def test_rtt_ignores_a_wall_clock_step_back_in_the_middle_of_a_round() -> None:
    # C06: 20 probes with a steady 12 ms RTT; NTP steps the wall clock back 2 s after the
    # 10th. Send times are monotonic; receive times come from the kernel's wall-clock stamp,
    # converted through the packet's age at read time (50 us here).
    rtts_ms = []
    fallbacks = 0
    wall_offset_ns = 1_700_000_000 * 10**9
    for i in range(20):
        if i == 10:
            wall_offset_ns -= 2 * 10**9
        sent_ns = 5 * 10**9 + i * 10**8
        arrival_ns = sent_ns + 12_000_000
        read_ns = arrival_ns + 50_000
        rtt_ns, exact = receive_rtt_ns(
            sent_ns, arrival_ns + wall_offset_ns, read_ns, read_ns + wall_offset_ns
        )
        rtts_ms.append(rtt_ns / 1e6)
        fallbacks += not exact
    assert rtts_ms == pytest.approx([12.0] * 20)
    assert fallbacks == 0


def test_a_clock_step_between_arrival_and_read_falls_back_to_the_read_time() -> None:
    sent_ns, arrival_ns, read_ns = 10**9, 10**9 + 12_000_000, 10**9 + 12_050_000
    wall = 1_700_000_000 * 10**9
    # stepped back 2 s while the packet waited: its age looks negative
    back = receive_rtt_ns(sent_ns, arrival_ns + wall, read_ns, read_ns + wall - 2 * 10**9)
    # stepped forward 2 s: the packet would have arrived before it was sent
    ahead = receive_rtt_ns(sent_ns, arrival_ns + wall, read_ns, read_ns + wall + 2 * 10**9)
    missing = receive_rtt_ns(sent_ns, None, read_ns, read_ns + wall)
    assert back == ahead == missing == (12_050_000, False)


# -- loopback in the test process ---------------------------------------------------------


async def test_loopback_round_has_no_loss_and_positive_sub_10ms_rtts(engine: IcmpEngine) -> None:
    outcome = await engine.ping_round("127.0.0.1", 4, count=5, spacing_s=0.01, timeout_s=2.0)
    assert outcome.stats.sent == 5
    assert outcome.stats.received == 5
    assert outcome.stats.packet_loss == 0.0
    assert outcome.duplicates == 0
    assert all(rtt is not None and 0 < rtt < 10 * MS for rtt in outcome.rtts_s)
    assert outcome.unreachable == ()


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1 on lo")
async def test_ipv6_loopback_round_has_no_loss(engine: IcmpEngine) -> None:
    outcome = await engine.ping_round("::1", 6, count=5, spacing_s=0.01, timeout_s=2.0)
    assert outcome.address == "::1"
    assert outcome.stats.packet_loss == 0.0
    assert all(rtt is not None and 0 < rtt < 10 * MS for rtt in outcome.rtts_s)


async def test_two_hundred_concurrent_targets_on_one_engine_lose_nothing(
    engine: IcmpEngine,
) -> None:
    addresses = [f"127.0.0.{i}" for i in range(1, 201)]
    outcomes = await asyncio.gather(
        *(engine.ping_round(a, 4, count=5, spacing_s=0.02, timeout_s=3.0) for a in addresses)
    )
    assert [o.address for o in outcomes] == addresses
    for outcome in outcomes:
        assert outcome.stats.received == 5, outcome
        assert outcome.duplicates == 0
        assert all(rtt is not None and rtt > 0 for rtt in outcome.rtts_s)
    counters = engine.counters()
    # Other processes' pings may show up as strays on a raw socket; ours never may, and
    # nothing of ours was late, refused or dropped.
    assert counters.late_replies == 0
    assert counters.send_errors == 0
    assert counters.socket_drops == 0


async def test_sending_faster_than_the_process_can_go_still_reads_every_reply() -> None:
    # 20,000 requests at an unreachable rate ceiling: without yielding to the reader while
    # sending, the ~10,000 replies an 8 MiB buffer holds would overflow it unread.
    fast = await IcmpEngine.open(max_send_rate_pps=10_000_000)
    addresses = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(2000)]
    try:
        outcomes = await asyncio.gather(
            *(fast.ping_round(a, 4, count=10, spacing_s=0, timeout_s=5.0) for a in addresses)
        )
    finally:
        fast.close()
    assert sum(o.stats.received for o in outcomes) == 20_000
    assert fast.socket_drops == 0


async def test_receive_buffer_overflow_is_counted_as_socket_drops_and_loss() -> None:
    tiny = await IcmpEngine.open(rcvbuf_bytes=1)  # the kernel's minimum: about 2 replies
    try:
        outcome = await tiny.ping_round("127.0.0.1", 4, count=64, spacing_s=0, timeout_s=0.5)
    finally:
        tiny.close()
    assert outcome.stats.received < 64
    assert outcome.stats.packet_loss == pytest.approx(1 - outcome.stats.received / 64)
    assert tiny.socket_drops > 0


async def test_sequence_numbers_wrap_without_false_duplicates(engine: IcmpEngine) -> None:
    engine._next_seq = 0xFFFD  # start just below the 16-bit wrap (a seam we own)
    outcome = await engine.ping_round("127.0.0.1", 4, count=6, spacing_s=0.0, timeout_s=2.0)
    assert outcome.stats.received == 6
    assert outcome.duplicates == 0
    assert engine._next_seq == 3


class _SendsLate:
    """A real ICMP socket whose ``sendto`` first stalls ``delay_s``: a preempted sender.

    The stall falls between the engine's user-space send time and the real send, as a
    preemption of the agent process there would.
    """

    def __init__(self, sock: socket.socket, delay_s: float) -> None:
        self._sock = sock
        self._delay_s = delay_s

    def sendto(self, data: bytes, address: Any) -> int:
        time.sleep(self._delay_s)
        return self._sock.sendto(data, address)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def _round_with_stalled_sends(tx_stamps: bool) -> tuple[RoundOutcome, int]:
    endpoint = open_icmp_socket(4, "raw", rcvbuf_bytes=1 << 20)
    if not tx_stamps:  # as on a kernel or driver that gives no transmit stamps
        endpoint.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, 0)
    assert endpoint.tx_stamps  # this kernel grants them (Linux 3.17+; loopback stamps)
    stalled = dataclasses.replace(
        endpoint, sock=cast(socket.socket, _SendsLate(endpoint.sock, 0.02)), tx_stamps=tx_stamps
    )
    engine = IcmpEngine(asyncio.get_running_loop(), {4: stalled}, {}, 1000.0)
    try:
        outcome = await engine.ping_round("127.0.0.1", 4, count=5, spacing_s=0.0, timeout_s=2.0)
        return outcome, engine.counters().send_stamp_fallbacks
    finally:
        engine.close()


async def test_rtt_starts_at_the_kernel_transmit_stamp_not_at_a_stalled_send() -> None:
    # Each send stalls 20 ms after the engine read its send time. From the kernel's
    # transmit stamp, a loopback RTT stays in microseconds; from the user-space send time
    # (what the engine falls back to without stamps) every RTT would include the 20 ms.
    stamped, fallbacks = await _round_with_stalled_sends(tx_stamps=True)
    assert stamped.stats.received == 5
    assert fallbacks == 0
    assert all(rtt is not None and 0 < rtt < 5 * MS for rtt in stamped.rtts_s), stamped.rtts_s
    unstamped, fallbacks = await _round_with_stalled_sends(tx_stamps=False)
    assert unstamped.stats.received == 5
    assert fallbacks == 0  # stamps were never asked for, so none fell back
    assert all(rtt is not None and rtt >= 20 * MS for rtt in unstamped.rtts_s), unstamped.rtts_s


def _stamp_ancillary(stamp_ns: int, level: int, kind: int) -> list[tuple[int, int, bytes]]:
    timespecs = struct.pack("@ll", stamp_ns // 10**9, stamp_ns % 10**9) + bytes(32)
    extended = struct.pack("=IBBBBII", 42, 4, 0, 0, 0, 0, 0)  # ENOMSG, origin TIMESTAMPING
    return [(socket.SOL_SOCKET, SO_TIMESTAMPING, timespecs), (level, kind, extended)]


def test_transmit_stamp_copies_are_matched_by_address_identifier_sequence_and_token() -> None:
    token = bytes(range(1, TOKEN_BYTES + 1))
    icmp4 = build_echo_request(4, 0x1234, 7, token, 56)
    ip4 = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp4), 0, 0, 64, 1, 0,
        socket.inet_aton("10.200.0.1"), socket.inet_aton("10.200.3.4"),
    )  # fmt: skip
    stamp_ns = 1_790_000_000_123_456_789
    v4 = _stamp_ancillary(stamp_ns, socket.IPPROTO_IP, 11)
    expected4 = ("10.200.3.4", 0x1234, 7, token, stamp_ns)
    ethernet = bytes(12) + b"\x08\x00"
    assert parse_transmit_stamp(ethernet + ip4 + icmp4, v4) == (*expected4, 34)
    assert parse_transmit_stamp(ip4 + icmp4, v4) == (*expected4, 20)  # no link header (tun)
    assert parse_transmit_stamp(bytes(18) + ip4 + icmp4, v4) == (*expected4, 38)  # VLAN tag
    assert transmit_stamp_of(v4) == stamp_ns
    with_timestampns = [(socket.SOL_SOCKET, 35, struct.pack("@ll", 1, 2)), *v4]
    assert transmit_stamp_of(with_timestampns) == stamp_ns  # as the engine's sockets get it
    icmp6 = build_echo_request(6, 0x4321, 65535, token, 56)
    ip6 = (
        struct.pack("!IHBB", 6 << 28, len(icmp6), 58, 64)
        + socket.inet_pton(socket.AF_INET6, "fd00:200::1")
        + socket.inet_pton(socket.AF_INET6, "fd00:200::3:4")
    )
    v6 = _stamp_ancillary(stamp_ns, socket.IPPROTO_IPV6, 25)
    assert parse_transmit_stamp(bytes(14) + ip6 + icmp6, v6) == (
        "fd00:200::3:4", 0x4321, 65535, token, stamp_ns, 54,
    )  # fmt: skip
    # Not stamps: an ICMP error on a ping socket's queue (origin 2), a copy that is not an
    # echo request, a truncated copy.
    icmp_error = [(socket.IPPROTO_IP, 11, struct.pack("=IBBBBII", 113, 2, 3, 1, 0, 0, 0))]
    assert parse_transmit_stamp(ethernet + ip4 + icmp4, icmp_error) is None
    assert transmit_stamp_of(icmp_error) == 0
    # A copy cut short by the read buffer (a large payload) is still found, when flagged.
    cut = (ethernet + ip4 + icmp4)[:60]
    assert parse_transmit_stamp(cut, v4) is None
    assert parse_transmit_stamp(cut, v4, truncated=True) == (*expected4, 34)
    reply = b"\x00" + icmp4[1:]
    assert parse_transmit_stamp(ethernet + ip4 + reply, v4) is None
    assert parse_transmit_stamp((ethernet + ip4 + icmp4)[:30], v4) is None


async def test_probe_reports_up_with_the_round_figures(engine: IcmpEngine) -> None:
    target = IcmpTarget(id="lo", host="127.0.0.1", count=4, spacing_s=0.01, timeout_s=2.0)
    result = await probe_icmp(target, ProbeContext(icmp=engine))
    assert result.status is ProbeStatus.UP
    assert (result.sent, result.received, result.duplicates) == (4, 4, 0)
    assert result.packet_loss == 0.0
    assert result.rtt_s is not None and result.rtt_s > 0
    assert result.jitter_s is not None
    assert len(result.rtts_s) == 4
    assert (result.address, result.family, result.error) == ("127.0.0.1", 4, None)
    assert result.detail["rtt_min_s"] <= result.rtt_s <= result.detail["rtt_max_s"]
    assert result.detail["unreachable"] == []


async def test_probe_without_an_engine_is_an_error_not_a_down_target() -> None:
    why = "cannot open a raw or an unprivileged ICMP socket: run the agent as root"
    target = IcmpTarget(id="lo", host="127.0.0.1", count=1, timeout_s=1.0)
    result = await probe_icmp(target, ProbeContext(icmp=None, icmp_error=why))
    assert result.status is ProbeStatus.ERROR
    assert result.error == why
    assert result.address == "127.0.0.1"


async def test_probe_whose_host_cannot_resolve_is_an_error(engine: IcmpEngine) -> None:
    target = IcmpTarget(id="lo", host="::1", ip_family="ipv4", count=1, timeout_s=1.0)
    result = await probe_icmp(target, ProbeContext(icmp=engine))
    assert result.status is ProbeStatus.ERROR
    assert result.error == "::1 is an IPv6 address but ip_family is ipv4"


async def test_round_refuses_a_name_or_a_wrong_family(engine: IcmpEngine) -> None:
    with pytest.raises(ValueError, match="not an IPv4 address"):
        await engine.ping_round("localhost", 4, count=1, spacing_s=0, timeout_s=1)
    with pytest.raises(ValueError, match="family"):
        await engine.ping_round("127.0.0.1", 5, count=1, spacing_s=0, timeout_s=1)


async def test_closed_engine_refuses_new_rounds() -> None:
    closed = await IcmpEngine.open()
    closed.close()
    with pytest.raises(IcmpEngineError, match="closed"):
        await closed.ping_round("127.0.0.1", 4, count=1, spacing_s=0, timeout_s=1)


# -- network namespaces --------------------------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _sysctl(namespace: str, *settings: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", namespace, "sysctl", "-qw", *settings],
        check=True,
        capture_output=True,
        timeout=10,
    )


def _mac(namespace: str, device: str) -> str:
    shown = subprocess.run(
        ["ip", "-n", namespace, "-j", "link", "show", "dev", device],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return str(json.loads(shown.stdout)[0]["address"])


@contextmanager
def _namespaces(*roles: str) -> Iterator[list[str]]:
    tag = f"{os.getpid()}-{secrets.token_hex(2)}"
    created: list[str] = []
    try:
        for role in roles:
            name = f"lwtest-{tag}-{role}"
            _ip("netns", "add", name)
            created.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        yield created
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    """Yield the probe namespace of the lab drawn in the module docstring."""
    with _namespaces("probe", "router", "lan") as (probe, router, lan):
        _ip("link", "add", "a0", "netns", probe, "type", "veth", "peer", "b0", "netns", router)
        _ip("link", "add", "r1", "netns", router, "type", "veth", "peer", "l1", "netns", lan)
        fast_arp_failure = ("retrans_time_ms=50", "mcast_solicit=1", "app_solicit=0")
        _sysctl(
            probe,
            "net.ipv6.conf.a0.accept_dad=0",
            "net.ipv4.ping_group_range=0 2147483647",
            "net.ipv4.icmp_ratemask=0",
            *(f"net.ipv4.neigh.a0.{s}" for s in fast_arp_failure),
        )
        _sysctl(
            router,
            "net.ipv6.conf.b0.accept_dad=0",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.icmp_ratemask=0",
            "net.ipv6.icmp.ratelimit=0",
            *(f"net.ipv4.neigh.r1.{s}" for s in fast_arp_failure),
        )
        for ns, dev, v4, v6 in (
            (probe, "a0", "10.200.64.2/25", "fd00:200:0:f0::2/64"),
            (router, "b0", "10.200.64.1/25", "fd00:200:0:f0::1/64"),
        ):
            _ip("-n", ns, "addr", "add", v4, "dev", dev)
            _ip("-n", ns, "addr", "add", v6, "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", router, "addr", "add", "10.200.64.49/28", "dev", "r1")
        _ip("-n", router, "link", "set", "r1", "up")
        _ip("-n", lan, "link", "set", "l1", "up")
        _ip("-n", probe, "route", "add", "10.200.64.48/28", "via", "10.200.64.1")
        for kind, prefix in (("blackhole", "10.200.64.16/28"), ("prohibit", "10.200.64.60/32")):
            _ip("-n", router, "route", "add", kind, prefix)
            _ip("-n", probe, "route", "add", prefix, "via", "10.200.64.1")
        # Permanent neighbour entries: the first solicitation on a fresh link can be lost,
        # and its 1 s retry would outlast the short timeouts used here.
        for ns, dev, peer_ns, peer_dev, peers in (
            (probe, "a0", router, "b0", ("10.200.64.1", "fd00:200:0:f0::1")),
            (router, "b0", probe, "a0", ("10.200.64.2", "fd00:200:0:f0::2")),
        ):
            mac = _mac(peer_ns, peer_dev)
            for peer in peers:
                _ip(
                    "-n",
                    ns,
                    "neigh",
                    "replace",
                    peer,
                    "lladdr",
                    mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                )
        _ip("-n", router, "-6", "route", "add", "unreachable", "fd00:200:0:f1::50/128")
        _ip("-n", probe, "-6", "route", "add", "fd00:200:0:f1::/64", "via", "fd00:200:0:f0::1")
        _ip("-n", probe, "route", "add", "blackhole", "10.200.64.70/32")
        _ip("-n", probe, "route", "add", "unreachable", "10.200.64.80/32")
        yield probe


_ENGINE_CHILD = """
import asyncio, dataclasses, json, sys, time
from probes.context import ProbeContext
from probes.icmp import probe_icmp
from probes.icmp.engine import IcmpEngine
from probes.specs import IcmpTarget

async def main(plan):
    engine = await IcmpEngine.open(mode=plan.get("mode", "auto"), identifier=plan.get("identifier"))
    try:
        if "start_at" in plan:
            await asyncio.sleep(max(0.0, plan["start_at"] - time.time()))
        ctx = ProbeContext(icmp=engine)
        rounds = [
            engine.ping_round(a, f, count=c, spacing_s=s, timeout_s=t)
            for a, f, c, s, t in plan.get("rounds", [])
        ]
        probes = [probe_icmp(IcmpTarget(**spec), ctx) for spec in plan.get("probes", [])]
        done = await asyncio.gather(*rounds, *probes)
        outcomes = [
            {"address": o.address, "rtts_s": list(o.rtts_s), "duplicates": o.duplicates,
             "late_replies": o.late_replies, "received": o.stats.received,
             "packet_loss": o.stats.packet_loss,
             "unreachable": [u.sentence() for u in o.unreachable]}
            for o in done[: len(rounds)]
        ]
        results = [
            {"status": r.status.value, "error": r.error, "sent": r.sent,
             "received": r.received, "packet_loss": r.packet_loss, "rtt_s": r.rtt_s}
            for r in done[len(rounds):]
        ]
        return {"mode": engine.mode.value, "outcomes": outcomes, "probes": results,
                "counters": dataclasses.asdict(engine.counters())}
    finally:
        engine.close()

print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
"""


def _child_command(namespace: str, code: str, arg: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    return ["ip", "netns", "exec", namespace, *prefix, sys.executable, "-c", code, json.dumps(arg)]


def _run_child(namespace: str, code: str, arg: Any, prefix: tuple[str, ...] = ()) -> Any:
    done = subprocess.run(
        _child_command(namespace, code, arg, prefix),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _probe(host: str, count: int = 4) -> dict[str, Any]:
    return {"id": "t", "host": host, "count": count, "spacing_s": 0.05, "timeout_s": 0.5}


@pytest.fixture(scope="module")
def raw_run(lab: str) -> dict[str, Any]:
    hosts = [
        "127.0.0.1",
        "10.200.64.20",
        "10.200.64.50",
        "10.200.64.60",
        "10.200.64.70",
        "10.200.64.80",
        "fd00:200:0:f1::50",
        "fd00:200:0:f0::1",
        "10.200.64.40",
    ]
    return dict(
        _run_child(lab, _ENGINE_CHILD, {"mode": "raw", "probes": [_probe(h) for h in hosts]})
    )


def test_blackholed_target_pinged_with_a_live_one_gets_full_loss(raw_run: dict[str, Any]) -> None:
    # C01: A (alive) and B (silently dropped) pinged at the same instant by one engine.
    alive, dead = raw_run["probes"][0], raw_run["probes"][1]
    assert alive["status"] == "up"
    assert alive["packet_loss"] == 0.0
    assert dead["status"] == "down"
    assert (dead["sent"], dead["received"], dead["packet_loss"]) == (4, 0, 1.0)
    assert dead["rtt_s"] is None
    assert dead["error"] == "no echo reply to 4 requests"
    assert raw_run["counters"]["stray_replies"] == 0  # nothing else pings in this namespace


def test_unreachable_reply_counts_as_loss_with_reason_and_router(raw_run: dict[str, Any]) -> None:
    # C05: the gateway 10.200.64.1 gets no ARP answer for 10.200.64.50 and sends ICMP type 3
    # code 1 for every request.
    unreachable = raw_run["probes"][2]
    assert unreachable["status"] == "down"
    assert (unreachable["sent"], unreachable["received"], unreachable["packet_loss"]) == (4, 0, 1.0)
    assert unreachable["error"] == "host unreachable, reported by 10.200.64.1"
    ipv6 = raw_run["probes"][6]
    assert ipv6["error"] == "no route to destination, reported by fd00:200:0:f0::1"
    assert raw_run["probes"][7]["status"] == "up"  # the IPv6 router itself answers


def test_no_arp_answer_on_the_probe_hosts_own_subnet_is_reported_by_the_probe_host(
    raw_run: dict[str, Any],
) -> None:
    # C05, first variant: the probe host itself finds no host at 10.200.64.40 on its link.
    on_link = raw_run["probes"][8]
    assert (on_link["status"], on_link["received"]) == ("down", 0)
    assert on_link["error"] == "host unreachable, reported by 10.200.64.2"


def test_administratively_prohibited_is_loss_with_its_reason(raw_run: dict[str, Any]) -> None:
    prohibited = raw_run["probes"][3]
    assert (prohibited["status"], prohibited["received"]) == ("down", 0)
    assert (
        prohibited["error"] == "communication administratively prohibited, reported by 10.200.64.1"
    )


def test_local_route_failures_are_loss_with_the_probe_host_as_reporter(
    raw_run: dict[str, Any],
) -> None:
    blackhole, unreachable = raw_run["probes"][4], raw_run["probes"][5]
    assert blackhole["status"] == unreachable["status"] == "down"
    assert (
        blackhole["error"] == "no usable route (e.g. a blackhole route), reported by the probe host"
    )
    assert unreachable["error"] == "host unreachable, reported by the probe host"


def test_unprivileged_ping_socket_matches_replies_and_errors(lab: str) -> None:
    plan = {
        "mode": "dgram",
        "rounds": [
            ["127.0.0.1", 4, 10, 0.02, 0.5],
            ["10.200.64.50", 4, 10, 0.02, 0.5],
            ["10.200.64.20", 4, 3, 0.02, 0.3],
            ["fd00:200:0:f0::1", 6, 5, 0.02, 0.5],
            ["fd00:200:0:f1::50", 6, 3, 0.02, 0.5],
        ],
    }
    run = _run_child(lab, _ENGINE_CHILD, plan)
    alive, unreachable, dead, alive6, unreachable6 = run["outcomes"]
    assert run["mode"] == "dgram"
    # A ping socket with IP_RECVERR also parks each ICMP error on the socket itself, where it
    # fails the next send or read, whichever target that is for, until the error queue is
    # read (the engine reads it first on every wake-up, so few sends ever see one).
    # Interleaved with the unreachable target's errors, the live targets lose nothing.
    assert alive["received"] == 10
    assert alive6["received"] == 5
    assert unreachable["received"] == 0
    assert set(unreachable["unreachable"]) == {"host unreachable, reported by 10.200.64.1"}
    assert len(unreachable["unreachable"]) == 10
    assert dead["packet_loss"] == 1.0
    assert dead["unreachable"] == []
    assert set(unreachable6["unreachable"]) == {
        "no route to destination, reported by fd00:200:0:f0::1"
    }


def test_two_processes_with_one_identifier_never_credit_each_others_replies(lab: str) -> None:
    # C01 variant: two workers whose ICMP identifiers collide (both 4242) and whose sequence
    # numbers overlap; one pings live hosts, the other blackholed ones, at the same time.
    start_at = time.time() + 2.0
    live = [[f"127.0.0.{i}", 4, 5, 0.05, 1.0] for i in range(1, 21)]
    dead = [[f"10.200.64.{i}", 4, 5, 0.05, 1.0] for i in range(16, 30)]
    children = [
        subprocess.Popen(
            _child_command(
                lab, _ENGINE_CHILD, {"identifier": 4242, "start_at": start_at, "rounds": r}
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for r in (live, dead)
    ]
    runs = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        runs.append(json.loads(out.strip().splitlines()[-1]))
    live_run, dead_run = runs
    assert all(o["received"] == 5 for o in live_run["outcomes"])
    assert all(o["received"] == 0 and o["packet_loss"] == 1.0 for o in dead_run["outcomes"])
    # Every reply the live worker got reached the dead worker's raw socket too, as a stray.
    assert dead_run["counters"]["stray_replies"] == 100
    assert live_run["counters"]["stray_replies"] == 0


_FORGER_CHILD = """
import asyncio, json, socket, struct
from probes.icmp.engine import IcmpEngine
from probes.icmp.packets import checksum

def reply(ident, seq, payload):
    packet = bytearray(struct.pack("!BBHHH", 0, 0, 0, ident, seq) + payload)
    struct.pack_into("=H", packet, 2, checksum(bytes(packet)))
    return bytes(packet)

async def main():
    loop = asyncio.get_running_loop()
    engine = await IcmpEngine.open(mode="raw")
    # Nobody answers pings in this namespace; this raw socket sees each request arrive.
    sniffer = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sniffer.setblocking(False)
    elsewhere = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    elsewhere.bind(("127.0.0.2", 0))
    round_task = asyncio.create_task(
        engine.ping_round("127.0.0.1", 4, count=4, spacing_s=0.8, timeout_s=0.5)
    )
    handled = 0
    while handled < 4:
        data = await asyncio.wait_for(loop.sock_recv(sniffer, 4096), 5)
        icmp = data[(data[0] & 0x0F) * 4:]
        if icmp[0] != 8:
            continue
        ident, seq = struct.unpack("!HH", icmp[4:8])
        payload = icmp[8:]
        wrong_token = bytes(8) + payload[8:]
        if handled == 0:
            elsewhere.sendto(reply(ident, seq, payload), ("127.0.0.1", 0))
            sniffer.sendto(reply(ident, seq, wrong_token), ("127.0.0.1", 0))
            sniffer.sendto(reply(ident, (seq + 1000) & 0xFFFF, payload), ("127.0.0.1", 0))
        elif handled == 1:
            sniffer.sendto(reply(ident, seq, payload), ("127.0.0.1", 0))
            sniffer.sendto(reply(ident, seq, payload), ("127.0.0.1", 0))
        elif handled == 2:
            await asyncio.sleep(0.7)
            sniffer.sendto(reply(ident, seq, payload), ("127.0.0.1", 0))
        handled += 1
    outcome = await round_task
    counters = engine.counters()
    engine.close()
    return {"rtts_s": list(outcome.rtts_s), "duplicates": outcome.duplicates,
            "late_replies": outcome.late_replies, "received": outcome.stats.received,
            "stray_replies": counters.stray_replies}

print(json.dumps(asyncio.run(main())))
"""


def test_forged_replies_are_counted_as_strays_and_never_credited() -> None:
    with _namespaces("forge") as (namespace,):
        _sysctl(namespace, "net.ipv4.icmp_echo_ignore_all=1")
        run = _run_child(namespace, _FORGER_CHILD, None)
    # request 0: right id/seq/token but from 127.0.0.2; wrong token; wrong sequence -> strays
    # request 1: the exact reply, twice -> credited once, one duplicate
    # request 2: the exact reply after its 0.5 s timeout -> loss, counted late
    # request 3: nothing -> loss
    assert run["stray_replies"] == 3
    assert run["rtts_s"][0] is None
    assert run["rtts_s"][1] is not None and run["rtts_s"][1] > 0
    assert run["rtts_s"][2:] == [None, None]
    assert run["received"] == 1
    assert run["duplicates"] == 1
    assert run["late_replies"] == 1


_PERMISSION_CHILD = """
import asyncio
from probes.icmp.engine import IcmpEngine
from probes.icmp.errors import IcmpPermissionError

async def main():
    try:
        await IcmpEngine.open()
    except IcmpPermissionError as exc:
        print(str(exc))
    else:
        print("opened")

asyncio.run(main())
"""


def test_no_icmp_permission_says_what_the_operator_must_change() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    drop_raw = ("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw")
    with _namespaces("noperm") as (namespace,):
        _sysctl(namespace, "net.ipv4.ping_group_range=1 0")
        done = subprocess.run(
            _child_command(namespace, _PERMISSION_CHILD, None, drop_raw)[:-1],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )
    assert done.returncode == 0, done.stderr
    message = done.stdout.strip()
    assert message.startswith("cannot open a raw or an unprivileged ICMP socket")
    assert "root" in message
    assert "CAP_NET_RAW" in message
    assert "setcap cap_net_raw+ep" in message
    assert "net.ipv4.ping_group_range = '1 0'" in message
