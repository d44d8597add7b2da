"""The lab's addressing plan and the ``ip`` commands that build it (pure: no side effects).

Everything lives in 10.200.0.0/16 and fd00:200::/48 (a unique-local IPv6 range), inside
network namespaces the lab creates; nothing connects to the host's own namespace, and no
namespace has a default route. Site ``i`` (1-63) is the i-th site of the lab (the seven of
``shared/SITES.md`` first, in its order):

==========================  ============================================================
10.200.0.0/24               gateway services, all local to the gateway namespace
                            (10.200.0.1 = the gateway; 10.200.0.53 = the lab resolver)
10.200.i.0/30               site i's link: gateway .1, site .2
10.200.(64+i).0/24          site i's LAN: every address is local to the site namespace
10.200.128.0/17             bulk echo targets: local to the gateway (answered by the responder)
fd00:200::/64               gateway services, IPv6 (fd00:200::1 = the gateway)
fd00:200:0:i::/64           site i's link, IPv6: gateway ::1, site ::2
==========================  ============================================================

Interfaces: in the gateway namespace ``lw-<site>`` (``lw-s<i>`` when the id is long), in
the site namespace ``lw-uplink``; MAC addresses are fixed (02:4c:77:00:<i>:01 gateway side,
:02 site side) so neighbour entries can be permanent from the start.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

LAB_V4 = ipaddress.IPv4Network("10.200.0.0/16")
LAB_V6 = ipaddress.IPv6Network("fd00:200::/48")
GATEWAY = "10.200.0.1"
"""The gateway's service address (answered by the responder; servers may bind it)."""
GATEWAY6 = "fd00:200::1"
"""The gateway's IPv6 service address."""
RESOLVER = "10.200.0.53"
"""Where every lab namespace's resolv.conf points (nothing listens unless a test starts it)."""
SERVICES_V4 = "10.200.0.0/24"
SERVICES_V6 = "fd00:200::/64"
BULK_V4 = "10.200.128.0/17"
SITE_DEVICE = "lw-uplink"
MAX_SITES = 63
FALLBACK_METRIC = 4000
"""Metric of the gateway's blackhole routes for each site, used only while its link is cut."""
CUT_METRIC_V6 = 1024
"""Metric of a one-family IPv6 cut (IPv6 turns metric 0 into 1024, and deletes any metric)."""
MAX_BULK_TARGETS = 128 * 254
GATEWAY_ROLE = "gw"

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


@dataclass(frozen=True, slots=True)
class LabSite:
    """One site of the lab: its namespace, interfaces and addresses.

    Attributes:
        id: the site id (as in the config, e.g. ``ftb2``).
        index: 1-63; the third octet of the site's link addresses.
        namespace: the site's network namespace, ``<prefix>-<id>``.
        gw_device: the veth end in the gateway namespace (``lw-<id>``).
        device: the veth end in the site namespace (``lw-uplink``).
        address: the site's IPv4 address on its link (``10.200.i.2``).
        gateway: the gateway's IPv4 address on that link (``10.200.i.1``).
        address6: the site's IPv6 address (``fd00:200:0:i::2``).
        gateway6: the gateway's IPv6 address on that link (``fd00:200:0:i::1``).
        lan: the site's LAN prefix, every address local to the site (``10.200.(64+i).0/24``).
        link: the link's IPv4 prefix (``10.200.i.0/30``).
        link6: the link's IPv6 prefix (``fd00:200:0:i::/64``).
    """

    id: str
    index: int
    namespace: str
    gw_device: str
    device: str
    address: str
    gateway: str
    address6: str
    gateway6: str
    lan: str
    link: str
    link6: str

    @property
    def gw_mac(self) -> str:
        """The fixed MAC address of the gateway-side veth end."""
        return f"02:4c:77:00:{self.index:02x}:01"

    @property
    def mac(self) -> str:
        """The fixed MAC address of the site-side veth end."""
        return f"02:4c:77:00:{self.index:02x}:02"

    def lan_host(self, n: int) -> str:
        """Return the ``n``-th address (1-254) of the site's LAN (the site kernel answers it)."""
        if not 1 <= n <= 254:
            raise ValueError(f"a LAN host number is 1-254 (got {n})")
        return f"10.200.{64 + self.index}.{n}"


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can name lab namespaces (1-8 of a-z0-9, starting with a letter).

    Raises:
        ValueError: it cannot.
    """
    if not _PREFIX_RE.match(prefix):
        raise ValueError(
            f"lab prefix {prefix!r} must be 1-8 characters of a-z or 0-9, starting with a letter"
        )
    return prefix


def make_site(prefix: str, site_id: str, index: int) -> LabSite:
    """Return site ``site_id`` as the ``index``-th (1-63) site of the lab ``prefix``.

    Raises:
        ValueError: ``index`` is out of range.
    """
    if not 1 <= index <= MAX_SITES:
        raise ValueError(f"the lab holds at most {MAX_SITES} sites")
    gw_device = f"lw-{site_id}" if len(site_id) <= 12 else f"lw-s{index}"
    return LabSite(
        id=site_id,
        index=index,
        namespace=f"{prefix}-{site_id}",
        gw_device=gw_device,
        device=SITE_DEVICE,
        address=f"10.200.{index}.2",
        gateway=f"10.200.{index}.1",
        address6=f"fd00:200:0:{index:x}::2",
        gateway6=f"fd00:200:0:{index:x}::1",
        lan=f"10.200.{64 + index}.0/24",
        link=f"10.200.{index}.0/30",
        link6=f"fd00:200:0:{index:x}::/64",
    )


def bulk_targets(count: int) -> list[str]:
    """Return ``count`` addresses of the bulk range (10.200.128.1, .2, ... skipping .0/.255).

    All are local to the gateway namespace, so the responder answers each one.

    Raises:
        ValueError: more than :data:`MAX_BULK_TARGETS` asked for.
    """
    if not 0 <= count <= MAX_BULK_TARGETS:
        raise ValueError(f"the bulk range holds {MAX_BULK_TARGETS} targets (asked {count})")
    return [f"10.200.{128 + n // 254}.{n % 254 + 1}" for n in range(count)]


def site_index_of(address: str) -> int | None:
    """Return the index of the site an address belongs to (link or LAN), else ``None``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 4:
        if ip not in LAB_V4:
            return None
        third = ip.packed[2]
        if 1 <= third <= MAX_SITES:
            return third
        if 65 <= third <= 64 + MAX_SITES:
            return third - 64
        return None
    if ip not in LAB_V6:
        return None
    subnet = int.from_bytes(ip.packed[6:8], "big")
    return subnet if 1 <= subnet <= MAX_SITES else None


def gateway_commands(sites: list[LabSite]) -> list[str]:
    """Return the ``ip -batch`` lines that configure the gateway namespace."""
    lines = [
        "link set lo up",
        f"addr replace {GATEWAY}/32 dev lo",
        f"addr replace {GATEWAY6}/128 dev lo",
        f"route replace local {SERVICES_V4} dev lo table local",
        f"route replace local {BULK_V4} dev lo table local",
        f"route replace local {SERVICES_V6} dev lo table local",
    ]
    for site in sites:
        lines += gateway_link_commands(site)
    return lines


def gateway_link_commands(site: LabSite) -> list[str]:
    """Return the idempotent ``ip -batch`` lines for one site's link, gateway side.

    Run again by ``restore``: bringing a link down flushes its routes and neighbours.
    """
    dev = site.gw_device
    return [
        f"link set {dev} up",
        f"addr replace {site.gateway}/30 dev {dev}",
        f"addr replace {site.gateway6}/64 dev {dev} nodad",
        f"neigh replace {site.address} lladdr {site.mac} dev {dev} nud permanent",
        f"neigh replace {site.address6} lladdr {site.mac} dev {dev} nud permanent",
        f"route replace {site.lan} via {site.address} dev {dev}",
        # While the link is cut (down) its routes are gone; these keep the site's prefixes
        # silent (no "network unreachable" from the gateway), as a dead far end is.
        # Same prefixes as the live routes, so they lose to them by metric alone.
        f"route replace blackhole {site.link} metric {FALLBACK_METRIC}",
        f"route replace blackhole {site.lan} metric {FALLBACK_METRIC}",
        f"route replace blackhole {site.link6} metric {FALLBACK_METRIC}",
    ]


def site_commands(site: LabSite) -> list[str]:
    """Return the ``ip -batch`` lines that configure one site's namespace.

    Only 10.200.0.0/16 and fd00:200::/48 are routed, via the gateway: no default route.
    """
    dev = site.device
    return [
        "link set lo up",
        f"link set {dev} up",
        f"addr replace {site.address}/30 dev {dev}",
        f"addr replace {site.address6}/64 dev {dev} nodad",
        f"neigh replace {site.gateway} lladdr {site.gw_mac} dev {dev} nud permanent",
        f"neigh replace {site.gateway6} lladdr {site.gw_mac} dev {dev} nud permanent",
        f"route replace {LAB_V4} via {site.gateway} dev {dev}",
        f"route replace {LAB_V6} via {site.gateway6} dev {dev}",
        f"route replace local {site.lan} dev lo table local",
    ]


def veth_command(gateway_ns: str, site: LabSite) -> str:
    """Return the root-namespace ``ip -batch`` line creating the site's veth pair in place.

    Both ends are created directly inside their namespaces, never in the host's.
    """
    return (
        f"link add {site.gw_device} netns {gateway_ns} address {site.gw_mac} type veth "
        f"peer name {site.device} netns {site.namespace} address {site.mac}"
    )


def cut_commands(site: LabSite, family: int | None) -> list[str]:
    """Return the gateway-namespace lines that cut a site's link (all, or one family).

    Whole link: the gateway end goes down, so the site's packets vanish silently (its own
    end stays up with no carrier, as when a far-end router dies), and packets for the site
    fall to the gateway's fallback blackhole routes (silence, no ICMP error). One family:
    blackhole routes (metric 0) in the gateway for the site's addresses of that family, so
    requests arrive but nothing goes back (a path that drops every packet, without any
    ICMP error).
    """
    if family is None:
        return [f"link set {site.gw_device} down"]
    if family == 4:
        return [
            f"route replace blackhole {site.address}/32 metric 0",
            f"route replace blackhole {site.lan} metric 0",
        ]
    if family == 6:
        return [f"route replace blackhole {site.address6}/128 metric {CUT_METRIC_V6}"]
    raise ValueError(f"family must be 4, 6 or None (got {family!r})")


def restore_commands(site: LabSite, family: int | None) -> list[str]:
    """Return the gateway-namespace lines that undo :func:`cut_commands` (idempotent)."""
    lines: list[str] = []
    if family in (None, 4):
        lines += [
            f"route del blackhole {site.address}/32 metric 0",
            f"route del blackhole {site.lan} metric 0",
        ]
    if family in (None, 6):
        lines.append(f"route del blackhole {site.address6}/128 metric {CUT_METRIC_V6}")
    if family not in (None, 4, 6):
        raise ValueError(f"family must be 4, 6 or None (got {family!r})")
    return lines
