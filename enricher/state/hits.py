"""The cache's hits, key by key: what a warm run does per key, in C where `_hits.c` is built.

`found` makes a lookup's hits (`Cache._lookup_packed`) out of its records, decompressed, and
their fields; `split` serves a group of keys in one step when each hit is a line served as it
is (`servable`, the one test of that: `_Run.from_cache` asks it of each hit otherwise). Each
is the Python function of its name, or its twin in `_hits.c` (`native.load`: not where the
module is not built, or with ENRICHER_NO_C=1), which gives the same results and raises the
same exception types.
"""

from __future__ import annotations

import array
import itertools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import zstandard

from ..inputs.native import load
from ..output.records import CACHED_TAIL

__all__ = [
    "Found",
    "found",
    "frames",
    "group",
    "python_found",
    "python_group",
    "python_split",
    "servable",
    "split",
]

#: how a record line begins, `% key.encode()` (`answers._LINE_HEAD`): a row whose line does
#: not is not of its key
HEAD = b'{"ioc":"%s",'

#: a zstd frame's header is at most this long (magic, descriptor, window, dictionary id, size)
FRAME_HEAD = 18
#: a hit: (verdict, record format, record line as a hit writes it)
Hit = tuple[str, str, bytes]
#: a key: (IOC type, value)
Key = tuple[Any, str]
#: keys served in one step: the hits' lines, verdicts and keys, and the keys missed
Split = tuple[list[bytes], list[str], list[Key], list[Key]]
#: the lines and verdicts of keys all hit, each served as it is, in the keys' order
Served = tuple[list[bytes], list[str]]


class Found(dict[str, Hit]):
    """A lookup's hits by key, and `served`: when each key asked was hit by a line served
    as it is (`servable`), their lines and verdicts in the order the keys were asked (what
    a warm run writes, taken in one step); else None."""

    __slots__ = ("served",)

    def __init__(self) -> None:
        super().__init__()
        self.served: Served | None = None


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
    fmt: str,
) -> tuple[dict[str, Hit], Served | None]:
    """A lookup's hits: of `lines`, a sequence of buffers (zstandard's
    BufferWithSegmentsCollection), for each row `i`, its key `keys[at[i]]`, verdict
    `verdicts[verdict_ids[i]]`, format `formats[format_ids[i]]` and record `lines[i]`,
    unless the record is not of its key. And when each key was hit by a line `servable` in
    the format `fmt` (every row read), their lines and verdicts in the keys' order (else
    None). ValueError if the rows' fields differ in number; IndexError, KeyError or
    TypeError for a field that indexes nothing."""
    n = len(lines)
    if not len(at) == len(verdict_ids) == len(format_ids) == n:
        raise ValueError("rows and their fields differ")
    out: dict[str, Hit] = {}
    order: list[Any] = [None] * len(keys)
    order_verdicts: list[Any] = [None] * len(keys)
    whole = True
    for i in range(n):
        pos = _index(at[i], len(keys))
        key = keys[pos]
        verdict = verdicts[_index(verdict_ids[i], len(verdicts))]
        row_fmt = formats[format_ids[i]]
        if not isinstance(key, str):
            raise TypeError("found(): a key is not a str")
        head = HEAD % key.encode()
        line = bytes(lines[i])
        if not line.startswith(head):
            whole = False  # not a record of its key: a miss
            continue
        hit = (verdict, row_fmt, line)
        if whole and servable(hit, fmt):
            order[pos] = line
            order_verdicts[pos] = verdict
        else:
            whole = False
        out[key] = hit
    if whole and all(line is not None for line in order):
        return out, (order, order_verdicts)
    return out, None


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
#: the hits `split` hands to C: dicts whose `get` is dict's own
_DICTS = (dict, Found)


def found(
    lines: Any,
    keys: Sequence[str],
    at: Sequence[int],
    verdict_ids: Sequence[int],
    format_ids: Sequence[int],
    verdicts: tuple[str, ...],
    formats: Mapping[int, str],
    fmt: str,
) -> tuple[dict[str, Hit], Served | None]:
    """`python_found`, in C where the module is built (`CACHED_TAIL` given to it)."""
    if _NATIVE is None:
        return python_found(lines, keys, at, verdict_ids, format_ids, verdicts, formats, fmt)
    made: tuple[dict[str, Hit], Served | None] = _NATIVE.found(
        lines, keys, at, verdict_ids, format_ids, verdicts, formats, fmt, CACHED_TAIL
    )
    return made


def python_frames(records: bytes, sizes: Sequence[int], line_max: int) -> tuple[bytes, bytes]:
    """Of zstd frames end to end in `records`, `sizes` bytes each: their segments (start,
    size) and the content sizes their headers claim, as packed native 64-bit integers (what
    zstandard's multi_decompress_to_buffer takes). ValueError if the sizes do not add up to
    the records, or a frame's header (within its own bytes) claims no size, 0, or more
    than `line_max`."""
    starts = list(itertools.accumulate(sizes, initial=0))
    if any(size < 0 for size in sizes) or starts.pop() != len(records):
        raise ValueError("records and their sizes differ")
    claimed: list[int] = []
    for start, size in zip(starts, sizes, strict=True):
        try:
            head = records[start : start + min(size, FRAME_HEAD)]
            found_size = zstandard.frame_content_size(head)
        except zstandard.ZstdError:
            raise ValueError("a frame claims no size") from None
        if not 0 < found_size <= line_max:
            raise ValueError("a frame claims no size, or too large a one")
        claimed.append(found_size)
    pairs = itertools.chain.from_iterable(zip(starts, sizes, strict=True))
    return array.array("Q", pairs).tobytes(), array.array("Q", claimed).tobytes()


#: `python_frames`, in C where the module is built
frames: Callable[[bytes, Sequence[int], int], tuple[bytes, bytes]] = (
    python_frames if _NATIVE is None else _NATIVE.frames
)


def python_group(
    keys: Iterable[Key], endpoint_of: Mapping[Any, Any]
) -> tuple[dict[Any, list[Key]], dict[Any, list[str]]]:
    """`keys` by the endpoint that answers them (`endpoint_of` their type), each group in
    their order, and the groups' values (what a lookup asks)."""
    groups: dict[Any, list[Key]] = {}
    values: dict[Any, list[str]] = {}
    for key in keys:
        endpoint = endpoint_of[key[0]]
        group = groups.get(endpoint)
        if group is None:
            groups[endpoint] = [key]
            values[endpoint] = [key[1]]
        else:
            group.append(key)
            values[endpoint].append(key[1])
    return groups, values


#: `python_group`, in C where the module is built
group: Callable[
    [Iterable[Key], Mapping[Any, Any]], tuple[dict[Any, list[Key]], dict[Any, list[str]]]
] = python_group if _NATIVE is None else _NATIVE.group


def split(hits: Mapping[str, Hit], keys: Sequence[Key], fmt: str) -> Split | None:
    """`python_split`, in C where the module is built (for a dict of hits, or the cache's
    `Found`, which reads as one): `servable`'s test there is the same, `CACHED_TAIL` given
    to it."""
    if _NATIVE is None or type(hits) not in _DICTS:
        return python_split(hits, keys, fmt)
    served: Split | None = _NATIVE.split(hits, keys, fmt, CACHED_TAIL)
    return served
