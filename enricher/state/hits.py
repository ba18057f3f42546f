"""The cache's hits, key by key: what a warm run does per key, in C where `_hits.c` is built.

`found` makes a lookup's hits (`Cache._lookup_packed`) out of its records, decompressed, and
their fields; `split` serves a group of keys in one step when each hit is a line served as it
is (`servable`, the one test of that: `_Run.from_cache` asks it of each hit otherwise). Each
is the Python function of its name, or its twin in `_hits.c` (`native.load`: not where the
module is not built, or with ENRICHER_NO_C=1), which gives the same results and raises the
same exception types.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..inputs.native import load
from ..output.records import CACHED_TAIL

__all__ = [
    "found",
    "python_found",
    "python_split",
    "servable",
    "split",
]

#: how a record line begins, `% key.encode()` (`answers._LINE_HEAD`): a row whose line does
#: not is not of its key
HEAD = b'{"ioc":"%s",'

#: a hit: (verdict, record format, record line as a hit writes it)
Hit = tuple[str, str, bytes]
#: a key: (IOC type, value)
Key = tuple[Any, str]
#: keys served in one step: the hits' lines, verdicts and keys, and the keys missed
Split = tuple[list[bytes], list[str], list[Key], list[Key]]


def servable(hit: Hit, fmt: str) -> bool:
    """Whether a hit's line is served as it is: made in the record format `fmt` and ending
    as a hit's line does (`CACHED_TAIL`, not an origin's field). Otherwise it is made anew
    (and without `--with-source` only then)."""
    return hit[1] == fmt and hit[2].endswith(CACHED_TAIL)


def _index(value: Any, n: int) -> int:
    """`value` as an index into a sequence of `n` items (IndexError: not one; negative ones
    too, which no row gives)."""
    at = operator.index(value)
    if not 0 <= at < n:
        raise IndexError("index out of range")
    return at


def python_found(
    lines: Any,
    keys: Sequence[str],
    at: Sequence[int],
    verdict_ids: Sequence[int],
    format_ids: Sequence[int],
    verdicts: tuple[str, ...],
    formats: Mapping[int, str],
) -> dict[str, Hit]:
    """A lookup's hits: of `lines`, a sequence of buffers (zstandard's
    BufferWithSegmentsCollection), for each row `i`, its key `keys[at[i]]`, verdict
    `verdicts[verdict_ids[i]]`, format `formats[format_ids[i]]` and record `lines[i]` (a
    buffer), unless the record is not of its key. ValueError if the rows' fields differ in
    number; IndexError, KeyError or TypeError for a field that indexes nothing."""
    n = len(lines)
    if not len(at) == len(verdict_ids) == len(format_ids) == n:
        raise ValueError("rows and their fields differ")
    out: dict[str, Hit] = {}
    for i in range(n):
        key = keys[_index(at[i], len(keys))]
        verdict = verdicts[_index(verdict_ids[i], len(verdicts))]
        fmt = formats[format_ids[i]]
        if not isinstance(key, str):
            raise TypeError("found(): a key is not a str")
        head = HEAD % key.encode()
        line = bytes(lines[i])
        if line.startswith(head):
            out[key] = (verdict, fmt, line)
    return out


def python_split(hits: Mapping[str, Hit], keys: Sequence[Key], fmt: str) -> Split | None:
    """`keys` ((type, value) pairs) served from `hits` in one step, when each hit's line is
    `servable` as it is: the hits' lines, verdicts and keys, and the keys missed, each in
    the keys' order; else None (the caller goes key by key)."""
    lines: list[bytes] = []
    verdicts: list[str] = []
    answered: list[Key] = []
    missed: list[Key] = []
    for key in keys:
        hit = hits.get(key[1])
        if hit is None:
            missed.append(key)
            continue
        if not servable(hit, fmt):
            return None
        lines.append(hit[2])
        verdicts.append(hit[0])
        answered.append(key)
    return lines, verdicts, answered, missed


_NATIVE = load("enricher.state._hits", __file__)
#: `python_found`, in C where the module is built
found: Callable[
    [
        Any,
        Sequence[str],
        Sequence[int],
        Sequence[int],
        Sequence[int],
        tuple[str, ...],
        Mapping[int, str],
    ],
    dict[str, Hit],
] = python_found if _NATIVE is None else _NATIVE.found


def split(hits: Mapping[str, Hit], keys: Sequence[Key], fmt: str) -> Split | None:
    """`python_split`, in C where the module is built (for a dict of hits, as the stores
    give): `servable`'s test there is the same, `CACHED_TAIL` given to it."""
    if _NATIVE is None or type(hits) is not dict:
        return python_split(hits, keys, fmt)
    served: Split | None = _NATIVE.split(hits, keys, fmt, CACHED_TAIL)
    return served
