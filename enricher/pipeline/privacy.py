"""What never leaves the machine: internal addresses and names, and the organization's own.

A reputation service cannot know a private address or an internal host, and sending one tells
a third party the layout of the network it came from. By default a run withholds:

- IP addresses that are not global (IANA's special-purpose registries): private (RFC 1918)
  and unique local (RFC 4193), loopback, link-local, multicast, broadcast, unspecified, shared
  address space (100.64.0.0/10), the IETF's own, documentation and benchmarking ranges,
  reserved space, and IPv6 outside global unicast (2000::/3); an IPv6 address carrying an
  IPv4 one (IPv4-compatible, -mapped or -translated, NAT64, 6to4, Teredo) is judged by the
  address it carries;
- internal names (`.local`, `.internal`, `.lan`, `.corp`, `.home.arpa`, ...) and special-use
  names that are no host anywhere (`.onion`, `.invalid`, `.test`, reverse lookups, ...);
- the organization's own domains and networks (`privacy.internal_domains`,
  `privacy.internal_networks`; `--internal-domain`, `--internal-network`), an IPv6 address
  judged by the IPv4 one it carries there too.

Such an IOC is an outcome of its own, "skipped (internal)": counted, listed in a side file with
its reason, never sent. `privacy.send_internal` (`--send-internal`) sends them again, all but
the special-use names.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections.abc import Iterable

from ..errors import SettingsError
from ..inputs.suffixes import INTERNAL_SUFFIXES, has_public_suffix
from ..ioc import IocType
from .normalize import normalize

__all__ = ["Privacy", "address_reason", "name_reason"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IANA's special-purpose address registries, as (range, why): why is None for a range that is
# globally reachable inside a larger one that is not. The first range holding an address says.
# Kept here rather than taken from `ipaddress.is_global`, which differs between Python releases.
_V4 = [
    ("255.255.255.255/32", "broadcast address"),
    ("0.0.0.0/8", "unspecified address (this network)"),
    ("10.0.0.0/8", "private address"),
    ("172.16.0.0/12", "private address"),
    ("192.168.0.0/16", "private address"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback address"),
    ("169.254.0.0/16", "link-local address"),
    ("192.0.0.9/32", None),  # PCP anycast
    ("192.0.0.10/32", None),  # TURN anycast
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
    ("64:ff9b:1::/48", "local-use NAT64 address"),
    ("100::/64", "discard-only address"),
    ("2001:1::1/128", None),  # PCP anycast
    ("2001:1::2/128", None),  # TURN anycast
    ("2001:2::/48", "benchmarking address"),
    ("2001:3::/32", None),  # AMT
    ("2001:4:112::/48", None),  # AS112
    ("2001:20::/28", None),  # ORCHIDv2
    ("2001:30::/28", None),  # drone remote ID
    ("2001::/23", "IETF protocol assignment"),
    ("2001:db8::/32", "documentation address"),
    ("3fff::/20", "documentation address"),
    ("5f00::/16", "segment routing (SRv6) address"),
    ("fc00::/7", "unique local address (private)"),
    ("fe80::/10", "link-local address"),
    ("fec0::/10", "site-local address (private)"),
    ("ff00::/8", "multicast address"),
]


class _Ranges:
    """Ranges of integers (addresses), each with what it is; `find(n)` says what the first
    range holding `n` is, in a bisection of disjoint intervals made once."""

    def __init__(self, rows: Iterable[tuple[int, int, str | None]]) -> None:
        rows = list(rows)
        cuts = sorted({first for first, _, _ in rows} | {last + 1 for _, last, _ in rows})
        self.starts: list[int] = []
        self.whats: list[str | None] = []
        for cut in cuts:
            what = next((w for first, last, w in rows if first <= cut <= last), None)
            if not self.whats or what != self.whats[-1]:
                self.starts.append(cut)
                self.whats.append(what)

    def find(self, n: int) -> str | None:
        i = bisect.bisect_right(self.starts, n) - 1
        return self.whats[i] if i >= 0 else None

    def mark(self, screen: bytearray, shift: int) -> None:
        """Set `screen[n >> shift]` for every number n in a range that says something."""
        starts, whats = self.starts, self.whats
        for i, what in enumerate(whats):
            if what is not None:
                last = starts[i + 1] - 1 if i + 1 < len(starts) else (256 << shift) - 1
                _mark(screen, starts[i] >> shift, last >> shift)


def _mark(screen: bytearray, first: int, last: int) -> None:
    screen[first : last + 1] = b"\x01" * (last - first + 1)


def _span(net: _Network) -> tuple[int, int]:
    return int(net.network_address), int(net.broadcast_address)


def _table(rows: list[tuple[str, str | None]]) -> _Ranges:
    return _Ranges((*_span(ipaddress.ip_network(net)), why) for net, why in rows)


_V4_TABLE = _table(_V4)
# IPv6 outside global unicast (2000::/3) that is listed nowhere above is not global either
_V6_TABLE = _table([*_V6, ("2000::/3", None), ("::/0", "not a global unicast address")])
# the first 96 bits of the prefixes whose last 32 bits are an IPv4 address
_MAPPED = 0xFFFF  # ::ffff:0:0/96, IPv4-mapped
_TRANSLATED = 0xFFFF << 16  # ::ffff:0:0:0/96, IPv4-translated (SIIT)
_NAT64 = 0x64FF9B << 64  # 64:ff9b::/96
_6TO4 = 0x2002  # 2002::/16: the next 32 bits are the address
_TEREDO = 0x20010000  # 2001::/32: the client's address is the last 32 bits, inverted


_IPV4, _IPV6, _DOMAIN = IocType.IPV4, IocType.IPV6, IocType.DOMAIN
_from_bytes = int.from_bytes


def _v4_int(value: str) -> int:
    return _from_bytes(socket.inet_aton(value), "big")


def _carried(n: int) -> int | None:
    """The IPv4 address (as an int) an IPv6 one (`n`) carries: IPv4-compatible (`::a.b.c.d`),
    IPv4-mapped or -translated, NAT64, 6to4, Teredo's client; None if it carries none."""
    high = n >> 32
    if high == 0 and n > 1:  # `::a.b.c.d` (not `::` nor `::1`)
        return n
    if high in (_MAPPED, _TRANSLATED, _NAT64):
        return n & 0xFFFFFFFF
    if n >> 112 == _6TO4:
        return n >> 80 & 0xFFFFFFFF
    if n >> 96 == _TEREDO:
        return ~n & 0xFFFFFFFF
    return None


def _address(ioc_type: IocType, value: str) -> tuple[int | None, int | None]:
    """(the IPv4 address, the IPv6 address) `value` is or carries, as ints."""
    if ioc_type is _IPV4:
        return _v4_int(value), None
    n = _from_bytes(socket.inet_pton(socket.AF_INET6, value), "big")
    return _carried(n), n


def address_reason(ioc_type: IocType, value: str) -> str | None:
    """Why the address `value` (canonical) is not global, or None when it is. An IPv6
    address that carries an IPv4 one is judged by that address."""
    return _judged(*_address(ioc_type, value))


def _judged(v4: int | None, v6: int | None) -> str | None:
    """`address_reason` of an address read by `_address`."""
    if v4 is not None:
        why = _V4_TABLE.find(v4)
        if v6 is None or why is None:
            return why
        return f"{why} ({ipaddress.IPv4Address(v4)} inside)"
    assert v6 is not None
    return _V6_TABLE.find(v6)


class _Networks:
    """Networks of one IP version, looked up by bisection: two networks are nested or apart,
    so the widest of each nest is kept and the rest are in it."""

    def __init__(self, nets: Iterable[_Network]) -> None:
        self.starts: list[int] = []
        self.spans: list[tuple[int, str]] = []
        for net in sorted(nets, key=lambda n: (int(n.network_address), -n.num_addresses)):
            first, last = _span(net)
            if self.spans and first <= self.spans[-1][0]:
                continue  # inside the one before
            self.starts.append(first)
            self.spans.append((last, str(net)))

    def find(self, n: int) -> str | None:
        i = bisect.bisect_right(self.starts, n) - 1
        return self.spans[i][1] if i >= 0 and n <= self.spans[i][0] else None

    def mark(self, screen: bytearray, shift: int) -> None:
        """Set `screen[n >> shift]` for every number n in one of the networks."""
        for first, (last, _) in zip(self.starts, self.spans, strict=True):
            _mark(screen, first >> shift, last >> shift)


#: top-level labels of names only an internal resolver answers (`.home.arpa` too): sent with
#: `send_internal`
_INTERNAL_NAMES = frozenset({"corp", "home", "internal", "intranet", "lan", "local", "localdomain"})
_SPECIAL = "special-use name"


def name_reason(name: str) -> str | None:
    """Why the domain `name` (canonical) is internal, or None: its last label (or, for
    `.home.arpa`, its last two) is an internal suffix (`internal name (.local)`) or a
    special-use one that is no host anywhere (`special-use name (.onion)`: also `.invalid`,
    `.test`, `.example`, `.localhost`, and `.arpa`'s reverse lookups)."""
    top = name.rpartition(".")[2]
    if top not in INTERNAL_SUFFIXES:
        return None
    if top == "arpa":
        if name.endswith(".home.arpa"):
            return "internal name (.home.arpa)"
        return f"{_SPECIAL} (.arpa: a reverse lookup)"
    if top in _INTERNAL_NAMES:
        return f"internal name (.{top})"
    return f"{_SPECIAL} (.{top})"


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
        nets = [_network(n) for n in internal_networks]
        self.v4 = _Networks(n for n in nets if n.version == 4)
        self.v6 = _Networks(n for n in nets if n.version == 6)
        self.networks = bool(nets)

    def screen(self) -> dict[IocType, bool | bytes | None]:
        """Which keys of a type `reason` may withhold, for ingest to ask only those
        (`Deduper.plain_taker`): for a name, True where it may withhold one whose top label is
        a public suffix (the organization's own domains), else None; for an address, None
        where it withholds none, else 256 bytes, 0 at each first byte of the address (packed)
        that no address `reason` withholds starts with."""
        if self.send_internal:
            return {_DOMAIN: None, _IPV4: None, _IPV6: None}
        v4, v6 = bytearray(256), bytearray(256)
        _V4_TABLE.mark(v4, 24)
        self.v4.mark(v4, 24)
        _V6_TABLE.mark(v6, 120)
        self.v6.mark(v6, 120)
        # an IPv6 address that carries an IPv4 one is judged by it: ::/96, ::ffff:0:0/96,
        # 64:ff9b::/96 (first byte 0), 2001::/32 and 2002::/16 (0x20) are always asked
        v6[0] = v6[0x20] = 1
        return {_DOMAIN: True if self.domains else None, _IPV4: bytes(v4), _IPV6: bytes(v6)}

    def reason(self, ioc_type: IocType, value: str) -> str | None:
        """Why `value` (canonical, of `ioc_type`) is not sent, or None. Special-use names that
        are no host anywhere (`.onion`, `.invalid`, `.test`, reverse lookups, ...) are never
        sent, even with `send_internal`, which sends the rest."""
        if ioc_type is _DOMAIN:
            why = name_reason(value)
            if why is not None and (not self.send_internal or why.startswith(_SPECIAL)):
                return why
            if self.send_internal:
                return None
            if self.domains:
                for suffix in _suffixes(value):
                    if suffix in self.domains:
                        return f"own domain ({suffix})"
            return None
        if self.send_internal or (ioc_type is not _IPV4 and ioc_type is not _IPV6):
            return None
        v4, v6 = _address(ioc_type, value)  # read once, for both rules
        if self.networks:
            own = (self.v4.find(v4) if v4 is not None else None) or (
                self.v6.find(v6) if v6 is not None else None
            )
            if own is not None:
                return f"own network ({own})"
        return _judged(v4, v6)


def _domain(text: str) -> str:
    d = text.strip().lstrip("*").strip(".").lower()
    ioc_type, value = normalize(d)
    if ioc_type is not IocType.DOMAIN:
        raise SettingsError(f"privacy.internal_domains: {text!r} is not a domain name")
    if value.rpartition(".")[2] not in INTERNAL_SUFFIXES and not has_public_suffix(value):
        # `co.uk`, `github.io`: everyone's, not one organization's (`corp.local` is fine)
        raise SettingsError(
            f"privacy.internal_domains: {text!r} is a public suffix, not a domain of yours"
        )
    return value


def _network(text: str) -> _Network:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise SettingsError(
            f"privacy.internal_networks: {text!r} is not an address or network (CIDR)"
        ) from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        first = int(net.network_address)
        if first >> 32 == 0xFFFF:  # IPv4-mapped: IOCs spelled so are read as IPv4 addresses
            return ipaddress.IPv4Network((first & 0xFFFFFFFF, net.prefixlen - 96))
    return net
