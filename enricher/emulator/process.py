"""`enricher emulator` in a process of its own, for benchmarks and tests that need the far end
on another core: start it on a free loopback port, read its stats, stop it."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson

__all__ = ["emulator_process", "emulator_stats"]


@contextlib.contextmanager
def emulator_process(*flags: str) -> Iterator[str]:
    """Run `enricher emulator --port 0 FLAGS`; yields its base URL, stops it on exit."""
    with subprocess.Popen(
        [sys.executable, "-m", "enricher", "emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = re.search(r"(http://127\.0\.0\.1:\d+/rest/classification_v1)", line)
            if found is None:
                raise RuntimeError(f"the emulator did not start: {line!r}")
            yield found.group(1)
        finally:
            proc.terminate()
            proc.wait(10)


def emulator_stats(base_url: str, *, reset: bool = False) -> dict[str, Any]:
    """The emulator's `/emulator/stats`; with `reset`, they start again from zero after this."""
    root = base_url.split("/rest/")[0]
    with urllib.request.urlopen(root + "/emulator/stats") as resp:  # loopback only
        stats: dict[str, Any] = orjson.loads(resp.read())
    if reset:
        req = urllib.request.Request(root + "/emulator/reset", method="POST")
        with urllib.request.urlopen(req):
            pass
    return stats


def emulator_keys(base_url: str) -> dict[str, Any]:
    """The emulator's `/emulator/keys`: the distinct keys it received, by endpoint."""
    root = base_url.split("/rest/")[0]
    with urllib.request.urlopen(root + "/emulator/keys") as resp:  # loopback only
        keys: dict[str, Any] = orjson.loads(resp.read())
    return keys
