"""A transport of our own that meets `enricher.api.transport.Transport`: it answers from a
dict, with no network, and faults on demand. What the pipeline does with an answer, a fault
or a refusal is tested with it, without a server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson

from enricher.api.protocol import ParsedResponse
from enricher.emulator.answers import answer_body, entry_for
from enricher.errors import BadRequest, BatchTooLarge
from enricher.ioc import ENDPOINT_OF, Endpoint
from enricher.pipeline.normalize import normalize

_E = TypeVar("_E", bound=Exception)

#: what a fault hook is told of a post (the endpoint, its keys in order, and how many times
#: this very body was posted before); an exception to raise, or None to answer
Fault = Callable[[Endpoint, list[str], int], Exception | None]


def answers_for(iocs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The emulator's entry for each IOC (normalized), by key."""
    found = {}
    for ioc in iocs:
        ioc_type, key = normalize(ioc)
        assert ioc_type is not None, ioc
        found[key] = entry_for(ENDPOINT_OF[ioc_type], key)
    return found


def classification(entry: dict[str, Any]) -> str:
    kind: str = entry["aggregatedResult"]["maliciousClassification"]["type"]
    return kind


def _key(request_key: dict[str, str]) -> str:
    return next(v for name, v in request_key.items() if name != "addressType")


class FakeTransport:
    """Answers each key from `answers`; `fault` may raise instead (see `Fault`). A batch of
    more than `max_keys` is a 413; one holding a key of `refuse` a 400 that names it; keys of
    `leave_out` are never in an answer."""

    def __init__(
        self,
        answers: dict[str, dict[str, Any]],
        *,
        fault: Fault | None = None,
        max_keys: int | None = None,
        refuse: Iterable[str] = (),
        leave_out: Iterable[str] = (),
    ) -> None:
        self.answers = answers
        self.fault = fault
        self.max_keys = max_keys
        self.refuse = set(refuse)
        self.leave_out = set(leave_out)
        #: each post: the endpoint and the keys it asked
        self.posts: list[tuple[Endpoint, list[str]]] = []
        #: times each key was in a post that was answered
        self.answered: Counter[str] = Counter()
        self.opened = self.closed = 0
        self._seen: Counter[bytes] = Counter()

    async def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1

    async def post(self, endpoint: Endpoint, body: bytes) -> bytes:
        keys = [_key(item["requestKey"]) for item in orjson.loads(body)["requestData"]]
        self.posts.append((endpoint, keys))
        before = self._seen[body]
        self._seen[body] += 1
        if self.fault is not None and (exc := self.fault(endpoint, keys, before)) is not None:
            raise exc
        if self.max_keys is not None and len(keys) > self.max_keys:
            raise BatchTooLarge()
        for i, key in enumerate(keys):
            if key in self.refuse:
                raise BadRequest(f"invalid key at requestData[{i}]")
        entries = [self.answers[k] for k in keys if k in self.answers and k not in self.leave_out]
        self.answered.update(k for k in keys if k in self.answers and k not in self.leave_out)
        return answer_body(entries)

    def redact(self, exc: _E) -> _E:
        return exc

    def scrub(self, parsed: ParsedResponse, body: bytes) -> int:
        return 0
