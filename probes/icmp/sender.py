"""Send queued echo requests at an engine-wide rate, yielding so replies keep being read.

Rounds do not call ``sendto`` themselves: they queue each request when its spacing says so,
and one task (started when the queue fills, ended when it empties) sends them in order. It
paces with a token bucket (``max_send_rate_pps``, 1 ms of burst) and returns to the event loop
every few dozen sends, so the reader drains the socket even when the process cannot keep up
with the configured rate; otherwise thousands of ready rounds would send everything in one
loop pass while replies overflowed the receive buffer unread.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections import deque
from collections.abc import Callable

from probes.icmp.packets import build_echo_request
from probes.icmp.rounds import PendingRequest, Unreachable

LOCAL_REPORTER = "the probe host"
_PACE_SLACK_S = 0.001
_SENDS_PER_YIELD = 32
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


class Sender:
    """A paced FIFO of echo requests sent by one on-demand task.

    Args:
        loop: the engine's event loop.
        max_send_rate_pps: ceiling on requests per second, engine-wide.
        fail: called when the kernel refuses a request (it becomes loss with that reason).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, max_send_rate_pps: float, fail: FailFn
    ) -> None:
        self._loop = loop
        self._gap_s = 1.0 / max_send_rate_pps
        self._fail = fail
        self._queue: deque[PendingRequest] = deque()
        self._next_slot_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.send_errors = 0
        self.stale_errors = 0

    def enqueue(self, request: PendingRequest) -> None:
        """Queue ``request``; it is sent after every request queued before it."""
        self._queue.append(request)
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())

    def close(self) -> None:
        """Drop queued requests and stop the task."""
        self._closed = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        since_yield = 0
        queue = self._queue
        while queue and not self._closed:
            request = queue[0]
            if request.round.closed:  # its round was cancelled
                queue.popleft()
                continue
            now_s = time.monotonic()
            if self._next_slot_s - now_s > _PACE_SLACK_S:
                await asyncio.sleep(self._next_slot_s - now_s)
                since_yield = 0
                continue
            if not self._transmit(request):
                await asyncio.sleep(_BUSY_RETRY_S)  # send buffer full: retry the same one
                continue
            queue.popleft()
            self._next_slot_s = max(self._next_slot_s, now_s) + self._gap_s
            if request.is_last:
                self._round_sent(request)
            since_yield += 1
            if since_yield >= _SENDS_PER_YIELD:
                since_yield = 0
                await asyncio.sleep(0)

    def _transmit(self, request: PendingRequest) -> bool:
        """Send once; return False only when the socket is busy and a retry is due.

        The kernel parks some ICMP errors on the socket itself (``sk_err``: every error for
        a ping socket with ``IP_RECVERR``, "hard" ones for raw sockets) and fails the next
        send with it, whichever target that send is for; reporting it clears it. So a
        failure is this request's own only if it repeats at once.
        """
        endpoint = request.endpoint
        packet = build_echo_request(
            endpoint.version, endpoint.ident, request.seq, request.token, request.payload_bytes
        )
        error: OSError | None = None
        for attempt in range(_STALE_ERROR_ATTEMPTS):
            request.sent_ns = time.monotonic_ns()
            try:
                endpoint.sock.sendto(packet, request.sockaddr)
            except (BlockingIOError, InterruptedError):
                request.attempts += 1
                if request.attempts < _BUSY_RETRIES:
                    return False
                error = None
                break
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
            rnd.deadline = self._loop.call_later(request.timeout_ns / 1e9, rnd.finish)
