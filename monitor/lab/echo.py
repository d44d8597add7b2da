"""The responder's packets and sockets: echo replies, site of a source, kernel stamps.

Both raw sockets get kernel receive stamps (``SO_TIMESTAMPNS``) and kernel transmit stamps
(``SO_TIMESTAMPING`` with ``TX_SOFTWARE``, ``OPT_ID`` and ``OPT_TSONLY``): after each reply
the kernel queues, on the socket's error queue, the time the reply left through the veth
(``skb_tx_timestamp`` in the veth driver) and the reply's number on that socket (0, 1, 2...).
So a hold is measured kernel stamp to kernel stamp, and a preemption of the responder
between deciding to send and the send cannot make it look shorter than it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
from collections.abc import Iterable

from probes.icmp.sockets import (
    SCM_TIMESTAMPING,
    SO_EE_ORIGIN_TIMESTAMPING,
    SO_RCVBUFFORCE,
    SO_TIMESTAMPING,
    SO_TIMESTAMPNS,
    SOF_TIMESTAMPING_OPT_ID,
    SOF_TIMESTAMPING_OPT_TSONLY,
    SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_TX_SOFTWARE,
)

BUFFER_BYTES = 8 << 20
ANCILLARY_BYTES = 256
TX_STAMP_FLAGS = (
    SOF_TIMESTAMPING_TX_SOFTWARE
    | SOF_TIMESTAMPING_SOFTWARE
    | SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_TSONLY
)
"""``SOF_TIMESTAMPING_TX_SOFTWARE | SOFTWARE | OPT_ID | OPT_TSONLY`` (linux/net_tstamp.h)."""

IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
_IP_RECVERR = 11
_IPV6_RECVERR = 25
_SOL_RAW = 255
_ICMP_FILTER = 1
_ICMP6_FILTER = 1
_SO_SNDBUFFORCE = 32
_PR_SET_TIMERSLACK = 29
_TIMESPEC = struct.Struct("@ll")
_EXTENDED_ERR = struct.Struct("=IBBBBII")
_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
_RECVERR = ((socket.IPPROTO_IP, _IP_RECVERR), (socket.IPPROTO_IPV6, _IPV6_RECVERR))
_V6_PREFIX = socket.inet_pton(socket.AF_INET6, "fd00:200::")[:6]

Ancillary = Iterable[tuple[int, int, bytes]]


def echo_reply_v4(request: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Return ``(reply packet with IPv4 header, requester address, pinged address)``.

    ``request`` is what an IPv4 raw socket reads (IPv4 header first). The reply swaps the
    addresses (sent with ``IP_HDRINCL``, so it leaves from the pinged address even when that
    is only covered by a local route) and turns type 8 into type 0, updating the checksum
    incrementally (RFC 1624 eq. 3: the 16-bit word 0x0800 becomes 0x0000, so the one's
    complement checksum grows by 0x0800). ``None`` if it is no echo request.
    """
    ihl = (request[0] & 0x0F) * 4
    icmp = request[ihl:]
    if len(icmp) < 8 or icmp[0] != 8:
        return None
    checksum = ((icmp[2] << 8) | icmp[3]) + 0x0800
    checksum = (checksum & 0xFFFF) + (checksum >> 16)
    src, dst = request[12:16], request[16:20]
    header = _IP_HEADER.pack(0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, dst, src)
    body = b"\x00" + icmp[1:2] + bytes((checksum >> 8, checksum & 0xFF)) + icmp[4:]
    return header + body, src, dst


def echo_reply_v6(request: bytes) -> bytes | None:
    """Return the ICMPv6 echo reply to ``request`` (checksum 0: the kernel fills it in)."""
    if len(request) < 8 or request[0] != 128:
        return None
    return b"\x81" + request[1:2] + b"\x00\x00" + request[4:]


def site_index_v4(src: bytes) -> int:
    """Return the lab site index of a packed IPv4 source (10.200.i.x, 10.200.(64+i).x), or 0."""
    if src[0] != 10 or src[1] != 200:
        return 0
    third = src[2]
    if 1 <= third <= 63:
        return third
    if 65 <= third <= 127:
        return third - 64
    return 0


def site_index_v6(src: bytes) -> int:
    """Return the lab site index of a packed IPv6 source (fd00:200:0:i::/64), or 0."""
    if src[:6] != _V6_PREFIX:
        return 0
    index = (src[6] << 8) | src[7]
    return index if 1 <= index <= 63 else 0


def receive_info(ancdata: Ancillary) -> tuple[int, bytes | None]:
    """Return ``(kernel receive stamp in wall-clock ns or 0, IPv6 destination or None)``.

    The IPv6 destination is the 16 packed bytes of ``IPV6_PKTINFO``: the address pinged.
    """
    stamp = 0
    pktinfo = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanos = _TIMESPEC.unpack_from(data)
            stamp = seconds * 1_000_000_000 + nanos
        elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
            pktinfo = data[:16]
    return stamp, pktinfo


def transmit_stamp(ancdata: Ancillary) -> tuple[int, int] | None:
    """Return ``(reply number on its socket, kernel transmit stamp in wall-clock ns)``.

    ``ancdata`` is from one ``recvmsg(..., MSG_ERRQUEUE)``; ``None`` if it is no transmit
    stamp (another error).
    """
    stamp = 0
    number = -1
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(data) >= 16:
            seconds, nanos = _TIMESPEC.unpack_from(data)  # [0] is the software stamp
            stamp = seconds * 1_000_000_000 + nanos
        elif (level, kind) in (
            (socket.IPPROTO_IP, _IP_RECVERR),
            (socket.IPPROTO_IPV6, _IPV6_RECVERR),
        ):
            _errno, origin, _t, _c, _p, _info, data_id = _EXTENDED_ERR.unpack_from(data)
            if origin == SO_EE_ORIGIN_TIMESTAMPING:
                number = data_id
    return (number, stamp) if stamp and number >= 0 else None


def open_v4() -> tuple[socket.socket, bool]:
    """Open the IPv4 raw socket: echo requests only, ``IP_HDRINCL``, stamps, big buffers.

    Returns the socket and whether transmit stamps are on.

    Raises:
        OSError: it cannot be opened (not root).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", 0xFFFFFFFF & ~(1 << 8)))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return sock, _configure(sock)


def open_v6() -> tuple[socket.socket, bool] | None:
    """Open the IPv6 raw socket (echo requests only, destination via pktinfo), or ``None``."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    except OSError:
        return None
    words = [0xFFFFFFFF] * 8
    words[128 >> 5] &= ~(1 << (128 & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    return sock, _configure(sock)


def set_timer_slack_ns(slack_ns: int) -> None:
    """Ask Linux for a small timer slack so ``select`` wakes near the due time (default 50 us)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0)


def _configure(sock: socket.socket) -> bool:
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, TX_STAMP_FLAGS)
    except OSError:
        return False
    return True
