"""What the emulator saw and did, for `GET /emulator/stats`, tests and benchmarks."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, NamedTuple

from ..ioc import Endpoint
from .window import PeakCounter

__all__ = ["FAULT_NAMES", "NO_RESPONSE", "LogEntry", "Stats"]

#: Every injected behaviour the stats count, named after its knob (`<name>_rate`).
#: `missing_key` counts keys left out; the others count requests.
FAULT_NAMES = (
    "server_error",
    "drop",
    "hang",
    "malformed_json",
    "error_body",
    "missing_key",
    "duplicate",
    "extra",
    "shuffle",
    "upper_echo",
    "refused_batch",
)

#: The log's status for a request that got no response at all (dropped or hung).
NO_RESPONSE = 0


class LogEntry(NamedTuple):
    arrival: float  # the injected clock's reading when the request body had been read
    endpoint: str
    status: int  # NO_RESPONSE for a dropped or hung request
    n_keys: int  # keys in the request; 0 when the body was not read as one (429, 401, bad JSON)


class Stats:
    """Counters since start or the last `reset()`.

    `keys_asked` counts the keys of well-formed requests the emulator set out to answer;
    `keys_answered` counts the asked keys present in a 200 answer that was actually sent
    (not left out, not in a truncated or error body; duplicates and extras not counted).
    """

    def __init__(self, log_size: int) -> None:
        self.log: deque[LogEntry] = deque(maxlen=log_size)
        self.keys_kept = log_size
        self.reset()

    def reset(self) -> None:
        self.requests: dict[str, Counter[str]] = {ep.value: Counter() for ep in Endpoint}
        self.total_requests = 0
        self.keys_asked = 0
        self.keys_answered = 0
        self.rate_limited = 0
        self.faults: Counter[str] = Counter(dict.fromkeys(FAULT_NAMES, 0))
        self.logins: Counter[str] = Counter(ok=0, failed=0)
        self.arrived = PeakCounter()
        self.accepted = PeakCounter()
        self.log.clear()
        #: the distinct keys received, by endpoint, up to `keys_kept` in all (what a test
        #: checks was never sent: see `GET /emulator/keys`)
        self.keys: dict[str, set[str]] = {ep.value: set() for ep in Endpoint}
        self.keys_truncated = False

    def received(self, endpoint: str, keys: list[str]) -> None:
        """Keys of a well-formed request, as the emulator read them."""
        kept = self.keys[endpoint]
        room = self.keys_kept - sum(map(len, self.keys.values()))
        if len(keys) <= room:
            kept.update(keys)
            return
        for key in keys:
            if key not in kept:
                if room <= 0:
                    self.keys_truncated = True
                    return
                kept.add(key)
                room -= 1

    def keys_dict(self) -> dict[str, Any]:
        return {
            **{ep: sorted(keys) for ep, keys in self.keys.items()},
            "truncated": self.keys_truncated,
        }

    def record(self, arrival: float, endpoint: str, status: int, n_keys: int, label: str) -> None:
        """One API request's outcome; `label` is the status as the stats show it."""
        self.total_requests += 1
        self.requests[endpoint][label] += 1
        self.log.append(LogEntry(arrival, endpoint, status, n_keys))

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {ep: dict(sorted(c.items())) for ep, c in self.requests.items()},
            "total_requests": self.total_requests,
            "keys_asked": self.keys_asked,
            "keys_answered": self.keys_answered,
            "peak_arrived_per_second": self.arrived.peak,
            "peak_accepted_per_second": self.accepted.peak,
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "logins": dict(self.logins),
        }
