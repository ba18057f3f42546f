"""Memory per unique IOC held by the deduper, against plain Python sets.

Builds N unique normalized IOCs (a mix: 40% md5, 20% sha1, 10% sha256, 20% domains, 10% IPv4),
adds them to `enricher.pipeline.dedupe.Deduper` (its C tables where `_dedupe.c` was built),
to its pure-Python `PyDeduper` and, separately, to a `set[str]` and to one `set[bytes]` of
the packed values per type (the deduper until issue 16), and reports the bytes
per unique IOC each holds (tracemalloc: what the structure asked of the allocator, not its
rounding up, so a set of objects is counted low), and the CPU seconds each took.

    python benchmarks/dedupe_memory.py [--unique 2000000]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc

import orjson

from enricher.ioc import IocType
from enricher.pipeline.dedupe import C_TABLES, Deduper, PyDeduper, pack


def make(n: int) -> list[tuple[IocType, str]]:
    rng = random.Random(3)
    out: list[tuple[IocType, str]] = []
    for i in range(n):
        r = i % 10
        h = f"{rng.getrandbits(256):064x}"
        if r < 4:
            out.append((IocType.MD5, h[:32]))
        elif r < 6:
            out.append((IocType.SHA1, h[:40]))
        elif r < 7:
            out.append((IocType.SHA256, h))
        elif r < 9:
            out.append((IocType.DOMAIN, f"host{i}.{h[:6]}.example.com"))
        else:
            out.append(
                (IocType.IPV4, f"{(i >> 24) & 255}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
            )
    return out


def measure(build: object) -> tuple[int, float]:
    """Bytes held by what `build` returns, and the CPU seconds it took (untraced)."""
    gc.collect()
    started = time.process_time()
    held = build()  # type: ignore[operator]
    seconds = time.process_time() - started
    del held
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = build()  # type: ignore[operator]
    size = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del held
    return size, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unique", type=int, default=2_000_000)
    n = ap.parse_args().unique
    iocs = make(n)

    def with_deduper(kind: type[Deduper] = Deduper) -> Deduper:
        d = kind()
        adders = d.adders  # as ingest adds
        for t, v in iocs:
            adders[t](v)
        return d

    def with_py_deduper() -> Deduper:
        return with_deduper(PyDeduper)

    def with_set() -> set[str]:
        # the strings themselves are copies, as a set of freshly normalized strings would hold
        return {v.encode().decode() for _, v in iocs}

    def with_packed_sets() -> dict[IocType, set[bytes]]:
        sets: dict[IocType, set[bytes]] = {t: set() for t in IocType}
        for t, v in iocs:
            sets[t].add(pack(t, v))
        return sets

    dedupe, dedupe_s = measure(with_deduper)
    py_dedupe, py_dedupe_s = measure(with_py_deduper)
    plain, _ = measure(with_set)
    packed, packed_s = measure(with_packed_sets)
    print(orjson.dumps({
        "unique": n,
        "deduper_tables": "C" if C_TABLES else "Python",
        "deduper_bytes_per_ioc": round(dedupe / n, 1),
        "py_deduper_bytes_per_ioc": round(py_dedupe / n, 1),
        "set_of_str_bytes_per_ioc": round(plain / n, 1),
        "sets_of_packed_bytes_per_ioc": round(packed / n, 1),
        "deduper_cpu_us_per_add": round(dedupe_s / n * 1e6, 2),
        "py_deduper_cpu_us_per_add": round(py_dedupe_s / n * 1e6, 2),
        "sets_of_packed_cpu_us_per_add": round(packed_s / n * 1e6, 2),
        "python": sys.version.split()[0],
    }, option=orjson.OPT_INDENT_2).decode())  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
