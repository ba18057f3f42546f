"""One connection to the shared state on a Redis server (`--state redis://host:port/db`), and
the names of its keys.

What is shared: every process given the same URL (and key prefix) shares, per API identity,
one rate limiter, one answer cache, one daily budget and spent quota, and one deferred list
per job name (the modules beside this one). Keys are named
`PREFIX:IDENTITY:what`, IDENTITY being the identity's fingerprint: the first 128 bits of the
SHA-256 of its name as `ApiIdentity.name` gives it under a key kept in the server
(`PREFIX:key`, made once by whichever process comes first). So a key name holds no URL, no
user name and no secret; `PREFIX:identities` maps each fingerprint to its name (base URL,
account, keyed hash of the secrets: never a secret) for an operator.

Guarantees and failures: `SharedState.connect` raises `StateUnreachable` (a
`SettingsError`: exit 1) when the server cannot be reached or refuses us at start. Once
connected, any call that fails to reach the server raises `StateLost` (a `FatalError`:
exit 3): the run must stop sending, keep what it wrote and defer the rest (its deferred file
has them; `--resume` finishes). redis-py retries a dropped connection a few times first, so
a blip is not a loss. A server that refuses a command (full under `maxmemory`, a key of
another program's type, an ACL without the command, a disk it cannot save to, a replica)
is one too: at start `StateUnreachable`, then `StateLost`, saying what it refused.
No message names the URL's password: `safe_url` drops user info.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, DataError, RedisError, ResponseError
from yarl import URL

from ...api.identity import ApiIdentity
from ...errors import FatalError, SettingsError

_c_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _c_pack
except ImportError:  # redis-py's own packer, then
    _c_pack = None

__all__ = ["SharedState", "StateLost", "StateUnreachable", "safe_url"]

T = TypeVar("T")

log = logging.getLogger("enricher")

#: seconds to wait for the server to accept a connection, and for an answer
_CONNECT_TIMEOUT = 5.0
_SOCKET_TIMEOUT = 10.0


class _CPacked:
    """A connection whose commands hiredis's C code packs, as redis-py's synchronous
    client packs them when hiredis is there (its asyncio one does not): the answer store's
    script calls carry a few arguments a key, which redis-py's Python packer encoded one by
    one (a call of 1,000 answers: 8.4 ms, against 1.1 ms; 2.7 s of a cluster part's 10.5 s
    over 25,002 unique IOCs under cProfile was that packing)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        assert _c_pack is not None  # this class is used only then
        # as redis-py's own packers: a command name of several words goes as several
        head = args[0].encode() if isinstance(args[0], str) else args[0]
        if b" " in head or isinstance(args[0], str):
            args = (*head.split(), *args[1:])
        try:  # as they are: looking at each of a store call's ~6 arguments a key cost more
            return [_c_pack(args)]
        except TypeError:
            pass
        try:
            return [_c_pack(tuple(_plain(arg) for arg in args))]
        except TypeError as exc:
            raise DataError(str(exc)) from None


def _plain(arg: Any) -> Any:
    return bytes(arg) if isinstance(arg, (bytearray, memoryview)) else arg


def _packed_in_c(client: aioredis.Redis) -> None:
    """`client`'s connections (plain, TLS or a socket file, as its URL says) packed by
    hiredis, when hiredis is installed (the `redis` extra brings it)."""
    if _c_pack is None:
        return
    pool = client.connection_pool
    base = pool.connection_class
    pool.connection_class = type(f"CPacked{base.__name__}", (_CPacked, base), {})


class StateUnreachable(SettingsError):
    """The shared state's server cannot be reached, or refuses us, at start (exit 1)."""


class StateLost(FatalError):
    """The shared state's server went away (or refuses our commands) during the run:
    nothing more may be sent (what is not sent is deferred; exit 3). `at_start`: the
    `StateUnreachable` to raise instead while the state is being opened (nothing to resume)."""

    def __init__(self, message: str, at_start: StateUnreachable | None = None) -> None:
        super().__init__(message)  # (args: the message alone, as pickling wants)
        self.at_start = at_start or StateUnreachable(message)


def safe_url(url: str) -> str:
    """`url` as a message may show it: scheme, host, port and database, never user info."""
    try:
        parsed = URL(url)
        host = parsed.raw_host or ""
    except (ValueError, TypeError):
        return "(an unreadable state URL)"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{host}{port}{parsed.raw_path}"


def _password(url: str) -> str | None:
    """The password `url` holds (in its user info, or as `?password=`), if any."""
    try:
        parsed = URL(url)
        return parsed.password or parsed.query.get("password")
    except (ValueError, TypeError):
        return None


def _why(exc: BaseException, secret: str | None) -> str:
    """What went wrong, in a few words that hold no secret (redis-py's messages name the
    host and port at most; a password is taken out all the same)."""
    text = str(exc) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text.rstrip(".")


def _unreachable(shown: str, why: str) -> StateUnreachable:
    """The server at `shown` cannot be reached at start (`why`: without a secret)."""
    return StateUnreachable(
        f"state: cannot reach Redis at {shown} ({why}); start it, or give --state another URL"
    )


def _refused(shown: str, why: str) -> StateUnreachable:
    """The server at `shown` refuses us at start (`why`: its words, without a secret)."""
    return StateUnreachable(
        f"state: Redis at {shown} refused a command ({why}): is the database another"
        " program's, full, or the user without rights? give --state another URL or database"
    )


async def _check_policy(client: aioredis.Redis, shown: str) -> None:
    """Warn when the server, once full, evicts keys without a TTL too (`allkeys-*`): the
    key identities are hashed under (`PREFIX:key`) would go, and with it, for an identity
    with a secret, every answer kept so far (/tmp/attack15r/16_lru_evicts_key.sh: a job
    after it asked all again). Running jobs make it again (`RedisLimiter`); between runs
    nothing can. A server that will not say (INFO refused) is not warned about."""
    try:
        memory = await client.info("memory")
    except (RedisError, OSError):
        return
    policy = str(memory.get("maxmemory_policy", ""))
    if policy.startswith("allkeys"):
        log.warning(
            "warning: state: Redis at %s evicts any key when full (maxmemory-policy %s):"
            " the shared answers, daily count and limiter may be lost with the key they"
            " are named by; give it noeviction or a volatile-* policy",
            shown,
            policy,
        )


class SharedState:
    """A connection (pool) to the shared state at `url`; make it with `connect`. Every call
    the components make goes through `call`, which turns a lost server into `StateLost`."""

    def __init__(
        self,
        client: aioredis.Redis,
        url: str,
        prefix: str,
        key: bytes,
        *,
        password: str | None = None,
        offset: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.url = safe_url(url)
        self.prefix = prefix
        #: the key identity names are hashed under (`ApiIdentity.name`), the same for all
        self.identity_key = key
        self._password = _password(url) or password
        self._fingerprints: dict[ApiIdentity, str] = {}
        #: the server's clock less this host's (`now`), measured as it connected
        self.offset = offset
        self._clock = clock

    def now(self) -> float:
        """The server's clock (epoch seconds), read from this host's: what every process
        stamps shared rows with, so that host clocks do not matter."""
        return self._clock() + self.offset

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        prefix: str = "enricher",
        password: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SharedState:
        """Connect to `url` (`redis://[:password@]host[:port][/db]`, or `rediss://` for
        TLS; `password` when the URL holds none) and read (or make) the key identities are
        hashed under, and how far the server's clock is from `clock`. StateUnreachable if
        the server cannot be reached, refuses the password, or the URL is not one."""
        shown = safe_url(url)
        password = _password(url) or password
        try:
            client = aioredis.Redis.from_url(
                url,
                password=password,
                socket_connect_timeout=_CONNECT_TIMEOUT,
                socket_timeout=_SOCKET_TIMEOUT,
                health_check_interval=30,
            )
            _packed_in_c(client)
        except (ValueError, TypeError) as exc:
            raise StateUnreachable(
                f"state: {shown} is not a Redis URL ({_why(exc, password)});"
                " give --state redis://host:port/db"
            ) from None
        try:
            await client.set(f"{prefix}:key", secrets.token_bytes(32), nx=True)
            key = await client.get(f"{prefix}:key")
            before = clock()
            seconds, micros = await client.time()
            offset = seconds + micros / 1e6 - (before + clock()) / 2
        except AuthenticationError as exc:
            await client.aclose()
            raise StateUnreachable(
                f"state: {shown} refused the credentials ({_why(exc, password)});"
                " check the password (the state URL's, state.password_file or"
                " $ENRICHER_STATE_PASSWORD)"
            ) from None
        except ResponseError as exc:
            await client.aclose()
            raise _refused(shown, _why(exc, password)) from None
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise _unreachable(shown, _why(exc, password)) from None
        assert isinstance(key, bytes)
        await _check_policy(client, shown)
        return cls(client, url, prefix, key, password=password, offset=offset, clock=clock)

    def fingerprint(self, identity: ApiIdentity) -> str:
        """The identity's name in key names: 32 hex digits, the same in every process."""
        fp = self._fingerprints.get(identity)
        if fp is None:
            name = identity.name(self.identity_key)
            fp = hashlib.sha256(name.encode()).hexdigest()[:32]
            self._fingerprints[identity] = fp
        return fp

    def namespace(self, identity: ApiIdentity) -> str:
        """The prefix of every key of `identity`: `PREFIX:FINGERPRINT`."""
        return f"{self.prefix}:{self.fingerprint(identity)}"

    async def admit(self, identity: ApiIdentity) -> str:
        """Record the identity's name under its fingerprint (for an operator); its namespace."""
        await self.call(
            self.client.hset(
                f"{self.prefix}:identities",
                self.fingerprint(identity),
                identity.name(self.identity_key),
            )
        )
        return self.namespace(identity)

    async def call(self, pending: Awaitable[T]) -> T:
        """`await pending`, a call to the server: StateLost if the server is gone."""
        try:
            return await pending
        except ResponseError as exc:
            # the server is there but refuses (see the module's docstring): no more can be
            # shared, as if it had gone; a traceback would say nothing an operator can use
            why = _why(exc, self._password)
            raise StateLost(
                f"state: Redis at {self.url} refused a command ({why}); nothing more is"
                " sent, the rest is deferred: run again with --resume once it is fixed",
                _refused(self.url, why),
            ) from None
        except (RedisError, OSError) as exc:
            why = _why(exc, self._password)
            raise StateLost(
                f"state: lost Redis at {self.url} ({why}); nothing more"
                " is sent, the rest is deferred: run again with --resume once it is back",
                _unreachable(self.url, why),
            ) from None

    async def aclose(self) -> None:
        await self.client.aclose()
