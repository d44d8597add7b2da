"""The loopback DNS responder, queried with dnspython over real UDP and TCP sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from monitor.dns_responder import DnsResponder, run_responder_in_thread

ZONE = {
    "gw.demo.linkwatch.": [("A", "127.0.0.1"), ("TXT", '"linkwatch"')],
    "site1.gw.demo.linkwatch": [("A", "127.0.0.1")],  # relative: taken as absolute
    "delayed.demo.linkwatch.": [("A", "127.0.0.9")],
    "broken.demo.linkwatch.": [("A", "127.0.0.3")],
}


@pytest.fixture
async def address() -> AsyncIterator[tuple[str, int]]:
    responder = DnsResponder(
        ZONE, delays={"delayed.demo.linkwatch": 1.0}, servfail_names=["broken.demo.linkwatch."]
    )
    bound = await responder.start()
    yield bound
    await responder.stop()


async def _ask(address: tuple[str, int], name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(query, address[0], timeout=2.0, port=address[1])


async def test_known_name_gets_its_records_with_the_aa_flag(address: tuple[str, int]) -> None:
    response = await _ask(address, "gw.demo.linkwatch.")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert [rd.to_text() for rrset in response.answer for rd in rrset] == ["127.0.0.1"]


async def test_relative_zone_names_are_absolute(address: tuple[str, int]) -> None:
    response = await _ask(address, "site1.gw.demo.linkwatch.")
    assert [rd.to_text() for rrset in response.answer for rd in rrset] == ["127.0.0.1"]


async def test_unknown_name_gets_nxdomain(address: tuple[str, int]) -> None:
    response = await _ask(address, "nope.demo.linkwatch.")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.answer == []


async def test_known_name_without_the_type_gets_an_empty_noerror(address: tuple[str, int]) -> None:
    response = await _ask(address, "gw.demo.linkwatch.", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []


async def test_servfail_names_get_servfail(address: tuple[str, int]) -> None:
    response = await _ask(address, "broken.demo.linkwatch.")
    assert response.rcode() == dns.rcode.SERVFAIL


async def test_tcp_queries_are_answered(address: tuple[str, int]) -> None:
    query = dns.message.make_query("gw.demo.linkwatch.", "TXT")
    response = await dns.asyncquery.tcp(query, address[0], timeout=2.0, port=address[1])
    assert [rd.to_text() for rrset in response.answer for rd in rrset] == ['"linkwatch"']


async def test_delayed_name_is_not_answered_before_its_delay(address: tuple[str, int]) -> None:
    query = dns.message.make_query("delayed.demo.linkwatch.", "A")
    with pytest.raises(dns.exception.Timeout):
        await dns.asyncquery.udp(query, address[0], timeout=0.2, port=address[1])
    response = await dns.asyncquery.udp(query, address[0], timeout=3.0, port=address[1])
    assert [rd.to_text() for rrset in response.answer for rd in rrset] == ["127.0.0.9"]


def test_invalid_zone_record_is_refused_naming_the_record() -> None:
    with pytest.raises(ValueError) as info:
        DnsResponder({"gw.demo.linkwatch.": [("A", "not-an-address")]})
    assert str(info.value).startswith("zone record gw.demo.linkwatch. A 'not-an-address': ")


def test_thread_runner_serves_a_sync_caller_until_stopped() -> None:
    handle = run_responder_in_thread(ZONE)
    try:
        assert handle.address is not None
        host, port = handle.address
        query = dns.message.make_query("gw.demo.linkwatch.", "A")
        response = dns.query.udp(query, host, timeout=2.0, port=port)
        assert response.rcode() == dns.rcode.NOERROR
    finally:
        handle.stop()
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, host, timeout=0.2, port=port)
