"""Name resolution by address-family policy, on the probe host's own resolver.

Network rule: /etc/resolv.conf on a test machine may point off the machine, so these tests
never look up a name that could reach DNS. ``localhost`` is answered from /etc/hosts
(``hosts: files ...``) for the AF_UNSPEC and AF_INET lookups used here; a failing lookup is
provoked with a name the IDNA codec refuses, which fails inside the process before any query
is sent, and with literals whose family the policy forbids.
"""

from __future__ import annotations

import asyncio

import pytest

from probes.resolve import (
    Resolved,
    ResolveError,
    endpoint,
    resolve_candidates,
    resolve_host,
    resolve_within,
)

INVALID_IDNA_NAME = "é" * 64 + ".invalid"  # label too long once encoded: refused locally


async def test_localhost_resolves_to_the_ipv4_loopback_under_prefer_ipv4() -> None:
    assert await resolve_host("localhost", "prefer_ipv4") == Resolved("127.0.0.1", 4)


async def test_ipv4_only_policy_returns_only_ipv4_candidates() -> None:
    found = await resolve_candidates("localhost", "ipv4")
    assert [c.family for c in found] == [4]


async def test_ip_literal_is_returned_without_lookup_and_brackets_are_stripped() -> None:
    assert await resolve_candidates("[::1]", "prefer_ipv4") == (Resolved("::1", 6),)


async def test_literal_of_a_family_the_policy_forbids_is_a_resolve_error() -> None:
    with pytest.raises(ResolveError) as info:
        await resolve_host("127.0.0.1", "ipv6")
    assert str(info.value) == "127.0.0.1 is an IPv4 address but ip_family is ipv6"


async def test_name_the_idna_codec_refuses_is_a_resolve_error_naming_the_host() -> None:
    with pytest.raises(ResolveError) as info:
        await resolve_host(INVALID_IDNA_NAME)
    assert str(info.value).startswith(f"{INVALID_IDNA_NAME!r} is not a valid host name")


async def test_resolution_past_the_deadline_is_a_resolve_error() -> None:
    deadline = asyncio.get_running_loop().time() - 1.0
    with pytest.raises(ResolveError) as info:
        await resolve_within("localhost", "prefer_ipv4", deadline)
    assert str(info.value).startswith("DNS resolution of localhost did not finish within")


async def test_resolve_within_reports_the_time_spent() -> None:
    deadline = asyncio.get_running_loop().time() + 5.0
    found, resolve_s = await resolve_within("127.0.0.1", "ipv4", deadline)
    assert found == (Resolved("127.0.0.1", 4),)
    assert resolve_s >= 0.0


def test_endpoint_brackets_ipv6_addresses_only() -> None:
    assert endpoint("::1", 53) == "[::1]:53"
    assert endpoint("127.0.0.1", 53) == "127.0.0.1:53"
