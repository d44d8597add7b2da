"""Build ICMP/ICMPv6 echo requests and parse what an ICMP socket reads.

Only the 8-byte ICMP header is ours to write (RFC 792 for IPv4, RFC 4443 for IPv6): type,
code, checksum, identifier, sequence, then the payload. Our payload starts with an 8-byte
random token that the target echoes back; a reply whose token differs is not ours.

What a socket hands back differs: an IPv4 raw socket returns the IPv4 header first, an IPv4
``SOCK_DGRAM`` ping socket and every IPv6 socket return the ICMP message alone. ICMP errors
(destination unreachable, time exceeded) quote the IP header and the first bytes of the
request that caused them; we match them to our request through that quote.
"""

from __future__ import annotations

import socket
import struct
from array import array
from dataclasses import dataclass

TOKEN_BYTES = 8
"""Bytes of random token at the start of every echo request's payload."""

ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}
DEST_UNREACHABLE = {4: 3, 6: 1}
TIME_EXCEEDED = {4: 11, 6: 3}

_HEADER = struct.Struct("!BBHHH")
_ID_SEQ = struct.Struct("!HH")
_TOKEN_WORDS = struct.Struct(f"!{TOKEN_BYTES // 2}H")

_UNREACHABLE_V4 = {
    0: "network unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    4: "fragmentation needed but DF set",
    5: "source route failed",
    6: "destination network unknown",
    7: "destination host unknown",
    8: "source host isolated",
    9: "network administratively prohibited",
    10: "host administratively prohibited",
    11: "network unreachable for the type of service",
    12: "host unreachable for the type of service",
    13: "communication administratively prohibited",
    14: "host precedence violation",
    15: "precedence cutoff in effect",
}
_UNREACHABLE_V6 = {
    0: "no route to destination",
    1: "communication administratively prohibited",
    2: "beyond scope of source address",
    3: "address unreachable",
    4: "port unreachable",
    5: "source address failed ingress/egress policy",
    6: "reject route to destination",
}
_TIME_EXCEEDED_V4 = {0: "TTL exceeded in transit", 1: "fragment reassembly time exceeded"}
_TIME_EXCEEDED_V6 = {0: "hop limit exceeded in transit", 1: "fragment reassembly time exceeded"}


def checksum(data: bytes) -> int:
    """Return the RFC 1071 Internet checksum of ``data``, in host byte order.

    The one's-complement sum is taken over native-order 16-bit words; RFC 1071 section 2(B)
    shows the result is byte-order independent, so it must be stored back with ``=H``
    (native order), not ``!H``.
    """
    if len(data) % 2:
        data += b"\0"
    total = sum(array("H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def build_echo_request(
    version: int, ident: int, seq: int, token: bytes, payload_bytes: int
) -> bytes:
    """Return an echo request (ICMP type 8, or ICMPv6 type 128) ready for ``sendto``.

    ``payload_bytes`` (at least :data:`TOKEN_BYTES`) counts the payload after the 8-byte
    header: the token, then zero padding. For IPv6 the checksum is left 0 because the kernel
    fills it in (it covers a pseudo-header we cannot see); for IPv4 we compute it (a ping
    socket recomputes it anyway after rewriting the identifier).

    Raises:
        ValueError: the token is not :data:`TOKEN_BYTES` long or the payload cannot hold it.
    """
    if len(token) != TOKEN_BYTES or payload_bytes < TOKEN_BYTES:
        raise ValueError(f"the payload must hold the {TOKEN_BYTES}-byte token")
    icmp_type = ECHO_REQUEST[version]
    total = 0
    if version == 4:
        # RFC 1071 sum of the big-endian 16-bit words: type/code, identifier, sequence and
        # the token; the zero padding adds nothing (equal to checksum() over the packet).
        total = (icmp_type << 8) + ident + seq + sum(_TOKEN_WORDS.unpack(token))
        total = (total >> 16) + (total & 0xFFFF)
        total = ~(total + (total >> 16)) & 0xFFFF
    return (
        _HEADER.pack(icmp_type, 0, total, ident, seq) + token + bytes(payload_bytes - TOKEN_BYTES)
    )


@dataclass(frozen=True, slots=True)
class EchoReply:
    """An echo reply as read: identifier, sequence and the token at the payload's start.

    ``token`` is shorter than :data:`TOKEN_BYTES` (possibly empty) when the reply was cut.
    """

    ident: int
    seq: int
    token: bytes


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """An ICMP error about one of the echo requests we may have sent.

    Attributes:
        reason: the error in words, e.g. ``"host unreachable"``.
        destination: the destination address of the quoted request (whom we pinged).
        ident: identifier of the quoted request.
        seq: sequence of the quoted request.
        token: the quoted payload's first bytes (``b""`` when the quote stops at the header).
    """

    reason: str
    destination: str
    ident: int
    seq: int
    token: bytes


def describe_error(version: int, icmp_type: int, code: int) -> str | None:
    """Return an ICMP error in words, or ``None`` when ``icmp_type`` is not an error we use.

    Destination unreachable (IPv4 type 3, RFC 792 and RFC 1812; ICMPv6 type 1, RFC 4443)
    and time exceeded (IPv4 type 11; ICMPv6 type 3).
    """
    if icmp_type == DEST_UNREACHABLE[version]:
        table = _UNREACHABLE_V4 if version == 4 else _UNREACHABLE_V6
        return table.get(code, f"destination unreachable (code {code})")
    if icmp_type == TIME_EXCEEDED[version]:
        table = _TIME_EXCEEDED_V4 if version == 4 else _TIME_EXCEEDED_V6
        return table.get(code, f"time exceeded (code {code})")
    return None


def parse_message(
    version: int, data: bytes, *, has_ip_header: bool
) -> EchoReply | ErrorReport | None:
    """Parse one datagram read from an ICMP socket.

    Args:
        version: 4 or 6.
        data: the bytes read; for IPv4 raw sockets they start with the IPv4 header.
        has_ip_header: whether ``data`` starts with an IPv4 header (IPv4 raw sockets).

    Returns:
        An :class:`EchoReply`, an :class:`ErrorReport` quoting one of our echo requests, or
        ``None`` for anything else (other types, truncated or foreign quotes).
    """
    if has_ip_header:
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return None
    icmp_type = data[0]
    if icmp_type == ECHO_REPLY[version]:
        ident, seq = _ID_SEQ.unpack_from(data, 4)
        return EchoReply(ident, seq, data[8 : 8 + TOKEN_BYTES])
    reason = describe_error(version, icmp_type, data[1])
    if reason is None:
        return None
    quoted = _parse_quote_v4(data[8:]) if version == 4 else _parse_quote_v6(data[8:])
    if quoted is None:
        return None
    destination, request = quoted
    return parse_quoted_request(version, reason, destination, request)


def parse_quoted_request(
    version: int, reason: str, destination: str, request: bytes
) -> ErrorReport | None:
    """Return the report for an error quoting ``request``, or ``None`` if it is no echo request.

    ``request`` is the quoted ICMP message (header first); used for raw-socket errors and for
    the errors a ping socket's error queue returns (which quote the request alone).
    """
    if len(request) < 8 or request[0] != ECHO_REQUEST[version]:
        return None
    ident, seq = _ID_SEQ.unpack_from(request, 4)
    return ErrorReport(reason, destination, ident, seq, request[8 : 8 + TOKEN_BYTES])


def _parse_quote_v4(quote: bytes) -> tuple[str, bytes] | None:
    if len(quote) < 20 or quote[0] >> 4 != 4 or quote[9] != socket.IPPROTO_ICMP:
        return None
    header_bytes = (quote[0] & 0x0F) * 4
    return socket.inet_ntop(socket.AF_INET, quote[16:20]), quote[header_bytes:]


def _parse_quote_v6(quote: bytes) -> tuple[str, bytes] | None:
    # The quoted IPv6 header is 40 bytes; we only send echo requests without extension
    # headers, so the next header must be ICMPv6 (58).
    if len(quote) < 40 or quote[0] >> 4 != 6 or quote[6] != socket.IPPROTO_ICMPV6:
        return None
    return socket.inet_ntop(socket.AF_INET6, quote[24:40]), quote[40:]
