"""The deferred list of each job, shared through Redis (`DeferredList`'s shape): the IOCs a
run of the job could not ask, which its next run (on any host) asks first.

What is shared: `NAMESPACE:deferred:JOB`, a list of `type TAB ioc TAB reason` entries.
Guarantees: `replace` is one script (atomic): a reader sees the old list or the new one,
never a mix; it takes out the entries this store `read` (the run asked them: answered, or
deferred again among `items`) and adds `items`, so entries another run of the same job
added meanwhile (the same `--job` on two hosts at once) stay. (A plain replacement lost
them: /tmp/attack15r/15_same_job_two_hosts.sh, 30 of 60 deferred IOCs left in the list.)
When Redis goes away: both calls raise `StateLost`; the run's deferred file still has the
IOCs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from ...ioc import IocType
from .connection import SharedState

__all__ = ["RedisDeferred", "waiting"]

# KEYS[1] the job's list; ARGV[1] how many entries (`type TAB ioc`) were read, then those,
# then the new entries (`type TAB ioc TAB reason`). The list becomes: the entries not read
# (another run's), then the new ones not already there, each IOC once.
_REPLACE = """
local function what(entry)
    local first = string.find(entry, '\t', 1, true)
    local second = first and string.find(entry, '\t', first + 1, true)
    return second and string.sub(entry, 1, second - 1) or entry
end
local n = tonumber(ARGV[1])
local gone = {}
for i = 2, n + 1 do gone[ARGV[i]] = true end
local kept, seen = {}, {}
local function add(entry)
    local w = what(entry)
    if not seen[w] then
        seen[w] = true
        kept[#kept + 1] = entry
    end
end
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    if not gone[what(entry)] then add(entry) end
end
for i = n + 2, #ARGV do add(ARGV[i]) end
redis.call('DEL', KEYS[1])
for i = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))
end
return #kept
"""


class RedisDeferred:
    """The deferred lists of the identity whose namespace is `namespace`, by job name."""

    def __init__(self, state: SharedState, namespace: str) -> None:
        self.state = state
        self.namespace = namespace
        self._replace = state.client.register_script(_REPLACE)
        #: by job: the entries (`type TAB ioc`) `read` gave, which `replace` takes out
        self._read: dict[str, list[str]] = {}

    def _key(self, job: str) -> str:
        return f"{self.namespace}:deferred:{job}"

    async def read(self, job: str) -> list[tuple[IocType, str]]:
        """The IOCs earlier runs of `job` deferred, in the order they were deferred."""
        rows = await self.state.call(self.state.client.lrange(self._key(job), 0, -1))
        out: list[tuple[IocType, str]] = []
        read = self._read.setdefault(job, [])
        for row in rows:
            t, ioc, _ = (row if isinstance(row, str) else row.decode()).split("\t", 2)
            with contextlib.suppress(ValueError):  # a type a later release added
                out.append((IocType(t), ioc))
                read.append(f"{t}\t{ioc}")
        return out

    async def replace(self, job: str, items: Sequence[tuple[str, str, str]]) -> None:
        """`job`'s list: what this store read of it becomes `items` (type, ioc, reason);
        what another run added since stays."""
        read = self._read.pop(job, [])
        entries = [f"{t}\t{ioc}\t{reason}" for t, ioc, reason in items]
        await self.state.call(
            self._replace(keys=[self._key(job)], args=[len(read), *read, *entries])
        )


def _glob(text: str) -> str:
    """`text` matched literally by a Redis glob pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode()


async def _keys(state: SharedState, pattern: str) -> list[str]:
    return sorted([_text(k) async for k in state.client.scan_iter(match=pattern, count=1000)])


async def waiting(
    state: SharedState, job: str | None = None, *, clear_quota: bool = False
) -> tuple[list[tuple[str, str, str, str, str]], list[tuple[str, float]]]:
    """What every identity's jobs deferred, for `enricher deferred`: (identity, job, type,
    ioc, reason) rows, of one job or of all, and the spent quotas, (identity, until),
    deleted with `clear_quota`."""
    client = state.client
    found = await state.call(client.hgetall(f"{state.prefix}:identities"))
    names = {_text(k): _text(v) for k, v in found.items()}
    head = f"{_glob(state.prefix)}:*:"
    rows: list[tuple[str, str, str, str, str]] = []
    pattern = head + "deferred:" + (_glob(job) if job is not None else "*")
    for key in await state.call(_keys(state, pattern)):
        # PREFIX:FINGERPRINT:deferred:JOB (a prefix holds no colon, a fingerprint is hex)
        fp, _, name = key[len(state.prefix) + 1 :].split(":", 2)
        for entry in await state.call(client.lrange(key, 0, -1)):
            t, ioc, why = _text(entry).split("\t", 2)
            rows.append((names.get(fp, f"#{fp}"), name, t, ioc, why))
    quotas: list[tuple[str, float]] = []
    now = time.time()
    for key in await state.call(_keys(state, head + "quota")):
        until = await state.call(client.get(key))
        if until is not None and float(until) > now:
            fp = key[len(state.prefix) + 1 :].split(":", 1)[0]
            quotas.append((names.get(fp, f"#{fp}"), float(until)))
        if clear_quota:
            await state.call(client.delete(key))
    return rows, sorted(quotas, key=lambda q: q[1])
