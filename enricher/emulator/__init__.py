"""A local, faithful emulator of the GTI classification API (an aiohttp.web server).

It is the far end the main command can use by default, and the one integration tests and
benchmarks run against: the same paths, bodies and strictness as the real API, deterministic
answers computed from each key, and seeded faults, limits and authentication to test a client
against.

    async with Emulator(EmulatorConfig(rate_limit=100, server_error_rate=0.05)) as emu:
        ...  # POST to emu.base_url + "/file_batch"; emu.stats() tells what happened
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .answers import answer_for, classification_of, entry_for
    from .catalog import CP_IDS, MALICIOUS_TYPES, TYPE_WEIGHTS
    from .config import EmulatorConfig, RetryAfter
    from .keys import InvalidRequest, normalize_key
    from .server import API_PREFIX, Emulator
    from .stats import FAULT_NAMES, NO_RESPONSE, LogEntry

# The names below are imported on first use (PEP 562): `enricher`'s command line builds the
# `emulator` command's flags from `config` alone, and a run against a real server never loads
# the server (aiohttp.web: ~0.1 G instructions of start-up).
#: public name -> the module that defines it
_WHERE = {
    "answer_for": "answers",
    "classification_of": "answers",
    "entry_for": "answers",
    "CP_IDS": "catalog",
    "MALICIOUS_TYPES": "catalog",
    "TYPE_WEIGHTS": "catalog",
    "EmulatorConfig": "config",
    "RetryAfter": "config",
    "InvalidRequest": "keys",
    "normalize_key": "keys",
    "API_PREFIX": "server",
    "Emulator": "server",
    "FAULT_NAMES": "stats",
    "NO_RESPONSE": "stats",
    "LogEntry": "stats",
}

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

__getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__)
