"""The input every end-to-end benchmark reads: N lines of IOCs, a share of them repeats.

The i-th unique IOC is a pure function of i (`ioc_of`), so a file of any size is written as a
stream, in constant memory, and the IOCs it holds are known without reading it back: they are
`ioc_of(0)` .. `ioc_of(unique - 1)`. Four kinds in turn, in the forms the documented API takes
and a nightly export holds: md5, sha1, a domain and an IPv4 address, already normalized.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

from enricher.ioc import IocType

__all__ = ["expected", "ioc_of", "unique_count", "unique_iocs", "write_input"]


def ioc_of(i: int) -> tuple[IocType, str]:
    """The i-th unique IOC, the same in every process."""
    kind = i % 4
    if kind == 2:
        return IocType.DOMAIN, f"h{i}.bench{i % 89}.example.com"
    if kind == 3:
        return IocType.IPV4, f"{11 + (i >> 24)}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
    digest = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=20).hexdigest()
    return (IocType.MD5, digest[:32]) if kind == 0 else (IocType.SHA1, digest)


def unique_count(lines: int, duplicates: float) -> int:
    """How many unique IOCs a file of `lines` lines with that share of repeats holds."""
    return max(1, round(lines * (1 - duplicates)))


def unique_iocs(n: int) -> Iterator[tuple[IocType, str]]:
    return (ioc_of(i) for i in range(n))


def expected(n: int) -> set[tuple[str, str]]:
    """The `(type, ioc)` pairs a correct run over a file of n unique IOCs writes."""
    return {(t.value, v) for t, v in unique_iocs(n)}


def write_input(path: Path, lines: int, duplicates: float = 0.5, seed: int = 1) -> int:
    """Write `lines` lines, `duplicates` of them repeating an earlier line (picked uniformly,
    so some IOCs recur many times and most once or twice). Returns the unique count."""
    rng = random.Random(seed)
    unique = unique_count(lines, duplicates)
    new_left, repeats_left = unique, lines - unique
    emitted = 0
    block: list[str] = []
    with path.open("w", encoding="ascii") as f:
        for _ in range(lines):
            if emitted == 0 or rng.random() * (new_left + repeats_left) < new_left:
                block.append(ioc_of(emitted)[1])
                emitted += 1
                new_left -= 1
            else:
                block.append(ioc_of(rng.randrange(emitted))[1])
                repeats_left -= 1
            if len(block) >= 65_536:
                f.write("\n".join(block) + "\n")
                block.clear()
        if block:
            f.write("\n".join(block) + "\n")
    return unique
