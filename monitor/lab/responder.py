"""The lab's echo responder: answers every echo request to the gateway namespace itself.

The kernel here has no ``netem``, so link impairment is emulated in user space: in the
gateway namespace the kernel's own echo replies are off (``net.ipv4.icmp_echo_ignore_all=1``,
``net.ipv6.icmp.echo_ignore_all=1``) and this process reads every echo request with one raw
socket per family, decides from the requesting site's
:class:`~monitor.lab.impairment.LinkImpairment` (:class:`~monitor.lab.links.SiteLink`)
whether to drop it or how long to hold the reply, and sends the reply when it is due (a
timer heap; ``select`` with a 1 us timer slack wakes it; at most :data:`SENDS_PER_PASS`
replies between two reads of the socket, in due order). Every outcome goes to the truth file
(:mod:`monitor.lab.truth`).

The hold recorded is the kernel's transmit stamp of the reply minus the kernel's receive
stamp of the request (:mod:`monitor.lab.echo`), so neither the responder's own lateness nor
a preemption falsifies it; a reply that never got a transmit stamp within
:data:`TX_STAMP_WAIT_S` was not transmitted (e.g. blackholed by a one-family cut) and is
recorded as dropped. Without transmit stamps (an old kernel) the hold ends just before
``sendto``.

Which site asked: by source address (10.200.i.x and 10.200.(64+i).x are site i,
fd00:200:0:i::/64 too); a request from elsewhere (e.g. from inside the gateway namespace) is
answered at once, unimpaired, with site ``""``.

``SIGHUP`` re-reads the state file (new impairments; generators restart from the seed);
``SIGTERM``/``SIGINT`` stop it after a final flush. Run as
``python -m monitor.lab.responder STATE_JSON`` inside the gateway namespace (the lab does).
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from monitor.lab import echo
from monitor.lab.impairment import LinkImpairment
from monitor.lab.links import WHY_LOSS, SiteLink
from monitor.lab.truth import truth_line
from probes.icmp.receive import wall_minus_monotonic_ns
from probes.icmp.sockets import read_drops

SENDS_PER_PASS = 256
READS_PER_PASS = 256
FLUSH_EVERY_S = 0.05
STATS_EVERY_S = 0.5
IDLE_WAKE_S = 0.2
TX_STAMP_WAIT_S = 2.0
NOT_TRANSMITTED = "reply not transmitted (no route or blackholed)"

_ID_SEQ = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class ResponderSettings:
    """What the responder serves, read from the lab's state file.

    Attributes:
        sites: ``{site index: (site id, impairment)}``.
        seed: the seed of every random generator.
        truth_path: where truth lines are appended.
        stats_path: where counters are rewritten every :data:`STATS_EVERY_S` (JSON).
        ready_path: written (with the pid) once the sockets are open.
        generation: the state file's generation (the lab raises it on every change); the
            stats file reports the generation in force.
    """

    sites: Mapping[int, tuple[str, LinkImpairment]]
    seed: int
    truth_path: Path
    stats_path: Path
    ready_path: Path
    generation: int = 0


def load_settings(state_path: Path) -> ResponderSettings:
    """Read the responder's settings from the lab state file (see :mod:`monitor.lab.lab`).

    Raises:
        OSError, ValueError, KeyError: the file is missing or malformed.
    """
    state = json.loads(state_path.read_text(encoding="utf-8"))
    sites = {
        int(entry["index"]): (str(entry["id"]), LinkImpairment.model_validate(entry["impairment"]))
        for entry in state["sites"]
    }
    files = state["files"]
    return ResponderSettings(
        sites=sites,
        seed=int(state["seed"]),
        truth_path=Path(files["truth"]),
        stats_path=Path(files["stats"]),
        ready_path=Path(files["ready"]),
        generation=int(state.get("generation", 0)),
    )


# A request on its way through the responder: (family, reply, address, cmsg, src, dst,
# ident, seq, t_ns, site, arrival monotonic ns, planned hold s).
_Pending = tuple[int, bytes, Any, Any, str, str, int, int, int, str, int, float]


class _Endpoint:
    """One family's socket and its transmit-stamp bookkeeping."""

    __slots__ = ("family", "next_number", "sock", "stamps", "unstamped")

    def __init__(self, family: int, sock: socket.socket, stamps: bool) -> None:
        self.family = family
        self.sock = sock
        self.stamps = stamps
        self.next_number = 0
        self.unstamped: dict[int, tuple[_Pending, int]] = {}


class Responder:
    """Answer echo requests with per-site impairment; record every outcome.

    Open with :meth:`open` (inside the gateway namespace, as root), then :meth:`serve`.

    Args:
        settings: the sites, seed and files.
        truth: the open truth file (appended to).
        state_path: the state file a reload (``SIGHUP``) re-reads; ``None``: no reloads.
    """

    def __init__(
        self, settings: ResponderSettings, truth: TextIO, state_path: Path | None = None
    ) -> None:
        self.settings = settings
        self._state_path = state_path
        self._truth = truth
        self._lines: list[str] = []
        self._heap: list[tuple[int, int, _Pending]] = []
        self._order = 0
        self._links: dict[int, SiteLink] = {}
        self._v4: _Endpoint | None = None
        self._v6: _Endpoint | None = None
        self.stop_requested = False
        self.reload_requested = False
        self.counters: dict[str, float] = {
            "requests": 0,
            "answered": 0,
            "dropped_loss": 0,
            "dropped_outage": 0,
            "send_failed": 0,
            "not_transmitted": 0,
            "send_retries": 0,
            "late_sends": 0,
            "max_lateness_s": 0.0,
            "max_heap": 0,
        }
        self.apply(settings)

    def apply(self, settings: ResponderSettings) -> None:
        """Put ``settings``' impairments in force (generators restart from the seed)."""
        self.settings = settings
        now_ns = time.monotonic_ns()
        self._links = {
            index: SiteLink(site_id, impairment, settings.seed, now_ns)
            for index, (site_id, impairment) in settings.sites.items()
        }

    def open(self) -> None:
        """Open the IPv4 raw socket (and the IPv6 one when the host has IPv6).

        Raises:
            OSError: the IPv4 socket cannot be opened (not root, no raw sockets).
        """
        sock, stamps = echo.open_v4()
        self._v4 = _Endpoint(4, sock, stamps)
        opened = echo.open_v6()
        if opened is not None:
            self._v6 = _Endpoint(6, *opened)

    def close(self) -> None:
        """Record what is still waiting for a transmit stamp, flush, close the sockets."""
        for endpoint in self._endpoints():
            self._read_stamps(endpoint)
            self._expire_unstamped(endpoint, expire_all=True)
            endpoint.sock.close()
        self.flush()

    def _endpoints(self) -> list[_Endpoint]:
        return [e for e in (self._v4, self._v6) if e is not None]

    def serve(self, duration_s: float | None = None) -> None:
        """Answer until :attr:`stop_requested` (or ``duration_s`` passed); then flush."""
        assert self._v4 is not None, "open() first"
        echo.set_timer_slack_ns(1000)
        endpoints = self._endpoints()
        by_fd = {e.sock.fileno(): e for e in endpoints}
        fds = list(by_fd)
        heap = self._heap
        end_ns = None if duration_s is None else time.monotonic_ns() + round(duration_s * 1e9)
        next_flush_ns = next_stats_ns = 0
        while not self.stop_requested:
            now_ns = time.monotonic_ns()
            if end_ns is not None and now_ns >= end_ns:
                break
            if self.reload_requested:
                self.reload_requested = False
                self._reload()
            if heap and heap[0][0] <= now_ns:
                self._send_due(now_ns)
            if now_ns >= next_flush_ns:
                for endpoint in endpoints:
                    self._read_stamps(endpoint)
                    self._expire_unstamped(endpoint)
                self.flush()
                next_flush_ns = now_ns + round(FLUSH_EVERY_S * 1e9)
            if now_ns >= next_stats_ns:
                self.write_stats()
                next_stats_ns = now_ns + round(STATS_EVERY_S * 1e9)
            wait_ns = next_flush_ns - now_ns if self._lines else round(IDLE_WAKE_S * 1e9)
            if heap:
                wait_ns = min(wait_ns, heap[0][0] - time.monotonic_ns())
            try:
                readable, _w, _x = select.select(fds, [], [], max(wait_ns, 0) / 1e9)
            except InterruptedError:
                continue
            for fd in readable:
                endpoint = by_fd[fd]
                self._read_requests(endpoint)
                self._read_stamps(endpoint)
        self.flush()
        self.write_stats()

    # -- receiving ---------------------------------------------------------------------

    def _read_requests(self, endpoint: _Endpoint) -> None:
        sock = endpoint.sock
        offset_ns = wall_minus_monotonic_ns()
        v4 = endpoint.family == 4
        for _ in range(READS_PER_PASS):
            try:
                data, ancdata, _flags, addr = sock.recvmsg(4096, echo.ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            stamp, pktinfo = echo.receive_info(ancdata)
            if stamp:
                arrival_ns = stamp - offset_ns
            else:
                arrival_ns = time.monotonic_ns()
                stamp = arrival_ns + offset_ns
            if v4:
                built = echo.echo_reply_v4(data)
                if built is None:
                    continue
                reply, src, dst = built
                ident, seq = _ID_SEQ.unpack_from(data, (data[0] & 0x0F) * 4 + 4)
                src_text = socket.inet_ntoa(src)
                index = echo.site_index_v4(src)
                packet: tuple[Any, ...] = (4, reply, (src_text, 0), None, src_text)
                packet += (socket.inet_ntoa(dst), ident, seq)
            else:
                reply6 = echo.echo_reply_v6(data)
                if reply6 is None or pktinfo is None:
                    continue
                src_text = str(addr[0]).split("%")[0]
                index = echo.site_index_v6(socket.inet_pton(socket.AF_INET6, src_text))
                ident, seq = _ID_SEQ.unpack_from(data, 4)
                cmsg = [(socket.IPPROTO_IPV6, echo.IPV6_PKTINFO, pktinfo + struct.pack("=i", 0))]
                dst_text = socket.inet_ntop(socket.AF_INET6, pktinfo)
                packet = (6, reply6, addr, cmsg, src_text, dst_text, ident, seq)
            self._decide(index, stamp, arrival_ns, packet)

    def _decide(self, index: int, t_ns: int, arrival_ns: int, packet: tuple[Any, ...]) -> None:
        counters = self.counters
        counters["requests"] += 1
        link = self._links.get(index)
        if link is None:
            why, hold_s, site = None, 0.0, ""
        else:
            why, hold_s = link.decide(arrival_ns)
            site = link.id
        if why is not None:
            counters["dropped_loss" if why == WHY_LOSS else "dropped_outage"] += 1
            family, _r, _a, _c, src, dst, ident, seq = packet
            self._lines.append(
                truth_line(t_ns, site, family, src, dst, ident, seq, why, None, None)
            )
            return
        self._order += 1
        due_ns = arrival_ns + round(hold_s * 1e9)
        entry: _Pending = (*packet, t_ns, site, arrival_ns, hold_s)
        heapq.heappush(self._heap, (due_ns, self._order, entry))
        if len(self._heap) > counters["max_heap"]:
            counters["max_heap"] = len(self._heap)

    # -- sending -----------------------------------------------------------------------

    def _send_due(self, now_ns: int) -> None:
        heap = self._heap
        counters = self.counters
        v4, v6 = self._v4, self._v6
        sent_any: set[_Endpoint] = set()
        for _ in range(SENDS_PER_PASS):
            if not heap or heap[0][0] > now_ns:
                break
            due_ns, _order, entry = heap[0]
            endpoint = v4 if entry[0] == 4 else v6
            assert endpoint is not None
            sent_ns = time.monotonic_ns()
            try:
                if endpoint.family == 4:
                    endpoint.sock.sendto(entry[1], entry[2])
                else:
                    endpoint.sock.sendmsg([entry[1]], entry[3], 0, entry[2])
            except (BlockingIOError, InterruptedError):
                counters["send_retries"] += 1
                break  # the send buffer is full: try again on the next pass
            except OSError as exc:
                heapq.heappop(heap)
                counters["send_failed"] += 1
                self._record_drop(entry, f"send failed: {(exc.strerror or str(exc)).lower()}")
                continue
            heapq.heappop(heap)
            lateness_s = (sent_ns - due_ns) / 1e9
            if lateness_s > 0.001:
                counters["late_sends"] += 1
            if lateness_s > counters["max_lateness_s"]:
                counters["max_lateness_s"] = lateness_s
            if endpoint.stamps:
                endpoint.unstamped[endpoint.next_number] = (entry, sent_ns)
                endpoint.next_number += 1
                sent_any.add(endpoint)
            else:
                self._record_hold(entry, sent_ns)
            now_ns = max(now_ns, sent_ns)
        for endpoint in sent_any:
            self._read_stamps(endpoint)

    def _read_stamps(self, endpoint: _Endpoint) -> None:
        """Read the transmit stamps the kernel queued and record those replies' holds."""
        if not endpoint.stamps:
            return
        offset_ns = wall_minus_monotonic_ns()
        unstamped = endpoint.unstamped
        for _ in range(4 * SENDS_PER_PASS):
            try:
                _data, ancdata, _flags, _addr = endpoint.sock.recvmsg(
                    1, echo.ANCILLARY_BYTES, socket.MSG_ERRQUEUE
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            stamped = echo.transmit_stamp(ancdata)
            if stamped is None:
                continue
            number, stamp = stamped
            waiting = unstamped.pop(number, None)
            if waiting is not None:
                self._record_hold(waiting[0], stamp - offset_ns)

    def _expire_unstamped(self, endpoint: _Endpoint, *, expire_all: bool = False) -> None:
        """Record replies that got no transmit stamp in time as not transmitted."""
        if not endpoint.unstamped:
            return
        limit_ns = time.monotonic_ns() - round(TX_STAMP_WAIT_S * 1e9)
        for number, (entry, sent_ns) in list(endpoint.unstamped.items()):
            if expire_all or sent_ns < limit_ns:
                del endpoint.unstamped[number]
                self.counters["not_transmitted"] += 1
                self._record_drop(entry, NOT_TRANSMITTED)

    def _record_hold(self, entry: _Pending, left_ns: int) -> None:
        family, _r, _a, _c, src, dst, ident, seq, t_ns, site, arrival_ns, plan_s = entry
        self.counters["answered"] += 1
        hold_s = (left_ns - arrival_ns) / 1e9
        self._lines.append(
            truth_line(t_ns, site, family, src, dst, ident, seq, None, hold_s, plan_s)
        )

    def _record_drop(self, entry: _Pending, why: str) -> None:
        family, _r, _a, _c, src, dst, ident, seq, t_ns, site, _arrival, _plan = entry
        self._lines.append(truth_line(t_ns, site, family, src, dst, ident, seq, why, None, None))

    # -- files -------------------------------------------------------------------------

    def flush(self) -> None:
        """Append the pending truth lines to the truth file."""
        if self._lines:
            self._truth.write("".join(self._lines))
            self._truth.flush()
            self._lines.clear()

    def write_stats(self) -> None:
        """Rewrite the stats file atomically: counters, socket drops, pid, pending replies."""
        endpoints = self._endpoints()
        stats = {
            **self.counters,
            "pending": len(self._heap),
            "awaiting_tx_stamp": sum(len(e.unstamped) for e in endpoints),
            "tx_stamps": all(e.stamps for e in endpoints) if endpoints else False,
            "socket_drops": sum(read_drops(e.sock) or 0 for e in endpoints),
            "pid": os.getpid(),
            "generation": self.settings.generation,
            "written_at": time.time(),
        }
        path = self.settings.stats_path
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(stats), encoding="utf-8")
            tmp.replace(path)

    def _reload(self) -> None:
        if self._state_path is None:
            return
        try:
            self.apply(load_settings(self._state_path))
        except (OSError, ValueError, KeyError) as exc:
            print(f"responder: cannot reload {self._state_path}: {exc}", file=sys.stderr)
        self.write_stats()


def main(argv: list[str] | None = None) -> int:
    """Run the responder for the lab state file given as the only argument; return 0."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m monitor.lab.responder STATE_JSON", file=sys.stderr)
        return 2
    state_path = Path(args[0])
    settings = load_settings(state_path)
    with settings.truth_path.open("a", encoding="utf-8") as truth:
        responder = Responder(settings, truth, state_path)
        responder.open()

        def stop(_sig: int, _frame: object) -> None:
            responder.stop_requested = True

        def reload(_sig: int, _frame: object) -> None:
            responder.reload_requested = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)
        responder.write_stats()
        settings.ready_path.write_text(str(os.getpid()), encoding="utf-8")
        try:
            responder.serve()
        finally:
            responder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
