"""Resolve a target's host name once per round, by an explicit address-family policy.

Policies (``probes.specs.IpFamily``): ``ipv4`` and ``ipv6`` ask the system resolver for that
family only, so the other family's records are never looked up nor used (case C10);
``prefer_ipv4`` and ``prefer_ipv6`` ask for both and order the candidates preferred family
first, so a probe can fall back to the other family when the preferred path fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass

from probes.specs import IpFamily

_ALLOWED: dict[str, tuple[int, ...]] = {
    "ipv4": (4,),
    "ipv6": (6,),
    "prefer_ipv4": (4, 6),
    "prefer_ipv6": (6, 4),
}
_GAI_FAMILY = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
_RESOLV_CONF = "/etc/resolv.conf"


class ResolveError(Exception):
    """The probe host could not resolve a name: a monitor-side failure, never "target down".

    ``str(exc)`` is one human sentence naming the host, the resolver's reason and, when known,
    the resolver addresses the probe host is configured with (case C12).
    """


@dataclass(frozen=True, slots=True)
class Resolved:
    """An address to probe: ``address`` as text (no brackets), ``family`` 4 or 6."""

    address: str
    family: int


def endpoint(address: str, port: int) -> str:
    """Return ``address:port`` for a sentence, with brackets around an IPv6 address."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _literal(host: str) -> Resolved | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return Resolved(str(ip), ip.version)


def _system_resolvers() -> str:
    """Return the probe host's configured name servers as ``" (resolver a, b)"``, or ``""``."""
    try:
        with open(_RESOLV_CONF, encoding="utf-8") as fh:
            lines = fh.read(65_536).splitlines()
    except OSError:
        return ""
    servers = [p[1] for p in (ln.split() for ln in lines) if len(p) >= 2 and p[0] == "nameserver"]
    return f" (resolver {', '.join(servers[:3])})" if servers else ""


async def resolve_candidates(host: str, policy: IpFamily = "prefer_ipv4") -> tuple[Resolved, ...]:
    """Return the addresses to try for ``host`` under ``policy``, preferred first.

    An IP literal (brackets allowed) is returned alone, after checking the policy allows its
    family; nothing is looked up. A name is resolved with the system resolver
    (``getaddrinfo``, run in the loop's executor); the result holds at most one address per
    allowed family, in the policy's order. The caller bounds the time (``asyncio.timeout``).

    Raises:
        ResolveError: the name does not resolve, is not a valid host name, or has no address
            of an allowed family; or a literal's family is not allowed by ``policy``.
    """
    allowed = _ALLOWED[policy]
    lit = _literal(host)
    if lit is not None:
        if lit.family not in allowed:
            raise ResolveError(f"{host} is an IPv{lit.family} address but ip_family is {policy}")
        return (lit,)
    loop = asyncio.get_running_loop()
    family = _GAI_FAMILY.get(policy, socket.AF_UNSPEC)
    only = f" (IPv{allowed[0]} only)" if len(allowed) == 1 else ""
    try:
        infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResolveError(
            f"DNS resolution of {host}{only} failed at the probe: {exc.strerror}"
            f"{_system_resolvers()}"
        ) from exc
    except UnicodeError as exc:
        raise ResolveError(f"{host!r} is not a valid host name: {exc}") from exc
    by_family: dict[int, str] = {}
    for fam, _type, _proto, _canon, sockaddr in infos:
        version = 4 if fam == socket.AF_INET else 6 if fam == socket.AF_INET6 else 0
        if version and version not in by_family:
            by_family[version] = str(sockaddr[0])
    found = tuple(Resolved(by_family[v], v) for v in allowed if v in by_family)
    if not found:
        wanted = " or ".join(f"IPv{v}" for v in allowed)
        raise ResolveError(f"{host} has no {wanted} address (ip_family is {policy})")
    return found


async def resolve_host(host: str, policy: IpFamily = "prefer_ipv4") -> Resolved:
    """Return the one address to probe for ``host`` under ``policy`` (the preferred one).

    Same rules and errors as :func:`resolve_candidates`, whose first candidate this is.

    Raises:
        ResolveError: see :func:`resolve_candidates`.
    """
    return (await resolve_candidates(host, policy))[0]


async def resolve_within(
    host: str, policy: IpFamily, deadline: float
) -> tuple[tuple[Resolved, ...], float]:
    """Return ``(candidates, resolve_s)`` for ``host``, giving up at loop time ``deadline``.

    ``resolve_s`` is the time spent resolving, seconds (monotonic clock); 0-ish for a literal.

    Raises:
        ResolveError: as :func:`resolve_candidates`, and when the probe host's resolver does
            not answer before ``deadline`` (a monitor-side failure too).
    """
    started = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline):
            found = await resolve_candidates(host, policy)
    except TimeoutError as exc:
        spent = time.perf_counter() - started
        raise ResolveError(
            f"DNS resolution of {host} did not finish within {spent:.1f} s at the probe"
            f"{_system_resolvers()}"
        ) from exc
    return found, time.perf_counter() - started
