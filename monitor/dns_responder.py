"""A tiny authoritative DNS responder for loopback: the demo's and the tests' DNS server.

It answers from a fixed zone given as ``{name: [(rdtype, rdata_text), ...]}``, over UDP and
TCP on the same port, using dnspython's message parsing. A name outside the zone gets
NXDOMAIN; a name in the zone without records of the asked type gets NOERROR with an empty
answer (NODATA); names in ``servfail_names`` get SERVFAIL. ``delays`` holds an answer delay
in seconds per name (the demo gives each site its own DNS latency). CNAMEs are not chased.
It is for loopback tests and demos, not for serving a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Zone = Mapping[str, Sequence[tuple[str, str]]]

MAX_PENDING_ANSWERS = 1024
MAX_QUERIES_PER_TCP_CONNECTION = 100
TCP_IDLE_TIMEOUT_S = 10.0
_UDP_PAYLOAD_DEFAULT = 512
_BIND_ATTEMPTS = 10


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


class DnsResponder:
    """Answer DNS queries for one fixed zone on a loopback address.

    Args:
        zone: records by owner name (absolute or relative to the root), each a
            ``(rdtype, rdata_text)`` pair such as ``("A", "127.0.0.1")``.
        delays: answer delay in seconds by owner name; names not listed answer at once.
        servfail_names: names answered with SERVFAIL (for tests of server errors).
        ttl_s: TTL of every record, seconds.

    Raises:
        ValueError: a record's type or text is not valid DNS; the sentence names the record.
    """

    def __init__(
        self,
        zone: Zone,
        *,
        delays: Mapping[str, float] | None = None,
        servfail_names: Iterable[str] = (),
        ttl_s: int = 60,
    ) -> None:
        self._zone: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        for owner, records in zone.items():
            name = _name(owner)
            by_type = self._zone.setdefault(name, {})
            for rdtype_text, text in records:
                try:
                    rdtype = dns.rdatatype.from_text(rdtype_text)
                    rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
                except (dns.exception.DNSException, ValueError) as exc:
                    raise ValueError(f"zone record {owner} {rdtype_text} {text!r}: {exc}") from exc
                rrset = by_type.setdefault(rdtype, dns.rrset.RRset(name, dns.rdataclass.IN, rdtype))
                rrset.add(rdata, ttl_s)
        self._delays = {_name(k): max(0.0, float(v)) for k, v in (delays or {}).items()}
        self._servfail = {_name(n) for n in servfail_names}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None

    def answer(self, wire: bytes) -> tuple[dns.message.Message, float] | None:
        """Return ``(response, delay_s)`` for the query in ``wire``; ``None`` if unparseable."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response, 0.0
        question = query.question[0]
        name = question.name
        if name in self._servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self._zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (rrset := self._zone[name].get(question.rdtype)) is not None:
            response.answer.append(rrset)
        return response, self._delays.get(name, 0.0)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on UDP and TCP ``host:port`` (``port`` 0: a free port) and return the address.

        Raises:
            OSError: the port is in use (or, with port 0, no common free UDP/TCP port was found
                in a few tries).
        """
        loop = asyncio.get_running_loop()
        for _ in range(_BIND_ATTEMPTS):
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port)
            )
            bound_port = int(udp.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, host, bound_port)
            except OSError as exc:
                udp.close()
                if port != 0 or exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self._udp = udp
            self.address = (host, bound_port)
            return self.address
        raise OSError(errno.EADDRINUSE, f"no free UDP+TCP port on {host} after {_BIND_ATTEMPTS}")

    async def stop(self) -> None:
        """Stop answering: close both sockets, open TCP connections and pending answers."""
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._writers):
                writer.close()
            tasks = list(self._tcp_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None

    def _send_udp(self, wire: bytes, addr: Any) -> None:
        answered = self.answer(wire)
        if answered is None or self._udp is None:
            return
        response, delay_s = answered
        payload = max(_UDP_PAYLOAD_DEFAULT, response.payload if response.edns >= 0 else 0)
        out = response.to_wire(max_size=payload, prefer_truncation=True)
        udp = self._udp
        if delay_s <= 0:
            udp.sendto(out, addr)
            return
        if len(self._pending) >= MAX_PENDING_ANSWERS:
            return  # overloaded: drop, as a real server would

        def send() -> None:
            self._pending.discard(handle)
            if not udp.is_closing():
                udp.sendto(out, addr)

        handle = asyncio.get_running_loop().call_later(delay_s, send)
        self._pending.add(handle)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tcp_tasks.add(task)
        self._writers.add(writer)
        try:
            for _ in range(MAX_QUERIES_PER_TCP_CONNECTION):
                async with asyncio.timeout(TCP_IDLE_TIMEOUT_S):
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    wire = await reader.readexactly(length)
                answered = self.answer(wire)
                if answered is None:
                    break
                response, delay_s = answered
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                writer.write(response.to_wire(prepend_length=True))
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels these tasks. End normally: Python 3.11's start_server
            # done-callback calls task.exception(), which raises on a cancelled task.
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tcp_tasks.discard(task)
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: DnsResponder) -> None:
        self._responder = responder

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._responder._send_udp(data, addr)


class ResponderThread:
    """A :class:`DnsResponder` on its own event loop in a daemon thread, for sync callers.

    ``address`` is ``(host, port)`` once started; :meth:`stop` stops and joins the thread.
    """

    def __init__(self, responder: DnsResponder) -> None:
        self._responder = responder
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dns-responder", daemon=True
        )
        self.address: tuple[str, int] | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 10.0) -> None:
        """Start the thread and the responder; raise what ``DnsResponder.start`` raised."""
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._responder.start(host, port), self._loop)
        try:
            self.address = fut.result(timeout=timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the responder, then the loop, and join the thread (at most ``timeout_s`` each)."""
        if self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._responder.stop(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(timeout=timeout_s)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=timeout_s)
        if not self._thread.is_alive():
            self._loop.close()


def run_responder_in_thread(
    zone: Zone,
    *,
    delays: Mapping[str, float] | None = None,
    servfail_names: Iterable[str] = (),
    host: str = "127.0.0.1",
    port: int = 0,
) -> ResponderThread:
    """Start a responder for ``zone`` in a daemon thread and return it (``.address``, ``.stop()``).

    Raises:
        ValueError: a zone record is invalid. OSError: the address cannot be bound.
    """
    handle = ResponderThread(DnsResponder(zone, delays=delays, servfail_names=servfail_names))
    handle.start(host, port)
    return handle
