"""The emulator's knobs: one frozen, keyword-only value class, validated on construction."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["EmulatorConfig", "RetryAfter", "normalize_refuse_key"]


class RetryAfter(StrEnum):
    """How a 429 states when to come back."""

    SECONDS = "seconds"  # `Retry-After: 1`
    HTTP_DATE = "http-date"  # `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`
    NONE = "none"  # no header at all


#: Faults that replace the whole response; at most one of them hits a request.
WHOLE_RESPONSE_FAULTS = (
    "server_error_rate",
    "drop_rate",
    "hang_rate",
    "malformed_json_rate",
    "error_body_rate",
)
#: Faults that alter an otherwise good 200 answer; any number of them may combine.
CONTENT_FAULTS = (
    "missing_key_rate",
    "duplicate_rate",
    "extra_rate",
    "shuffle_rate",
    "upper_echo_rate",
)


def normalize_refuse_key(key: str) -> str:
    """A key as the emulator compares it: lower case, no trailing dot, IPv6 compressed."""
    k = key.strip().lower().rstrip(".")
    if ":" in k:
        try:
            return ipaddress.IPv6Address(k).compressed
        except ValueError:
            return k
    return k


@dataclass(frozen=True, kw_only=True, slots=True)
class EmulatorConfig:
    """Everything that makes the emulator behave unlike a perfect server.

    The defaults are a perfect server: no latency, no limits, no faults, no authentication.
    Every random choice (latency, faults) comes from one `random.Random(seed)`, drawn a fixed
    number of times per request, so a run depends only on the seed and the arrival order.
    """

    seed: int = 0

    latency_ms: float = 0.0
    """Fixed delay before each API response."""
    jitter_ms: float = 0.0
    """The delay is uniform in [latency_ms - jitter_ms, latency_ms + jitter_ms], floored at 0."""

    rate_limit: int | None = None
    """Requests accepted in any 1-second sliding window; more get 429. None: unlimited."""
    retry_after: RetryAfter = RetryAfter.SECONDS
    max_batch: int | None = None
    """More keys than this in one request get 413. None: unlimited."""
    accept_sha256: bool = True

    server_error_rate: float = 0.0
    """Probability of a 500/502/503/504 instead of the answer."""
    drop_rate: float = 0.0
    """Probability of closing the connection after reading the request, with no response."""
    hang_rate: float = 0.0
    """Probability of never answering (until the client gives up or the emulator stops)."""
    malformed_json_rate: float = 0.0
    """Probability of a 200 whose body is the answer's JSON cut short."""
    error_body_rate: float = 0.0
    """Probability of a 200 whose body is an error object without classificationResponses."""
    missing_key_rate: float = 0.0
    """Per key: probability that its entry is left out of the answer."""
    duplicate_rate: float = 0.0
    """Per request: probability of one entry appearing twice."""
    extra_rate: float = 0.0
    """Per request: probability of an added entry for a key nobody asked."""
    shuffle_rate: float = 0.0
    """Per request: probability of the entries coming back in shuffled order."""
    upper_echo_rate: float = 0.0
    """Per request: probability of hashes and domains being echoed in upper case."""

    refuse_keys: frozenset[str] = frozenset()
    """Normalized keys that make any batch holding one get a 400 naming no cause."""

    api_token: str | None = field(default=None, repr=False)
    token_header: str = "Authorization"
    """With `Authorization` the value must be `Bearer <token>`; another header carries the
    token itself (a `Bearer ` prefix is tolerated)."""
    login_credentials: tuple[str, str] | None = field(default=None, repr=False)
    """(username, password) enabling `POST /login.html`, which sets a `JSESSIONID` cookie."""
    session_seconds: float = 8 * 3600.0

    log_size: int = 10_000
    """How many (arrival, endpoint, status, n_keys) records the in-memory log keeps, and how
    many distinct keys received it remembers (`GET /emulator/keys`)."""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    """Monotonic seconds, for the rate window, sessions and stats (tests inject a fake)."""

    def __post_init__(self) -> None:
        for name in (*WHOLE_RESPONSE_FAULTS, *CONTENT_FAULTS):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        total = sum(getattr(self, name) for name in WHOLE_RESPONSE_FAULTS)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"the whole-response fault rates ({', '.join(WHOLE_RESPONSE_FAULTS)}) "
                f"sum to {total:g}; at most one hits a request, so they must sum to <= 1"
            )
        for name in ("latency_ms", "jitter_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError(
                f"rate_limit must be >= 1 (or None for no limit), got {self.rate_limit}"
            )
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 (or None for no limit), got {self.max_batch}")
        if self.log_size < 0:
            raise ValueError(f"log_size must be >= 0, got {self.log_size}")
        if self.session_seconds <= 0:
            raise ValueError(f"session_seconds must be > 0, got {self.session_seconds}")
        if self.api_token is not None and not self.api_token:
            raise ValueError("api_token must not be empty (use None for no token)")
        if not self.token_header or any(c in self.token_header for c in " :\r\n"):
            raise ValueError(f"token_header must be a header name, got {self.token_header!r}")
        creds = self.login_credentials
        if creds is not None and (len(creds) != 2 or not all(creds)):
            raise ValueError("login_credentials must be a (username, password) pair")
        object.__setattr__(self, "retry_after", RetryAfter(self.retry_after))
        object.__setattr__(self, "refuse_keys", _normalize_all(self.refuse_keys))

    @property
    def auth_required(self) -> bool:
        return self.api_token is not None or self.login_credentials is not None


def _normalize_all(keys: Iterable[str]) -> frozenset[str]:
    if isinstance(keys, str):
        raise ValueError("refuse_keys must be a set of keys, not one string")
    return frozenset(normalize_refuse_key(k) for k in keys)
