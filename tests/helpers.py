"""Helpers for tests that run enricher as a user does: real processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from enricher.emulator.process import emulator_process, emulator_stats

__all__ = ["emulator_process", "emulator_stats", "enricher", "read_ndjson"]


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


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]
