"""Send one batch: paced by the limiter, retried with backoff, answers parsed and validated.

Every attempt acquires the rate limiter first, so retries pay for their place like anything
else; an attempt that was waiting its turn when the run began to stop (a signal, a deadline,
a budget spent) is not sent. Retries use full-jitter exponential backoff (tenacity), but
never wait less than a 429's Retry-After. A Retry-After past `retry.max_wait` says a quota
is spent: nothing is sent again before that time, by any worker. A fresh `AsyncRetrying` is
made per batch: it holds per-call state.

The sender is given what it sends through (a `Transport`), what paces it (a `RateLimiter`),
the settings sections it reads, and the clock and sleep of its waits: a test of the retry
policy waits for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Container, Sequence
from operator import itemgetter

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from ..config.settings import ApiSettings, RetrySettings
from ..errors import (
    AuthRefused,
    EnricherError,
    QuotaExhausted,
    RateLimited,
    RequestError,
    Stopping,
    TransportError,
    UntrustedCertificate,
)
from ..ioc import Endpoint, IocType
from ..pipeline.stats import RunStats
from ..state.budget import SPENT, Budget, quota_exhausted
from ..threads import call_in_thread
from .protocol import ParsedResponse, build_request, parse_response
from .ratelimit import Clock, RateLimiter, Sleep
from .transport import Transport

__all__ = ["Sender"]

#: an answer body larger than this is read in a thread (bytes)
_BIG = 1 << 20


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RequestError) and exc.retryable


class Sender:
    """Sends batches through `transport`, paced by `limiter`, retried as `retry` says.

    `clock` times the requests (the latencies in the stats); `sleep` waits out a retry's
    backoff (both the real ones by default).
    """

    def __init__(
        self,
        api: ApiSettings,
        retry: RetrySettings,
        transport: Transport,
        limiter: RateLimiter,
        stats: RunStats,
        *,
        budget: Budget | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.api = api
        self.retry = retry
        self.budget = budget
        self.transport = transport
        self.limiter = limiter
        self.stats = stats
        self._clock = clock
        self._sleep = sleep
        self._backoff = wait_random_exponential(
            multiplier=retry.backoff_base, max=retry.backoff_max
        )
        #: until when the server said our quota is spent (a 429 past retry.max_wait): no
        #: attempt is made before, by any worker, waiting or not
        self.quota_until: float | None = None

    def _wait(self, state: RetryCallState) -> float:
        wait = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            # honour the server's wait, plus a little jitter so workers do not return together
            after = min(exc.retry_after, self.retry.retry_after_max)
            wait = max(wait, after + random.uniform(0, min(1.0, 0.1 * after + 0.05)))
        return wait

    async def fetch(
        self,
        endpoint: Endpoint,
        keys: Sequence[tuple[IocType, str]],
        *,
        stats: RunStats | None = None,
        halt: Callable[[], str | None] | None = None,
        halting: asyncio.Event | None = None,
    ) -> ParsedResponse:
        """The parsed answer for one batch, after retries, counted in `stats` (the sender's
        own by default: runs that share a sender count their own requests).

        Raises the last `RequestError` when retries are exhausted or the error is not one a
        retry can fix (its `attempts` attribute says how many were made), and `AuthRefused`,
        `BudgetSpent` or `QuotaExhausted` (a 429 whose Retry-After is past
        `retry.max_wait`) at once. `halt()` says why nothing more may be sent (or None); it
        is asked before each attempt and again once the attempt's turn at the limiter has
        come, and `Stopping` is raised with its reason then. `halting`, set as the run begins
        to stop, ends at once a wait for the limiter, the budget or a retry's backoff (with
        `Stopping`): only a request in flight is given the grace period.
        """
        stats = stats or self.stats
        body = build_request(keys, allow_sha256=self.api.send_sha256)
        asked = set(map(itemgetter(1), keys))

        def before_sleep(state: RetryCallState) -> None:
            stats.retries += 1

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            before_sleep=before_sleep,
            reraise=True,
            sleep=functools.partial(_backoff, sleep=self._sleep, halting=halting),
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    return await self._attempt(endpoint, body, asked, stats, halt, halting)
        except RequestError as exc:
            exc.attempts = attempts
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        endpoint: Endpoint,
        body: bytes,
        asked: Container[str],
        stats: RunStats,
        halt: Callable[[], str | None] | None,
        halting: asyncio.Event | None,
    ) -> ParsedResponse:
        if self.quota_until is not None:
            raise quota_exhausted(self.quota_until)
        _check(halt)
        if self.budget is not None:
            await self.budget.take()
            # counted (in a shared state, reserved): a budget spent meanwhile by another
            # request does not stop this one, or what it took is spent for nothing (a daily
            # budget of 7 counted 7 while 1 request was sent: each part's requests racing)
            halt = _unless_spent(halt)
        if halting is None or self.limiter.ready():
            await self.limiter.acquire()
        else:  # a wait for a turn: given up if the run begins to stop meanwhile
            try:
                await _unless(self.limiter.acquire(), halting, halt)
            except Stopping:
                _check(halt)  # stopping for another reason than a spent budget
                await self.limiter.acquire()
        if self.quota_until is not None:  # found spent while this one waited its turn
            raise quota_exhausted(self.quota_until)
        _check(halt)  # the run began to stop while this one waited its turn
        started = self._clock()
        try:
            raw = await self._post(endpoint, body)
            if len(raw) > _BIG:
                # reading a body this large takes a while: in a thread, so that the loop (and
                # a signal) never waits for it
                parsed, echoed = await call_in_thread(
                    lambda: self._read(endpoint, raw, asked), name="answer"
                )
            else:
                parsed, echoed = self._read(endpoint, raw, asked)
            if echoed:
                stats.secrets_replaced += echoed
        except RateLimited as exc:
            stats.rate_limited += 1
            stats.request_done(endpoint.value, "429", None)
            retry = self.retry
            if exc.retry_after is not None and exc.retry_after > retry.max_wait:
                wait = min(exc.retry_after, retry.max_quota_wait)
                raise await self._quota_spent(time.time() + wait) from None
            self.limiter.rate_limited()
            raise
        except AuthRefused:
            stats.request_done(endpoint.value, "auth", None)
            raise
        except UntrustedCertificate:
            stats.request_done(endpoint.value, "tls", None)
            raise
        except RequestError as exc:
            status = str(getattr(exc, "status", exc.kind))
            stats.request_done(endpoint.value, status, None)
            raise
        stats.request_done(endpoint.value, "200", self._clock() - started)
        self.limiter.succeeded()
        return parsed

    async def _post(self, endpoint: Endpoint, body: bytes) -> bytes:
        """The transport's answer. What no transport of ours raises or returns (a bug in
        another's, a cancelled future inside the client it wraps) is a TransportError:
        retried, then a failure of the batch's keys, never a bare traceback, nor a worker
        ending as cancelled while its keys wait for it. Only the exception's type is said:
        its text may hold what the transport was given (a URL with a password)."""
        try:
            raw = await self.transport.post(endpoint, body)
        except EnricherError:
            raise
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the run's own cancellation of this worker
            raise TransportError("the transport raised CancelledError") from None
        except Exception as exc:
            raise TransportError(f"the transport raised {type(exc).__name__}") from None
        if not isinstance(raw, bytes):
            raise TransportError(f"the transport answered {type(raw).__name__}, not bytes")
        return raw

    def _read(
        self, endpoint: Endpoint, raw: bytes, asked: Container[str]
    ) -> tuple[ParsedResponse, int]:
        """A 200 body parsed, and our secrets taken out of its entries (how many)."""
        try:
            parsed = parse_response(endpoint, raw, asked)
        except RequestError as exc:  # an error body's text may echo our secrets
            raise self.transport.redact(exc) from None
        return parsed, self.transport.scrub(parsed, raw)

    async def _quota_spent(self, until: float) -> QuotaExhausted:
        """Stop sending until `until`, in this run and (through the budget) the next ones."""
        self.quota_until = max(until, self.quota_until or 0.0)
        if self.budget is not None:
            await self.budget.quota_spent(until)
        return quota_exhausted(self.quota_until)


async def _first(waiting: Awaitable[object], halting: asyncio.Event) -> bool:
    """Wait for `waiting`, unless `halting` is set first: then it is given up. Whether it
    finished (its error, if it raised one, is raised)."""
    turn = asyncio.ensure_future(waiting)
    stop = asyncio.ensure_future(halting.wait())
    try:
        await asyncio.wait((turn, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for f in (turn, stop):
            if not f.done():
                f.cancel()
        await asyncio.gather(turn, stop, return_exceptions=True)
    if turn.cancelled():
        return False
    turn.result()
    return True


async def _unless(
    waiting: Awaitable[object], halting: asyncio.Event, halt: Callable[[], str | None] | None
) -> None:
    """Wait for `waiting` (a turn at the limiter), unless `halting` is set first: then it is
    given up, and `Stopping` raised."""
    if not await _first(waiting, halting):
        why = halt() if halt is not None else None
        raise Stopping(why or "the run is stopping")


async def _backoff(seconds: float, *, sleep: Sleep, halting: asyncio.Event | None) -> None:
    """A retry's backoff, cut short when the run begins to stop (the next attempt then finds
    that it must not be sent)."""
    if halting is None:
        await sleep(seconds)
    elif sleep is asyncio.sleep:  # the loop's own timer: no task to make
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await halting.wait()
    elif not halting.is_set():
        await _first(sleep(seconds), halting)


def _unless_spent(halt: Callable[[], str | None] | None) -> Callable[[], str | None] | None:
    """`halt`, but None (go on) when all it says is that the budget is spent."""
    if halt is None:
        return None
    given = halt

    def why() -> str | None:
        reason = given()
        return None if reason == SPENT else reason

    return why


def _check(halt: Callable[[], str | None] | None) -> None:
    why = halt() if halt is not None else None
    if why is not None:
        raise Stopping(why)
