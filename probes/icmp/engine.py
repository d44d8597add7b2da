"""The process-wide ICMP engine: one socket per address family, shared by every target.

Every ICMP probe of the agent goes through one :class:`IcmpEngine`. It owns one ICMP socket
per address family and one reader callback on the event loop (``loop.add_reader``) that
reads every packet and hands it to the round that sent the request, in O(1): outstanding
requests live in one dict keyed by ``(address, identifier, sequence)``.

A reply is credited only when its source address, identifier and sequence name an
outstanding request AND its payload carries that request's random 8-byte token; anything
else is a stray (another process's ping, a forged or corrupted reply), counted and dropped.
Sequence numbers are allocated engine-wide and skip any still in use for that address, so a
16-bit wrap never makes an old request look answered. A request stays in the table until
its timeout (plus a grace period) has passed, so a late second copy still counts as a
duplicate rather than a new reply, and a reply after the timeout is loss, never a late RTT.

ICMP errors (destination unreachable, time exceeded) are matched through the request they
quote and reported as loss with the reason and the reporting router. An RTT runs from the
kernel's transmit stamp of the request to the kernel's receive stamp of the reply, checked
against the monotonic clock (see :mod:`probes.icmp.receive`); where the kernel gives no
transmit stamp, from the monotonic time read just before ``sendto``. A round hands
its requests, with their due times (``spacing_s`` apart), to the one sender, which sends
them when due and paces every send engine-wide (``max_send_rate_pps``,
:mod:`probes.icmp.sender`).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import struct
import time
from dataclasses import dataclass

from probes.icmp.errors import (
    IcmpEngineError,
    IcmpFamilyUnavailableError,
    IcmpPermissionError,
)
from probes.icmp.packets import ECHO_REPLY, TOKEN_BYTES, ErrorReport, parse_message
from probes.icmp.receive import (
    ANCILLARY_BYTES,
    ERRQUEUE_ANCILLARY_BYTES,
    offender_address,
    parse_queued_error,
    parse_transmit_stamp,
    read_ancillary,
    receive_rtt_ns,
    stamped_rtt_ns,
    transmit_stamp_of,
    wall_minus_monotonic_ns,
)
from probes.icmp.rounds import (
    PendingRequest,
    RoundOutcome,
    RoundState,
    Unreachable,
    canonical_address,
)
from probes.icmp.sender import LOCAL_REPORTER, Sender
from probes.icmp.sockets import (
    IcmpMode,
    IcmpSocket,
    ModePreference,
    open_icmp_socket,
    read_drops,
)
from probes.icmp.stats import summarize
from probes.icmp.timers import Deadlines

_RECV_BYTES = 1024
"""Bytes read per packet: more than any part the engine parses (an echo reply's header and
token; an error's quote up to the token; a transmit-stamp copy up to the token), and small
enough that CPython allocates each read cheaply (4096 cost about 0.6 us more per read)."""
_ID_SEQ = struct.Struct("!HH")
_MAX_READS_PER_WAKE = 512
_LATE_GRACE_S = 2.0
_MAX_PAYLOAD_BYTES = 65_000

__all__ = [
    "LOCAL_REPORTER",
    "EngineCounters",
    "IcmpEngine",
    "IcmpEngineError",
    "IcmpFamilyUnavailableError",
    "IcmpMode",
    "IcmpPermissionError",
    "RoundOutcome",
    "Unreachable",
]


@dataclass(frozen=True, slots=True)
class EngineCounters:
    """Diagnostic counters since the engine opened (all cumulative).

    Attributes:
        stray_replies: echo replies that matched no outstanding request of ours (another
            process's ping, wrong source, identifier, sequence or token); dropped.
        stray_errors: ICMP errors quoting no outstanding request of ours; dropped.
        late_replies: replies after their request's timeout; counted as loss.
        late_duplicates: further copies of a reply that came after its round had ended.
        clock_fallbacks: replies timed by the monotonic read time because the kernel
            timestamp was missing or contradicted by a wall-clock step.
        socket_drops: packets the kernel dropped for lack of socket receive-buffer room.
        send_errors: requests the kernel refused to send (no route, buffer full, ...).
        socket_errors: errors the kernel reported on the socket itself while reading.
        send_stamp_fallbacks: replies timed from the engine's own send time (read just
            before ``sendto``) because the kernel's transmit stamp of their request was
            missing or inconsistent with it.
    """

    stray_replies: int
    stray_errors: int
    late_replies: int
    late_duplicates: int
    clock_fallbacks: int
    socket_drops: int
    send_errors: int
    socket_errors: int
    send_stamp_fallbacks: int = 0


_Key = tuple[str, int, int]


class IcmpEngine:
    """Send echo requests for many targets over one ICMP socket per family; match replies.

    Open with :meth:`open` inside the running event loop and close with :meth:`close` (or
    ``async with``). Any number of :meth:`ping_round` calls may run concurrently.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: dict[int, IcmpSocket],
        unavailable: dict[int, IcmpEngineError],
        max_send_rate_pps: float,
    ) -> None:
        """Wrap already opened sockets; use :meth:`open` instead."""
        self._loop = loop
        self._sockets = sockets
        self._unavailable = unavailable
        self._deadlines = Deadlines(loop)
        self._sender = Sender(
            loop, max_send_rate_pps, self._fail, self._deadlines, self._take_stamp
        )
        self._pending: dict[_Key, PendingRequest] = {}
        self._next_seq = 0
        self._rng = random.Random(secrets.randbits(128))
        self._drops: dict[int, int] = {}
        self._closed = False
        self._stray_replies = 0
        self._stray_errors = 0
        self._late_replies = 0
        self._late_duplicates = 0
        self._clock_fallbacks = 0
        self._socket_errors = 0
        self._send_stamp_fallbacks = 0
        self._stamp_icmp_at = {4: 34, 6: 54}  # ICMP header offset in stamp copies, as seen
        for endpoint in sockets.values():
            loop.add_reader(endpoint.sock.fileno(), self._on_readable, endpoint)

    @classmethod
    async def open(
        cls,
        *,
        max_send_rate_pps: float = 20_000.0,
        rcvbuf_bytes: int = 4 << 20,
        mode: ModePreference = "auto",
        identifier: int | None = None,
    ) -> IcmpEngine:
        """Open the IPv4 and IPv6 ICMP sockets and start reading them.

        Args:
            max_send_rate_pps: engine-wide ceiling on echo requests per second.
            rcvbuf_bytes: receive buffer to ask for per socket (``SO_RCVBUFFORCE`` when
                permitted, else ``SO_RCVBUF``, which the kernel caps at
                ``net.core.rmem_max``).
            mode: ``auto`` (raw when permitted, else unprivileged ping sockets), ``raw`` or
                ``dgram``.
            identifier: force the raw sockets' echo identifier (for tests of colliding
                identifiers); ``None`` draws a random one per socket.

        Raises:
            IcmpPermissionError: no ICMP socket may be opened; the message says what to fix.
            IcmpFamilyUnavailableError: neither IPv4 nor IPv6 ICMP exists on this host.
            ValueError: ``max_send_rate_pps`` or ``rcvbuf_bytes`` is not positive.
        """
        if max_send_rate_pps <= 0 or rcvbuf_bytes <= 0:
            raise ValueError("max_send_rate_pps and rcvbuf_bytes must be positive")
        loop = asyncio.get_running_loop()
        sockets: dict[int, IcmpSocket] = {}
        unavailable: dict[int, IcmpEngineError] = {}
        for version in (4, 6):
            try:
                sockets[version] = open_icmp_socket(
                    version, mode, rcvbuf_bytes=rcvbuf_bytes, ident=identifier
                )
            except IcmpEngineError as exc:
                unavailable[version] = exc
        if not sockets:
            denied = [e for e in unavailable.values() if isinstance(e, IcmpPermissionError)]
            raise denied[0] if denied else unavailable[4]
        return cls(loop, sockets, unavailable, max_send_rate_pps)

    async def __aenter__(self) -> IcmpEngine:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.close()

    @property
    def mode(self) -> IcmpMode:
        """Raw or datagram (unprivileged ping) sockets; IPv4's mode when both are open."""
        return next(iter(self._sockets.values())).mode

    def identifier(self, family: int) -> int:
        """Return the echo identifier our requests of IPv``family`` (4 or 6) carry.

        Raises:
            IcmpFamilyUnavailableError: that family's socket is not open.
        """
        return self._endpoint(family).ident

    @property
    def stray_replies(self) -> int:
        """Echo replies that matched no outstanding request of ours (dropped)."""
        return self._stray_replies

    @property
    def socket_drops(self) -> int:
        """Packets the kernel dropped for lack of receive-buffer room, all sockets.

        Read from the kernel (``SO_MEMINFO``) while open; otherwise the last figure the
        ``SO_RXQ_OVFL`` control messages carried. Non-zero means replies were lost inside
        the probe host; the figure is the kernel's, and for raw sockets Linux 6.18 was seen
        counting each dropped packet twice (ping sockets count once).
        """
        if not self._closed:
            for version, endpoint in self._sockets.items():
                drops = read_drops(endpoint.sock)
                if drops is not None:
                    self._drops[version] = max(drops, self._drops.get(version, 0))
        return sum(self._drops.values())

    @property
    def clock_fallbacks(self) -> int:
        """Replies timed by the monotonic read time instead of the kernel timestamp."""
        return self._clock_fallbacks

    def counters(self) -> EngineCounters:
        """Return a snapshot of every diagnostic counter."""
        return EngineCounters(
            stray_replies=self._stray_replies,
            stray_errors=self._stray_errors,
            late_replies=self._late_replies,
            late_duplicates=self._late_duplicates,
            clock_fallbacks=self._clock_fallbacks,
            socket_drops=self.socket_drops,
            send_errors=self._sender.send_errors,
            socket_errors=self._socket_errors + self._sender.stale_errors,
            send_stamp_fallbacks=self._send_stamp_fallbacks,
        )

    def close(self) -> None:
        """Stop reading, close the sockets and end every running round (idempotent)."""
        if self._closed:
            return
        self._sender.close()
        _ = self.socket_drops  # keep the kernel's final figure
        self._closed = True
        for endpoint in self._sockets.values():
            if not self._loop.is_closed():
                self._loop.remove_reader(endpoint.sock.fileno())
            endpoint.sock.close()
        self._deadlines.close()
        for request in self._pending.values():
            request.round.finish()
        self._pending.clear()

    async def ping_round(
        self,
        address: str,
        family: int,
        *,
        count: int,
        spacing_s: float,
        timeout_s: float,
        payload_bytes: int = 56,
    ) -> RoundOutcome:
        """Send ``count`` echo requests to ``address`` and return what came back.

        Request ``i`` leaves ``i * spacing_s`` seconds after the first (later if the
        engine-wide rate is reached) and waits ``timeout_s`` for its reply. The round
        returns as soon as every request is answered or failed, else when the last one
        times out.

        Args:
            address: an IP address literal of ``family`` (IPv6 may carry ``%scope``).
            family: 4 or 6.
            count: requests to send, at least 1.
            spacing_s: seconds between consecutive requests, at least 0.
            timeout_s: seconds each request waits for its reply, above 0.
            payload_bytes: payload after the 8-byte ICMP header, at least 8 (the token).

        Raises:
            ValueError: a bad argument (not an address of ``family``, count below 1, ...).
            IcmpFamilyUnavailableError: the engine has no socket for ``family``.
            IcmpEngineError: the engine is closed, or all 65536 sequences to ``address``
                are in flight.
        """
        if self._closed:
            raise IcmpEngineError("the ICMP engine is closed")
        endpoint = self._endpoint(family)
        if count < 1 or spacing_s < 0 or timeout_s <= 0:
            raise ValueError("count must be >= 1, spacing_s >= 0 and timeout_s > 0")
        if not TOKEN_BYTES <= payload_bytes <= _MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload_bytes must be {TOKEN_BYTES}-{_MAX_PAYLOAD_BYTES}")
        key_address, sockaddr = canonical_address(address, family)
        loop = asyncio.get_running_loop()
        rnd = RoundState(count, loop.create_future())
        timeout_ns = round(timeout_s * 1e9)
        requests: list[PendingRequest] = []
        try:
            for index in range(count):
                seq = self._free_sequence(key_address, endpoint.ident)
                token = self._rng.getrandbits(8 * TOKEN_BYTES).to_bytes(TOKEN_BYTES, "big")
                request = PendingRequest(
                    rnd, index, endpoint, sockaddr, seq, token, timeout_ns, payload_bytes
                )
                self._pending[(key_address, endpoint.ident, seq)] = request
                requests.append(request)
            self._sender.schedule(requests, loop.time(), spacing_s)
            await rnd.done
        finally:
            rnd.closed = True
            rnd.finish()
            self._forget_later(requests)
        lost = tuple(rnd.unreachable[i] for i in sorted(rnd.unreachable))
        return RoundOutcome(
            address=key_address,
            family=family,
            rtts_s=tuple(rnd.rtts_s),
            duplicates=rnd.duplicates,
            late_replies=rnd.late_replies,
            unreachable=lost,
            stats=summarize(rnd.rtts_s, rnd.duplicates),
        )

    # -- sending -------------------------------------------------------------------------

    def _endpoint(self, family: int) -> IcmpSocket:
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6 (got {family!r})")
        endpoint = self._sockets.get(family)
        if endpoint is None:
            error = self._unavailable.get(family)
            raise IcmpFamilyUnavailableError(
                str(error) if error else f"no IPv{family} ICMP socket is open"
            )
        return endpoint

    def _free_sequence(self, address: str, ident: int) -> int:
        """Return the next engine-wide sequence number not in flight to ``address``.

        Raises:
            IcmpEngineError: all 65536 are in flight to that address.
        """
        seq = self._next_seq
        if (address, ident, seq) not in self._pending:  # nearly always
            self._next_seq = (seq + 1) & 0xFFFF
            return seq
        for _ in range(0x10000):
            seq = self._next_seq
            self._next_seq = (seq + 1) & 0xFFFF
            if (address, ident, seq) not in self._pending:
                return seq
        raise IcmpEngineError(f"all 65536 echo sequence numbers to {address} are in flight")

    def _forget_later(self, requests: list[PendingRequest]) -> None:
        """Drop the round's requests from the table once the last timeout (+ grace) passed.

        Until then a late copy of a reply is recognised (late or duplicate), not a stray.
        """
        if not requests or self._closed:
            return
        now_ns = time.monotonic_ns()
        last_deadline_ns = max((r.sent_ns or now_ns) + r.timeout_ns for r in requests)
        delay_s = max((last_deadline_ns - now_ns) / 1e9, 0.0) + _LATE_GRACE_S
        keys = [(r.address, r.endpoint.ident, r.seq) for r in requests]
        pending = self._pending

        def forget() -> None:
            for key in keys:
                pending.pop(key, None)

        self._deadlines.call_later(delay_s, forget)

    # -- receiving -----------------------------------------------------------------------

    def _on_readable(self, endpoint: IcmpSocket) -> None:
        sock = endpoint.sock
        recvmsg = sock.recvmsg
        monotonic_ns = time.monotonic_ns
        reply_type = ECHO_REPLY[endpoint.version]
        has_ip_header = endpoint.has_ip_header
        wall_offset_ns = wall_minus_monotonic_ns()
        if endpoint.mode is IcmpMode.DGRAM:
            self._drain_error_queue(endpoint)  # ICMP errors (and transmit stamps)
        for reads in range(_MAX_READS_PER_WAKE):
            try:
                data, ancdata, _flags, source = recvmsg(_RECV_BYTES, ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                if reads == 0 and endpoint.tx_stamps and endpoint.mode is IcmpMode.RAW:
                    # Woken with no reply to read: by the error queue, i.e. transmit
                    # stamps the sender did not find at once (it takes the rest itself).
                    self._drain_error_queue(endpoint)
                break
            except OSError:
                self._socket_errors += 1  # an error the kernel parked on the socket itself
                continue
            monotonic_now_ns = monotonic_ns()
            stamp_ns, drops = read_ancillary(ancdata)
            if drops is not None:
                self._drops[endpoint.version] = drops
            # Fast path for echo replies (nearly every packet): no parse record per packet.
            at = (data[0] & 0x0F) * 4 if has_ip_header and data else 0
            if len(data) >= at + 8 and data[at] == reply_type:
                ident, seq = _ID_SEQ.unpack_from(data, at + 4)
                request = self._pending.get((source[0], ident, seq))
                if request is None or data[at + 8 : at + 8 + TOKEN_BYTES] != request.token:
                    self._stray_replies += 1
                    continue
                if request.answered:
                    if request.round.closed:
                        self._late_duplicates += 1
                    else:
                        request.round.duplicates += 1
                    continue
                self._on_reply(
                    request, stamp_ns, monotonic_now_ns, monotonic_now_ns + wall_offset_ns
                )
                continue
            message = parse_message(endpoint.version, data, has_ip_header=has_ip_header)
            if isinstance(message, ErrorReport):
                self._on_error(message, str(source[0]))

    def _on_reply(
        self,
        request: PendingRequest,
        stamp_ns: int | None,
        monotonic_now_ns: int,
        realtime_now_ns: int,
    ) -> None:
        """Credit the first reply to ``request`` (matched, token checked, not a duplicate)."""
        rnd = request.round
        endpoint = request.endpoint
        sent_stamp_ns = request.sent_stamp_ns
        if sent_stamp_ns == 0 and endpoint.tx_stamps:
            self._drain_error_queue(endpoint)  # its stamp may have come after the first drain
            sent_stamp_ns = request.sent_stamp_ns
        rtt_ns = stamped_rtt_ns(sent_stamp_ns, stamp_ns, monotonic_now_ns - request.sent_ns)
        if rtt_ns is None:
            if endpoint.tx_stamps:
                self._send_stamp_fallbacks += 1
            rtt_ns, exact = receive_rtt_ns(
                request.sent_ns, stamp_ns, monotonic_now_ns, realtime_now_ns
            )
            if not exact:
                self._clock_fallbacks += 1
        if rtt_ns > request.timeout_ns or rnd.closed:
            self._late_replies += 1
            if not rnd.closed:
                rnd.late_replies += 1
            return
        request.answered = True
        rnd.rtts_s[request.index] = rtt_ns / 1e9
        if request.failed:
            rnd.unreachable.pop(request.index, None)
        else:
            rnd.settle()

    def _on_error(self, report: ErrorReport, reporter: str) -> None:
        request = self._pending.get((report.destination, report.ident, report.seq))
        if request is None or (len(report.token) == TOKEN_BYTES and report.token != request.token):
            self._stray_errors += 1
            return
        if request.answered or request.failed or request.round.closed:
            return
        self._fail(request, Unreachable(report.reason, reporter))

    def _fail(self, request: PendingRequest, why: Unreachable) -> None:
        if request.answered or request.failed:
            return
        request.failed = True
        request.round.unreachable[request.index] = why
        request.round.settle()

    def _on_sent(self, stamp: tuple[str, int, int, bytes, int, int]) -> None:
        """Record a request's kernel transmit stamp (matched like a reply, token included)."""
        destination, ident, seq, token, stamp_ns, _icmp_at = stamp
        request = self._pending.get((destination, ident, seq))
        if request is not None and token == request.token:
            request.sent_stamp_ns = stamp_ns
        # else: a request already forgotten (stamps are read late only when very busy)

    def _take_stamp(self, request: PendingRequest) -> None:
        """Read the one error-queue entry a send just caused (normally its transmit stamp).

        Called by the sender right after ``sendto``: drivers that stamp in their transmit
        routine (veth, loopback, most Ethernet) have queued the stamp before ``sendto``
        returns. Anything else found there is handled as the reader would.
        """
        endpoint = request.endpoint
        try:
            data, ancdata, flags, destination = endpoint.sock.recvmsg(
                _RECV_BYTES, ERRQUEUE_ANCILLARY_BYTES, socket.MSG_ERRQUEUE
            )
        except (BlockingIOError, InterruptedError):
            return  # not stamped yet: the reader takes it when it comes
        except OSError:
            self._socket_errors += 1
            return
        # Fast path: the copy carries this request's token where the last copy had its.
        at = self._stamp_icmp_at[endpoint.version] + 8
        if data[at : at + TOKEN_BYTES] == request.token:
            stamp_ns = transmit_stamp_of(ancdata)
            if stamp_ns:
                request.sent_stamp_ns = stamp_ns
                return
        self._on_queued(endpoint, data, ancdata, flags, destination)

    def _drain_error_queue(self, endpoint: IcmpSocket) -> None:
        """Read the socket's error queue: transmit stamps, and ICMP errors (ping sockets)."""
        for _ in range(2 * _MAX_READS_PER_WAKE):
            try:
                data, ancdata, flags, destination = endpoint.sock.recvmsg(
                    _RECV_BYTES, ERRQUEUE_ANCILLARY_BYTES, socket.MSG_ERRQUEUE
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._socket_errors += 1
                return
            self._on_queued(endpoint, data, ancdata, flags, destination)

    def _on_queued(
        self,
        endpoint: IcmpSocket,
        data: bytes,
        ancdata: list[tuple[int, int, bytes]],
        flags: int,
        destination: tuple[str, int] | tuple[str, int, int, int] | None,
    ) -> None:
        """Handle one error-queue entry: a transmit stamp, or an ICMP or local error."""
        if endpoint.tx_stamps:
            stamp = parse_transmit_stamp(data, ancdata, truncated=bool(flags & socket.MSG_TRUNC))
            if stamp is not None:
                self._stamp_icmp_at[endpoint.version] = stamp[5]
                self._on_sent(stamp)
                return
        if destination is None:
            return
        report = parse_queued_error(endpoint.version, data, ancdata, str(destination[0]))
        if report is not None:
            self._on_error(report, offender_address(ancdata) or LOCAL_REPORTER)
