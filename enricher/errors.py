"""The one error tree of enricher.

    EnricherError
    ├── SettingsError            bad settings or command line (exit 1)
    ├── UsageError               the library used in a way it does not support (also a RuntimeError)
    ├── InputError               an input that cannot be read at all (exit 1)
    ├── FatalError               the run must stop (exit 3)
    │   ├── OutputError          an output cannot be written, or vanished while written
    │   ├── AuthRefused          401 / 403, or a failed tenant login
    │   └── UntrustedCertificate the server's TLS certificate did not verify
    ├── BudgetSpent              no request left in this run's or today's budget
    │   └── QuotaExhausted       the server says our quota is spent until a time (a long 429)
    ├── Stopping                 the run is stopping: a request not yet sent is not sent
    └── RequestError             one batch request did not give a usable answer
        ├── TransportError       connection refused / dropped, stale keep-alive, timeout (retryable)
        ├── SessionRenewed       a 401 on an expired tenant session, now renewed (retryable)
        ├── HTTPStatusError      an unexpected status (5xx retryable, others not)
        │   ├── RateLimited      429, with the server's Retry-After when it gave one (retryable)
        │   ├── BatchTooLarge    413: the batch must be split
        │   └── BadRequest       400: the server refuses something in the batch
        └── ProtocolError        an HTTP 200 whose body is not an answer (retryable)
            ├── MalformedBody    truncated, not JSON, or not the documented shape
            └── ErrorBody        JSON without `classificationResponses`: an error said with 200

Errors from aiohttp are mapped into this tree in one place (`enricher.api.transport`). Per-IOC
failures are records in the failures file, never exceptions. No error message carries a secret.
"""

from __future__ import annotations

__all__ = [
    "EXIT_FAILURES",
    "EXIT_FATAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "AuthRefused",
    "BadRequest",
    "BatchTooLarge",
    "BudgetSpent",
    "EnricherError",
    "ErrorBody",
    "FatalError",
    "HTTPStatusError",
    "InputError",
    "MalformedBody",
    "OutputError",
    "ProtocolError",
    "QuotaExhausted",
    "RateLimited",
    "RequestError",
    "SessionRenewed",
    "SettingsError",
    "Stopping",
    "TransportError",
    "UntrustedCertificate",
    "UsageError",
]

# the process's exit codes (README "Exit codes"), here so that the command line can answer an
# error without importing the engine
EXIT_OK = 0  # every unique IOC enriched (or unsupported by choice)
EXIT_USAGE = 1  # usage, settings or input error
EXIT_FAILURES = 2  # finished, with failures or deferred IOCs
EXIT_FATAL = 3  # stopped by a fatal condition: credentials refused, output not writable, signal


class EnricherError(Exception):
    """Base of every error enricher raises on purpose."""

    retryable: bool = False


class SettingsError(EnricherError):
    """A setting or command-line value is wrong; the message names it and the fix."""


class UsageError(EnricherError, RuntimeError):
    """The library used in a way it does not support (an `Enricher` not opened, opened
    twice, used from another event loop, given one string where an iterable of IOCs is
    expected); the message says how to use it."""


class InputError(EnricherError):
    """An input cannot be opened or read at all (a missing file, a directory given as a file)."""


class FatalError(EnricherError):
    """A condition that stops the whole run; what finished is still written."""


class OutputError(FatalError):
    """An output file cannot be written (a full disk, a closed pipe), or was removed or moved
    while it was written. `next_step` says what the operator should do."""

    def __init__(self, message: str, next_step: str) -> None:
        super().__init__(message)
        self.next_step = next_step


class AuthRefused(FatalError):
    """The server refused our credentials (401/403) or the tenant login failed."""


class UntrustedCertificate(FatalError):
    """The API's TLS certificate did not verify: a retry would not change it, and answers
    over such a connection could come from anyone on the path."""


class BudgetSpent(EnricherError):
    """The request budget (`--max-requests`, `limits.daily_budget`) is used up."""


class QuotaExhausted(BudgetSpent):
    """A 429 whose Retry-After is past `retry.max_wait`: a quota spent, not a moment's
    excess. Nothing is sent to this API identity until `until` (epoch seconds)."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


class Stopping(EnricherError):
    """The run is stopping (a signal, a deadline, a budget spent): a request that had not
    gone out yet, waiting for the rate limiter or a retry, is not sent. Its keys are
    deferred with this reason."""


class RequestError(EnricherError):
    """One batch request failed. `retryable` says whether sending it again may help."""

    #: short machine-readable kind, written as `error` in the failures file
    kind: str = "request_error"
    #: how many HTTP attempts were made before this error was final (set by the sender)
    attempts: int = 0


class TransportError(RequestError):
    retryable = True
    kind = "transport"


class HTTPStatusError(RequestError):
    kind = "http_status"

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        super().__init__(f"HTTP {status}" + (f": {message}" if message else ""))
        self.retryable = status >= 500 or status in (408, 425, 429)
        self.kind = f"http_{status}"


class RateLimited(HTTPStatusError):
    """HTTP 429. `retry_after` is the server's wait in seconds, when it gave one."""

    def __init__(self, retry_after: float | None = None, message: str = "") -> None:
        super().__init__(429, message)
        self.retry_after = retry_after


class BatchTooLarge(HTTPStatusError):
    def __init__(self, message: str = "") -> None:
        super().__init__(413, message)


class BadRequest(HTTPStatusError):
    """HTTP 400. `cause` is the server's stated reason when the body names one."""

    def __init__(self, cause: str | None = None) -> None:
        super().__init__(400, cause or "")
        self.cause = cause


class SessionRenewed(RequestError):
    """The tenant session had expired and was renewed: send the request again."""

    retryable = True
    kind = "session_renewed"


class ProtocolError(RequestError):
    retryable = True
    kind = "protocol"


class MalformedBody(ProtocolError):
    kind = "malformed_body"


class ErrorBody(ProtocolError):
    """An HTTP 200 whose JSON has no `classificationResponses`: the server's way of saying no."""

    kind = "error_body"
