"""Helpers for tests that run enricher as a user does: real processes on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


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


@contextlib.contextmanager
def emulator_process(*flags: str) -> Iterator[str]:
    """`enricher emulator` in its own process on a free port; yields its base URL."""
    with subprocess.Popen(
        [sys.executable, "-m", "enricher", "emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+/rest/classification_v1)", line)
            assert match, line
            yield match.group(1)
        finally:
            proc.terminate()
            proc.wait(10)


def emulator_stats(base_url: str, *, reset: bool = False) -> dict[str, Any]:
    """The emulator's stats; with `reset`, they start again from zero after this read."""
    root = base_url.split("/rest/")[0]
    with urllib.request.urlopen(root + "/emulator/stats") as resp:
        stats: dict[str, Any] = orjson.loads(resp.read())
    if reset:
        req = urllib.request.Request(root + "/emulator/reset", method="POST")
        with urllib.request.urlopen(req):
            pass
    return stats


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]
