"""What users write by hand: the clients the engine is compared with.

Honest, simple code of the kind the public clients are made of (see "How public clients use it"
in the API notes): read the file, drop blank lines and repeats with a dict, tell the endpoint
by the shape of the value, post, and keep each answer entry under the key it echoes. None of
them retries; a request that fails (an exception, a status other than 200, a body that is not
the expected JSON) loses its keys and the client goes on with the next, as a user's
`try/except` around each call would.

- `one_by_one`: one key per request, in sequence, like the public async SDK and the PowerShell
  module. Bounded by a key count and a time limit, since it would take hours on a real export.
- `all_in_one`: every key in one request per endpoint, no chunking, like the SOAR connector.
- `gather_semaphore`: batches of 500, `asyncio.gather` over all of them, an
  `asyncio.Semaphore` to keep N in flight; no retries, no rate limiting.

Each returns a `Result`; `correct` counts the answers that are right (the emulator's answer is
a pure function of the key), so a run against a faulty emulator shows what each one lost.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from enricher.emulator import classification_of

__all__ = [
    "BASELINES",
    "Result",
    "all_in_one",
    "gather_semaphore",
    "load",
    "one_by_one",
    "run",
]

_HEX = re.compile(r"[0-9a-fA-F]+")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_HASH_NAMES = {32: "md5", 40: "sha1", 64: "sha256"}
_HEADERS = {"Content-Type": "application/json"}


def key_of(value: str) -> tuple[str, dict[str, str]]:
    """The endpoint and `requestKey` for one IOC, told by its shape."""
    if len(value) in _HASH_NAMES and _HEX.fullmatch(value):
        return "file_batch", {_HASH_NAMES[len(value)]: value}
    if _IPV4.fullmatch(value):
        return "ip_batch", {"ipAddress": value, "addressType": "Ipv4"}
    if ":" in value:
        return "ip_batch", {"ipAddress": value, "addressType": "Ipv6"}
    return "domain_batch", {"domain": value}


def load(path: Path) -> dict[str, list[dict[str, str]]]:
    """The unique IOCs of a file, as `requestKey`s grouped by endpoint."""
    with path.open(encoding="utf-8") as f:
        unique = dict.fromkeys(s for line in f if (s := line.strip()))
    grouped: dict[str, list[dict[str, str]]] = {}
    for value in unique:
        endpoint, key = key_of(value)
        grouped.setdefault(endpoint, []).append(key)
    return grouped


def _echoed(key: dict[str, Any]) -> str | None:
    found = (
        key.get("md5") or key.get("sha1") or key.get("sha256") or key.get("domain")
        or key.get("ipAddress")
    )  # fmt: skip
    return found if isinstance(found, str) else None


@dataclass
class Result:
    asked: int = 0
    requests: int = 0
    failed_requests: int = 0
    seconds: float = 0.0  # reading the file included
    load_seconds: float = 0.0  # reading the file and grouping the keys
    answers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def correct(self) -> int:
        """Answers whose classification is the emulator's answer for that key."""
        right = 0
        for (endpoint, key), entry in self.answers.items():
            try:
                got = entry["aggregatedResult"]["maliciousClassification"]["type"]
            except (KeyError, TypeError):
                continue
            right += got == classification_of(endpoint, key)
        return right


async def _post(
    session: aiohttp.ClientSession,
    base_url: str,
    endpoint: str,
    keys: list[dict[str, str]],
    result: Result,
) -> None:
    """One request; its answers go into `result`, or it counts as failed."""
    result.requests += 1
    body = orjson.dumps({"requestData": [{"requestKey": k} for k in keys]})
    try:
        async with session.post(f"{base_url}/{endpoint}", data=body, headers=_HEADERS) as r:
            if r.status != 200:
                result.failed_requests += 1
                return
            answer = orjson.loads(await r.read())
        for entry in answer["classificationResponses"]:
            key = _echoed(entry["requestKey"])
            if key is not None:
                result.answers[endpoint, key] = entry
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, KeyError, TypeError):
        result.failed_requests += 1


async def one_by_one(
    base_url: str, grouped: dict[str, list[dict[str, str]]], *, max_keys: int, max_seconds: float
) -> Result:
    """One key per request, in sequence, until `max_keys` keys or `max_seconds` have passed
    (the endpoints in turn, so the subset has every kind)."""
    result = Result()
    deadline = time.perf_counter() + max_seconds
    queues = [[(endpoint, key) for key in keys] for endpoint, keys in grouped.items()]
    subset = [pair for row in zip(*queues, strict=False) for pair in row][:max_keys]
    async with aiohttp.ClientSession() as session:
        for endpoint, key in subset:
            if time.perf_counter() >= deadline:
                break
            result.asked += 1
            await _post(session, base_url, endpoint, [key], result)
    return result


async def all_in_one(base_url: str, grouped: dict[str, list[dict[str, str]]]) -> Result:
    """Every key of an endpoint in one request."""
    result = Result()
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for endpoint, keys in grouped.items():
            result.asked += len(keys)
            await _post(session, base_url, endpoint, keys, result)
    return result


async def gather_semaphore(
    base_url: str, grouped: dict[str, list[dict[str, str]]], *, batch: int = 500,
    concurrency: int = 8,
) -> Result:  # fmt: skip
    """Batches of `batch` keys, all gathered at once, `concurrency` in flight."""
    result = Result()
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def send(endpoint: str, keys: list[dict[str, str]]) -> None:
            async with limit:
                await _post(session, base_url, endpoint, keys, result)

        tasks = []
        for endpoint, keys in grouped.items():
            result.asked += len(keys)
            for i in range(0, len(keys), batch):
                tasks.append(send(endpoint, keys[i : i + batch]))
        await asyncio.gather(*tasks)
    return result


Baseline = Callable[[str, dict[str, list[dict[str, str]]]], Coroutine[Any, Any, Result]]

BASELINES: dict[str, str] = {
    "one_by_one": "one key per request, in sequence (public SDK, PowerShell module)",
    "all_in_one": "all keys in one request per endpoint (SOAR connector)",
    "gather_semaphore": "asyncio.gather over batches of 500 with a Semaphore(8), no retries",
}


def run(name: str, base_url: str, path: Path, **options: Any) -> Result:
    """Run one baseline over the unique IOCs of `path`; the clock covers reading the file too,
    as it does for the engine."""
    chosen: Baseline = {"one_by_one": one_by_one, "all_in_one": all_in_one,
                        "gather_semaphore": gather_semaphore}[name]  # type: ignore[assignment]  # fmt: skip
    started = time.perf_counter()
    grouped = load(path)
    loaded = time.perf_counter()
    result = asyncio.run(chosen(base_url, grouped, **options))
    result.seconds = time.perf_counter() - started
    result.load_seconds = loaded - started
    return result
