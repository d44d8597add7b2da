"""Resolve a target's host name once per round, by an explicit address-family policy."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from probes.specs import IpFamily


class ResolveError(Exception):
    """The probe host could not resolve a name: a monitor-side failure, never "target down".

    ``str(exc)`` is one human sentence naming the host and the resolver's reason.
    """


@dataclass(frozen=True, slots=True)
class Resolved:
    """An address to probe: ``address`` as text, ``family`` 4 or 6."""

    address: str
    family: int


def _literal(host: str) -> Resolved | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return Resolved(str(ip), ip.version)


async def resolve_host(host: str, policy: IpFamily = "prefer_ipv4") -> Resolved:
    """Return the address to probe for ``host`` under ``policy``.

    An IP literal is returned as is (its family must be allowed by the policy). A name is
    resolved with the system resolver (``getaddrinfo``); ``prefer_*`` policies take the
    preferred family when it has an address and fall back to the other; ``ipv4``/``ipv6``
    never use the other family.

    Raises:
        ResolveError: the name does not resolve, or has no address of an allowed family.
    """
    lit = _literal(host)
    allowed = {"ipv4": (4,), "ipv6": (6,), "prefer_ipv4": (4, 6), "prefer_ipv6": (6, 4)}[policy]
    if lit is not None:
        if lit.family not in allowed:
            raise ResolveError(f"{host} is an IPv{lit.family} address but ip_family is {policy}")
        return lit
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolveError(f"DNS resolution of {host} failed at the probe: {exc}") from exc
    by_family: dict[int, str] = {}
    for fam, _type, _proto, _canon, sockaddr in infos:
        version = 4 if fam == socket.AF_INET else 6 if fam == socket.AF_INET6 else 0
        if version and version not in by_family:
            by_family[version] = str(sockaddr[0])
    for version in allowed:
        if version in by_family:
            return Resolved(by_family[version], version)
    raise ResolveError(f"{host} has no IPv{' or IPv'.join(map(str, allowed))} address")
