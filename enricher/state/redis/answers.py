"""The answer cache shared through Redis by every job of the same API identity (the
`AnswerStore` shape), with short claims on the IOCs being asked.

What is shared: one key per answer, `NAMESPACE:a:ENDPOINT:KEY`, whose value is what the SQLite
cache keeps of a row (the verdict, the record format, when it was fetched, and the record line
as a hit writes it, `"cached":true`, compressed with zstd and the dictionary the SQLite cache
uses), and whose Redis TTL is the row's: the API's `ttl`, else `default_ttl`, capped by
`max_ttl`. Redis drops a row when it expires (and, under `maxmemory` with a volatile policy,
may drop rows before: a miss, asked again). `NAMESPACE:has:ENDPOINT` marks an endpoint that
has answers (it expires with the last of them), for `unanswered_endpoints`.

Reads and writes are batch-shaped: `answers` is one MGET per endpoint (in slices), and
`store_soon` one script call per slice (one round trip). A row whose line is not its key's
(damaged, or written by something else) is a miss, as in the SQLite cache.

Claims: `claim(endpoint, keys)` takes, for `claim_ttl` seconds, the keys no other job is
asking (`SET NX PX`, one script call), so that two jobs over the same IOCs at the same time do
not both ask them; `release` gives back those not answered, a claim whose answer is stored
ends `_LINGER_MS` later (so a job that missed the key just before finds it claimed, not
free), and a claim left by a job that died expires. A key claimed elsewhere is looked up
again later: its answer is there, or the claim expired and it can be claimed.
tests/state/test_redis_answers.py measures what it saves: two jobs over the same 400 IOCs at
once, in the same order, asked 680-800 without claims and 400 with (in two different orders:
~420 and 400). Chosen: claim (a key costs one more SET NX in its batch's pipeline, no round
trip of its own): without claims, a duplicate is only a request of the shared rate wasted
(each job's output is right either way), but two jobs over one export waste half of it.

When Redis goes away: every call raises `StateLost`, except `report`.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources

import zstandard

from ...api.identity import ApiIdentity
from ...config.settings import VERDICTS
from ...ioc import Endpoint
from ...output.records import CACHED_TAIL, FRESH_TAIL
from ..answers import _WINDOW_MAX
from ..ports import AnswerStore
from .connection import SharedState

__all__ = ["RedisAnswers"]

#: verdict index, fetched at (epoch s), length of the record format's name
_HEAD = struct.Struct("!BdB")
#: keys asked of the server by one MGET or one pipeline at most
_SLICE = 1000
#: how long a claim stays once its answer is stored (ms)
_LINGER_MS = 5_000
#: a row fetched later than now by more than this was written by a clock that was ahead
_SKEW = 60.0
_DICTIONARY = resources.files("enricher.state").joinpath("cache-records.zdict")
_VERDICT = {v: i for i, v in enumerate(VERDICTS)}

# KEYS: N answers, then their N claims, then the endpoint's mark; ARGV: N (value, PX)
# pairs, then the linger of a claim (ms). One script call a slice, not two pipelined
# commands a key: redis-py spent ~0.1 ms of CPU packing and parsing each command (5,000
# answers stored: 207 us of CPU a key in pipelines, 30 us in this script).
_STORE = """
local n = (#KEYS - 1) / 2
local longest = 1
for i = 1, n do
    local px = tonumber(ARGV[2 * i])
    redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', px)
    -- a claim outlives its answer a little: a job that missed the key just before it was
    -- stored finds it claimed (not free to ask), and looks again
    redis.call('PEXPIRE', KEYS[n + i], ARGV[2 * n + 1], 'LT')
    if px > longest then longest = px end
end
-- the mark lives as long as the longest-lived answer (GT: never shortened)
local mark = KEYS[2 * n + 1]
redis.call('SET', mark, 1, 'NX', 'PX', longest)
redis.call('PEXPIRE', mark, longest, 'GT')
return n
"""

# KEYS: claims to take; ARGV: this store's token, their PX. 1 for each taken (or held under
# our token already: renewed), else 0 (one script call, not a SET NX a key: as `_STORE`).
_CLAIM = """
local got = {}
for i, key in ipairs(KEYS) do
    if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
        got[i] = 1
    elseif redis.call('GET', key) == ARGV[1] then
        redis.call('PEXPIRE', key, ARGV[2])
        got[i] = 1
    else
        got[i] = 0
    end
end
return got
"""

# KEYS: claims to give back; ARGV[1]: this store's token. Only our own claims go.
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""


def _as_bytes(value: bytes | str) -> bytes:
    # the client is made without decode_responses: a value is bytes
    return value if isinstance(value, bytes) else value.encode()


class RedisAnswers:
    """Answers by (identity, endpoint, key), each served only to the identity that fetched
    it, in the Redis of `state`. `clock` stamps rows and is the clock of `max_age`: the
    server's (`SharedState.now`) unless given, so that a host whose clock is off neither
    writes rows the others take for stale or future, nor misreads theirs (a row's expiry
    is the server's)."""

    def __init__(
        self,
        state: SharedState,
        *,
        fmt: str = "",
        max_ttl: float = 30 * 86400.0,
        default_ttl: float = 86400.0,
        max_age: float | None = None,
        claim_ttl: float = 60.0,
        clock: Callable[[], float] | None = None,
        claim_token: str | None = None,
    ) -> None:
        self.state = state
        self.fmt = fmt
        self.max_ttl = max_ttl
        self.default_ttl = default_ttl
        self.max_age = max_age
        self.claim_ttl = claim_ttl
        self._clock = clock or state.now
        self._identity: ApiIdentity | None = None
        self._names: dict[ApiIdentity, str] = {}
        self._names_key = f"{state.prefix}:identities"
        #: the identities whose names are recorded beside their fingerprints
        self._recorded: set[ApiIdentity] = set()
        dictionary = zstandard.ZstdCompressionDict(_DICTIONARY.read_bytes())
        self._pack = zstandard.ZstdCompressor(level=3, dict_data=dictionary).compress
        self._unpack = zstandard.ZstdDecompressor(dict_data=dictionary).decompress
        #: what this store's claims hold: claims holding it are its own (a part of a cluster
        #: job run again is given its lost run's token, and takes over its claims)
        self._token = claim_token or secrets.token_hex(8)
        self._release = state.client.register_script(_RELEASE)
        self._store = state.client.register_script(_STORE)
        self._claim = state.client.register_script(_CLAIM)
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.unreadable = 0
        self.claimed = 0
        self.claimed_elsewhere = 0

    @property
    def identity(self) -> ApiIdentity | None:
        return self._identity

    def admit(self, identity: ApiIdentity) -> str:
        """Make `identity` known (its name is recorded with its first answer); its namespace."""
        self._names[identity] = self.state.namespace(identity)
        return self._names[identity]

    def bind(self, identity: ApiIdentity) -> None:
        """Serve, store and report for `identity` when none is given."""
        self.admit(identity)
        self._identity = identity

    def _namespace(self, identity: ApiIdentity | None) -> str:
        who = identity or self._identity
        if who is None:
            raise RuntimeError("RedisAnswers.bind(identity) first: answers belong to an identity")
        name = self._names.get(who)
        return name if name is not None else self.admit(who)

    async def unanswered_endpoints(self, *, identity: ApiIdentity | None) -> set[Endpoint]:
        """The endpoints the store holds no answer of `identity` for."""
        ns = self._namespace(identity)
        endpoints = list(Endpoint)
        marks = await self.state.call(self._marks(ns, endpoints))
        return {ep for ep, mark in zip(endpoints, marks, strict=True) if not mark}

    async def _marks(self, ns: str, endpoints: Sequence[Endpoint]) -> list[bool]:
        async with self.state.client.pipeline(transaction=False) as pipe:
            for ep in endpoints:
                pipe.exists(f"{ns}:has:{ep.value}")
            return [bool(n) for n in await pipe.execute()]

    async def answers(
        self, keys: Mapping[Endpoint, Sequence[str]], *, identity: ApiIdentity | None
    ) -> dict[Endpoint, dict[str, tuple[str, str, bytes]]]:
        """(verdict, record format, record line as a hit writes it) of the live answers of
        `identity` among `keys`, by endpoint; rows past `max_age` or not of their key are
        misses."""
        ns = self._namespace(identity)
        now = self._clock()
        oldest = now - self.max_ttl
        if self.max_age is not None:
            oldest = max(oldest, now - self.max_age)
        found: dict[Endpoint, dict[str, tuple[str, str, bytes]]] = {}
        for endpoint, wanted in keys.items():
            hits: dict[str, tuple[str, str, bytes]] = {}
            for i in range(0, len(wanted), _SLICE):
                part = wanted[i : i + _SLICE]
                names = [f"{ns}:a:{endpoint.value}:{key}" for key in part]
                values = await self.state.call(self.state.client.mget(names))
                for key, value in zip(part, values, strict=True):
                    if value is not None:
                        row = self._read(key, _as_bytes(value), oldest, now)
                        if row is not None:
                            hits[key] = row
            found[endpoint] = hits
            self.hits += len(hits)
            self.misses += len(wanted) - len(hits)
        return found

    def _read(
        self, key: str, value: bytes, oldest: float, now: float
    ) -> tuple[str, str, bytes] | None:
        try:
            verdict, fetched, size = _HEAD.unpack_from(value)
            fmt = value[_HEAD.size : _HEAD.size + size].decode()
            frame = value[_HEAD.size + size :]
            # a frame asking a window past what the writer's level needs (2 MiB) is none of
            # ours: refused before zstd sets its memory aside (one-shot decompress does not
            # apply max_window_size; a row whose header claimed 64 MiB in one segment cost 64
            # MiB a lookup)
            if zstandard.get_frame_parameters(frame).window_size > _WINDOW_MAX:
                raise zstandard.ZstdError("a window larger than the writer's")
            line = self._unpack(frame)
            if not (oldest < fetched <= now + _SKEW):
                return None
            if line.startswith(b'{"ioc":"%s",' % key.encode()):
                return VERDICTS[verdict], fmt, line
        except (struct.error, UnicodeDecodeError, IndexError, zstandard.ZstdError):
            pass
        self.unreadable += 1
        return None

    #: the Protocol's own: store_soon of the same answers
    store_lines_soon = AnswerStore.store_lines_soon

    async def store_soon(
        self,
        endpoint: Endpoint,
        items: Iterable[tuple[str, str, bytes, int | None]],
        *,
        identity: ApiIdentity | None,
    ) -> None:
        """Keep answers (key, verdict, record line, ttl in ms or None) of `identity`, each
        with its TTL, in one round trip per slice; their claims, if any, end soon after."""
        who = identity or self._identity
        ns = self._namespace(identity)
        now = self._clock()
        fmt = self.fmt.encode()
        rows: list[tuple[str, bytes, int]] = []
        for key, verdict, line, ttl_ms in items:
            ttl = min(self.max_ttl, ttl_ms / 1000 if ttl_ms is not None else self.default_ttl)
            if ttl <= 0:
                continue
            if line.endswith(FRESH_TAIL):
                line = line[: -len(FRESH_TAIL)] + CACHED_TAIL
            head = _HEAD.pack(_VERDICT.get(verdict, 3), now, len(fmt))
            rows.append((key, head + fmt + self._pack(line), max(1, int(ttl * 1000))))
        if not rows:
            return
        mark = f"{ns}:has:{endpoint.value}"
        if who is not None and who not in self._recorded:
            # the identity's name beside its fingerprint, for an operator
            fp = self.state.fingerprint(who)
            name = who.name(self.state.identity_key)
            await self.state.call(self.state.client.hset(self._names_key, fp, name))
            self._recorded.add(who)
        for i in range(0, len(rows), _SLICE):
            part = rows[i : i + _SLICE]
            answers = [f"{ns}:a:{endpoint.value}:{key}" for key, _, _ in part]
            claims = [f"{ns}:c:{endpoint.value}:{key}" for key, _, _ in part]
            args: list[bytes | int] = [x for _, value, px in part for x in (value, px)]
            await self.state.call(
                self._store(keys=[*answers, *claims, mark], args=[*args, _LINGER_MS])
            )
        self.stored += len(rows)

    async def claim(
        self, endpoint: Endpoint, keys: Sequence[str], *, identity: ApiIdentity | None = None
    ) -> list[str]:
        """The keys among `keys` this store now asks, and no other job: each taken for
        `claim_ttl` seconds unless another job holds it (then it is left out)."""
        ns = self._namespace(identity)
        px = max(1, int(self.claim_ttl * 1000))
        mine: list[str] = []
        for i in range(0, len(keys), _SLICE):
            part = keys[i : i + _SLICE]
            names = [f"{ns}:c:{endpoint.value}:{key}" for key in part]
            got = await self.state.call(self._claim(keys=names, args=[self._token, px]))
            mine.extend(key for key, ok in zip(part, got, strict=True) if ok)
        self.claimed += len(mine)
        self.claimed_elsewhere += len(keys) - len(mine)
        return mine

    async def release(
        self, endpoint: Endpoint, keys: Sequence[str], *, identity: ApiIdentity | None = None
    ) -> None:
        """Give back this store's claims on `keys` (not answered: another job may ask them)."""
        ns = self._namespace(identity)
        for i in range(0, len(keys), _SLICE):
            names = [f"{ns}:c:{endpoint.value}:{key}" for key in keys[i : i + _SLICE]]
            await self.state.call(self._release(keys=names, args=[self._token]))

    def tally(self, *, hits: int = 0, misses: int = 0) -> None:
        self.hits += hits
        self.misses += misses

    def report(self) -> dict[str, object]:
        """What the summary and the manifest say of the store (no size: Redis's own)."""
        return {
            "path": self.state.url,
            "identity": self._identity.name(self.state.identity_key) if self._identity else "",
            "size_bytes": None,
            "max_size_bytes": None,
            "hits": self.hits,
            "stored": self.stored,
            "purged": 0,
            "evicted": 0,
            "unreadable": self.unreadable,
            "broken": None,
            "not_kept": None,
            "claimed": self.claimed,
            "claimed_elsewhere": self.claimed_elsewhere,
        }

    async def aclose(self) -> None:
        """Nothing is left to store (`store_soon` waits for its writes); the connection is
        the `SharedState`'s, closed by its owner."""
