"""Send scheduled echo requests at their due times and an engine-wide rate, yielding often.

Rounds do not call ``sendto`` themselves, nor sleep between their requests: a round hands
all its requests to :meth:`Sender.schedule` with their due times (request ``i`` at
``start + i * spacing_s``), and one loop callback (``_pump``, scheduled with ``call_at`` for
the earliest due time) sends whatever is due, earliest first, paced by a token bucket
(``max_send_rate_pps``, 1 ms of burst). Once awake it also sends what falls due within the
next :data:`_GATHER_S` (1 ms): at thousands of requests a second, one wake-up (a timer, a
loop pass, an ``epoll_wait``) per request cost more than the sends themselves, and an RTT is
timed from the request's real send, so leaving up to 1 ms early changes no measurement, only
the spacing of one target's requests by at most that. It returns to the event loop after
every few dozen sends, so the reader drains the socket even when the process cannot keep up with the
configured rate; otherwise thousands of ready rounds would send everything in one loop pass
while replies overflowed the receive buffer unread. The heap holds only each round's next
request (sending one queues the round's following one), so it stays as small as the number
of rounds in flight; a heap entry replaces the sleep (a future, a timer handle and a task
step) each request used to cost.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import time
from collections.abc import Callable, Sequence

from probes.icmp.packets import build_echo_request
from probes.icmp.rounds import PendingRequest, Unreachable
from probes.icmp.timers import Deadlines

LOCAL_REPORTER = "the probe host"
_PACE_SLACK_S = 0.001
_GATHER_S = 0.001
_SENDS_PER_YIELD = 64
_BUSY_RETRIES = 50
_BUSY_RETRY_S = 0.001
_STALE_ERROR_ATTEMPTS = 3

_SEND_FAILURES = {
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EINVAL: "no usable route (e.g. a blackhole route)",
    errno.EACCES: "sending prohibited (firewall or prohibit route)",
    errno.EPERM: "sending prohibited (firewall or prohibit route)",
    errno.EMSGSIZE: "message too long for the path",
}

FailFn = Callable[[PendingRequest, Unreachable], None]
StampFn = Callable[[PendingRequest], None]


class Sender:
    """A due-time queue of echo requests, sent by one loop callback at a ceiling rate.

    Args:
        loop: the engine's event loop (its clock is ``time.monotonic``).
        max_send_rate_pps: ceiling on requests per second, engine-wide.
        fail: called when the kernel refuses a request (it becomes loss with that reason).
        deadlines: where a round's final wait (its last request's timeout) is set.
        take_stamp: called right after each request left through a socket with transmit
            stamps, to read the stamp the kernel queued during ``sendto``; reading it here
            spares the reader a wake-up per request. ``None``: stamps are left to the reader.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_send_rate_pps: float,
        fail: FailFn,
        deadlines: Deadlines,
        take_stamp: StampFn | None = None,
    ) -> None:
        self._loop = loop
        self._deadlines = deadlines
        self._gap_s = 1.0 / max_send_rate_pps
        self._fail = fail
        self._take_stamp = take_stamp
        self._heap: list[tuple[float, int, PendingRequest]] = []
        self._order = 0
        self._next_slot_s = 0.0
        self._handle: asyncio.Handle | None = None
        self._handle_at = 0.0
        self._closed = False
        self.send_errors = 0
        self.stale_errors = 0

    def schedule(
        self, requests: Sequence[PendingRequest], start_s: float, spacing_s: float
    ) -> None:
        """Queue ``requests[i]`` to leave at loop time ``start_s + i * spacing_s``.

        Requests due at the same time leave in the order they were scheduled; none leaves
        more than :data:`_GATHER_S` before its due time, and all later than it when the rate
        ceiling is reached.
        """
        if not requests:
            return
        for index, request in enumerate(requests):
            request.due_s = start_s + index * spacing_s
            request.following = requests[index + 1] if index + 1 < len(requests) else None
        # Only each round's next request waits in the heap; sending one queues the next.
        self._push(requests[0])
        self._wake_at(self._heap[0][0])

    def _push(self, request: PendingRequest) -> None:
        self._order += 1
        heapq.heappush(self._heap, (request.due_s, self._order, request))

    def close(self) -> None:
        """Drop queued requests and stop sending."""
        self._closed = True
        self._heap.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _wake_at(self, when_s: float) -> None:
        """Make sure ``_pump`` runs at loop time ``when_s`` at the latest."""
        if self._closed:
            return
        if self._handle is not None:
            if self._handle_at <= when_s:
                return
            self._handle.cancel()
        self._handle_at = when_s
        self._handle = self._loop.call_at(when_s, self._pump)

    def _pump(self) -> None:
        self._handle = None
        heap = self._heap
        heappop, heappush = heapq.heappop, heapq.heappush
        monotonic, monotonic_ns = time.monotonic, time.monotonic_ns
        take_stamp = self._take_stamp
        sent = 0
        now_s = monotonic()
        while heap and not self._closed:
            due_s, _order, request = heap[0]
            if request.round.closed:  # its round was cancelled: its later requests go too
                heappop(heap)
                continue
            if due_s > now_s + _GATHER_S:
                self._wake_at(due_s)
                return
            if self._next_slot_s - now_s > _PACE_SLACK_S:
                self._wake_at(self._next_slot_s)
                return
            endpoint = request.endpoint
            packet = build_echo_request(
                endpoint.version, endpoint.ident, request.seq, request.token, request.payload_bytes
            )
            request.sent_ns = monotonic_ns()
            try:
                endpoint.sock.sendto(packet, request.sockaddr)
            except OSError as first:
                if not self._retry(request, packet, first):
                    self._wake_at(now_s + _BUSY_RETRY_S)  # send buffer full: retry this one
                    return
                if take_stamp is not None and endpoint.tx_stamps and not request.failed:
                    take_stamp(request)
            else:
                if take_stamp is not None and endpoint.tx_stamps:
                    take_stamp(request)
            heappop(heap)
            slot_s = self._next_slot_s
            self._next_slot_s = (slot_s if slot_s > now_s else now_s) + self._gap_s
            following = request.following
            if following is None:
                self._round_sent(request)
            else:
                self._order += 1
                heappush(heap, (following.due_s, self._order, following))
            sent += 1
            if sent >= _SENDS_PER_YIELD:
                self._wake_at(now_s)  # let the reader run first
                return
            now_s = monotonic()

    def _retry(self, request: PendingRequest, packet: bytes, first: OSError) -> bool:
        """After a failed first ``sendto``: return False only when a later retry is due.

        The socket's buffer being full (``EAGAIN``) waits and retries, up to
        ``_BUSY_RETRIES`` times. Any other error is sent again at once: the kernel parks some
        ICMP errors on the socket itself (``sk_err``: every error for a ping socket with
        ``IP_RECVERR``, "hard" ones for raw sockets) and fails the next send with it,
        whichever target that send is for; reporting it clears it. So a failure is this
        request's own only if it repeats (``_STALE_ERROR_ATTEMPTS`` sends in all); then the
        request becomes loss with the kernel's reason.
        """
        error: OSError | None = first
        attempt = 0
        while True:
            if isinstance(error, BlockingIOError | InterruptedError):
                request.attempts += 1
                if request.attempts < _BUSY_RETRIES:
                    return False
                error = None
                break
            attempt += 1
            if attempt >= _STALE_ERROR_ATTEMPTS:
                break
            request.sent_ns = time.monotonic_ns()
            try:
                request.endpoint.sock.sendto(packet, request.sockaddr)
            except OSError as exc:
                error = exc
                continue
            self.stale_errors += attempt
            return True
        self.send_errors += 1
        if error is None:
            self._fail(request, Unreachable("the ICMP send buffer stayed full", LOCAL_REPORTER))
        else:
            why = _SEND_FAILURES.get(error.errno or 0) or (error.strerror or str(error)).lower()
            self._fail(request, Unreachable(why, LOCAL_REPORTER))
        return True

    def _round_sent(self, request: PendingRequest) -> None:
        """Start the round's final wait once its last request has left."""
        rnd = request.round
        rnd.all_sent = True
        if rnd.resolved >= len(rnd.rtts_s):
            rnd.finish()
        else:
            self._deadlines.call_later(request.timeout_ns / 1e9, rnd.finish)
