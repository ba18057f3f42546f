"""What never leaves the machine: internal addresses and names, and the organization's own.

A reputation service cannot know a private address or an internal host, and sending one tells
a third party the layout of the network it came from. By default a run withholds:

- IP addresses that are not global: private (RFC 1918) and unique local (RFC 4193), loopback,
  link-local, multicast, broadcast, unspecified, shared address space (100.64.0.0/10), the
  IETF's own, documentation and benchmarking ranges, reserved space; an IPv6 address carrying
  an IPv4 one (IPv4-mapped, 6to4, Teredo, NAT64) is judged by the address it carries;
- names under a special-use or internal top-level label (`.local`, `.internal`, `.lan`,
  `.corp`, `.home.arpa`, `.onion`, ...: `suffixes.INTERNAL_SUFFIXES`);
- the organization's own domains and networks (`privacy.internal_domains`,
  `privacy.internal_networks`; `--internal-domain`, `--internal-network`).

Such an IOC is an outcome of its own, "skipped (internal)": counted, listed in a side file with
its reason, never sent. `privacy.send_internal` (`--send-internal`) sends them all again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from .errors import SettingsError
from .inputs.suffixes import INTERNAL_SUFFIXES
from .ioc import IocType
from .normalize import normalize

__all__ = ["Privacy", "address_reason", "name_reason"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The ranges that are not global, by what they are (most specific first): IANA's special-purpose
# address registries. What `ipaddress` calls not global and is not listed here is "reserved".
_V4 = [
    ("255.255.255.255/32", "broadcast address"),
    ("0.0.0.0/8", "unspecified address (this network)"),
    ("10.0.0.0/8", "private address"),
    ("172.16.0.0/12", "private address"),
    ("192.168.0.0/16", "private address"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback address"),
    ("169.254.0.0/16", "link-local address"),
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation address"),
    ("198.51.100.0/24", "documentation address"),
    ("203.0.113.0/24", "documentation address"),
    ("198.18.0.0/15", "benchmarking address"),
    ("224.0.0.0/4", "multicast address"),
    ("240.0.0.0/4", "reserved address"),
]
_V6 = [
    ("::/128", "unspecified address"),
    ("::1/128", "loopback address"),
    ("fc00::/7", "unique local address (private)"),
    ("fe80::/10", "link-local address"),
    ("fec0::/10", "site-local address (private)"),
    ("ff00::/8", "multicast address"),
    ("2001:db8::/32", "documentation address"),
    ("3fff::/20", "documentation address"),
    ("2001:2::/48", "benchmarking address"),
    ("100::/64", "discard-only address"),
]
_TABLE: list[tuple[_Network, str]] = [(ipaddress.ip_network(net), why) for net, why in [*_V4, *_V6]]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# first octets of IPv4 addresses that may not be global: any other is, without parsing it
_V4_SPECIAL_FIRST = frozenset({0, 10, 100, 127, 169, 172, 192, 198, 203, *range(224, 256)})


def _carried(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, 6to4, Teredo's client, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _ip_reason(ip: _IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _carried(ip)) is not None:
        inner = _ip_reason(v4)
        return None if inner is None else f"{inner} ({v4} inside)"
    for net, why in _TABLE:
        if ip.version == net.version and ip in net:
            return why
    if ip.is_multicast:
        return "multicast address"
    if not ip.is_global:
        return "reserved address"
    return None


@lru_cache(maxsize=4096)
def _v6_reason(value: str) -> str | None:
    return _ip_reason(ipaddress.IPv6Address(value))


def address_reason(ioc_type: IocType, value: str) -> str | None:
    """Why the address `value` (canonical) is not global, or None when it is."""
    if ioc_type is IocType.IPV4:
        dot = value.find(".")
        if int(value[:dot]) not in _V4_SPECIAL_FIRST:
            return None
        return _ip_reason(ipaddress.IPv4Address(value))
    return _v6_reason(value)


def name_reason(name: str) -> str | None:
    """Why the domain `name` (canonical) is internal, or None: its last label (or, for
    `.home.arpa`, its last two) is a special-use or internal suffix."""
    top = name.rpartition(".")[2]
    if top in INTERNAL_SUFFIXES:
        if top == "arpa" and not name.endswith(".home.arpa"):
            return "reverse-lookup name (.arpa)"
        suffix = "home.arpa" if top == "arpa" else top
        return f"internal or special-use name (.{suffix})"
    return None


def _suffixes(name: str) -> Iterable[str]:
    """`name` and each name it is under: a.b.c, b.c, c."""
    while True:
        yield name
        dot = name.find(".")
        if dot < 0:
            return
        name = name[dot + 1 :]


class Privacy:
    """The rule a run applies to each unique IOC before it may be sent: `reason(type, value)`
    says why it is withheld, or None. Built from `privacy.*` settings; raises SettingsError
    for a domain or network that is not one."""

    def __init__(
        self,
        *,
        send_internal: bool = False,
        internal_domains: Iterable[str] = (),
        internal_networks: Iterable[str] = (),
    ) -> None:
        self.send_internal = send_internal
        self.domains = frozenset(_domain(d) for d in internal_domains)
        self.networks = tuple(_network(n) for n in internal_networks)

    @property
    def withholds(self) -> bool:
        """Whether anything is withheld at all (not with `send_internal`)."""
        return not self.send_internal

    def reason(self, ioc_type: IocType, value: str) -> str | None:
        """Why `value` (canonical, of `ioc_type`) is not sent, or None."""
        if self.send_internal:
            return None
        if ioc_type is IocType.DOMAIN:
            if self.domains:
                for suffix in _suffixes(value):
                    if suffix in self.domains:
                        return f"own domain ({suffix})"
            return name_reason(value)
        if ioc_type is IocType.IPV4 or ioc_type is IocType.IPV6:
            if self.networks:
                ip = ipaddress.ip_address(value)
                for net in self.networks:
                    if ip.version == net.version and ip in net:
                        return f"own network ({net})"
            return address_reason(ioc_type, value)
        return None


def _domain(text: str) -> str:
    d = text.strip().lstrip("*").strip(".").lower()
    ioc_type, value = normalize(d)
    if ioc_type is not IocType.DOMAIN:
        raise SettingsError(f"privacy.internal_domains: {text!r} is not a domain name")
    return value


def _network(text: str) -> _Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise SettingsError(
            f"privacy.internal_networks: {text!r} is not an address or network (CIDR)"
        ) from None
