"""Ingest stage: lines in, unique keys admitted to the ledger (normalize, dedupe, withhold).

One chunk at a time, synchronously (the hot loop: plain, no awaits): a line that is no IOC
is a reject with its reason (or gives the IOCs inside it); a duplicate, or an IOC an earlier
run wrote, is counted and dropped; an internal one is withheld (skipped) and sha256 with
`send_sha256` off is unsupported, both settled at once; the rest are new keys, open in the
ledger from then on, for the cache and the batcher.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..inputs import Chunk
from ..inputs.suffixes import INTERNAL_SUFFIXES, name_problem, top_labels
from ..ioc import IocType
from ..lazy import lazy_function
from ..output.records import Reject, failure
from ..output.records import skipped as skipped_item
from .batcher import Key
from .dedupe import Deduper, PlainTaker, Screen
from .ledger import Ledger
from .normalize import normalize
from .outcome import Outcome
from .privacy import Privacy, name_reason
from .stats import RunStats

__all__ = ["Ingest"]

# the extractor's tables and patterns (25 M instructions) are built once a line is no IOC
extract = lazy_function("enricher.inputs.extract", "extract")

_REJECT_SNIPPET = 200
#: lines remembered as holding no IOC (`Ingest.no_ioc`), at most; then forgotten all at once
_NO_IOC_MAX = 4096
#: and only those this long at most (the few an export repeats are short): 4,096 lines of up
#: to `max_line_bytes` (1 MiB) each, all different, were kept until the memo filled (attack-atm:
#: 300 junk lines of 620 KB, peak RSS 60 -> 250 MB)
_NO_IOC_LONGEST = 256
#: never withheld (the privacy rule is about names and addresses): not asked, a call saved
#: on every new hash
_HASHES = frozenset((IocType.MD5, IocType.SHA1, IocType.SHA256))


class Ingest:
    """The ingest stage of one run."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        withhold: Callable[[IocType, str], str | None],
        done: Deduper | None = None,
        send_sha256: bool = False,
        with_source: bool = False,
    ) -> None:
        self.ledger = ledger
        self.stats: RunStats = ledger.stats
        #: every key seen (what `Enricher.reached` asks)
        self.deduper = Deduper()
        #: keys an earlier run already wrote (`--resume`): skipped
        self.done = done
        #: why an IOC is withheld (`Privacy.reason`), or None
        self.withhold = withhold
        self.send_sha256 = send_sha256
        #: records say where their IOC was first seen, and occurrences are counted
        self.with_source = with_source
        self.origins = ledger.origins  # key -> where first seen, until settled
        self.occurrences: Counter[str] = Counter()
        self._plain: PlainTaker | None = None
        self._plain_made = False
        #: lines (stripped, at most `_NO_IOC_LONGEST` long) that are no IOC and hold none,
        #: with the reason: exports repeat the same few (`N/A`, `-`, `unknown`), each of which
        #: costs `normalize`'s slow path and `extract` (several µs) the first time only
        self.no_ioc: dict[str, str] = {}

    def take(self, chunk: Chunk) -> tuple[Outcome, list[Key]]:
        """Normalize and dedupe one chunk of lines (the hot loop: plain, no awaits); the new
        keys to answer.

        A line that is no IOC gives the IOCs inside it (`MD5=…,SHA256=…`, `evil.com:99999`,
        `fe80::1%eth0`), as a chosen cell or field does, or else it is a reject with its reason.
        """
        stats = self.stats
        outcome = Outcome()
        fresh: list[Key] = []  # keys the deduper had not held, in the order of their lines
        fresh_at: list[int] = []  # with_source: the index of each one's line
        flagged: list[int] = []  # the index in `fresh` of each key to look at again
        adders = self.deduper.adders
        done = self.done
        domain = IocType.DOMAIN
        with_source = self.with_source
        occurrences = self.occurrences
        no_ioc = self.no_ioc
        skipped = dups = 0
        inside: list[str | None] = []  # the IOCs inside lines that are none
        inside_lines: list[int] = []
        lines = chunk.lines
        count = len(lines)
        # plain lines in C, in runs, each line it does not decide taken here in turn; not
        # with sources, which are counted a line at a time
        plain = None if with_source else self._plain_taker()
        at = 0
        while at < count:
            if plain is not None:
                at, skipped_more, dups_more = plain(lines, at, fresh, flagged)
                skipped += skipped_more
                dups += dups_more
                if at >= count:
                    break
            i = at
            at += 1
            text = lines[i]
            if text is None:
                self.reject(outcome, chunk, i, None, chunk.errors.get(i, "unreadable line"))
                continue
            stripped = text.strip()
            if not stripped or stripped[0] == "#":
                skipped += 1
                continue
            why = no_ioc.get(stripped)
            if why is not None:
                self.reject(outcome, chunk, i, stripped, why)
                continue
            ioc_type, value = normalize(stripped)
            if ioc_type is None:
                found = extract(stripped)
                if found:
                    inside += found
                    inside_lines += [chunk.line_of(i)] * len(found)
                else:
                    if len(stripped) <= _NO_IOC_LONGEST:
                        if len(no_ioc) >= _NO_IOC_MAX:
                            no_ioc.clear()
                        no_ioc[stripped] = value
                    self.reject(outcome, chunk, i, stripped, value)
                continue
            if (
                ioc_type is domain
                and (why := name_problem(value)) is not None
                and name_reason(value) is None
            ):
                # no public suffix (`invoice.pdf`) or a suffix alone: never sent, whichever
                # format it came in (an internal name, `.local`, is one: see `privacy`)
                self.reject(outcome, chunk, i, stripped, why)
                continue
            if with_source:
                occurrences[value] += 1
            if not adders[ioc_type](value):
                dups += 1
                continue
            flagged.append(len(fresh))
            fresh.append((ioc_type, value))
            if with_source:
                fresh_at.append(i)
        if done is None and not with_source:
            new = self.screened(fresh, flagged, outcome)
        else:
            new = self.kept_each(chunk, fresh, fresh_at, outcome)
        stats.lines_read += len(chunk.lines) if chunk.lines_read is None else chunk.lines_read
        if chunk.damaged is not None:
            stats.inputs_damaged.append(f"{chunk.source}: {chunk.damaged}")
        if chunk.nbytes:
            stats.bytes_read += chunk.nbytes
        stats.skipped += skipped
        stats.duplicates += dups
        self.ledger.admit(new)
        self.ledger.withheld(internal=len(outcome.skipped), unsupported=len(outcome.failures))
        if inside:  # canonical values: taken as they are, each on the line it was in
            more, more_new = self.take(
                Chunk(
                    chunk.source, inside_lines[0], inside, line_numbers=inside_lines, lines_read=0
                )
            )
            outcome.extend(more)
            new += more_new
        return outcome, new

    def kept_each(
        self, chunk: Chunk, fresh: list[Key], fresh_at: list[int], outcome: Outcome
    ) -> list[Key]:
        """`screened` a key at a time, for a run with keys already done (`--resume`) or
        with sources: the keys of `fresh` to ask, those done counted and skipped."""
        done, with_source, origins = self.done, self.with_source, self.origins
        new: list[Key] = []
        already = 0
        for n, key in enumerate(fresh):
            if done is not None and key in done:
                already += 1
                continue
            where = (chunk.source, chunk.line_of(fresh_at[n])) if with_source else None
            if self.held(key, outcome, where):
                continue
            if where is not None:
                origins[key[1]] = where
            new.append(key)
        self.stats.already_done += already
        return new

    def screened(self, fresh: list[Key], flagged: list[int], outcome: Outcome) -> list[Key]:
        """The keys of `fresh` to ask, in their order: all but those withheld (the privacy
        rule) and sha256 with `send_sha256` off, each settled in `outcome`. Only the keys at
        `flagged` (ascending) are looked at: the rest are none of those (the screen)."""
        if not flagged:
            return fresh
        held = self.held
        new: list[Key] = []
        kept = 0  # fresh[:kept] is decided
        for n in flagged:
            if not held(fresh[n], outcome, None):
                continue
            new += fresh[kept:n]
            kept = n + 1
        if not kept:
            return fresh
        new += fresh[kept:]
        return new

    def held(self, key: Key, outcome: Outcome, where: tuple[str, int] | None) -> bool:
        """Whether `key` is not asked: withheld by the privacy rule (a skipped item, its line
        `where`) or a sha256 with `send_sha256` off (an unsupported failure), in `outcome`."""
        ioc_type, value = key
        if ioc_type not in _HASHES:
            why = self.withhold(ioc_type, value)
            if why is None:
                return False
            outcome.skipped.append(skipped_item(ioc_type, value, why, where))
            return True
        if ioc_type is IocType.SHA256 and not self.send_sha256:
            outcome.failures.append(failure(ioc_type, value, "unsupported", 0))
            return True
        return False

    def _plain_taker(self) -> PlainTaker | None:
        """The deduper's step for plain lines in C (`Deduper.plain_taker`), made at the first
        chunk (the public suffix tables are built by then), or None where there is none."""
        if not self._plain_made:
            # names under these top labels are never refused by `name_problem`
            self._plain = self.deduper.plain_taker(
                top_labels()[0] - INTERNAL_SUFFIXES, self._screen()
            )
            self._plain_made = True
        return self._plain

    def _screen(self) -> dict[IocType, Screen]:
        """Which new keys of each type the plain step flags for `screened` to look at: sha256
        with `send_sha256` off; names and addresses as `Privacy.screen` says where the rule
        is a `Privacy`'s, else all of them."""
        withhold = self.withhold
        owner = getattr(withhold, "__self__", None)
        if isinstance(owner, Privacy) and getattr(withhold, "__func__", None) is Privacy.reason:
            screen = owner.screen()
        else:
            screen = dict.fromkeys((IocType.DOMAIN, IocType.IPV4, IocType.IPV6), True)
        screen[IocType.SHA256] = None if self.send_sha256 else True
        return screen

    def reject(self, outcome: Outcome, chunk: Chunk, i: int, text: str | None, why: str) -> None:
        self.stats.rejected += 1
        self.stats.reject_reasons[why] += 1
        outcome.rejects.append(
            Reject(
                source=chunk.source,
                line=chunk.line_of(i),
                input=None if text is None else text[:_REJECT_SNIPPET],
                reason=why,
            )
        )
