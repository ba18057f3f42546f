"""Resuming a run: repair a torn output, and learn which IOCs an earlier run already wrote.

Outputs are append-only NDJSON, each line written whole by one write() of its batch, so a
run killed at any moment (SIGKILL included) leaves complete lines and at most one torn line at
the end. `repair` cuts that line off; `read_written` adds every IOC of the complete lines to a
`Deduper`, which the resumed run then skips: each IOC is in the output exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..ioc import IocType
from ..pipeline.dedupe import Deduper
from ..pipeline.normalize import normalize

__all__ = [
    "ndjson_objects",
    "read_deferred",
    "read_deferred_items",
    "read_failed",
    "read_keys",
    "read_written",
    "repair",
]

_TYPES = {t.value: t for t in IocType}
_HEAD = b'{"ioc":"'
_MID = b'","type":"'


def repair(path: str | Path) -> int:
    """Cut a torn last line (no newline at the end) off the file; how many bytes were cut.
    Only a regular file is touched (a side file may be /dev/null, or a pipe)."""
    if not os.path.isfile(path):
        return 0
    try:
        f = open(path, "rb+")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # walk back to the last newline, a block at a time
        pos = size
        keep = 0
        while pos > 0:
            step = min(64 * 1024, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = pos + nl + 1
                break
        f.truncate(keep)
        return size - keep


def read_keys(path: str | Path) -> Iterator[tuple[IocType, str]]:
    """(type, ioc) of each line of an NDJSON output, failures or deferred file."""
    with open(path, "rb") as f:
        for line in f:
            # records and failures start {"ioc":"…","type":"…": read those two fields without
            # parsing the whole (large) line; anything else is parsed properly
            if line.startswith(_HEAD):
                mid = line.find(_MID, len(_HEAD))
                end = line.find(b'"', mid + len(_MID)) if mid > 0 else -1
                if end > 0 and b"\\" not in line[len(_HEAD) : mid]:
                    t = _TYPES.get(line[mid + len(_MID) : end].decode("ascii", "replace"))
                    ioc = line[len(_HEAD) : mid]
                    if t is not None and ioc.isascii():
                        yield t, ioc.decode()
                        continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            # a line of some other shape (not ours) is skipped, never fatal
            if isinstance(doc, dict) and isinstance(doc.get("ioc"), str):
                t = _TYPES.get(doc.get("type"))  # type: ignore[arg-type]
                if t is not None:
                    yield t, doc["ioc"]


def read_written(
    paths: list[str],
    done: Deduper,
    keys: Callable[[str], Iterable[tuple[IocType, str]]] = read_keys,
) -> int:
    """Add each IOC written in these files to `done`; how many there were. `keys` reads a
    file's (type, ioc) pairs: NDJSON records by default, or a records writer's format."""
    n = 0
    for path in paths:
        if os.path.isfile(path):
            for t, ioc in keys(path):
                # only what normalizes as written: a foreign value cannot be packed
                if normalize(ioc) == (t, ioc) and done.add(t, ioc):
                    n += 1
    return n


def ndjson_objects(path: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of an NDJSON file, one a line; a line of another shape (not ours,
    torn) is skipped, never fatal."""
    with open(path, "rb") as f:
        for line in f:
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                yield doc


def read_failed(path: str, done: Deduper) -> tuple[int, int]:
    """Add each IOC of a failures file to `done`; how many failed, and how many were
    unsupported (a failure of its own kind: not asked by choice)."""
    failed = unsupported = 0
    if not os.path.isfile(path):
        return 0, 0
    for doc in ndjson_objects(path):
        if not isinstance(doc.get("ioc"), str):
            continue
        t = _TYPES.get(doc.get("type"))  # type: ignore[arg-type]
        ioc = doc["ioc"]
        if t is None or normalize(ioc) != (t, ioc) or not done.add(t, ioc):
            continue
        if str(doc.get("error", "")).startswith("unsupported"):
            unsupported += 1
        else:
            failed += 1
    return failed, unsupported


def read_deferred_items(path: str) -> list[tuple[IocType, str, str]]:
    """(type, ioc, reason) of each line of a deferred file."""
    items = []
    for doc in ndjson_objects(path):
        if isinstance(doc.get("ioc"), str):
            t = _TYPES.get(doc.get("type"))  # type: ignore[arg-type]
            if t is not None:
                items.append((t, doc["ioc"], str(doc.get("reason", ""))))
    return items


def read_deferred(path: str) -> list[str]:
    """The IOCs of a deferred file, to be asked first."""
    if not os.path.isfile(path):
        return []
    return [ioc for _, ioc in read_keys(path)]
