"""Seeded fault injection: what goes wrong with each request, decided when it arrives.

`FaultDrawer.draw()` takes the same number of draws from one `random.Random(seed)` for every
request, whatever the request holds, so the plan of the n-th request depends only on the seed
and n. Choices that depend on the batch (which keys to leave out, the shuffled order) come from
a second generator seeded by the plan, so they cannot shift the plans of later requests.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..ioc import Endpoint
from .answers import entry
from .config import EmulatorConfig

__all__ = [
    "SERVER_ERROR_STATUSES",
    "FaultDrawer",
    "Outcome",
    "Plan",
    "answer_entries",
    "truncate",
]

SERVER_ERROR_STATUSES = (500, 502, 503, 504)


class Outcome(StrEnum):
    """What replaces the answer; at most one per request."""

    ANSWER = "answer"
    SERVER_ERROR = "server_error"
    DROP = "drop"
    HANG = "hang"
    MALFORMED_JSON = "malformed_json"
    ERROR_BODY = "error_body"


@dataclass(frozen=True, slots=True)
class Plan:
    latency: float  # seconds to wait before responding
    outcome: Outcome
    error_status: int  # used when outcome is SERVER_ERROR
    duplicate: bool
    extra: bool
    shuffle: bool
    upper_echo: bool
    seed: int  # for the choices that depend on the batch

    def rng(self) -> random.Random:
        return random.Random(self.seed)


_OUTCOME_KNOBS = (
    (Outcome.SERVER_ERROR, "server_error_rate"),
    (Outcome.DROP, "drop_rate"),
    (Outcome.HANG, "hang_rate"),
    (Outcome.MALFORMED_JSON, "malformed_json_rate"),
    (Outcome.ERROR_BODY, "error_body_rate"),
)


class FaultDrawer:
    def __init__(self, config: EmulatorConfig) -> None:
        self._rng = random.Random(config.seed)
        low = max(0.0, config.latency_ms - config.jitter_ms) / 1000
        high = (config.latency_ms + config.jitter_ms) / 1000
        self._latency = (low, high - low)
        # One uniform draw picks the outcome: consecutive slices of [0, 1) per fault, so each
        # happens with exactly its configured probability (their sum is at most 1).
        bounds: list[tuple[float, Outcome]] = []
        edge = 0.0
        for outcome, knob in _OUTCOME_KNOBS:
            rate = getattr(config, knob)
            if rate > 0:
                edge += rate
                bounds.append((edge, outcome))
        self._outcomes = bounds
        self._duplicate = config.duplicate_rate
        self._extra = config.extra_rate
        self._shuffle = config.shuffle_rate
        self._upper = config.upper_echo_rate

    def draw(self) -> Plan:
        r = self._rng.random
        low, span = self._latency
        latency = low + span * r()
        u = r()
        outcome = Outcome.ANSWER
        for edge, candidate in self._outcomes:
            if u < edge:
                outcome = candidate
                break
        return Plan(
            latency=latency,
            outcome=outcome,
            error_status=SERVER_ERROR_STATUSES[int(r() * len(SERVER_ERROR_STATUSES))],
            duplicate=r() < self._duplicate,
            extra=r() < self._extra,
            shuffle=r() < self._shuffle,
            upper_echo=r() < self._upper,
            seed=self._rng.getrandbits(64),
        )


def answer_entries(
    endpoint: Endpoint,
    keys: list[str],
    plan: Plan,
    missing_rate: float,
    faults: Counter[str],
) -> tuple[list[dict[str, Any]], int]:
    """The entries of a 200 answer for normalized `keys`, with the plan's content faults
    applied; each fault applied is counted in `faults`.

    Returns the entries and how many of the asked keys they answer.
    """
    upper = plan.upper_echo and endpoint is not Endpoint.IP  # IPs have no case
    if missing_rate <= 0 and not (plan.duplicate or plan.extra or plan.shuffle or upper):
        return [entry(endpoint, key) for key in keys], len(keys)

    rng = plan.rng()
    if missing_rate > 0:
        kept = [key for key in keys if not rng.random() < missing_rate]
        faults["missing_key"] += len(keys) - len(kept)
    else:
        kept = keys
    entries = [entry(endpoint, key, upper_echo=upper) for key in kept]
    answered = len(entries)
    if upper:
        faults["upper_echo"] += 1
    if plan.extra:
        extra = _unasked_key(endpoint, set(keys), rng)
        entries.append(entry(endpoint, extra, upper_echo=upper))
        faults["extra"] += 1
    if plan.duplicate and entries:
        entries.append(entries[rng.randrange(len(entries))])
        faults["duplicate"] += 1
    if plan.shuffle:
        rng.shuffle(entries)
        faults["shuffle"] += 1
    return entries, answered


def _unasked_key(endpoint: Endpoint, asked: set[str], rng: random.Random) -> str:
    while True:
        bits = rng.getrandbits(128)
        if endpoint is Endpoint.FILE:
            key = f"{bits:032x}"
        elif endpoint is Endpoint.DOMAIN:
            key = f"x{bits & 0xFFFFFFFF:08x}.extra.example"
        else:
            key = ".".join(str((bits >> s) & 0xFF) for s in (0, 8, 16, 24))
        if key not in asked:
            return key


def truncate(body: bytes, plan: Plan) -> bytes:
    """A strict prefix of a JSON object: valid JSON up to the cut, never a whole document."""
    cut = 1 + random.Random(plan.seed).randrange(max(1, len(body) - 1))
    return body[:cut]
