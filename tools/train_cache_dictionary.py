"""Make `enricher/state/cache-records.zdict`: the zstd dictionary of the cache's rows.

A cache row is one record line (~0.9 KB); alone, zstd finds little to share in it (~450 B).
A dictionary holds what lines have in common (field names, classification and provider names,
links, product entries), so a row compresses to ~120 B. It is trained once, here, on record
lines made the way the engine makes them: from the emulator's answers to keys of every
endpoint (deterministic) and the API tutorial's example answers. Rows name their dictionary
(zstd's dictionary id), so a new one can come with a new id while older rows stay readable.

    python tools/train_cache_dictionary.py [--samples 20000] [--size 16384]

Prints the size and speed per row on lines the dictionary was not trained on. Changing the
file without a new `DICT_ID` makes every cached row unreadable (they are then asked again).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import orjson
import zstandard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enricher.api.protocol import entry_of  # noqa: E402
from enricher.config.settings import load_settings  # noqa: E402
from enricher.emulator.answers import entry  # noqa: E402
from enricher.ioc import Endpoint, IocType  # noqa: E402
from enricher.output.records import record_line  # noqa: E402

DICT_ID = 1
OUT = ROOT / "enricher" / "state" / "cache-records.zdict"
TUTORIAL = ROOT / "tests" / "fixtures" / "tutorial"


def key_of(i: int, salt: str) -> tuple[IocType, str]:
    digest = hashlib.sha256(f"{salt}{i}".encode()).hexdigest()
    kind = i % 5
    if kind == 0:
        return IocType.MD5, digest[:32]
    if kind == 1:
        return IocType.SHA1, digest[:40]
    if kind == 2:
        return IocType.SHA256, digest
    if kind == 3:
        return IocType.DOMAIN, f"{digest[:10]}.{digest[10:14]}.example.com"
    return IocType.IPV4, ".".join(str(int(digest[j : j + 2], 16)) for j in range(0, 8, 2))


def lines(n: int, salt: str) -> list[bytes]:
    verdicts = load_settings(environ={}).verdicts
    endpoint = {IocType.MD5: Endpoint.FILE, IocType.SHA1: Endpoint.FILE,
                IocType.SHA256: Endpoint.FILE, IocType.DOMAIN: Endpoint.DOMAIN,
                IocType.IPV4: Endpoint.IP}  # fmt: skip
    out = []
    for i in range(n):
        ioc_type, key = key_of(i, salt)
        fields, raw = entry_of(entry(endpoint[ioc_type], key))
        out.append(record_line(ioc_type, key, fields, raw, verdicts)[0])
    return out


def tutorial_lines() -> list[bytes]:
    verdicts = load_settings(environ={}).verdicts
    out = []
    for name, ioc_type in (("file", IocType.MD5), ("domain", IocType.DOMAIN),
                           ("ip", IocType.IPV4)):  # fmt: skip
        doc = orjson.loads((TUTORIAL / f"{name}_response.json").read_bytes())
        for item in doc["classificationResponses"]:
            key = next(v for v in item["requestKey"].values() if isinstance(v, str))
            fields, raw = entry_of(item)
            out.append(record_line(ioc_type, key, fields, raw, verdicts)[0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=16_384)
    args = ap.parse_args()
    samples = lines(args.samples, "train") + tutorial_lines() * 20
    trained = zstandard.train_dictionary(args.size, samples, dict_id=DICT_ID, threads=1)
    OUT.write_bytes(trained.as_bytes())
    test = lines(5_000, "test")
    c = zstandard.ZstdCompressor(level=3, dict_data=trained, write_checksum=True)
    d = zstandard.ZstdDecompressor(dict_data=trained)
    started = time.perf_counter()
    blobs = [c.compress(line) for line in test]
    packed = time.perf_counter() - started
    started = time.perf_counter()
    assert [d.decompress(b) for b in blobs] == test
    unpacked = time.perf_counter() - started
    raw = sum(map(len, test)) / len(test)
    print(f"{OUT.relative_to(ROOT)}: {len(trained.as_bytes()):,} bytes, id {DICT_ID}")
    print(f"a record line: {raw:.0f} B, compressed {sum(map(len, blobs)) / len(blobs):.0f} B;"
          f" {packed / len(test) * 1e6:.1f} us to compress, {unpacked / len(test) * 1e6:.1f} us"
          " to decompress")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
