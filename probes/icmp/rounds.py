"""The records of a round: what callers get back, and the engine's in-flight bookkeeping."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import NamedTuple

from probes.icmp.sockets import IcmpSocket
from probes.icmp.stats import RoundStats

SockAddr = tuple[str, int] | tuple[str, int, int, int]


class Unreachable(NamedTuple):
    """Why one request got an error instead of a reply, and who said so."""

    reason: str
    reporter: str

    def sentence(self) -> str:
        """Return e.g. ``"host unreachable, reported by 192.0.2.1"``."""
        return f"{self.reason}, reported by {self.reporter}"


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """What one round of echo requests to one address measured.

    Attributes:
        address: the address pinged, in canonical text form.
        family: 4 or 6.
        rtts_s: one entry per request in send order: seconds to its first reply, or ``None``
            when it got no reply within its timeout (lost).
        duplicates: extra replies to already answered requests.
        late_replies: replies that came after their request's timeout (counted as loss).
        unreachable: the ICMP or local errors of the requests that stayed lost, in send order.
        stats: loss, RTT minimum/average/maximum and jitter (see :mod:`probes.icmp.stats`).
    """

    address: str
    family: int
    rtts_s: tuple[float | None, ...]
    duplicates: int
    late_replies: int
    unreachable: tuple[Unreachable, ...]
    stats: RoundStats


class RoundState:
    """The engine's mutable view of one running round (internal to the engine).

    ``done`` resolves when every request is answered or failed after the last was sent, or
    when the last request's timeout passes (a deadline the sender sets).
    """

    __slots__ = (
        "all_sent",
        "closed",
        "done",
        "duplicates",
        "late_replies",
        "resolved",
        "rtts_s",
        "unreachable",
    )

    def __init__(self, count: int, done: asyncio.Future[None]) -> None:
        self.rtts_s: list[float | None] = [None] * count
        self.duplicates = 0
        self.late_replies = 0
        self.unreachable: dict[int, Unreachable] = {}
        self.resolved = 0
        self.all_sent = False
        self.closed = False
        self.done = done

    def finish(self) -> None:
        """Resolve ``done`` (idempotent)."""
        if not self.done.done():
            self.done.set_result(None)

    def settle(self) -> None:
        """Count one request as answered or failed; finish when all are."""
        self.resolved += 1
        if self.all_sent and self.resolved >= len(self.rtts_s):
            self.finish()


class PendingRequest:
    """One echo request, from registration until its timeout has passed (engine-internal).

    ``sent_ns`` is ``time.monotonic_ns()`` just before ``sendto`` (0 until sent);
    ``sent_stamp_ns`` the kernel's transmit stamp of the request (``CLOCK_REALTIME`` ns; 0
    until it is read, and for good when the kernel gives none). The sender sets
    ``due_s`` (loop time it may leave) and ``following`` (the round's next request,
    ``None`` for the last).
    """

    __slots__ = (
        "address",
        "answered",
        "attempts",
        "due_s",
        "endpoint",
        "failed",
        "following",
        "index",
        "last",
        "payload_bytes",
        "round",
        "sent_ns",
        "sent_stamp_ns",
        "seq",
        "sockaddr",
        "timeout_ns",
        "token",
    )

    def __init__(
        self,
        rnd: RoundState,
        index: int,
        endpoint: IcmpSocket,
        sockaddr: SockAddr,
        seq: int,
        token: bytes,
        timeout_ns: int,
        payload_bytes: int,
    ) -> None:
        self.round = rnd
        self.index = index
        self.endpoint = endpoint
        self.sockaddr = sockaddr
        self.address = sockaddr[0]
        self.seq = seq
        self.token = token
        self.timeout_ns = timeout_ns
        self.payload_bytes = payload_bytes
        self.sent_ns = 0
        self.sent_stamp_ns = 0
        self.attempts = 0
        self.answered = False
        self.failed = False
        self.last = index == len(rnd.rtts_s) - 1
        self.due_s = 0.0
        self.following: PendingRequest | None = None

    @property
    def is_last(self) -> bool:
        """Whether this is the last request of its round."""
        return self.last


def canonical_address(address: str, family: int) -> tuple[str, SockAddr]:
    """Return ``address`` as the kernel reports it (``inet_ntop``) and its ``sendto`` target.

    IPv6 may carry a ``%scope`` (interface name or index); it goes into the sockaddr only.

    Raises:
        ValueError: ``address`` is not an IPv``family`` literal, or names an unknown scope.
    """
    host, _, scope = address.partition("%")
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    try:
        text = socket.inet_ntop(af, socket.inet_pton(af, host.strip("[]")))
    except OSError as exc:
        raise ValueError(f"{address!r} is not an IPv{family} address") from exc
    if family == 4:
        return text, (text, 0)
    try:
        scope_id = (int(scope) if scope.isdigit() else socket.if_nametoindex(scope)) if scope else 0
    except OSError as exc:
        raise ValueError(f"{address!r} names an unknown network interface") from exc
    return text, (text, 0, 0, scope_id)
