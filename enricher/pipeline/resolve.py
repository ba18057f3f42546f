"""What becomes of a batch's keys, decided without I/O: the policy of the send stage.

Two pure functions (`tries` aside, which remembers across batches), tested case by case:

- `decide(error, keys)`: a request for `keys` failed with `error`. Send again in halves and
  no larger from now on (`Split`, a 413), send the halves apart to corner the key(s) the
  server refuses (`Bisect`, a 400 naming none), fail the key a 400 names and send the rest
  (`FailKey`), stop sending and defer (`Defer`: the budget or the quota is spent, the run
  is stopping), or fail them all (`FailAll`: retries spent, or a batch of one refused).
- `settle(keys, parsed, tries, ...)`: an answer came. Which keys it answered (their record
  lines made), which go back for a later batch (left out of the answer, or answered by
  entries that disagree) and which fail (that happened too often, or the answer holds our
  secret).

The send stage carries the decisions out; the run's `Ledger` settles what they give.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ..api.protocol import Entry, ParsedResponse
from ..errors import BadRequest, BatchTooLarge, BudgetSpent, RequestError, Stopping
from ..ioc import IocType
from ..output.records import C_ANSWER_LINES as _C_ANSWER_LINES
from ..output.records import C_TABLE_LINES as _C_TABLE_LINES
from ..output.records import record_line
from .batcher import Key

__all__ = [
    "ECHOED",
    "MISSING",
    "Bisect",
    "Decision",
    "Defer",
    "FailAll",
    "FailKey",
    "LineMaker",
    "Settled",
    "Split",
    "Tries",
    "decide",
    "failure_of",
    "settle",
]

#: the failure of a key whose answer holds one of our secrets where it cannot be taken out
ECHOED = (
    "secret_in_answer: the answer holds our credentials in its requestKey, a field name or"
    " its classification; not written (nor cached)"
)
#: the failure of a key no answer gave an entry for, however often asked
MISSING = "missing: left out of every answer"


@dataclass(frozen=True, slots=True)
class Split:
    """413: the batch is too large. Send it in halves of `size`, and no larger from now on."""

    size: int


@dataclass(frozen=True, slots=True)
class Bisect:
    """400 naming no key: send `keys[:size]` and `keys[size:]` apart, to corner the refused."""

    size: int


@dataclass(frozen=True, slots=True)
class FailKey:
    """400 naming `requestData[index]`: that key fails; the others are sent again."""

    index: int


@dataclass(frozen=True, slots=True)
class FailAll:
    """Every key fails (retries spent, or a batch of one refused)."""


@dataclass(frozen=True, slots=True)
class Defer:
    """Nothing more may be sent (the budget or the quota spent, the run stopping): these
    keys are deferred for `reason`, and so is every key after them."""

    reason: str


Decision = Split | Bisect | FailKey | FailAll | Defer

#: how a record line is made (`records.record_line`'s signature)
LineMaker = Callable[
    [IocType, str, Entry, bytes, Mapping[str, str], int, bool, tuple[str, int] | None],
    tuple[bytes, str, int | None],
]

_INDEX = re.compile(r"requestData\[(\d+)\]")
#: no answers: those of a plain body all made by `_C_TABLE_LINES`
_NONE: Mapping[str, tuple[Entry, bytes]] = MappingProxyType({})


def decide(error: RequestError | BudgetSpent | Stopping, keys: Sequence[Key]) -> Decision:
    """What to do with `keys` after a request for them failed with `error` (its retries, where
    a retry could help, spent)."""
    if isinstance(error, BudgetSpent | Stopping):  # QuotaExhausted is a BudgetSpent
        return Defer(str(error))
    if not isinstance(error, BatchTooLarge | BadRequest) or len(keys) == 1:
        return FailAll()
    if isinstance(error, BadRequest):
        # the server may say which key it refuses: `... at requestData[3]`
        found = _INDEX.search(error.cause) if error.cause else None
        if found is not None and int(found.group(1)) < len(keys):
            return FailKey(int(found.group(1)))
        return Bisect(len(keys) // 2)
    return Split(len(keys) // 2)


def failure_of(error: RequestError) -> tuple[str, int]:
    """The error a key failed by `error` is written with, and the attempts it took."""
    return f"{error.kind}: {error}", max(error.attempts, 1)


@dataclass(slots=True)
class Tries:
    """How often a key came back unanswered, across the batches it went in (a run's)."""

    #: left out of an answer
    missing: dict[str, int] = field(default_factory=dict)
    #: answered by entries that disagree
    conflicts: dict[str, int] = field(default_factory=dict)

    def forget(self, keys: Sequence[Key]) -> None:
        """Keys settled otherwise (failed): no more tries to count."""
        missing, conflicts = self.missing, self.conflicts
        if missing or conflicts:
            for _, value in keys:
                missing.pop(value, None)
                conflicts.pop(value, None)


@dataclass(slots=True)
class Settled:
    """What became of a batch's keys (or its parts, after a split), for the ledger."""

    #: answered keys, their record lines and (ioc, verdict, ttl in ms), in one order
    keys: list[Key] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    answered: list[tuple[str, str, int | None]] = field(default_factory=list)
    #: to ask again in a later batch
    requeue: list[Key] = field(default_factory=list)
    #: (key, error, attempts): given up on
    failed: list[tuple[Key, str, int]] = field(default_factory=list)
    #: keys not sent, and why
    deferred: list[tuple[Sequence[Key], str]] = field(default_factory=list)
    #: answer entries of no use (answers to keys nobody asked for, duplicates, unusable)
    extra: int = 0

    def fail(self, keys: Sequence[Key], error: RequestError, tries: Tries) -> None:
        """`keys` fail with `error`."""
        why, attempts = failure_of(error)
        self.failed += [(key, why, attempts) for key in keys]
        tries.forget(keys)


def settle(
    keys: Sequence[Key],
    parsed: ParsedResponse,
    tries: Tries,
    *,
    missing_attempts: int,
    conflict_attempts: int,
    verdicts: Mapping[str, str],
    ttl_factor: int = 1,
    origins: Mapping[str, tuple[str, int]] | None = None,
    into: Settled | None = None,
    make_line: LineMaker = record_line,
) -> Settled:
    """Sort a batch's keys by what the answer `parsed` did with them (into `into`, else a
    new `Settled`).

    An answered key gets its record line (`make_line`; `origins`: where keys were first
    seen). A key the answer gave no entry for is asked again, `missing_attempts` times
    at most; one it gave entries that disagree for, like a malformed answer, fewer than
    `conflict_attempts` times in all (never cached); then it fails. A key whose entry holds
    our secret fails at once. `tries` is updated (and forgets the keys settled).
    """
    out = Settled() if into is None else into
    missing, conflicting = tries.missing, tries.conflicts
    done_keys, lines, answered = out.keys, out.lines, out.answered
    requeue, failed = out.requeue, out.failed
    n = 0
    in_c = make_line is record_line and not origins
    rest = None
    start = len(done_keys)
    plain = parsed.plain
    if plain is not None and in_c and _C_TABLE_LINES is not None:
        # a plain body: the answered keys' lines in C straight from its bytes (the loop
        # below, without an entry made nor a step a key); the loop then sorts the others,
        # which it did not answer
        rest = _C_TABLE_LINES(
            plain.body, plain.table, keys if type(keys) is list else list(keys),
            verdicts, ttl_factor, done_keys, lines, answered,
        )  # fmt: skip
    answers: Mapping[str, tuple[Entry, bytes]] = _NONE if rest is not None else parsed.answers
    if rest is None and in_c and _C_ANSWER_LINES is not None:
        # the answered keys' lines in C (the loop below, without a step a key); the loop
        # then sorts the others
        rest = _C_ANSWER_LINES(
            keys if type(keys) is list else list(keys),
            answers, verdicts, ttl_factor, done_keys, lines, answered,
        )  # fmt: skip
    conflicts = parsed.conflicts
    echoed = parsed.echoed
    if rest is not None:
        n = len(done_keys) - start
        if n and (missing or conflicting):
            for _, value in done_keys[start:]:
                missing.pop(value, None)
                conflicting.pop(value, None)
        keys = rest
    for key in keys:
        value = key[1]
        hit = answers.get(value)
        if hit is not None:
            n += 1
            origin = origins.get(value) if origins else None
            line, verdict, ttl_ms = make_line(
                key[0], value, hit[0], hit[1], verdicts, ttl_factor, False, origin
            )
            done_keys.append(key)
            lines.append(line)
            answered.append((value, verdict, ttl_ms))
            if missing:
                missing.pop(value, None)
            if conflicting:
                conflicting.pop(value, None)
            continue
        if value in conflicts:
            tried = conflicting.get(value, 0) + 1
            if tried < conflict_attempts:
                conflicting[value] = tried
                requeue.append(key)
            else:
                conflicting.pop(value, None)
                why = f"conflicting_answers: {tried} answers each gave it entries that disagree"
                failed.append((key, why, tried))
            continue
        if echoed and value in echoed:
            # taking our secret out would change the key or the verdict: no answer
            missing.pop(value, None)
            failed.append((key, ECHOED, 1))
            continue
        tried = missing.get(value, 0) + 1
        if tried > missing_attempts:
            missing.pop(value, None)
            failed.append((key, MISSING, tried))
        else:
            missing[value] = tried
            requeue.append(key)
    out.extra += parsed.extra(n)
    return out
