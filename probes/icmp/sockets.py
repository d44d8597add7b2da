"""Open the engine's ICMP sockets: raw when allowed, else unprivileged ping sockets.

A raw socket (``SOCK_RAW``) needs root or ``CAP_NET_RAW``; it receives a copy of every ICMP
packet the host gets, so we install the kernel's ICMP type filter to keep only echo replies
and errors. An unprivileged ping socket (``SOCK_DGRAM`` + ``IPPROTO_ICMP``) is allowed when
the process's group is inside ``net.ipv4.ping_group_range``; the kernel then owns the echo
identifier (it rewrites it to the socket's local "port") and delivers ICMP errors through the
socket's error queue (``IP_RECVERR``).

Every socket gets kernel receive timestamps (``SO_TIMESTAMPNS``), kernel transmit timestamps
where the kernel grants them (``SO_TIMESTAMPING``, see :data:`TX_STAMP_FLAGS`), the drop
counter (``SO_RXQ_OVFL``) and a large receive buffer. Linux constants that the ``socket``
module does not export are spelt out below (asm-generic values, as on x86-64 and arm64).
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from probes.icmp.errors import IcmpFamilyUnavailableError, IcmpPermissionError
from probes.icmp.packets import DEST_UNREACHABLE, ECHO_REPLY, TIME_EXCEEDED

SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_RXQ_OVFL = 40
SO_TIMESTAMPING = 37
SCM_TIMESTAMPING = SO_TIMESTAMPING
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SOF_TIMESTAMPING_OPT_RX_FILTER = 1 << 17
SO_EE_ORIGIN_TIMESTAMPING = 4
TX_STAMP_FLAGS = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
"""The engine's ``SO_TIMESTAMPING`` flags (linux/net_tstamp.h): the kernel stamps each request
as the driver takes it (``skb_tx_timestamp``) and queues the stamp, with a copy of the packet
as sent, on the socket's error queue. The copy (not ``OPT_TSONLY``) lets the engine match the
stamp to its request by address, identifier, sequence and token, as it matches replies, with
no send counter to keep in step with the kernel's. ``OPT_RX_FILTER`` (Linux 6.2+, dropped
when refused) keeps a second receive stamp off every reply: ``SO_TIMESTAMPNS`` gives that.
Unprivileged sockets get the packet copy only while ``net.core.tstamp_allow_data`` is 1 (the
default); otherwise the kernel drops the stamps and the engine times from its own send time."""
IP_RECVERR = 11
IPV6_RECVERR = 25
SO_MEMINFO = 55
SK_MEMINFO_DROPS = 8
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1

PING_GROUP_RANGE = "/proc/sys/net/ipv4/ping_group_range"


class IcmpMode(StrEnum):
    """How the engine talks ICMP: a raw socket, or an unprivileged ping (datagram) socket."""

    RAW = "raw"
    DGRAM = "dgram"


ModePreference = Literal["auto", "raw", "dgram"]
"""``auto``: raw if permitted, else ping socket; ``raw``/``dgram``: only that kind."""


@dataclass(frozen=True, slots=True)
class IcmpSocket:
    """An open, non-blocking ICMP socket of one address family.

    Attributes:
        sock: the socket.
        version: 4 or 6.
        mode: raw or datagram.
        ident: the echo identifier replies to our requests carry (random for raw sockets,
            the kernel-chosen local port for ping sockets).
        has_ip_header: whether reads start with an IPv4 header (IPv4 raw sockets only).
        rcvbuf_bytes: the receive buffer the kernel granted (as ``SO_RCVBUF`` reports it).
        tx_stamps: whether the kernel accepted the transmit-stamp request
            (:data:`TX_STAMP_FLAGS`); the stamps then arrive on the error queue.
    """

    sock: socket.socket
    version: int
    mode: IcmpMode
    ident: int
    has_ip_header: bool
    rcvbuf_bytes: int
    tx_stamps: bool = False


def open_icmp_socket(
    version: int, preference: ModePreference, *, rcvbuf_bytes: int, ident: int | None = None
) -> IcmpSocket:
    """Open and configure the ICMP socket for IPv``version`` (4 or 6).

    ``ident`` forces the echo identifier of a raw socket (tests of colliding identifiers);
    ``None`` draws a random one. A ping socket always uses the identifier the kernel assigns.

    Raises:
        IcmpPermissionError: neither socket kind is permitted; the message says what to fix.
        IcmpFamilyUnavailableError: the host has no such address family (e.g. IPv6 disabled).
    """
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    proto = socket.IPPROTO_ICMP if version == 4 else socket.IPPROTO_ICMPV6
    kinds = {"auto": (IcmpMode.RAW, IcmpMode.DGRAM), "raw": (IcmpMode.RAW,)}.get(
        preference, (IcmpMode.DGRAM,)
    )
    for mode in kinds:
        sock_type = socket.SOCK_RAW if mode is IcmpMode.RAW else socket.SOCK_DGRAM
        try:
            sock = socket.socket(family, sock_type, proto)
        except PermissionError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                raise IcmpFamilyUnavailableError(
                    f"the probe host cannot open IPv{version} ICMP sockets ({exc.strerror})"
                ) from exc
            if exc.errno in (errno.EACCES, errno.EPERM):
                continue
            raise
        try:
            return _configure(sock, version, mode, rcvbuf_bytes, ident)
        except BaseException:
            sock.close()
            raise
    raise IcmpPermissionError(permission_advice(preference))


def permission_advice(preference: ModePreference = "auto") -> str:
    """Return the sentence telling the operator how to let this process send ICMP."""
    try:
        with open(PING_GROUP_RANGE, encoding="ascii") as handle:
            group_range = " ".join(handle.read().split())
    except OSError:
        group_range = "unknown"
    tried = {"raw": "a raw ICMP socket", "dgram": "an unprivileged ICMP (ping) socket"}.get(
        preference, "a raw or an unprivileged ICMP socket"
    )
    return (
        f"cannot open {tried} (raw ICMP needs root or CAP_NET_RAW, and group {os.getgid()} "
        f"is outside net.ipv4.ping_group_range = {group_range!r}): run the agent as root, "
        "grant it CAP_NET_RAW (e.g. `setcap cap_net_raw+ep` on the Python binary, or "
        "AmbientCapabilities=CAP_NET_RAW in its systemd unit), or widen the range with "
        "`sysctl -w net.ipv4.ping_group_range='0 2147483647'`"
    )


def read_drops(sock: socket.socket) -> int | None:
    """Return how many packets the kernel dropped on ``sock`` for lack of buffer room.

    Read with ``SO_MEMINFO`` (``SK_MEMINFO_DROPS``, Linux 4.12+), which counts every drop
    even when no later packet is read to carry the ``SO_RXQ_OVFL`` figure; ``None`` when the
    kernel does not offer it or the socket is closed.
    """
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * (SK_MEMINFO_DROPS + 1))
    except OSError:
        return None
    if len(raw) < 4 * (SK_MEMINFO_DROPS + 1):
        return None
    return int(struct.unpack_from("=I", raw, 4 * SK_MEMINFO_DROPS)[0])


def _configure(
    sock: socket.socket, version: int, mode: IcmpMode, rcvbuf_bytes: int, ident: int | None
) -> IcmpSocket:
    sock.setblocking(False)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf_bytes)
    except OSError:  # needs CAP_NET_ADMIN; the plain option is capped at net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    tx_stamps = enable_transmit_stamps(sock)
    if mode is IcmpMode.RAW:
        _install_type_filter(sock, version)
        chosen = ident if ident is not None else secrets.randbelow(0x10000)
        has_ip_header = version == 4
    else:
        sock.bind(("0.0.0.0", 0) if version == 4 else ("::", 0))
        if version == 4:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        chosen = int(sock.getsockname()[1])
        has_ip_header = False
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return IcmpSocket(sock, version, mode, chosen, has_ip_header, granted, tx_stamps)


def enable_transmit_stamps(sock: socket.socket) -> bool:
    """Ask for kernel transmit stamps on ``sock`` (:data:`TX_STAMP_FLAGS`); return if granted.

    Tries with ``OPT_RX_FILTER`` first, then without it (kernels before 6.2 refuse the flag).
    """
    for flags in (TX_STAMP_FLAGS | SOF_TIMESTAMPING_OPT_RX_FILTER, TX_STAMP_FLAGS):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
        except OSError:
            continue
        return True
    return False


def _install_type_filter(sock: socket.socket, version: int) -> None:
    """Let only echo replies and errors reach this raw socket (it would get every ICMP type)."""
    wanted = (ECHO_REPLY[version], DEST_UNREACHABLE[version], TIME_EXCEEDED[version])
    if version == 4:
        # ICMP_FILTER: a 32-bit mask of IPv4 ICMP types to DROP (linux/icmp.h).
        blocked = 0xFFFFFFFF
        for icmp_type in wanted:
            blocked &= ~(1 << icmp_type)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", blocked))
        return
    # ICMP6_FILTER: 256 bits, a set bit BLOCKS that type on Linux (linux/icmpv6.h).
    words = [0xFFFFFFFF] * 8
    for icmp_type in wanted:
        words[icmp_type >> 5] &= ~(1 << (icmp_type & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
