"""The cache's writer alone: N answers stored into a fresh cache, as a run without hits does.

A fresh cache costs a run what its writer thread does: compress each record line, insert it
into the answers table and its key index (keys in random order), commit, checkpoint the WAL.
This stores N answers (random 32-hex keys, record lines made like the engine's) 500 at a time
into a new `Cache` in one process, closes it, and prints the process's CPU time (its threads
included), the bytes it wrote and read (`/proc/self/io`: WAL, checkpoints, temporary files),
the file's size, SQLite's memory high-water mark and the peak RSS. No event loop, no
requests: what moves here is the store side alone. Run it in two checkouts to compare.

    python benchmarks/cache_store.py [--answers 500000]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

if __package__ in (None, ""):  # run as a script: python benchmarks/cache_store.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from enricher.api.identity import ApiIdentity
from enricher.ioc import Endpoint
from enricher.state.answers import Cache

__all__ = ["line", "store"]

_STORE = 500  # answers a store: a batch's


def line(key: str, n: int) -> bytes:
    """A record line for `key` shaped like the engine's (~0.6 KB, fields varying with `n`),
    ending as the engine's do (`"cached":false}` and a newline: the writer joins such lines
    and makes them served in one pass)."""
    return b"%b\n" % orjson.dumps({
        "ioc": key, "type": "md5", "verdict": "unknown", "classification": "unknown",
        "score": -1, "type_score": -1, "source": ["ReversingLabs", None][n % 2],
        "ttl_ms": 1_000_000_000 + n * 7919 % 999_983, "first_seen": "2013-06-29T10:19:54.605Z",
        "link": "http://www.cybereason.com",
        "product": {"productType": "APPLICATION", "type": "APPLICATION",
                    "title": f"tool {n % 977}", "manufacturer": f"vendor {n % 131}",
                    "signatureVerified": n % 3 == 0, "signed": n % 2 == 0},
        "response": {"requestKey": {"md5": key}, "ttl": 1_000_000_000 + n % 999_983,
                     "aggregatedResult": {"maliciousClassification": {
                         "type": "unknown", "classificationScore": -1, "typeScore": -1}},
                     "cpId": 3, "cpType": "REVERSING_LABS"},
        "cached": False,
    })  # fmt: skip


def _io() -> tuple[int, int]:
    fields = dict(x.split(": ") for x in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["rchar"])


def _sqlite_highwater() -> int | None:
    """SQLite's memory high-water mark (bytes), if its library can be loaded."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.sqlite3_memory_highwater.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_highwater(0))


def store(answers: int, folder: Path) -> dict[str, float | int | None]:
    """Store `answers` answers into a new cache in `folder`; what it cost."""
    rng = random.Random(1)
    keys = [f"{rng.getrandbits(128):032x}" for _ in range(answers)]
    cache = Cache(
        folder / "cache.sqlite3", max_ttl=30 * 86400, default_ttl=86400,
        identity=ApiIdentity("http://127.0.0.1:1/rest/classification_v1"),
    )  # fmt: skip
    made = 0.0
    wrote, read = _io()
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, answers, _STORE):
        t = time.process_time()
        items = [(k, "unknown", line(k, start + i), 86_400_000)
                 for i, k in enumerate(keys[start : start + _STORE])]  # fmt: skip
        made += time.process_time() - t
        cache.store(Endpoint.FILE, items)
    cache.close()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    wrote2, read2 = _io()
    high = _sqlite_highwater()
    return {
        "answers": answers,
        "cpu_s": round(cpu - made, 2),  # the lines' making left out
        "wall_s": round(wall, 2),
        "written_mb": round((wrote2 - wrote) / 1e6),
        "read_mb": round((read2 - read) / 1e6),
        "file_mb": round((folder / "cache.sqlite3").stat().st_size / 1e6),
        "sqlite_highwater_mib": round(high / 2**20, 1) if high is not None else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answers", type=int, default=500_000)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="enricher-cache-store-"))
    try:
        report = store(args.answers, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
