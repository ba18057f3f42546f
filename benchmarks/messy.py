"""The messy input: the same job as `workload.py`'s tidy file, written the way real exports are.

Each line is one IOC in one of the forms an export from a SIEM, a ticket or a threat report
holds: hashes in upper case or wrapped in whitespace, names defanged (`evil[.]com`,
`hxxps://`), in URLs, as `host:port`, in e-mail addresses, with a trailing dot or a wildcard,
IPv4 addresses defanged, with a port, in URLs or IPv4-mapped (`::ffff:1.2.3.4`), IPv6
addresses compressed, in full, in upper case, in brackets with a port or in URLs. Among them
are blank lines, `#` comments and junk that is no IOC; a share of lines end in CRLF and the
file starts with a BOM. The proportions are `KINDS`, `VARIANTS` and `EXTRA` below (and in
benchmarks/README.md).

As in `workload.py`, the i-th unique IOC is a pure function of i (`canonical`), so the IOCs a
file holds are known without reading it back: `canonical(0)` .. `canonical(unique - 1)`, in
the form `enricher.pipeline.normalize` gives them. A repeat is drawn anew: `EVIL[.]com` may
come back as `https://evil.com/x`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from collections.abc import Callable
from pathlib import Path

from benchmarks.workload import unique_count
from enricher.ioc import IocType

__all__ = ["EXTRA", "KINDS", "VARIANTS", "canonical", "expected", "write_messy"]

#: the kinds of the unique IOCs, in turn: 20% md5, 10% sha1, 20% sha256, 25% domains,
#: 15% IPv4, 10% IPv6
KINDS = (IocType.MD5,) * 4 + (IocType.SHA1,) * 2 + (IocType.SHA256,) * 4 + \
    (IocType.DOMAIN,) * 5 + (IocType.IPV4,) * 3 + (IocType.IPV6,) * 2  # fmt: skip
_HASH_LENGTH = {IocType.MD5: 32, IocType.SHA1: 40, IocType.SHA256: 64}
_V6_BASE = 0x2A03_2880_F0C1 << 80  # global unicast: the engine withholds documentation ranges


def canonical(i: int) -> tuple[IocType, str]:
    """The i-th unique IOC, normalized, the same in every process."""
    kind = KINDS[i % len(KINDS)]
    if kind in _HASH_LENGTH:
        digest = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).hexdigest()
        return kind, digest[: _HASH_LENGTH[kind]]
    if kind is IocType.DOMAIN:
        return kind, f"cdn-{i}.m{i % 89}.example.com"
    if kind is IocType.IPV4:
        return kind, f"{11 + (i >> 24)}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
    scrambled = i // len(KINDS) % 4 == 0  # 1 in 4 has no `::`
    low = i * 0x9E37_79B9_7F4A_7C15 % (1 << 80) if scrambled else i
    return kind, ipaddress.IPv6Address(_V6_BASE | low).compressed


def expected(n: int) -> set[tuple[str, str]]:
    """The `(type, ioc)` pairs a correct run over a messy file of n unique IOCs writes."""
    return {(t.value, v) for t, v in map(canonical, range(n))}


def _defang(v: str) -> str:
    return v.replace(".", "[.]")


def _v6_host(i: int, v: str) -> str:
    return v.upper() if i % 2 else v


Variant = tuple[float, Callable[[int, str], str]]

#: how each kind is written, with the share of its lines in each form
VARIANTS: dict[str, list[Variant]] = {
    "hash": [
        (0.75, lambda i, v: v),
        (0.20, lambda i, v: v.upper()),
        (0.05, lambda i, v: f" \t{v} "),
    ],
    "domain": [
        (0.40, lambda i, v: v),
        (0.10, lambda i, v: v.upper()),
        (0.15, lambda i, v: _defang(v)),
        (0.075, lambda i, v: f"hxxps://{_defang(v)}/login.php?id={i}"),
        (0.075, lambda i, v: f"https://{v}/static/{i}.js"),
        (0.05, lambda i, v: f"{v}:8443"),
        (0.05, lambda i, v: f"billing{i % 7}@{v}"),
        (0.05, lambda i, v: f"{v}."),
        (0.05, lambda i, v: f"*.{v}"),
    ],
    "ipv4": [
        (0.50, lambda i, v: v),
        (0.20, lambda i, v: _defang(v)),
        (0.10, lambda i, v: f"{v}:{1024 + i % 60000}"),
        (0.10, lambda i, v: f"hxxp://{v}/gate.php"),
        (0.10, lambda i, v: f"::ffff:{v}"),
    ],
    "ipv6": [
        (0.40, lambda i, v: v),
        (0.20, lambda i, v: ipaddress.IPv6Address(v).exploded),
        (0.15, lambda i, v: v.upper()),
        (0.15, lambda i, v: f"[{_v6_host(i, v)}]:443"),
        (0.10, lambda i, v: f"http://[{v}]/"),
    ],
}
_GROUP = {IocType.MD5: "hash", IocType.SHA1: "hash", IocType.SHA256: "hash",
          IocType.DOMAIN: "domain", IocType.IPV4: "ipv4", IocType.IPV6: "ipv6"}  # fmt: skip

#: lines that hold no IOC, each drawn with this share of the IOC lines: blank lines, comments
#: and junk (rejected: none of it is an IOC)
EXTRA: dict[str, tuple[float, tuple[str, ...]]] = {
    "blank": (0.01, ("", "   ")),
    "comment": (0.005, ("# exported from the SIEM", "# --- next feed ---")),
    "junk": (0.005, ("N/A", "-", "unknown", "TBD", "999.12.4.1", "deadbeefcafe",
                     "see attached report", "localhost")),
}  # fmt: skip
CRLF_SHARE = 0.3  # lines ending in CRLF: exports concatenated from Windows and Unix tools


def _pick(rng: random.Random, variants: list[Variant]) -> Callable[[int, str], str]:
    r = rng.random()
    for share, form in variants:
        r -= share
        if r < 0:
            return form
    return variants[-1][1]


def write_messy(path: Path, lines: int, duplicates: float = 0.5, seed: int = 5) -> int:
    """Write `lines` IOC lines, `duplicates` of them repeating an earlier IOC in a form drawn
    anew, plus the lines of `EXTRA` among them. Returns the unique count."""
    rng = random.Random(seed)
    unique = unique_count(lines, duplicates)
    new_left, repeats_left = unique, lines - unique
    emitted = 0
    block: list[str] = ["\ufeff"]
    with path.open("w", encoding="utf-8", newline="") as f:
        for _ in range(lines):
            if emitted == 0 or rng.random() * (new_left + repeats_left) < new_left:
                i = emitted
                emitted += 1
                new_left -= 1
            else:
                i = rng.randrange(emitted)
                repeats_left -= 1
            kind, value = canonical(i)
            block.append(_pick(rng, VARIANTS[_GROUP[kind]])(i, value))
            block.append("\r\n" if rng.random() < CRLF_SHARE else "\n")
            for share, texts in EXTRA.values():
                if rng.random() < share:
                    block += [rng.choice(texts), "\n"]
            if len(block) >= 131_072:
                f.write("".join(block))
                block.clear()
        f.write("".join(block))
    return unique
