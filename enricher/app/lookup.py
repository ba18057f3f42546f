"""`enricher lookup IOC [IOC ...]`: a few IOCs asked at once, for an analyst at a terminal.

The same path as a run's: each argument normalized (defanged forms, URLs, e-mail addresses
too), duplicates asked once, answers served from the cache and stored in it, requests sent
through the rate limiter and counted against the daily budget. A table on standard output
(IOC, type, verdict, classification, score, link; an IOC given twice is one row), or with
`--json` one JSON line per argument, in order, for scripts: the argument as `input`, then the
run's record, failure, deferred or skipped line, or for an argument that is no IOC its
`error`; an argument whose IOC an earlier one gave has that one as `duplicate_of`. The
privacy rule is the run's (see `privacy`): an internal address or name is never sent, it is
shown "skipped (internal)" with its reason.

Exit codes as a run's: 0 every IOC answered (or withheld); 2 an IOC failed or was not asked
(budget or quota spent), even when an argument is no IOC too; 1 an argument is no IOC (the
others are answered); 3 fatal (credentials refused, standard output closed). One line on
stderr says each.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from ..config.settings import Settings
from ..errors import FatalError
from ..ioc import IocType
from ..output.files import write_stdout
from ..output.inert import inert, inert_json
from ..output.records import Unbounded
from ..pipeline.normalize import normalize
from ..pipeline.run import Enricher
from ..state.budget import Budget
from ..threads import call_in_thread
from .job import (
    EXIT_FAILURES,
    EXIT_FATAL,
    EXIT_OK,
    EXIT_USAGE,
    Job,
    caches_answers,
    embedded_emulator,
    open_job_state,
    save_state,
    warn_send_internal,
)

__all__ = ["Lookup", "format_table", "run_lookup"]

_COLUMNS = ("IOC", "TYPE", "VERDICT", "CLASSIFICATION", "SCORE", "LINK")
#: ANSI colours of the verdicts, on a terminal only (and not with NO_COLOR set)
_COLOUR = {"malicious": "31;1", "suspicious": "33", "benign": "32"}


@dataclass(frozen=True, kw_only=True)
class Lookup:
    iocs: Sequence[str]
    as_json: bool = False
    emulator: bool = False
    use_cache: bool = True
    cache_path: str | None = None
    max_age: float | None = None


def _row(item: dict[str, Any]) -> tuple[str, ...]:
    """A table row, safe to print on a terminal (see `inert`)."""
    return tuple(inert(cell) for cell in _cells(item))


def _cells(item: dict[str, Any]) -> tuple[str, ...]:
    """A table row: a record, a failure, a deferred or withheld IOC or an argument that is
    no IOC."""
    if "input" in item:
        reason = item["error"].removeprefix("not an IOC: ")
        return (item["input"], "-", "not an IOC", reason, "", "")
    if "error" in item:
        return (item["ioc"], item["type"], "failed", item["error"], "", "")
    if "reason" in item:
        return (item["ioc"], item["type"], "not asked", item["reason"], "", "")
    if "skipped" in item:
        return (item["ioc"], item["type"], "skipped (internal)", item["skipped"], "", "")
    score = "" if item["score"] is None else str(item["score"])
    cached = " (cached)" if item.get("cached") else ""
    return (
        item["ioc"],
        item["type"],
        item["verdict"] + cached,
        item["classification"] or "",
        score,
        item["link"] or "",
    )


def format_table(items: Sequence[dict[str, Any]], *, colour: bool = False) -> str:
    """The items as an aligned text table with a header (the last column, the link, is not
    padded: a long link wraps on its own line, not the table)."""
    rows = [_COLUMNS, *(_row(item) for item in items)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        verdict = row[2].split(" ")[0]
        if colour and n and verdict in _COLOUR:
            cells[2] = f"\x1b[{_COLOUR[verdict]}m{cells[2]}\x1b[0m"
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


async def run_lookup(lookup: Lookup, settings: Settings) -> int:
    """Look the IOCs up, print the answers in the order given on standard output; the exit
    code."""
    order: list[tuple[IocType, str] | str] = []  # each argument's IOC, or the argument
    bad: dict[str, str] = {}
    for text in lookup.iocs:
        kind, value = normalize(text)
        if kind is None:
            bad[text] = value
            order.append(text)
        else:
            order.append((kind, value))
    wanted = list(dict.fromkeys(key for key in order if isinstance(key, tuple)))
    job = Job(
        inputs=[],
        emulator=lookup.emulator,
        use_cache=lookup.use_cache,
        cache_path=lookup.cache_path,
        max_age=lookup.max_age,
    )
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    refused: dict[tuple[IocType, str], str] = {}  # an IOC the run took for none, and why
    fatal = None
    if wanted:
        warn_send_internal(settings)
        state = await open_job_state(job, settings, lambda fn: call_in_thread(fn, name="state"))
        budget = Budget(
            daily=settings.limits.daily_budget or None,
            cache=state.budget if state is not None else None,
        )
        cache = state.answers if state is not None and caches_answers(job, settings) else None
        try:
            async with (
                embedded_emulator(settings, lookup.emulator) as settings,
                Enricher(
                    settings,
                    cache=cache,
                    identity=cache.identity if cache is not None else None,
                    budget=budget,
                    limiter=state.limiter if state is not None else None,
                ) as enricher,
            ):
                try:
                    values = [value for _, value in wanted]
                    async for item in enricher.enrich(values, rejects=True):
                        if "input" in item:  # the run's judgement: no IOC (`invoice.pdf`)
                            refused[wanted[item["line"] - 1]] = item["reason"]
                        else:
                            answers[item["type"], item["ioc"]] = dict(item)
                except FatalError as exc:  # what was answered is printed first
                    fatal = exc
            fatal = fatal or enricher.fatal
        finally:
            if state is not None:
                try:
                    await save_state(state, budget, None, None, None)
                except FatalError as exc:  # a shared state lost: what was answered is printed
                    fatal = fatal or exc
    items: list[dict[str, Any]] = []  # one per IOC (or argument that is none), for the table
    lines: list[dict[str, Any]] = []  # one per argument, for --json
    first: dict[tuple[IocType, str] | str, str] = {}  # the argument that gave each IOC first
    for n, (text, key) in enumerate(zip(lookup.iocs, order, strict=True)):
        if key in refused:  # said as an argument that is no IOC
            bad[text] = refused[key]
            order[n] = key = text
    for text, key in zip(lookup.iocs, order, strict=True):
        if isinstance(key, str):
            answer: dict[str, Any] | None = {"input": key, "error": f"not an IOC: {bad[key]}"}
        else:
            answer = answers.get((key[0].value, key[1]))
        if answer is None:
            continue  # not answered: the run stopped (fatal, said below)
        line = {"input": text, **answer}
        if key in first:
            line["duplicate_of"] = first[key]
        else:
            first[key] = text
            items.append(answer)
        lines.append(line)
    _print(lines if lookup.as_json else items, as_json=lookup.as_json)
    if fatal is not None:
        _error(str(fatal))
        return EXIT_FATAL
    said = []
    if failed := sum("error" in item or "reason" in item for item in items if "ioc" in item):
        said.append(
            f"{failed} of the IOCs {'was' if failed == 1 else 'were'} not answered "
            "(failed or not asked): look them up again later"
        )
    if bad:
        said.append(f"{len(bad)} of the arguments {'is' if len(bad) == 1 else 'are'} no IOC")
    if said:
        _error("; ".join(said))
    # a failure says "try again", which an argument that is no IOC must not hide
    return EXIT_FAILURES if failed else EXIT_USAGE if bad else EXIT_OK


def _print(items: list[dict[str, Any]], *, as_json: bool) -> None:
    """The items on standard output: OutputError (exit 3) when its reader closed it."""
    if as_json:
        text = inert_json(b"".join(_json_line(item) for item in items))
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        text = (format_table(items, colour=colour) + "\n").encode()
    write_stdout(text)


def _json_line(item: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(item, default=_as_sent) + b"\n"
    except orjson.JSONEncodeError:
        # a response holds an integer beyond 64 bits (written as the server sent it), which
        # orjson will not write and msgspec will
        return msgspec.json.encode(item, enc_hook=_raw_as_sent) + b"\n"


def _as_sent(value: object) -> orjson.Fragment:
    """A number beyond a double as the server wrote it (orjson writes infinity as null)."""
    if isinstance(value, Unbounded):
        return orjson.Fragment(value.text)
    raise TypeError


def _raw_as_sent(value: object) -> msgspec.Raw:
    if isinstance(value, Unbounded):
        return msgspec.Raw(value.text.encode())
    raise TypeError


def _error(text: str) -> None:
    with contextlib.suppress(OSError):
        print(f"enricher: error: {text}", file=sys.stderr)
