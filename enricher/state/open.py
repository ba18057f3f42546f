"""The one place a state is opened from the settings (`state.url`): the answers, the daily
budget, the deferred lists and the rate limiter of one API identity, closed together.

`sqlite:///PATH` (or no URL: `cache.path`, the default) is the state file of one machine: the
SQLite `Cache`, its budget tables and deferred lists, and each process's own limiter.
`redis://HOST:PORT/DB` (`rediss://` for TLS) is a Redis server shared by every process and
host given the same URL and prefix: one limiter (turns handed out by the server's clock, AIMD
shared), one answer cache, one daily budget and one deferred list per job name, per identity
(`enricher.state.redis`). `Enricher` opens one itself when its settings name a URL, and the
CLI (`enricher run`, `lookup`, `deferred`) does through here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..api.identity import ApiIdentity
from ..api.ratelimit import RateLimiter
from ..config.settings import Settings
from ..errors import SettingsError
from ..threads import call_in_thread
from .ports import AnswerStore, BudgetStore, DeferredList

if TYPE_CHECKING:
    from .answers import Cache
    from .redis.connection import SharedState
    from .redis.limiter import RedisLimiter

__all__ = ["REDIS_MISSING", "OpenState", "connect", "file_state", "open_state", "state_path"]

REDIS_MISSING = "state: a redis:// state needs redis-py: pip install 'enricher[redis]'"


@dataclass(eq=False, kw_only=True)
class OpenState:
    """An open state: what `open_state` gives. `answers` is None when answers are not kept
    (`answers=False`); `limiter` makes the shared `RateLimiter` inside the running loop
    (None: each process paces itself, `AdaptiveLimiter.from_settings`). `aclose()` closes it
    all, once: what is queued stored, the connection let go."""

    #: where it is, as a message may show it (no password)
    url: str
    #: a Redis server's, shared by other processes
    shared: bool
    answers: AnswerStore | None
    budget: BudgetStore | None
    deferred: DeferredList | None
    limiter: Callable[[], RateLimiter] | None = None
    #: the SQLite state file, when it is one
    cache: Cache | None = None
    #: the Redis connection, when it is one
    connection: SharedState | None = None
    _limiters: list[RedisLimiter] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _closed: bool = False

    async def aclose(self) -> None:
        """Close every part, the limiters first (their last reports), the connection last;
        the first error is raised once every part has been closed (`StateLost` when Redis
        is gone)."""
        if self._closed:
            return
        self._closed = True
        error: BaseException | None = None
        for close in [*(lim.aclose for lim in self._limiters), *self._closers]:
            try:
                await close()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error


def state_path(settings: Settings, path: str | None = None) -> str:
    """The SQLite state file: `path` (`--cache`), else `state.url`'s, else `cache.path`,
    else the default."""
    from .answers import default_cache_path

    return path or settings.state.sqlite_path or settings.cache.path or str(default_cache_path())


def file_state(cache: Cache) -> OpenState:
    """The `OpenState` of an open SQLite state file."""
    from .budget import SqliteBudget
    from .deferred import SqliteDeferred

    return OpenState(
        url=f"sqlite://{cache.path}",
        shared=False,
        answers=cache,
        budget=SqliteBudget(cache),
        deferred=SqliteDeferred(cache),
        cache=cache,
        _closers=[cache.aclose],
    )


async def open_state(
    settings: Settings,
    identity: ApiIdentity,
    *,
    answers: bool = True,
    fmt: str = "",
    max_age: float | None = None,
    path: str | None = None,
) -> OpenState:
    """The state `settings.state` names, for `identity` (answers bound to it). `answers`:
    keep and serve answers (False: the budget, the deferred lists and the limiter only);
    `fmt`: the record format of the lines given to the answers; `max_age`: serve no
    answer older (seconds); `path`: the state file (`--cache`), with no URL or a
    sqlite:// one. SettingsError (exit 1) when it cannot be opened: Redis unreachable,
    or redis-py missing."""
    if not settings.state.shared:
        return await call_in_thread(
            lambda: _open_file(settings, identity, fmt, max_age, path), name="state"
        )
    if path is not None:
        raise SettingsError("--cache names a state file, --state a Redis server: give one of them")
    return await _open_redis(settings, identity, answers, fmt, max_age)


def _open_file(
    settings: Settings, identity: ApiIdentity, fmt: str, max_age: float | None, path: str | None
) -> OpenState:
    from .answers import Cache

    c = settings.cache
    cache = Cache(
        state_path(settings, path),
        max_ttl=c.max_ttl,
        default_ttl=c.default_ttl,
        max_age=max_age,
        fmt=fmt,
        identity=identity,
        max_size=c.max_size,
    )
    return file_state(cache)


async def connect(settings: Settings) -> SharedState:
    """A connection to the Redis server `state.url` names (its password: the URL's, else
    `state.password_file`'s, else `$ENRICHER_STATE_PASSWORD`'s). SettingsError (exit 1)
    when it cannot be reached, or redis-py is missing."""
    try:
        from .redis.connection import SharedState
    except ImportError:
        raise SettingsError(REDIS_MISSING) from None
    s = settings.state
    secret = s.password()
    return await SharedState.connect(
        s.url, prefix=s.prefix, password=secret.reveal() if secret is not None else None
    )


async def _open_redis(
    settings: Settings, identity: ApiIdentity, answers: bool, fmt: str, max_age: float | None
) -> OpenState:
    try:
        from .redis.answers import RedisAnswers
        from .redis.budget import RedisBudget
        from .redis.connection import StateLost
        from .redis.deferred import RedisDeferred
        from .redis.limiter import RedisLimiter
    except ImportError:
        raise SettingsError(REDIS_MISSING) from None
    connection = await connect(settings)
    try:
        namespace = await connection.admit(identity)
    except StateLost as exc:  # at start: nothing to resume
        await connection.aclose()
        raise exc.at_start from None
    except BaseException:
        await connection.aclose()
        raise
    store: RedisAnswers | None = None
    if answers:
        c = settings.cache
        store = RedisAnswers(
            connection,
            fmt=fmt,
            max_ttl=c.max_ttl,
            default_ttl=c.default_ttl,
            max_age=max_age,
            claim_token=settings.state.claim_token or None,
        )
        store.bind(identity)
    budget = RedisBudget(connection, namespace)
    state = OpenState(
        url=connection.url,
        shared=True,
        answers=store,
        budget=budget,
        deferred=RedisDeferred(connection, namespace),
        connection=connection,
    )
    limits = settings.limits

    def make_limiter() -> RateLimiter:
        limiter = RedisLimiter(
            connection,
            namespace,
            limits.rate,
            headroom=max(limits.rate_headroom, settings.state.rate_headroom),
            adaptive=limits.adaptive,
            min_rate=limits.min_rate,
            cooldown=limits.rate_cooldown,
            window=limits.rate_window,
            recovery=limits.rate_recovery,
        )
        state._limiters.append(limiter)
        return limiter

    state.limiter = make_limiter
    closers: list[Callable[[], Awaitable[None]]] = [budget.aclose]
    if store is not None:
        closers.insert(0, store.aclose)
    closers.append(functools.partial(_close_connection, connection))
    state._closers = closers
    return state


async def _close_connection(connection: SharedState) -> None:
    # a connection to a server that has gone closes without a word
    with contextlib.suppress(Exception):
        await connection.aclose()
