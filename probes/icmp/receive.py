"""Decode what ``recvmsg`` returns besides the packet: kernel timestamps, drops, queued errors.

Receive time: the kernel stamps each packet when it arrives (``SO_TIMESTAMPNS``), on
``CLOCK_REALTIME``, the wall clock that NTP can step. Send times are taken on the monotonic
clock, so an RTT never mixes the two: at read time we measure the packet's age on the wall
clock (``realtime_now - kernel_ts``), which a clock step does not disturb unless it happens in
that short wait, and subtract it from ``monotonic_now``. An age below zero, or one that would
put the arrival before the send, can only come from a step; the caller then falls back to the
monotonic read time and counts it.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable

from probes.icmp.packets import ErrorReport, describe_error, parse_quoted_request
from probes.icmp.sockets import IP_RECVERR, IPV6_RECVERR, SCM_TIMESTAMPNS, SO_RXQ_OVFL

Ancillary = Iterable[tuple[int, int, bytes]]

_TIMESPEC = struct.Struct("@ll")
_U32 = struct.Struct("=I")
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err (linux/errqueue.h)
_ORIGIN_LOCAL = 1
_ORIGIN_ICMP = 2
_ORIGIN_ICMP6 = 3

ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_U32.size)
ERRQUEUE_ANCILLARY_BYTES = 512


def read_ancillary(ancdata: Ancillary) -> tuple[int | None, int | None]:
    """Return ``(kernel receive timestamp ns on CLOCK_REALTIME, socket drop count)``.

    Either is ``None`` when its control message is absent. The drop count
    (``SO_RXQ_OVFL``) is the socket's cumulative count of packets dropped for lack of
    receive-buffer room, as of this packet; the kernel only sends it once it is non-zero.
    """
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
