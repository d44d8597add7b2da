"""Decode what ``recvmsg`` returns besides the packet: kernel timestamps, drops, queued errors.

Receive time: the kernel stamps each packet when it arrives (``SO_TIMESTAMPNS``), on
``CLOCK_REALTIME``, the wall clock that NTP can step. Send times are taken on the monotonic
clock, so an RTT never mixes the two: at read time we measure the packet's age on the wall
clock (``realtime_now - kernel_ts``), which a clock step does not disturb unless it happens in
that short wait, and subtract it from ``monotonic_now``. An age below zero, or one that would
put the arrival before the send, can only come from a step; the caller then falls back to the
monotonic read time and counts it.

Send time: where the kernel grants transmit stamps (:data:`probes.icmp.sockets.TX_STAMP_FLAGS`),
it stamps each request as the driver takes it and queues the stamp, with a copy of the packet,
on the error queue (:func:`parse_transmit_stamp`). The RTT is then the receive stamp minus
the transmit stamp, both the kernel's (:func:`stamped_rtt_ns`), so a preemption between the
engine's own send time and the real send no longer lengthens it. Both stamps are on the wall
clock: the monotonic interval from just before ``sendto`` to the read bounds the result, so a
wall-clock step forward between the two stamps is caught (the engine then uses the path
above).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable

from probes.icmp.packets import TOKEN_BYTES, ErrorReport, describe_error, parse_quoted_request
from probes.icmp.sockets import (
    IP_RECVERR,
    IPV6_RECVERR,
    SCM_TIMESTAMPING,
    SCM_TIMESTAMPNS,
    SO_EE_ORIGIN_TIMESTAMPING,
    SO_RXQ_OVFL,
)

Ancillary = Iterable[tuple[int, int, bytes]]

_TIMESPEC = struct.Struct("@ll")
_U32 = struct.Struct("=I")
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err (linux/errqueue.h)
_ORIGIN_LOCAL = 1
_ORIGIN_ICMP = 2
_ORIGIN_ICMP6 = 3

_ID_SEQ = struct.Struct("!HH")
_RECVERR = ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR))
_TX_LINK_HEADER_BYTES = (14, 0, 18, 16, 4)
"""Where the IP header may start in a transmit-stamp copy: the copy begins at the link-layer
header (Ethernet and veth 14 bytes, also loopback; none on tun/wireguard; 18 with a VLAN
tag; 16 Linux cooked; 4 on some point-to-point devices), tried in this order."""

ANCILLARY_BYTES = (
    socket.CMSG_SPACE(_TIMESPEC.size)
    + socket.CMSG_SPACE(_U32.size)
    + socket.CMSG_SPACE(3 * _TIMESPEC.size)  # SCM_TIMESTAMPING, if OPT_RX_FILTER was refused
)
ERRQUEUE_ANCILLARY_BYTES = 512


def read_ancillary(ancdata: list[tuple[int, int, bytes]]) -> tuple[int | None, int | None]:
    """Return ``(kernel receive timestamp ns on CLOCK_REALTIME, socket drop count)``.

    Either is ``None`` when its control message is absent. The drop count
    (``SO_RXQ_OVFL``) is the socket's cumulative count of packets dropped for lack of
    receive-buffer room, as of this packet; the kernel only sends it once it is non-zero.
    """
    if len(ancdata) == 1:  # the usual case: the stamp alone
        level, kind, data = ancdata[0]
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds, None
    stamp_ns: int | None = None
    drops: int | None = None
    for level, kind, data in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            stamp_ns = seconds * 1_000_000_000 + nanoseconds
        elif kind == SO_RXQ_OVFL and len(data) >= _U32.size:
            drops = _U32.unpack_from(data)[0]
    return stamp_ns, drops


def wall_minus_monotonic_ns(attempts: int = 5, tight_ns: int = 20_000) -> int:
    """Return ``time.time_ns() - time.monotonic_ns()``, read as one tight pair.

    The wall clock is read between two monotonic reads and paired with their midpoint; a
    pair more than ``tight_ns`` apart (the process was preempted in between) is read again,
    up to ``attempts`` times, keeping the tightest. Reading the two clocks one after the
    other instead lets a preemption between the reads shift the result by its length (seen
    as rare RTTs 1-5 ms too long on a busy 2-core host). The offset only changes when the
    wall clock is stepped, so one reading serves every packet of one wake-up.
    """
    best_span = -1
    best = 0
    for _ in range(attempts):
        before = time.monotonic_ns()
        wall = time.time_ns()
        after = time.monotonic_ns()
        span = after - before
        if best_span < 0 or span < best_span:
            best_span, best = span, wall - (before + after) // 2
        if span <= tight_ns:
            break
    return best


def receive_rtt_ns(
    sent_ns: int, kernel_stamp_ns: int | None, monotonic_now_ns: int, realtime_now_ns: int
) -> tuple[int, bool]:
    """Return ``(rtt_ns, exact)`` for a reply read at ``monotonic_now_ns``.

    Args:
        sent_ns: the request's send time, ``time.monotonic_ns()`` just before ``sendto``.
        kernel_stamp_ns: the kernel's receive stamp (``CLOCK_REALTIME``), or ``None``.
        monotonic_now_ns: ``time.monotonic_ns()`` right after the read.
        realtime_now_ns: ``time.time_ns()`` right after the read.

    Returns:
        ``exact`` is True when the RTT ends at the kernel's arrival stamp, moved onto the
        monotonic clock through the packet's age. It is False, and the RTT ends at the read
        time (a little longer, never negative), when there is no stamp or the wall clock
        stepped while the packet waited: a negative age (step back) or an arrival before the
        send (step forward). The RTT is at least 1 ns.
    """
    if kernel_stamp_ns is not None:
        age_ns = realtime_now_ns - kernel_stamp_ns
        if age_ns >= 0:
            rtt_ns = monotonic_now_ns - age_ns - sent_ns
            if rtt_ns > 0:
                return rtt_ns, True
    return max(monotonic_now_ns - sent_ns, 1), False


def parse_transmit_stamp(
    data: bytes, ancdata: Ancillary, *, truncated: bool = False
) -> tuple[str, int, int, bytes, int, int] | None:
    """Decode a transmit stamp read from the error queue (``recvmsg(..., MSG_ERRQUEUE)``).

    ``data`` is the kernel's copy of the echo request as it left, from its link-layer header;
    the control messages are ``SCM_TIMESTAMPING`` (three timespecs, the first the software
    stamp, ``CLOCK_REALTIME``) and ``IP_RECVERR``/``IPV6_RECVERR`` with origin
    ``SO_EE_ORIGIN_TIMESTAMPING``. ``truncated``: the read was cut short (``MSG_TRUNC``), so
    the IP header's length may exceed what was read.

    Returns:
        ``(destination address text, identifier, sequence, token bytes, stamp ns on
        CLOCK_REALTIME, offset of the ICMP header in data)``; ``None`` when the entry is no
        transmit stamp (an ICMP or local error) or its packet is not an echo request.
    """
    stamp_ns = 0
    is_stamp = False
    for level, kind, cdata in ancdata:
        if kind == SCM_TIMESTAMPING and level == socket.SOL_SOCKET and len(cdata) >= 16:
            seconds, nanoseconds = _TIMESPEC.unpack_from(cdata)
            stamp_ns = seconds * 1_000_000_000 + nanoseconds
        elif (level, kind) in _RECVERR:
            is_stamp = len(cdata) >= _EXTENDED_ERR.size and cdata[4] == SO_EE_ORIGIN_TIMESTAMPING
    if not is_stamp or stamp_ns <= 0:
        return None
    size = len(data)
    for at in _TX_LINK_HEADER_BYTES:
        if size < at + 28:
            continue
        version = data[at] >> 4
        if version == 4 and _fits(data[at + 2] << 8 | data[at + 3], size - at, truncated):
            icmp = at + (data[at] & 0x0F) * 4
            if size < icmp + 8 or data[icmp] != 8:
                return None
            destination = socket.inet_ntop(socket.AF_INET, data[at + 16 : at + 20])
        elif version == 6 and _fits((data[at + 4] << 8 | data[at + 5]) + 40, size - at, truncated):
            icmp = at + 40
            if size < icmp + 8 or data[icmp] != 128:
                return None
            destination = socket.inet_ntop(socket.AF_INET6, data[at + 24 : at + 40])
        else:
            continue
        ident, seq = _ID_SEQ.unpack_from(data, icmp + 4)
        token = data[icmp + 8 : icmp + 8 + TOKEN_BYTES]
        return destination, ident, seq, token, stamp_ns, icmp
    return None


def _fits(ip_bytes: int, read_bytes: int, truncated: bool) -> bool:
    return ip_bytes == read_bytes or (truncated and ip_bytes > read_bytes)


def transmit_stamp_of(ancdata: list[tuple[int, int, bytes]]) -> int:
    """Return the transmit stamp (``CLOCK_REALTIME`` ns) of an error-queue entry, else 0.

    The fast check for the usual shape, ``SCM_TIMESTAMPING`` then ``IP(V6)_RECVERR`` with
    origin ``SO_EE_ORIGIN_TIMESTAMPING`` last, in the order the kernel writes them (after
    ``SCM_TIMESTAMPNS`` when that option is on too); anything else is 0 and goes to
    :func:`parse_transmit_stamp` or the error path.
    """
    if len(ancdata) < 2:
        return 0
    (level, kind, cdata), (_level, _kind, edata) = ancdata[-2:]
    if (
        kind != SCM_TIMESTAMPING
        or level != socket.SOL_SOCKET
        or len(cdata) < 16
        or len(edata) < _EXTENDED_ERR.size
        or edata[4] != SO_EE_ORIGIN_TIMESTAMPING
    ):
        return 0
    seconds, nanoseconds = _TIMESPEC.unpack_from(cdata)
    return int(seconds * 1_000_000_000 + nanoseconds)


def stamped_rtt_ns(sent_stamp_ns: int, kernel_stamp_ns: int | None, bound_ns: int) -> int | None:
    """Return the RTT from the kernel's transmit stamp to its receive stamp, if believable.

    Args:
        sent_stamp_ns: the request's transmit stamp (``CLOCK_REALTIME`` ns), 0 if none.
        kernel_stamp_ns: the reply's receive stamp (``CLOCK_REALTIME`` ns), or ``None``.
        bound_ns: monotonic ns from just before ``sendto`` to the read of the reply; the
            true RTT cannot exceed it.

    Returns:
        The RTT in ns, or ``None`` when a stamp is missing or the difference is not in
        ``(0, bound_ns]`` (the wall clock was stepped between the stamps).
    """
    if not sent_stamp_ns or kernel_stamp_ns is None:
        return None
    rtt_ns = kernel_stamp_ns - sent_stamp_ns
    return rtt_ns if 0 < rtt_ns <= bound_ns else None


def parse_queued_error(
    version: int, data: bytes, ancdata: Ancillary, destination: str
) -> ErrorReport | None:
    """Decode one entry of a ping socket's error queue (``recvmsg(..., MSG_ERRQUEUE)``).

    ``data`` is the echo request the error is about (as the kernel sent it, identifier
    rewritten), ``destination`` the address it was sent to (``msg_name``). The control
    message carries ``struct sock_extended_err`` (origin, ICMP type and code) followed by
    the address of the node that reported the error (``SO_EE_OFFENDER``).

    Returns:
        The report (the reporter comes from :func:`offender_address`), or ``None`` for
        entries that are not ICMP or local errors about an echo request.
    """
    for level, kind, cdata in ancdata:
        if (level, kind) not in (
            (socket.IPPROTO_IP, IP_RECVERR),
            (socket.IPPROTO_IPV6, IPV6_RECVERR),
        ):
            continue
        if len(cdata) < _EXTENDED_ERR.size:
            return None
        err_no, origin, icmp_type, code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(cdata)
        if origin in (_ORIGIN_ICMP, _ORIGIN_ICMP6):
            reason = describe_error(version, icmp_type, code)
        elif origin == _ORIGIN_LOCAL:
            reason = _local_reason(err_no)
        else:
            reason = None
        if reason is None:
            return None
        return parse_quoted_request(version, reason, destination, data)
    return None


def offender_address(ancdata: Ancillary) -> str | None:
    """Return the address of the node that reported a queued error, or ``None`` if unknown."""
    for level, kind, cdata in ancdata:
        if (level, kind) not in (
            (socket.IPPROTO_IP, IP_RECVERR),
            (socket.IPPROTO_IPV6, IPV6_RECVERR),
        ):
            continue
        offender = cdata[_EXTENDED_ERR.size :]
        if len(offender) < 2:
            return None
        family = struct.unpack_from("=H", offender)[0]
        if family == socket.AF_INET and len(offender) >= 8:
            return socket.inet_ntop(socket.AF_INET, offender[4:8])
        if family == socket.AF_INET6 and len(offender) >= 24:
            return socket.inet_ntop(socket.AF_INET6, offender[8:24])
        return None
    return None


def _local_reason(err_no: int) -> str:
    return os.strerror(err_no).lower() if err_no else "local error"
