"""TCP connect probe, and the connect-with-family-fallback step the HTTP probe shares.

A round resolves the host by the target's ``ip_family`` policy, then connects to the
candidates in order (preferred family first). With a ``prefer_*`` policy and two families,
the first attempt gets half of the time left so the fallback still fits in ``timeout_s``
(case C10); the failed attempt stays visible in ``detail["fallback"]``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from probes.context import ProbeContext
from probes.resolve import Resolved, ResolveError, endpoint, resolve_within
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import TcpTarget

T = TypeVar("T")

# errno values that mean the probe host itself could not try: ERROR, not DOWN.
_MONITOR_SIDE_ERRNOS = frozenset(
    {
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOBUFS,
        errno.ENOMEM,
        errno.EAFNOSUPPORT,
        errno.EPROTONOSUPPORT,
        errno.EADDRNOTAVAIL,
        errno.EACCES,
        errno.EPERM,
    }
)


def seconds_text(value_s: float) -> str:
    """Return ``value_s`` rounded to 0.1 s for a sentence: ``5``, ``2.5``, ``120``."""
    return f"{round(value_s, 1):g}"


class ConnectFailed(Exception):
    """Every candidate address failed to connect.

    ``str(exc)`` is one sentence (attempts joined with "; then"); ``status`` is DOWN when any
    attempt failed on the target side, ERROR when the probe host could not even try.
    """

    def __init__(self, sentence: str, status: ProbeStatus) -> None:
        super().__init__(sentence)
        self.status = status


@dataclass(frozen=True, slots=True)
class Connected(Generic[T]):
    """A connection made by :func:`connect_in_order`.

    Attributes:
        conn: what the connect function returned (a socket, a stream).
        resolved: the address it is connected to.
        connect_s: duration of the successful attempt only, seconds.
        fallback: a sentence about the attempts that failed before this one, ``None`` if the
            first candidate worked.
    """

    conn: T
    resolved: Resolved
    connect_s: float
    fallback: str | None


def describe_connect_error(exc: OSError, where: str) -> tuple[ProbeStatus, str]:
    """Classify a connect failure to ``where`` (``addr:port``) as DOWN or ERROR, in a sentence.

    Refused, unreachable and reset are the target's side (DOWN); running out of descriptors,
    an unsupported family, no usable local address or a local firewall denial are the probe
    host's side (ERROR).
    """
    if isinstance(exc, ConnectionRefusedError):
        return ProbeStatus.DOWN, f"connection refused by {where}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _MONITOR_SIDE_ERRNOS:
        return ProbeStatus.ERROR, f"the probe host could not connect to {where}: {reason}"
    return ProbeStatus.DOWN, f"could not connect to {where}: {reason}"


async def connect_in_order(
    candidates: Sequence[Resolved],
    port: int,
    deadline: float,
    connect: Callable[[Resolved], Awaitable[T]],
    failures: list[str] | None = None,
) -> Connected[T]:
    """Connect to the first candidate that answers before loop time ``deadline``.

    ``connect`` opens one connection to one address and raises ``OSError`` (or
    ``TimeoutError``) on failure; it must clean up after itself when cancelled. Each attempt
    but the last gets half of the time left; the last gets all of it. A sentence per failed
    attempt is appended to ``failures`` (pass a list to read them after an outer timeout).

    Raises:
        ConnectFailed: every candidate failed, or no time was left.
    """
    loop = asyncio.get_running_loop()
    failures = [] if failures is None else failures
    statuses: list[ProbeStatus] = []
    for index, cand in enumerate(candidates):
        remaining_s = deadline - loop.time()
        if remaining_s <= 0:
            break
        budget_s = remaining_s if index == len(candidates) - 1 else remaining_s / 2
        where = endpoint(cand.address, port)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(budget_s):
                conn = await connect(cand)
        except TimeoutError:
            status = ProbeStatus.DOWN
            sentence = f"no answer from {where} within {seconds_text(budget_s)} s"
        except OSError as exc:
            status, sentence = describe_connect_error(exc, where)
        else:
            elapsed_s = time.perf_counter() - started
            note = None
            if failures:
                note = f"{'; then '.join(failures)}; used IPv{cand.family} {where} instead"
            return Connected(conn, cand, elapsed_s, note)
        failures.append(sentence)
        statuses.append(status)
    if not failures:
        raise ConnectFailed("no time was left to connect", ProbeStatus.DOWN)
    worst = ProbeStatus.DOWN if ProbeStatus.DOWN in statuses else ProbeStatus.ERROR
    raise ConnectFailed("; then ".join(failures), worst)


async def _open_socket(cand: Resolved, port: int) -> socket.socket:
    family = socket.AF_INET if cand.family == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (cand.address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def probe_tcp(target: TcpTarget, ctx: ProbeContext) -> ProbeResult:
    """Connect to ``target.host:target.port`` once and report how long the handshake took.

    UP when the TCP handshake completes within ``target.timeout_s`` (the whole round,
    resolution included); ``rtt_s`` and ``phases_s["connect"]`` are the handshake time of the
    address used. DOWN when refused, unreachable or unanswered; ERROR when the probe host's
    resolver fails or it cannot open a socket. The connection is closed at once. Never raises.
    """
    started = time.perf_counter()
    try:
        return await _probe(target, started)
    except Exception as exc:  # a bug must not kill the scheduler: report it as ERROR
        return ProbeResult(
            kind=ProbeKind.TCP,
            status=ProbeStatus.ERROR,
            duration_s=time.perf_counter() - started,
            error=f"internal error in the tcp probe ({type(exc).__name__}: {exc})",
        )


async def _probe(target: TcpTarget, started: float) -> ProbeResult:
    deadline = asyncio.get_running_loop().time() + target.timeout_s
    phases: dict[str, float] = {}
    try:
        candidates, phases["resolve"] = await resolve_within(
            target.host, target.ip_family, deadline
        )
    except ResolveError as exc:
        return ProbeResult(
            kind=ProbeKind.TCP,
            status=ProbeStatus.ERROR,
            duration_s=time.perf_counter() - started,
            error=str(exc),
            phases_s=phases,
        )
    try:
        done = await connect_in_order(
            candidates, target.port, deadline, lambda c: _open_socket(c, target.port)
        )
    except ConnectFailed as exc:
        return ProbeResult(
            kind=ProbeKind.TCP,
            status=exc.status,
            duration_s=time.perf_counter() - started,
            address=candidates[-1].address,
            family=candidates[-1].family,
            error=str(exc),
            phases_s=phases,
        )
    done.conn.close()
    phases["connect"] = done.connect_s
    return ProbeResult(
        kind=ProbeKind.TCP,
        status=ProbeStatus.UP,
        duration_s=time.perf_counter() - started,
        rtt_s=done.connect_s,
        address=done.resolved.address,
        family=done.resolved.family,
        phases_s=phases,
        detail={"fallback": done.fallback} if done.fallback else {},
    )
