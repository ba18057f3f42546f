"""Helpers for tests that run enricher as a user does: real processes on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import zstandard

from enricher.emulator.process import emulator_process, emulator_stats

__all__ = [
    "PlainEmulator",
    "cached_lines",
    "damage",
    "emulator_process",
    "emulator_stats",
    "enricher",
    "kill_when_written",
    "line_of",
    "read_ndjson",
    "start_run",
]

#: the `plain_emulator` fixture's type (tests/conftest.py)
PlainEmulator = Callable[[], contextlib.AbstractContextManager[str]]


def enricher(
    *args: str, stdin: bytes | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m enricher ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "enricher", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "error", **(env or {})},
    )


def into_closed_pipe(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m enricher ARGS` writing to a pipe whose reader is gone (`| head` done)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "enricher", *args],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )  # fmt: skip
    finally:
        os.close(write)


def start_run(url: str, src: Path, out: Path, *flags: str) -> subprocess.Popen[bytes]:
    """`enricher run` in the background, slow enough to be caught in the middle against an
    emulator with 100 ms of latency: 20 keys a batch, 2 in flight, about 10 batches a second."""
    return subprocess.Popen(
        [sys.executable, "-m", "enricher", "run", str(src), "-o", str(out), "--base-url", url,
         "--rate", "0", "--batch-size", "20", "--concurrency", "2", "--send-sha256", "--no-cache",
         *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def kill_when_written(proc: subprocess.Popen[bytes], out: Path, before: int, delay: float) -> int:
    """SIGKILL a run `delay` seconds after its output grew past `before` bytes (start-up takes
    longer on a loaded machine); the output's size then."""
    deadline = time.monotonic() + 30
    while (out.stat().st_size if out.exists() else 0) <= before:
        assert time.monotonic() < deadline, "the run wrote nothing in 30 s"
        time.sleep(0.005)
    time.sleep(delay)
    proc.kill()
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    return out.stat().st_size if out.exists() else 0


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def line_of(key: str, filler: bytes = b"1") -> bytes:
    """A record line of the domain `key` (the cache serves a row only if its line is its
    key's)."""
    return b'{"ioc":"%s","type":"domain","response":{"x":"%s"},"cached":false}\n' % (
        key.encode(),
        filler,
    )


def cached_lines(path: Path) -> list[bytes]:
    """Every record line a cache file holds, decompressed (rows are zstd frames: a search of
    the file's bytes would not see what they hold)."""
    dictionary = resources.files("enricher.state").joinpath("cache-records.zdict").read_bytes()
    unpack = zstandard.ZstdDecompressor(
        dict_data=zstandard.ZstdCompressionDict(dictionary)
    ).decompress
    uri = f"file:{path}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return [unpack(record) for (record,) in db.execute("SELECT record FROM answers")]


def damage(path: Path, *, first_page: int = 1, share: float = 1.0) -> None:
    """Overwrite the pages of a (closed) SQLite file from `first_page` (0 is the header
    page) on, the last `share` of them, with bytes that are no b-tree page."""
    size = path.stat().st_size
    page = int.from_bytes(path.read_bytes()[16:18], "big")
    pages = size // page
    start = max(first_page, pages - int(pages * share))
    with path.open("r+b") as f:
        for n in range(start, pages):
            f.seek(n * page)
            f.write(bytes((n * 7 + i) % 251 for i in range(page)))
