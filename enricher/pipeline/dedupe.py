"""Deduplicate stage: exact, streaming, compact.

One set per IOC type holds each value in its most compact exact form: a hash as its raw
digest bytes (16, 20 or 32 bytes instead of 32-64 characters), an IPv4/IPv6 address as its
4/16 packed bytes, a domain as ASCII bytes. Separate sets keep types apart (a domain's bytes
can never be mistaken for a digest). No probabilistic structure: nothing is ever dropped.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from ..ioc import IocType

__all__ = ["Deduper", "pack"]

_inet6 = socket.AF_INET6

_PACK: dict[IocType, Callable[[str], bytes]] = {
    IocType.MD5: bytes.fromhex,
    IocType.SHA1: bytes.fromhex,
    IocType.SHA256: bytes.fromhex,
    IocType.DOMAIN: str.encode,  # A-labels: ASCII only after normalization
    IocType.IPV4: socket.inet_aton,
    IocType.IPV6: lambda v: socket.inet_pton(_inet6, v),
}


def pack(ioc_type: IocType, value: str) -> bytes:
    """The compact exact form of a normalized value (what the deduper stores)."""
    return _PACK[ioc_type](value)


class Deduper:
    """Remembers every normalized IOC seen; `add` is True only the first time."""

    __slots__ = ("_sets",)

    def __init__(self) -> None:
        self._sets: dict[IocType, tuple[set[bytes], Callable[[str], bytes]]] = {
            t: (set(), _PACK[t]) for t in IocType
        }

    def add(self, ioc_type: IocType, value: str) -> bool:
        seen, packer = self._sets[ioc_type]
        key = packer(value)
        if key in seen:
            return False
        seen.add(key)
        return True

    def __contains__(self, item: tuple[IocType, str]) -> bool:
        seen, packer = self._sets[item[0]]
        return packer(item[1]) in seen

    def __len__(self) -> int:
        return sum(len(s) for s, _ in self._sets.values())

    def __reduce__(self) -> tuple[Callable[[dict[IocType, set[bytes]]], Deduper], tuple[Any]]:
        # pickled for a cluster's workers (`--resume`): the sets, not the packers (a lambda)
        return _unpickle, ({t: seen for t, (seen, _) in self._sets.items()},)


def _unpickle(sets: dict[IocType, set[bytes]]) -> Deduper:
    deduper = Deduper()
    for t, seen in sets.items():
        deduper._sets[t][0].update(seen)
    return deduper
