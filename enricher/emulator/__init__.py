"""A local, faithful emulator of the GTI classification API (an aiohttp.web server).

It is the far end the main command can use by default, and the one integration tests and
benchmarks run against: the same paths, bodies and strictness as the real API, deterministic
answers computed from each key, and seeded faults, limits and authentication to test a client
against.

    async with Emulator(EmulatorConfig(rate_limit=100, server_error_rate=0.05)) as emu:
        ...  # POST to emu.base_url + "/file_batch"; emu.stats() tells what happened
"""

from __future__ import annotations

from .answers import answer_for, classification_of, entry_for
from .catalog import CP_IDS, MALICIOUS_TYPES, TYPE_WEIGHTS
from .config import EmulatorConfig, RetryAfter
from .keys import InvalidRequest, normalize_key
from .server import API_PREFIX, Emulator
from .stats import FAULT_NAMES, NO_RESPONSE, LogEntry

__all__ = [
    "API_PREFIX",
    "CP_IDS",
    "FAULT_NAMES",
    "MALICIOUS_TYPES",
    "NO_RESPONSE",
    "TYPE_WEIGHTS",
    "Emulator",
    "EmulatorConfig",
    "InvalidRequest",
    "LogEntry",
    "RetryAfter",
    "answer_for",
    "classification_of",
    "entry_for",
    "normalize_key",
]
