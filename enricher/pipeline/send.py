"""Send stage: a batch's keys asked, and what `resolve` decides of the answer carried out.

The run's workers take batches from the dispatch queue and call `Send.resolve` (the only
place a request is sent), which re-splits a batch a 413 made too large, then follows
`resolve.decide` on a failed request (split, bisect, fail a key, fail all, defer) and
`resolve.settle` on an answer, into a `Settled`. `Send.settle` then settles it in the ledger
and gives the outcome to hand on: the worker does both in one step, with no await between.
"""

from __future__ import annotations

import asyncio
from operator import itemgetter

from ..api.sender import Sender
from ..config.settings import Settings
from ..errors import BudgetSpent, RequestError, Stopping
from ..ioc import Endpoint
from ..output.records import record_line
from .batcher import Batcher, Key
from .ledger import Ledger
from .outcome import Outcome
from .resolve import (
    Bisect,
    Defer,
    FailAll,
    FailKey,
    LineMaker,
    Settled,
    Split,
    Tries,
    decide,
    settle,
)
from .stats import RunStats

__all__ = ["Send"]


class Send:
    """The send stage of one run: what its workers call."""

    def __init__(
        self,
        settings: Settings,
        sender: Sender,
        ledger: Ledger,
        batcher: Batcher,
        *,
        halting: asyncio.Event,
        make_line: LineMaker = record_line,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.ledger = ledger
        self.stats: RunStats = ledger.stats
        self.batcher = batcher
        #: set as the run begins to stop: waits for the limiter, the budget or a backoff end
        self.halting = halting
        #: how often keys came back unanswered (left out, or answered by entries that disagree)
        self.tries = Tries()
        self.origins = ledger.origins
        self.verdicts = settings.verdicts
        self.ttl_factor = 1000 if settings.api.ttl_unit == "s" else 1
        self.make_line = make_line

    def halted(self) -> str | None:
        """Why nothing more may be sent (stopping, a budget spent, cache only), or None."""
        return self.ledger.halted

    def settle(self, done: Settled) -> Outcome:
        """What became of a batch's keys, settled in the ledger (requeued ones go back to
        the batcher, still open); the outcome to hand on."""
        ledger = self.ledger
        requeue = self.batcher.requeue
        for key in done.requeue:
            requeue(key)
        stats = self.stats
        stats.requeued += len(done.requeue)
        stats.extra_entries += done.extra
        ledger.answered(done.keys, map(itemgetter(1), done.answered), cached=False)
        outcome = Outcome(
            lines=done.lines, answered=done.answered, failures=ledger.fail(done.failed)
        )
        for keys, why in done.deferred:
            outcome.deferred += ledger.defer(keys, why)
        return outcome

    async def resolve(self, endpoint: Endpoint, keys: list[Key], done: Settled) -> None:
        """Send `keys` and carry out what `resolve.decide` and `resolve.settle` make of the
        answer: each key is answered, failed, deferred or requeued in `done`."""
        if (why := self.ledger.halted) is not None:
            done.deferred.append((keys, why))
            return
        size = self.batcher.sizes[endpoint]
        if len(keys) > size:
            # a 413 elsewhere made batches smaller since these keys were batched
            for i in range(0, len(keys), size):
                await self.resolve(endpoint, keys[i : i + size], done)
            return
        try:
            parsed = await self.sender.fetch(
                endpoint, keys, stats=self.stats, halt=self.halted, halting=self.halting
            )
        except (BudgetSpent, Stopping, RequestError) as exc:  # not FatalError: it ends the run
            match decide(exc, keys):
                case Defer(reason):  # or QuotaExhausted: a 429 that says until when
                    self.ledger.halt(reason)
                    done.deferred.append((keys, reason))
                case FailAll():
                    assert isinstance(exc, RequestError)
                    done.fail(keys, exc, self.tries)
                case FailKey(culprit):
                    # the server says which key it refuses: fail that one, send the rest
                    assert isinstance(exc, RequestError)
                    done.fail([keys[culprit]], exc, self.tries)
                    await self.resolve(endpoint, keys[:culprit] + keys[culprit + 1 :], done)
                case Split(half):
                    # 413: use the smaller size from now on
                    self.stats.splits += 1
                    self.batcher.shrink(endpoint, half)
                    await self.resolve(endpoint, keys[:half], done)
                    await self.resolve(endpoint, keys[half:], done)
                case Bisect(half):
                    # 400: isolate the key(s) the server refuses; the others get their answers
                    self.stats.bisections += 1
                    await self.resolve(endpoint, keys[:half], done)
                    await self.resolve(endpoint, keys[half:], done)
            return
        settle(
            keys,
            parsed,
            self.tries,
            missing_attempts=self.settings.retry.missing_attempts,
            conflict_attempts=self.settings.retry.attempts,
            verdicts=self.verdicts,
            ttl_factor=self.ttl_factor,
            origins=self.origins,
            into=done,
            make_line=self.make_line,
        )
