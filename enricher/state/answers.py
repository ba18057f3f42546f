"""The persistent state of nightly runs: an answer cache, the daily request budget, deferred IOCs.

One SQLite file (standard library), WAL mode, readable by its owner only, marked as enricher's
own (`application_id` and the layout version in `user_version`). Every answer and budget count
belongs to an API identity (`enricher.api.identity`): an answer is served only to the identity
that fetched it.

- `answers`: (identity, endpoint, key) → the output record line written for it (the API's
  verbatim answer inside; kept as a hit writes it, `"cached":true`), compressed with zstd and
  a dictionary shipped with enricher
  (`cache-records.zdict`, ~0.9 KB → ~0.13 KB), its verdict, the record format it was made
  with (a hit made the same way is written as it is, with `"cached":true`, without parsing),
  when it was fetched and when it expires (its `ttl`, capped by `cache.max_ttl`). A row is
  served while younger than both; one dated in the future (a clock that was ahead) is not
  served. Expired rows are purged at start, and past `cache.max_size` the oldest rows are
  evicted; freed pages go back to the file system (`auto_vacuum=INCREMENTAL`).
- `staged`: a run's answers as its writer commits them, appended (no key index), until they
  are merged into `answers` in the key index's order: past a share of the index, at `flush`,
  at `close`, and as the next run opens the file (a killed run's). Lookups read `answers`
  alone: a run sharing the file with another is served the other's answers once merged.
- `budget`: requests sent per identity and UTC day, for `limits.daily_budget` across runs:
  with a budget each request is reserved before it is sent, in a transaction that checks and
  counts, so concurrent runs never send more than the budget between them.
- `quota`: per identity, when a quota the server said was spent (a 429 with a long
  Retry-After) is open again; no request is sent before.
- `deferred`: IOCs a run could not send (budget spent, quota, stopped), per identity and job
  (`--job`, or the output file's path); the next run of that job takes them first.

Opening a path never harms what is there: anything but a regular file, a file that is not
SQLite and a SQLite database without enricher's marker are refused (SettingsError) and left
as they are. Only a file that is enricher's and damaged is moved aside and started anew. A
cache of the previous layout (2: no identities) is migrated in place: its answers, which
belong to no known identity, are dropped; its deferred IOCs are kept for the next run.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import dataclasses
import functools
import glob
import itertools
import logging
import operator
import os
import queue
import secrets
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import cast

import orjson
import zstandard

from ..api.identity import ApiIdentity
from ..config.settings import VERDICTS
from ..errors import BudgetSpent, SettingsError
from ..ioc import Endpoint, IocType
from ..output.records import CACHED_TAIL, FRESH_TAIL
from ..threads import call_in_thread
from .hits import Found, Served, frames
from .hits import found as found_hits
from .sqlitefile import HEADER_SIZE, SQLITE_MAGIC, wal_header

__all__ = ["Cache", "default_cache_path"]

log = logging.getLogger("enricher")

#: PRAGMA application_id of every enricher cache ("EnRC")
APPLICATION_ID = 0x456E5243
#: the layout of the tables below (PRAGMA user_version)
LAYOUT = 3
#: the layout of enricher 0.1.0's caches (no marker, no identities), migrated on open
_LAYOUT_2 = 2

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE identities (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE formats (id INTEGER PRIMARY KEY, fmt TEXT NOT NULL UNIQUE);
CREATE TABLE answers (
    identity INTEGER NOT NULL,
    endpoint INTEGER NOT NULL,
    key TEXT NOT NULL,
    verdict INTEGER NOT NULL,
    format INTEGER NOT NULL,
    record BLOB NOT NULL,
    fetched_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX answers_key ON answers (identity, endpoint, key);
CREATE TABLE budget (
    identity INTEGER NOT NULL,
    day TEXT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (identity, day)
);
CREATE TABLE quota (identity INTEGER PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE deferred (
    identity INTEGER NOT NULL,
    job TEXT NOT NULL,
    type TEXT NOT NULL,
    ioc TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (identity, job, type, ioc)
);
"""

#: where the writer appends a run's answers (the columns of `answers`, no index but the rowid:
#: an append costs the same at any size), until they are merged into `answers` in the key
#: index's order (`_MERGE`): each commit inserting its rows into the index at random places
#: rewrote nearly all of it (benchmarks/cache_store.py, CPU and bytes written: 2,000,000
#: answers 25.8 s and 10.7 GB, staged 26.0 s and 3.6 GB; 5,000,000: 91.3 s and 55.6 GB,
#: staged 69.1 s and 9.4 GB; 500,000: 5.7 s and 0.88 GB, staged 6.2 s and 0.79 GB). Made
#: by the writer's first write (a cache made before it has none; one opened by an enricher
#: without it is refused, as any unknown table: a file only read keeps none)
_STAGED_SCHEMA = """
CREATE TABLE IF NOT EXISTS staged (
    identity INTEGER NOT NULL,
    endpoint INTEGER NOT NULL,
    key TEXT NOT NULL,
    verdict INTEGER NOT NULL,
    format INTEGER NOT NULL,
    record BLOB NOT NULL,
    fetched_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
)
"""
_STAGED = ("table", "staged")

#: what sqlite_master holds in a layout-2 cache (enricher 0.1.0), and nothing else
_LAYOUT_2_OBJECTS = {
    ("table", "answers"),
    ("index", "answers_key"),
    ("table", "budget"),
    ("index", "sqlite_autoindex_budget_1"),
    ("table", "deferred"),
    ("index", "sqlite_autoindex_deferred_1"),
}
_LAYOUT_2_ANSWERS = ["endpoint", "key", "verdict", "fmt", "record", "fetched_at", "expires_at"]

#: the rows the previous layout deferred: they belong to no identity and no job, and the next
#: run of any job takes them up (as that layout promised: "the next run asks those first")
_NO_IDENTITY = 0
_LEGACY_REASON = "deferred by enricher 0.1.0"

#: what 0.1.0 leaves of a layout-3 cache it takes over (it drops answers, meta, budget and
#: deferred, makes its own, and sets user_version 2): dropped when it is migrated
_LAYOUT_3_LEFTOVERS = {
    ("table", "identities"),
    ("index", "sqlite_autoindex_identities_1"),
    ("table", "formats"),
    ("index", "sqlite_autoindex_formats_1"),
    ("table", "quota"),
    _STAGED,
}
#: how the record line of a row's key begins, `% key.encode()` (a record line's first field
#: is its IOC, which no JSON escape changes: a normalized IOC has none of the characters JSON
#: escapes)
_LINE_HEAD = b'{"ioc":"%s",'
#: the page size of a new cache
_PAGE = 16384
#: the page cache (KiB) of each connection but the writer's
_CACHE_KIB = 16384
#: the writer's page cache (KiB), which also bounds the memory SQLite sorts a commit's rows
#: in: it inserts them in key order, walking the key index from its first page to its last
#: once, so a page it let go of is not wanted again in that commit (500,000 rows stored 500
#: at a time: 4 MiB wrote 879 MB and read 936 MB, 8 MiB 781 and 770, 16 MiB 781 and 527,
#: SQLite's memory at most 21.8, 30.2 and 38.7 MiB: 18.0 before, in key order or not)
_WRITER_CACHE_KIB = 4096
#: the most of the file the lookups' connection maps
_MAP_MAX = 256 * 1024 * 1024
#: batches of rows the writer thread may be behind before a store waits
_WRITES_BEHIND = 16
#: rows the writer commits at once: the key index takes them at random places, and each
#: commit writes every index page it changed, once, however many rows went in it (at
#: 500,000 keys, 500 rows a commit cost 18.8 µs CPU a row, 5,000 rows 11.1)
_TXN_ROWS = 20_000
#: seconds rows wait for more before they are committed anyway (`flush` and `close` do not
#: wait); what a killed run loses of its answers, besides the queue
_LINGER = 0.5
#: the most record-line bytes the writer takes from its queue at one wake (`_taken`): it holds
#: them, their served copy and their frames at once. 2 MiB is about 4 stores of engine lines
#: (~0.9 KB, 500 a store): a fresh run of 1,000,000 tidy lines peaked at 145-155 MB with it
#: against 164-167 MB at 16 MiB (where up to 40 stores were taken), in the same time (5.2-5.4 s;
#: without the cache 101 MB); stores of long lines are taken one at a time (60 stores of 500
#: lines of 20 KB peaked at 1,115 MB when the writer took all the queue held)
_TAKE_BYTES = 2 * 1024**2
#: damaged copies kept beside the cache (NAME.damaged-TIME); older ones are removed
_DAMAGED_KEPT = 3
_VANISHED = (
    "the cache file {path} was removed or replaced during the run (another run set it aside,"
    " or it was deleted)"
)
_ENDPOINT = {ep: i for i, ep in enumerate(Endpoint)}
_VERDICT = {v: i for i, v in enumerate(VERDICTS)}
# SQLite allows 32,766 host parameters; lookups row by row go in slices well under that
_SLICE = 900
#: what reading a damaged row raises; MemoryError too: zstandard sets aside what a frame's
#: header claims before it finds the frame false (a header that claims 1 TiB)
_UNREADABLE = (KeyError, IndexError, TypeError, MemoryError, zstandard.ZstdError)
#: keys looked up in one statement (their JSON is one parameter): what it gives back, the
#: hits' records end to end, is about 0.13 KB a key
_PACKED_SLICE = 10_000
#: the rows of answers a lookup serves (`_Where`): its identity's and endpoint's, fresh,
#: young enough, not dated in the future; the keys' parameters come after these six
_LIVE = (
    "WHERE identity = ?1 AND endpoint = ?2 AND expires_at > ?3 AND min(fetched_at, ?4) > ?5"
    " AND fetched_at <= ?6"
)
#: the live rows among the keys of a JSON array, as one row: where their keys are in the
#: array (the hits are keyed by the caller's own strings, hashed already), their verdicts,
#: formats and sizes (four JSON arrays, in one order), and their records end to end. The
#: keys are sorted (in SQLite, without the GIL), then joined to the index one probe each, in the
#: index's order: neighbouring probes share pages. Over 500,000 keys of a 500,000-row cache
#: in chunks of 4,600 (CPU seconds, 3 runs each, alternating, load 5-6): `key IN (json_each)`
#: (a temporary index of the keys, probed in turn) 2.22-2.49, the join in the keys' own
#: order 2.45-2.95 (fewer instructions: 11,900 a key against 17,000, but pages all over),
#: sorted then joined 2.17-2.20. A key given twice is a row twice
_SELECT_PACKED = (
    "SELECT json_group_array(j.i), json_group_array(a.verdict), json_group_array(a.format),"
    " json_group_array(length(a.record)), CAST(group_concat(a.record, '') AS BLOB)"
    " FROM (SELECT key AS i, value FROM json_each(?7) ORDER BY value) AS j"
    " CROSS JOIN answers AS a"
    " ON a.identity = ?1 AND a.endpoint = ?2 AND a.key = j.value"
    " WHERE a.expires_at > ?3 AND min(a.fetched_at, ?4) > ?5 AND a.fetched_at <= ?6"
)
#: a row fetched later than now by more than this was written by a clock that was ahead
_SKEW = 60.0
#: past max_size, evict down to this share of it, so that eviction is not every commit's work
_EVICT_TO = 0.9
#: waits for another process's write transaction (a writer holds it for a few ms at a time)
_BUSY_TIMEOUT = 60.0
#: seconds `close` waits for a read walked away from before it leaves the connection open
_CLOSE_WAIT = 1.0
#: how often a store waiting on the writer's full queue looks whether the cache was closed
_PUT_LOOK = 0.1
#: the zstd level rows are compressed at (levels 1 to 3 cost the same instructions a line
#: with the dictionary: 25,669 to 25,871; level 3 is the smallest, 127 B a line)
_LEVEL = 3
#: the zstd dictionary rows are compressed with (tools/train_cache_dictionary.py made it)
_DICTIONARY = resources.files("enricher.state").joinpath("cache-records.zdict")


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "enricher" / "cache.sqlite3"


class _Vanished(sqlite3.OperationalError):
    """The file this cache opened is no longer at its path."""


@functools.cache
def _layout_3_objects() -> frozenset[tuple[str, str]]:
    """What sqlite_master holds in a layout-3 cache, and nothing else."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(_SCHEMA)
        return frozenset(db.execute("SELECT type, name FROM sqlite_master"))


def _marker(header: bytes) -> tuple[int, int]:
    """(application_id, user_version) of a database header; (-1, -1) if it is too short."""
    if len(header) < HEADER_SIZE:
        return -1, -1
    return int.from_bytes(header[68:72], "big"), int.from_bytes(header[60:64], "big")


def _file_id(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` (device and inode), None if none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_our_copy(path: Path) -> bool:
    """Whether `path` is a regular file (not a link) that begins with enricher's marker: a
    cache of ours set aside (damage past the header page leaves the marker)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as f:
            header = f.read(HEADER_SIZE)
    except OSError:
        return False
    return header.startswith(SQLITE_MAGIC) and _marker(header)[0] == APPLICATION_ID


def _move(src: Path, dst: Path) -> bool:
    """`src` renamed `dst`, unless something is at `dst` (never replaced) or nothing at
    `src`: False then."""
    try:
        os.link(src, dst)
    except (FileNotFoundError, FileExistsError):
        return False
    except OSError:
        # a file system without hard links: a rename, after a look
        if os.path.lexists(dst) or not os.path.lexists(src):
            return False
        os.rename(src, dst)
        return True
    os.unlink(src)
    return True


def _cannot_write(path: Path, exc: sqlite3.Error) -> str:
    """Why the cache at `path` cannot be used, and what to do, from the error of its first
    write transaction."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            f"cache: {path} is locked by another process (a long write: another program, or"
            f" an enricher run migrating it); try again once it is done, or {_ANOTHER_PATH}"
        )
    if code == sqlite3.SQLITE_READONLY or "readonly" in str(exc):
        return f"cache: {path} is read-only; make it (and its folder) writable, {_ANOTHER_PATH}"
    return (
        f"cache: {path} cannot be written ({exc}); make it (and its folder) writable,"
        f" {_ANOTHER_PATH}"
    )


def _refuse(path: Path, why: str, fix: str) -> SettingsError:
    return SettingsError(f"cache: {path} {why}; it was left as it is: {fix}")


_ANOTHER_PATH = "give --cache (or [cache] path) another path, or run with --no-cache"


def _corrupt(exc: sqlite3.Error) -> bool:
    """Whether `exc` says the file is damaged (not merely busy, full or read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _full(exc: sqlite3.Error) -> bool:
    """Whether `exc` says the disk (or the file's quota) is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def _map_size(path: Path) -> int:
    """What of the file at `path` to map: its size now (a new file's: its few pages), rounded
    up to a page, at most `_MAP_MAX`."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return 0
    return min(_MAP_MAX, -(-size // _PAGE) * _PAGE)


def _as_served(line: bytes) -> bytes:
    """A record line as a hit is written: `"cached":true` (made here, in the writer thread,
    so that a hit costs no copy on the event loop)."""
    if line.endswith(FRESH_TAIL):
        return line[: -len(FRESH_TAIL)] + CACHED_TAIL
    return line


_TTL_MS = operator.itemgetter(2)
_VERDICT_OF = operator.itemgetter(1)
_KEY_OF = operator.itemgetter(0)
_LINES_OF = operator.itemgetter(5)
#: what a record line is shorter by as a hit writes it
_SERVED_LESS = len(FRESH_TAIL) - len(CACHED_TAIL)
#: a record line without its `FRESH_TAIL`
_BODY = slice(None, -len(FRESH_TAIL))


def _as_served_all(
    lines: Sequence[bytes],
) -> list[bytes | bytearray | memoryview[int]] | zstandard.BufferWithSegments:
    """`lines` as `_as_served` makes each, for `multi_compress_to_buffer`. Where every line
    ends with `FRESH_TAIL` (a record line), they are joined with `CACHED_TAIL` in their
    place in one call, in C, not a step a line in Python (a join then a replace of every
    tail, which counted them first, searched the lines twice: 6,349 instructions a line
    against 1,956 for the cut and the join, engine record lines, ~0.9 KB)."""
    try:
        fresh = all(map(bytes.endswith, lines, itertools.repeat(FRESH_TAIL)))
    except TypeError:  # not bytes (the library's `store` takes any bytes-like line)
        fresh = False
    if not (fresh and lines):
        return [_as_served(bytes(line)) for line in lines]
    bodies = list(map(bytes.__getitem__, lines, itertools.repeat(_BODY)))
    bodies.append(b"")  # the last line's tail
    sizes = array.array("Q", map(operator.sub, map(len, lines), itertools.repeat(_SERVED_LESS)))
    starts = array.array("Q", itertools.accumulate(sizes, initial=0))
    starts.pop()
    segments = array.array("Q", bytes(16 * len(lines)))
    segments[0::2] = starts
    segments[1::2] = sizes
    return zstandard.BufferWithSegments(CACHED_TAIL.join(bodies), segments.tobytes())


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _intern(db: sqlite3.Connection, table: str, column: str, value: str) -> int:
    """The id of `value` in a table of names (identities, formats), added if new."""
    db.execute(f"INSERT OR IGNORE INTO {table} ({column}) VALUES (?)", (value,))
    (found,) = db.execute(f"SELECT id FROM {table} WHERE {column} = ?", (value,)).fetchone()
    return int(found)


_Row = tuple[int, int, str, int, int, bytes, int, int]
#: what a lookup's statement is given before its keys (`_LIVE`): identity, endpoint, now,
#: now, the oldest fetch served, the latest
_Where = tuple[int, int, float, float, float, float]


#: a row as the writer inserts it: identity, endpoint, key, verdict, format, where its record
#: starts in the records of its commit (counting from 1), its length, when it was fetched,
#: when it expires
_PackedRow = tuple[int, int, str, int, int, int, int, int, int]
#: what the rows of a group share: identity, endpoint, format, when they were fetched
_Head = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True, slots=True)
class _Packed:
    """Answers stored at once, as the writer inserts them: their record lines compressed end
    to end in `records`, and their rows in groups that share a `_Head` (a commit's stores
    of one endpoint in one second), each a JSON array of (key, verdict, where its record
    starts, its length, when it expires) (where a record starts counts from the start of its
    commit's records), in the order the rows came within each (identity, endpoint)."""

    records: bytes | bytearray
    groups: list[tuple[_Head, bytes | bytearray]]
    count: int


#: one statement appends a commit's rows to `staged`: SQLite steps through them without the
#: GIL, where `executemany` took and gave back the GIL at each row, waiting each time for the
#: event loop to let go of it. What a group's rows share is given once (a JSON path a
#: column a row cost about 0.25 us: 9 of them 2.5-3.6 us a row, these 5 1.6-2.2): a SELECT
#: a group (`_GROUP`: its rows' JSON, then its `_Head`, numbered from `first`), joined by
#: UNION ALL, which yields them in turn: appended as they came, and the merge sorts them.
#: One statement, not one a group in a transaction: each lets go of the GIL and waits for
#: it back, up to the switch interval while the event loop runs (a commit holds a group
#: for each endpoint and second)
_GROUP = (
    "SELECT ?{i}, ?{c}, json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'), ?{f},"
    " substr(?1, json_extract(r.value, '$[2]'), json_extract(r.value, '$[3]')),"
    " ?{t}, json_extract(r.value, '$[4]') FROM json_each(?{j}) AS r"
)
#: the most groups one statement takes (SQLite's compound SELECTs stop at 500 terms); more
#: go in several, in one transaction
_GROUPS_MAX = 100


@functools.lru_cache(maxsize=_GROUPS_MAX)
def _insert_groups(n: int) -> str:
    """The statement that appends `n` groups' rows to `staged`: its parameters are the
    records, then each group's rows (JSON) and head (`_Head`)."""
    selects = (
        _GROUP.format(j=2 + 5 * g, i=3 + 5 * g, c=4 + 5 * g, f=5 + 5 * g, t=6 + 5 * g)
        for g in range(n)
    )
    return "INSERT INTO staged " + " UNION ALL ".join(selects)


#: a NUL in a key, as JSON: SQLite's JSON functions (3.40) end such a text at the NUL, so its
#: row is written and read a row at a time (the packed insert wrote 'a\0b' as 'a', replacing
#: that key's row)
_NUL = b"\\u0000"
#: the largest window a frame of the writer's needs (its zstd level 3: 2 MiB, however long the
#: line; a line up to 2 MiB is one segment, its window its length): a frame that asks more is
#: not one the writer made, and zstd refuses it before it sets the memory aside, where a
#: header that claimed 64 MiB had zstd set aside 64 MiB at each lookup
#: (test_the_writers_frames_need_no_window_past_the_readers_bound)
_WINDOW_MAX = 1 << 21
#: a packed lookup decompresses its hits in one call only where each frame's header claims a
#: size from 1 to this (it sets aside what each claims, before it reads a byte): zstandard
#: 0.25's multi_decompress_to_buffer frees a buffer twice after a frame that claims 0 (an
#: empty line), and past 2**63 its buffer's size overflows and it writes past it (the process
#: aborts, or worse). A line longer (rare: a record line is about 1 KB) is read row by row,
#: where what is set aside follows what the frame holds (`_line_of`)
_LINE_MAX = _WINDOW_MAX
#: threads a packed lookup decompresses its hits in (zstd, without the GIL; the hits keep
#: their order): a warm run is bound by its lookups, and the event loop leaves a core half
#: idle meanwhile (1,000,000 lines, 500,000 unique, 3 runs each in turn, load 4.5-5.1: 2
#: threads 62,295, 60,368, 58,352 IOCs/s against one 44,485, 50,549, 48,178; CPU 4.71-4.92
#: s against 4.47-4.87)
#: the cores this process may run on (an affinity, `taskset -c 0`, may allow fewer than the
#: machine has: two lookup threads on one core were slower than one, attack-atw)
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_UNPACK_THREADS = min(2, _CORES)
#: threads that look up `answers`' keys, each a chunk of input at a time, the first through
#: the cache's connection, the others through one of their own: SQLite finds a chunk's rows
#: without the GIL, and one thread finding them while the other decompresses and makes its
#: hits keeps both cores busy, where a warm run with one waited on it (py-spy: the loop idle
#: a third of the run; the lookup thread 794 M of a warm run's 1,510 M instructions, 50,000
#: keys: callgrind --separate-threads)
_LOOKUP_THREADS = min(2, _CORES)
_INSERT_ROW = "INSERT INTO staged VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
#: the staged rows into `answers`, in the key index's order (a key staged twice: its last
#: row stays), so that the merge changes each page of the index once, in turn: where a
#: commit's rows inserted at random places rewrote nearly every page of an index that grows
#: with the run, at each commit. Whole rows are sorted (SQLite's sorter, spilling to a
#: temporary file in order): sorting the keys alone, then reading each row by its rowid, read
#: a page a row (500,000 answers: 9.0 GB read, 8.0 s CPU, against 1.1 GB, 6.6 s). Eviction
#: takes the oldest by rowid, and a merge's rows are taken as old as one another
_MERGE = (
    "INSERT OR REPLACE INTO answers SELECT identity, endpoint, key, verdict, format, record,"
    " fetched_at, expires_at FROM staged WHERE rowid <= ?1 ORDER BY identity, endpoint, key, rowid"
)
#: rows staged before they are merged: at least this many, and at least this share of the
#: rows the index holds (a merge rewrites the pages of the index it touches: as the index
#: grows, merges come further apart, so a run's rows are each merged once and the index
#: rewritten a few times over the run, not at each commit). At 2,000,000 answers, share
#: 1.0: 8 merges, 9.7 s CPU of the writer's 17.5 (benchmarks/cache_store.py)
_MERGE_MIN = 20_000
#: what `_merge_due` weighs, in one statement (each statement lets go of the GIL and waits
#: for it back, up to the switch interval while the event loop runs): the last staged
#: rowid, the rows `answers` spans, the file's size (as `Cache.size`). A min() or max()
#: alone reads one end of the table; both in one SELECT read all of it
_MERGE_DUE = (
    "SELECT (SELECT max(rowid) FROM staged),"
    " (SELECT max(rowid) FROM answers) - (SELECT min(rowid) FROM answers) + 1,"
    " (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())"
)
_MERGE_SHARE = 1.0


def _unpacked(records: bytes, rows: Iterable[_PackedRow]) -> list[_Row]:
    """The rows of a commit, one tuple each, in the key index's order (rows of one key in
    the order they came, as the merge takes them) (a SQLite without JSON functions stages
    these, and any SQLite a key with a NUL)."""
    ordered = sorted(rows, key=lambda row: (row[0], row[1], row[2]))  # stable
    return [
        (ident, endpoint, key, verdict, fmt, records[at - 1 : at - 1 + size], fetched, expires)
        for ident, endpoint, key, verdict, fmt, at, size, fetched, expires in ordered
    ]


def _has_json(db: sqlite3.Connection) -> bool:
    """Whether this SQLite has its JSON functions (built in since 3.38, an option before)."""
    try:
        db.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')").fetchall()
    except sqlite3.OperationalError:
        return False
    return True


#: an answer to store: key, verdict, record line, ttl in milliseconds or None
_Answer = tuple[str, str, bytes, int | None]
#: an answer as the pipeline holds it beside its record line: key, verdict, ttl in ms or None
_Answered = tuple[str, str, int | None]
#: answers stored at once: (identity, endpoint, format, when, the answers, their record
#: lines in the same order). The writer thread makes them rows: the event loop, which
#: stores them, does no step per row
_Stored = tuple[int, int, int, float, Sequence[_Answered], Sequence[bytes]]
_Item = tuple[_Stored | None, int]  # answers to write, requests to count
#: a read for the lookups' threads: the keys by endpoint, the identity they are asked for, the
#: loop waiting for it and its future
_Lookup = tuple[
    Mapping[Endpoint, Sequence[str]],
    ApiIdentity | None,
    asyncio.AbstractEventLoop,
    "asyncio.Future[dict[Endpoint, dict[str, tuple[str, str, bytes]]]]",
]


def _settle(
    done: asyncio.Future[dict[Endpoint, dict[str, tuple[str, str, bytes]]]],
    result: dict[Endpoint, dict[str, tuple[str, str, bytes]]] | None,
    error: BaseException | None,
) -> None:
    """`done` given the lookups' thread's result (on its loop), unless cancelled meanwhile."""
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        assert result is not None
        done.set_result(result)


#: the writer's queue item that makes it commit what it holds now
_FLUSH: _Item = (None, 0)


class Cache:
    """Answers by (identity, endpoint, key) with expiry, the daily budget, the quota and the
    deferred list. Answers, budget and quota are those of the identity the cache is bound to
    (`identity`, or `bind`), unless another is given (`admit` it first): a cache shared by
    `Enricher`s of several identities serves each only what it fetched."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_ttl: float,
        default_ttl: float,
        max_age: float | None = None,
        fmt: str = "",
        identity: ApiIdentity | None = None,
        max_size: int = 2 * 1024**3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self.path = Path(path).expanduser()
        except RuntimeError:  # `~someone/…` of a user who does not exist
            raise SettingsError(f"cache: cannot use {path}: no such user's home") from None
        self.fmt = fmt
        self.max_ttl = max_ttl
        self.default_ttl = default_ttl
        self.max_age = max_age
        self.max_size = max_size
        self._clock = clock
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.purged = 0
        self.evicted = 0
        self.unreadable = 0  # rows that did not decompress: asked again
        self.broken: str | None = None  # why the cache stopped being used, if it did
        self.damaged = False  # found damaged during the run: moved aside at close
        #: why this run stores no answer (it still serves those stored), if it does not
        self.not_kept: str | None = None
        self.identity: ApiIdentity | None = None
        self.identity_name = ""
        self._id = -1
        #: the number of each identity admitted, in this file
        self._ids: dict[ApiIdentity, int] = {}
        self._size_at_close: int | None = None
        dictionary = zstandard.ZstdCompressionDict(_DICTIONARY.read_bytes())
        self._dictionary = dictionary
        unpacker = zstandard.ZstdDecompressor(dict_data=dictionary, max_window_size=_WINDOW_MAX)
        self._unpacker = unpacker
        self._unpack_all = unpacker.multi_decompress_to_buffer
        self._budget_lock = threading.Lock()
        #: held while the counts above are added to (the lookups' threads count at once)
        self._counting = threading.Lock()
        #: held while a thread of `answers`/`unanswered_endpoints` reads through `_db`: a
        #: stop may walk away from such a thread (`call_in_thread`), and closing a connection
        #: while another thread steps a statement on it crashes the process (seen in CI: a
        #: segfault in `empty_endpoints` as the test's cache closed)
        self._reading = threading.Lock()
        self._budget_db: sqlite3.Connection | None = None
        self._uncounted = 0  # requests `count_soon` could not queue yet
        #: WAL pages between checkpoints: at most an eighth of max_size
        self._wal_pages = max(16, min(1000, max_size // _PAGE // 8))
        self._file: tuple[int, int] | None = None
        self._db = self._open()
        if identity is not None:
            self.bind(identity)
        # Answers are written by a thread of their own, on its own connection: compressing a
        # row and inserting it at a random place in the key index cost ~15 µs, which zstd and
        # SQLite spend without the GIL.
        self._writes: queue.Queue[_Item | None] = queue.Queue(maxsize=_WRITES_BEHIND)
        #: set by `close`: the writer's queue takes nothing more (after the None that ends it)
        self._ended = False
        #: the writer's: rows it staged since the last merge, and whether a merge was asked
        self._staged = 0
        self._merge_asked = False
        #: the writer's: whether it made sure `staged` is there
        self._staging = False
        self._writer = threading.Thread(target=self._write_loop, name="cache-writer", daemon=True)
        self._writer.start()
        #: the lookups' threads (`answers`): started at the first, ended by `close`; what
        #: they are given to read, and the lock that starts them once
        self._lookups: queue.SimpleQueue[_Lookup | None] = queue.SimpleQueue()
        self._lookup_threads: list[threading.Thread] = []
        self._lookup_start = threading.Lock()
        #: `db`: the connection the lookups' thread that reads through one of its own set;
        #: `unpacker`: each lookups' thread's own decompressor (`_line_of`)
        self._local = threading.local()

    # -- opening ---------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """The connection to a cache at `self.path` that is enricher's (made, migrated, or
        made anew in place of a damaged one); SettingsError, and nothing touched, if the
        path holds anything else."""
        path = self.path
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise SettingsError(
                f"cache: cannot use {path}: {exc.strerror}; {_ANOTHER_PATH}"
            ) from None
        if mode is None:
            if not self._create():
                self._examine()  # another run made it meanwhile
        elif not stat.S_ISREG(mode):
            raise _refuse(path, f"is {_kind(mode)}, not a cache file", _ANOTHER_PATH)
        elif self._examine() == "damaged":
            self._set_aside()
            self._create()
        else:
            self._make_private()
        db: sqlite3.Connection | None = None
        try:
            db = self._connect(reader=True)
            # found out now, not by the first write after a night's work
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            self._load(db)
        except sqlite3.Error as exc:
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            if not _corrupt(exc):
                raise SettingsError(_cannot_write(path, exc)) from None
            self._set_aside()
            self._create()
            db = self._connect(reader=True)
            self._load(db)
        self._file = _file_id(path)
        return db

    def _make_private(self) -> None:
        """An enricher cache others may read (copied, or made under another umask by hand)
        is made its owner's only, its WAL files too: it holds what this team asked about."""
        for suffix in ("", "-wal", "-shm"):
            name = f"{self.path}{suffix}"
            try:
                mode = stat.S_IMODE(os.stat(name).st_mode)
                if mode & 0o077:
                    os.chmod(name, mode & 0o700)
                    log.warning("cache: %s was open to others (%o): made private", name, mode)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cache: %s is open to others and stays so: %s", name, exc.strerror)

    def _header(self) -> bytes:
        """The database header: the file's, or the one its WAL's last commit wrote (a run
        killed in WAL mode leaves it there) when the file's is not enricher's."""
        try:
            with open(self.path, "rb") as f:
                header = f.read(HEADER_SIZE)
        except OSError as exc:
            raise SettingsError(
                f"cache: cannot read {self.path}: {exc.strerror}; {_ANOTHER_PATH}"
            ) from None
        if _marker(header) != (APPLICATION_ID, LAYOUT):
            logged = wal_header(self.path)
            if logged is not None and logged.startswith(SQLITE_MAGIC):
                return logged
        return header

    def _examine(self) -> str:
        """For a file that is enricher's: whether it is "ours" or "damaged" (a layout-2
        cache is migrated first); SettingsError for anything else. Reads the header, then
        the file, read-only."""
        path = self.path
        header = self._header()
        if len(header) < HEADER_SIZE or not header.startswith(SQLITE_MAGIC):
            why = "is empty" if not header else "is not a SQLite database"
            raise _refuse(path, f"{why}, so no enricher cache", _ANOTHER_PATH)
        app_id, layout = _marker(header)
        if layout == _LAYOUT_2 and app_id in (0, APPLICATION_ID):
            # enricher 0.1.0's, or ours after a 0.1.0 run took it over (it set its layout)
            self._migrate(app_id)
            return "ours"
        if app_id != APPLICATION_ID:
            raise _refuse(path, "is a SQLite database of another program", _ANOTHER_PATH)
        if layout != LAYOUT:
            raise _refuse(
                path, f"was made by another version of enricher (layout {layout})", _ANOTHER_PATH
            )
        schema = self._schema()
        if schema is None:
            return "damaged"
        objects, marker = schema
        if marker == (APPLICATION_ID, _LAYOUT_2):
            # the file's header is layout 3, but its WAL (SQLite reads through it) says a
            # 0.1.0 run took it over since, and was killed before a checkpoint
            self._migrate(APPLICATION_ID)
            return "ours"
        if objects - {_STAGED} != _layout_3_objects():
            raise _refuse(
                path, "carries enricher's marker but not the tables of its cache", _ANOTHER_PATH
            )
        return "ours"

    def _schema(self) -> tuple[set[tuple[str, str]], tuple[int, int]] | None:
        """What the file's schema holds, and its (application_id, user_version) as its
        last commit (in the WAL, if it has one) left them, read without changing the file;
        None if it is damaged."""
        for careful in (False, True):
            try:
                with contextlib.closing(self._read_only(careful=careful)) as db:
                    objects = set(db.execute("SELECT type, name FROM sqlite_master"))
                    (app_id,) = db.execute("PRAGMA application_id").fetchone()
                    (layout,) = db.execute("PRAGMA user_version").fetchone()
                    return objects, (int(app_id), int(layout))
            except sqlite3.Error as exc:
                if not _corrupt(exc):
                    raise SettingsError(
                        f"cache: cannot open {self.path}: {exc}; {_ANOTHER_PATH}"
                    ) from None
        return None

    def _read_only(self, *, careful: bool = False) -> sqlite3.Connection:
        """A connection that reads the file and changes nothing: with its WAL when it has one
        (or when `careful`: SQLite then locks as any reader does, and may use a -shm file
        beside it), else `immutable`, so that not even a -shm file is made beside a file
        that may be another program's. (An immutable read may see a page torn by a writer
        that began meanwhile: a file found damaged that way is read again, carefully.)"""
        where = urllib.parse.quote(os.fsencode(self.path.absolute()))  # bytes: any name
        plain = careful or os.path.exists(f"{self.path}-wal")
        # an empty authority (`file://`): a path that starts with `//` names no host
        uri = f"file://{where}?mode=ro" + ("" if plain else "&immutable=1")
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT)

    def _connect(
        self, *, read_only: bool = False, reader: bool = False, same: bool = False
    ) -> sqlite3.Connection:
        """A connection to the file at the path; never made here (`mode=rw`): a file that
        vanished is not made anew in its place, unmarked. With `same`, _Vanished unless it
        is the file this cache opened, found before anything is read or set: a file put at
        the path since (another program's database) was made a WAL database by the pragma
        below, and took this cache's WAL, still beside it, as its own: its pages were
        overwritten with the cache's, and the cache lost the rows its WAL held."""
        if read_only:
            return self._read_only(careful=True)
        uri = f"file://{urllib.parse.quote(os.fsencode(self.path.absolute()))}?mode=rw"
        db = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT
        )
        # SQLite has the file open now (its header not yet read): the one at the path then
        if same and not self._still_there():
            db.close()
            raise _Vanished(_VANISHED.format(path=self.path))
        db.execute("PRAGMA journal_mode=WAL")
        # No fsync: after an OS crash the newest answers may be gone (or the file damaged,
        # and then replaced); an application crash, SIGKILL included, loses nothing.
        db.execute("PRAGMA synchronous=OFF")
        # The key index takes inserts at random places: the page cache keeps its inner pages
        # (a few MiB at 5,000,000 keys; its leaves, 100 times that, miss at any size that
        # fits a run's memory and come from the OS's cache). It counts in the process's RSS.
        db.execute(f"PRAGMA cache_size=-{_CACHE_KIB if reader else _WRITER_CACHE_KIB}")
        # The WAL is checkpointed every `wal_pages` pages (SQLite's 1,000 by default: 16 MiB
        # of 16 KiB pages) and cut back to that size, so that it adds at most about an
        # eighth of max_size to the file (and 16 MiB at most).
        db.execute(f"PRAGMA wal_autocheckpoint={self._wal_pages}")
        db.execute(f"PRAGMA journal_size_limit={self._wal_pages * _PAGE}")
        if reader:
            # The connection of lookups: hits read rows from pages all over the file, so map
            # it rather than pread each page; only what the file held as the run began (rows
            # written since are this run's own keys, never looked up again), 256 MiB at most:
            # mapped pages count in the process's RSS. The writer does not map.
            db.execute(f"PRAGMA mmap_size={_map_size(self.path)}")
        return db

    def _connect_again(self) -> sqlite3.Connection:
        """Another connection (the writer's, the budget's) to the file this cache opened:
        sqlite3.Error if it was removed or replaced at the path meanwhile (another run set
        it aside as damaged, someone deleted it): writing to another file, or to a new one
        made at the path, would put rows in a file whose identities are not ours."""
        try:
            return self._connect(same=True)
        except _Vanished:
            raise
        except sqlite3.OperationalError:
            if os.path.exists(self.path):
                raise
            raise _Vanished(_VANISHED.format(path=self.path)) from None

    def _still_there(self) -> bool:
        """Whether the file at the path is still the one this cache opened."""
        return _file_id(self.path) == self._file

    def _create(self) -> bool:
        """A new, empty cache at `self.path`: made whole under another name, then linked into
        place, so the path never holds a half-made file, and of two runs making it at once
        one wins and both use its file. False if something was at the path first."""
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
            # private: it holds what this team asked about
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        except OSError as exc:
            raise SettingsError(
                f"cache: cannot create {path}: {exc.strerror}; {_ANOTHER_PATH}"
            ) from None
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                # Rows are ~0.3 KB with their index entries: 16 KiB pages hold dozens each.
                # Both must be set before the first table exists.
                db.execute(f"PRAGMA page_size={_PAGE}")
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                db.executescript(_SCHEMA)
                db.execute("INSERT INTO meta VALUES ('key', ?)", (secrets.token_bytes(32),))
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={LAYOUT}")
                db.execute("PRAGMA journal_mode=WAL")
            finally:
                db.close()
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False  # another run made it meanwhile
            except OSError:
                # a file system without hard links: a rename, which could replace a cache
                # made meanwhile by another run (an empty one, at worst)
                if os.path.lexists(path):
                    return False
                os.rename(tmp, path)
            return True
        except (OSError, sqlite3.Error) as exc:
            raise SettingsError(f"cache: cannot create {path}: {exc}; {_ANOTHER_PATH}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _migrate(self, app_id: int) -> None:
        """A layout-2 cache (enricher 0.1.0's; or ours, once a 0.1.0 run took it over) made
        layout 3, in place: checked read-only first (with its WAL) to hold exactly that
        layout's tables (and, in ours, what 0.1.0 left of layout 3); its answers dropped
        (they belong to no identity we could tell), its deferred IOCs kept for any next
        run, its request counts kept for every identity (one of them sent those requests)."""
        path = self.path
        try:
            with contextlib.closing(self._read_only()) as ro:
                objects = set(ro.execute("SELECT type, name FROM sqlite_master"))
                columns = [row[1] for row in ro.execute("PRAGMA table_info(answers)")]
        except sqlite3.Error:
            objects, columns = set(), []
        leftovers = objects - _LAYOUT_2_OBJECTS
        allowed = _LAYOUT_3_LEFTOVERS if app_id == APPLICATION_ID else set()
        if not (objects >= _LAYOUT_2_OBJECTS and leftovers <= allowed) or (
            columns != _LAYOUT_2_ANSWERS
        ):
            raise _refuse(
                path, "is a SQLite database of another program (no enricher marker)", _ANOTHER_PATH
            )
        try:
            with contextlib.closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")
                (found_id,) = db.execute("PRAGMA application_id").fetchone()
                (layout,) = db.execute("PRAGMA user_version").fetchone()
                if layout != _LAYOUT_2 or found_id != app_id:
                    db.execute("ROLLBACK")
                    return  # another run migrated it meanwhile
                # one statement at a time: executescript would commit the transaction first
                for statement in (
                    "ALTER TABLE deferred RENAME TO deferred_2",
                    "ALTER TABLE budget RENAME TO budget_2",
                    "DROP TABLE answers",
                    *(f"DROP TABLE {name}" for kind, name in sorted(leftovers) if kind == "table"),
                    *_statements(_SCHEMA),
                ):
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO deferred SELECT ?, '', type, ioc, ? FROM deferred_2",
                    (_NO_IDENTITY, _LEGACY_REASON),
                )
                db.execute(
                    "INSERT OR IGNORE INTO budget SELECT ?, day, requests FROM budget_2",
                    (_NO_IDENTITY,),
                )
                db.execute("DROP TABLE deferred_2")
                db.execute("DROP TABLE budget_2")
                db.execute("INSERT INTO meta VALUES ('key', ?)", (secrets.token_bytes(32),))
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={LAYOUT}")
                db.execute("COMMIT")
                # once: auto_vacuum takes effect with a VACUUM, which also gives back the
                # pages of the dropped answers
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                try:
                    db.execute("VACUUM")
                except sqlite3.OperationalError as exc:  # busy: another run has it open
                    log.info("cache: %s migrated; VACUUM left for later (%s)", path, exc)
            log.warning(
                "cache: %s was made by enricher 0.1.0 (answers not tied to an API identity): "
                "migrated, its answers dropped, its deferred IOCs and today's request count kept",
                path,
            )
        except sqlite3.Error as exc:
            if _corrupt(exc):
                raise SettingsError(
                    f"cache: {path} (enricher 0.1.0's) is damaged and cannot be migrated;"
                    f" move it away, {_ANOTHER_PATH}"
                ) from None
            raise SettingsError(f"cache: cannot migrate {path}: {exc}; {_ANOTHER_PATH}") from None

    def _set_aside(self, *, opened: bool = False) -> None:
        """Move a damaged cache (and its WAL, which belongs to it) aside, under a name that
        was free, readable by its owner only; at most `_DAMAGED_KEPT` such copies are kept.
        (`opened`: only if the file at the path is still the one this cache opened.)"""
        path = self.path
        if opened and not self._still_there():
            return  # another run set it aside already, and made a new one
        stamp = int(time.time())
        aside: Path | None = None
        for n in range(1000):
            candidate = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
            if _move(path, candidate):
                aside = candidate
                break
            if not os.path.lexists(path):
                return  # gone meanwhile: nothing to set aside
        if aside is None:
            raise SettingsError(f"cache: {path} is damaged and cannot be moved aside; "
                                f"{_ANOTHER_PATH}")  # fmt: skip
        for suffix in ("-wal", "-shm"):
            # never left behind: a new file at the path would take the old WAL as its own
            if not _move(Path(f"{path}{suffix}"), Path(f"{aside}{suffix}")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{path}{suffix}")
        for name in (aside, Path(f"{aside}-wal"), Path(f"{aside}-shm")):
            with contextlib.suppress(OSError):
                os.chmod(name, 0o600)
        log.warning("cache: %s was damaged; moved to %s, starting anew", path, aside)
        self._prune_damaged()

    def _prune_damaged(self) -> None:
        """The oldest damaged copies past `_DAMAGED_KEPT` go (they only pile up). Only
        copies of enricher's caches: a file merely named so (a regular file without our
        marker, a link, a folder) is never removed, nor counted."""
        prefix = f"{self.path.name}.damaged-"
        copies = []
        for p in self.path.parent.glob(glob.escape(prefix) + "*"):
            stamp = p.name[len(prefix) :].split("-")
            if all(x.isdigit() for x in stamp) and _is_our_copy(p):
                copies.append(([int(x) for x in stamp], p))
        copies.sort()
        for _, old in copies[: max(0, len(copies) - _DAMAGED_KEPT)]:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{old}{suffix}")
            log.info("cache: %s removed (more than %d damaged copies)", old, _DAMAGED_KEPT)

    def _load(self, db: sqlite3.Connection) -> None:
        """What every run reads first: the file's key (for identities), the record formats;
        whether this SQLite has JSON functions (built in since 3.38, an option before).
        Makes the staging table where there is none, and merges what it holds."""
        (key,) = db.execute("SELECT value FROM meta WHERE name = 'key'").fetchone()
        self._key = bytes(key)
        # rows a run staged and did not merge (it was killed, or is running now): merged
        # now, so that this run is served them. (`staged` is made by the first write: a
        # file only read, by a lookup or a run that stores nothing, stays as an enricher
        # without it can open.)
        staging = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'staged'"
        ).fetchone()
        if staging is not None and db.execute("SELECT 1 FROM staged LIMIT 1").fetchone():
            try:
                self._merge(db)
            except sqlite3.Error as exc:
                if _corrupt(exc):
                    raise
                # a full disk (the merge writes the index's pages to the WAL): the run goes
                # on as before the staging table, unserved the rows, which stay for a later
                # merge, rather than refuse to start while the disk is full
                log.warning(
                    "cache: the answers a run left staged could not be merged (%s); this run"
                    " is not served them",
                    exc,
                )
        self._fmt_id = _intern(db, "formats", "fmt", self.fmt)
        self._formats = dict(db.execute("SELECT id, fmt FROM formats"))
        self._json = _has_json(db)

    def bind(self, identity: ApiIdentity) -> None:
        """Serve, store and count for `identity` from now on."""
        self.identity = identity
        self.identity_name = identity.name(self._key)
        self._id = self.admit(identity)

    def admit(self, identity: ApiIdentity) -> int:
        """Make `identity` known to the file (on the thread that opened the cache), so that
        `lookup`, `store` and `empty_endpoints` may be given it; its number in the file."""
        ident = self._ids.get(identity)
        if ident is None:
            try:
                ident = _intern(self._db, "identities", "name", identity.name(self._key))
            except sqlite3.Error as exc:
                self._break(f"reading failed: {exc}", exc)
                return -1
            self._ids[identity] = ident
        return ident

    def _bound(self, identity: ApiIdentity | None = None) -> int:
        """The number of `identity` (admitted), else of the identity the cache is bound to."""
        if identity is not None:
            ident = self._ids.get(identity)
            if ident is None:
                raise RuntimeError("Cache.admit(identity) first: it is not known to the file")
            return ident
        if self.identity is None:
            raise RuntimeError("Cache.bind(identity) first: answers belong to an API identity")
        return self._id

    # -- writing -----------------------------------------------------------------------------

    def _write_loop(self) -> None:
        """The writer thread: compresses rows as they come (so the queue's record lines are
        let go at once) and commits them in transactions of `_TXN_ROWS` rows, or whatever
        came within `_LINGER` s, or as `flush` or `close` asks. Each time it wakes, it takes
        every item the queue holds, and compresses their rows in one call (`_taken`)."""
        db: sqlite3.Connection | None = None
        # the dictionary made ready for level 3 once (a copy: the lookups' thread reads
        # the other): the same frames, ~1,500 fewer instructions a line than making it
        # ready per frame (24,330 against 25,871 a line, engine record lines of ~0.9 KB)
        ready = zstandard.ZstdCompressionDict(self._dictionary.as_bytes())
        ready.precompute_compress(level=_LEVEL)
        pack = zstandard.ZstdCompressor(level=_LEVEL, dict_data=ready, write_checksum=True)
        # what the commit will insert, added to as stores come (one copy of it in Python,
        # not each store's besides): records end to end, and the rows' JSON arrays by head
        records, groups, rows = bytearray(), list[tuple[_Head, bytearray]](), 0
        #: the group the rows of each (identity, endpoint, format) go on in, in `groups`
        current: dict[tuple[int, int, int], int] = {}
        requests = 0
        taken = 0  # items taken from the queue, not yet written
        until = 0.0  # when what is pending is written, at the latest
        last = False
        while not last:
            try:
                if taken:
                    wait = max(0.0, until - time.monotonic())
                    items = self._taken(self._writes.get(timeout=wait), _TXN_ROWS - rows)
                else:
                    items = self._taken(self._writes.get(), _TXN_ROWS - rows)
                    until = time.monotonic() + _LINGER
            except queue.Empty:
                items, due = [], True  # waited long enough for more
            else:
                taken += len(items)
                # `flush` and `close` want every row merged, so that lookups see them
                due = any(item is _FLUSH or item is None for item in items)
                self._merge_asked = self._merge_asked or due
                last = items[-1] is None
            stores = []
            for item in items:
                if item is not None and item is not _FLUSH:
                    stored, n = item
                    requests += n
                    if stored is not None:
                        stores.append(stored)
            if stores and not self.broken:
                try:
                    made = self._packed(stores, pack, len(records))
                    records += made.records
                    for head, listed in made.groups:
                        # a second later, a new group, after the others: rows of one
                        # (identity, endpoint) stay in the order they came, which the
                        # merge keeps for a key stored twice (even as the clock goes back)
                        at = current.get(head[:3])
                        if at is not None and groups[at][0] == head:
                            joined = groups[at][1]
                            joined += b","
                            joined += memoryview(listed)[1:-1]
                        else:
                            current[head[:3]] = len(groups)
                            groups.append((head, bytearray(memoryview(listed)[:-1])))
                    rows += made.count
                except Exception as exc:
                    # an answer no row can be made of (a ttl past a float): a writer
                    # thread that died left every later flush waiting for ever
                    self._break(f"writing failed: {exc!r}")
            # past the wait, a queue never empty (a writer behind) gave no Empty: the rows
            # waited for _TXN_ROWS, not _LINGER
            if not due and rows < _TXN_ROWS and time.monotonic() < until:
                continue
            if taken or rows or requests:
                for _, listed in groups:
                    listed += b"]"
                packed = _Packed(records, list(groups), rows) if rows else None
                del records, groups
                try:
                    db = self._commit(db, packed, requests)
                except Exception as exc:
                    # not SQLite's (`_commit` takes those): a writer thread that died left
                    # every later flush waiting for ever
                    self._break(f"writing failed: {exc!r}")
                del packed
                records, groups, rows, requests = bytearray(), [], 0, 0
                current.clear()
            for _ in range(taken):
                self._writes.task_done()
            taken = 0
        if db is not None:
            db.close()

    def _taken(self, first: _Item | None, room: int) -> list[_Item | None]:
        """`first` and the items the queue holds behind it, up to the None that ends it,
        until they store `room` rows or `_TAKE_BYTES` of record lines or more. Each wake of
        the writer waits for the GIL, up to the interpreter's switch interval (5 ms) while
        the event loop runs, and so does each call that lets go of it (zstd, SQLite): a store
        at a time (a batch's 500 answers) took two such waits, which, not the CPU, set the
        pace of a fresh cache. Taken together, the rows that came while the writer waited
        cost it two waits."""
        items = [first]
        size = _TAKE_BYTES
        while (item := items[-1]) is not None:
            if item[0] is not None:
                room -= len(item[0][4])
                size -= sum(map(len, item[0][5]))
            if room <= 0 or size <= 0:
                break
            try:
                items.append(self._writes.get_nowait())
            except queue.Empty:
                break
        return items

    def _packed(
        self, stores: Sequence[_Stored], pack: zstandard.ZstdCompressor, start: int
    ) -> _Packed:
        """Answers stored, their record lines compressed by `pack` as a hit writes them (in
        one call, which lets go of the GIL once: a call a line took it back at each line,
        waiting each time), each kept until the answer's ttl (at most `max_ttl`); `start`
        bytes of records come before them in their commit; a group a store. The steps a
        row are builtins' (map, zip, accumulate), not this thread's bytecode: what the
        writer does holding the GIL, the event loop waits for."""
        served = _as_served_all(list(itertools.chain.from_iterable(map(_LINES_OF, stores))))
        frames: list[zstandard.BufferSegment | bytes]
        try:
            compressed = pack.multi_compress_to_buffer(served)
            frames = list(map(compressed.__getitem__, range(len(compressed))))
        except ValueError:  # "source elements are empty" (every line empty): a frame each
            frames = [pack.compress(line) for line in cast("list[bytes]", served)]
        # one size each, in the stores' order: each store's rows take theirs in turn
        sizes = list(map(len, frames))
        sized = iter(sizes)
        # where each record starts in the commit's records: SQLite's substr counts from 1
        # (one more than there are rows: where the next records would start)
        at = itertools.accumulate(sizes, initial=start + 1)
        max_ttl, default_ttl = self.max_ttl, self.default_ttl
        groups: list[tuple[_Head, bytes | bytearray]] = []
        for ident, code, fid, now, answered, _ in stores:
            expires = [
                int(now + min(max_ttl, ttl_ms / 1000 if ttl_ms is not None else default_ttl))
                for ttl_ms in map(_TTL_MS, answered)
            ]
            verdicts = map(_VERDICT.get, map(_VERDICT_OF, answered), itertools.repeat(3))
            # the keys first: zip stops at their end, taking no more of `at` and `sized`
            rows = zip(map(_KEY_OF, answered), verdicts, at, sized, expires, strict=False)
            groups.append(((ident, code, fid, int(now)), orjson.dumps(list(rows))))
        # a BufferSegment is a buffer (its stub does not say so)
        return _Packed(b"".join(cast("list[bytes]", frames)), groups, len(sizes))

    def _commit(
        self, db: sqlite3.Connection | None, rows: _Packed | None, requests: int
    ) -> sqlite3.Connection | None:
        """Write `rows` (compressed): a statement a group, alone in its transaction when it
        is the only one (rows in the order they came: eviction takes the oldest by rowid),
        then count `requests`; the connection, made on first use."""
        asked, self._merge_asked = self._merge_asked, False
        try:
            if not self.broken and (rows is not None or requests or (asked and self._staged)):
                db = db or self._connect_again()
                if not self._still_there():  # a connection made before it was deleted
                    raise _Vanished(_VANISHED.format(path=self.path))
                if rows is not None:
                    self._stage(db, rows)
                    self.stored += rows.count
                    self._staged += rows.count
                if requests:
                    self._count(db, requests)
                if (asked and self._staged) or (rows is not None and self._merge_due(db)):
                    self._merge(db)
                    self._staged = 0
                    self._evict(db)
        except sqlite3.Error as exc:
            if db is not None and db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            self._break(f"writing failed: {exc}", exc)
        except BaseException:
            # not SQLite's (the writer loop breaks the cache): a transaction it left open
            # held the file's write lock to the run's end, and every other run sharing the
            # file waited its busy timeout at each write, then broke too
            if db is not None and db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        return db

    def _stage(self, db: sqlite3.Connection, rows: _Packed) -> None:
        """Append `rows` to `staged`, in one transaction: one statement (alone in its
        transaction, with no BEGIN, up to `_GROUPS_MAX` groups), or, in a SQLite without
        JSON functions or for a key with a NUL, one statement a row."""
        if not self._staging:
            db.execute(_STAGED_SCHEMA)  # the first write (another run may have made it)
            self._staging = True
        records, groups = rows.records, rows.groups
        if self._json and not any(_NUL in listed for _, listed in groups):
            parts = [groups[i : i + _GROUPS_MAX] for i in range(0, len(groups), _GROUPS_MAX)]
            if len(parts) > 1:
                db.execute("BEGIN IMMEDIATE")
            for part in parts:
                given = itertools.chain.from_iterable((listed, *head) for head, listed in part)
                db.execute(_insert_groups(len(part)), (records, *given))
            if len(parts) > 1:
                db.execute("COMMIT")
            return
        unpacked = [
            (ident, code, key, verdict, fid, at, size, fetched, expires)
            for (ident, code, fid, fetched), listed in groups
            for key, verdict, at, size, expires in orjson.loads(listed)
        ]
        db.execute("BEGIN IMMEDIATE")
        db.executemany(_INSERT_ROW, _unpacked(bytes(records), unpacked))
        db.execute("COMMIT")

    def _merge_due(self, db: sqlite3.Connection) -> bool:
        """Whether the staged rows are many enough to merge (`_MERGE_MIN`, `_MERGE_SHARE`),
        or the file is past max_size (the oldest rows are evicted once all are merged)."""
        staged, indexed, size = db.execute(_MERGE_DUE).fetchone()
        return (staged or 0) >= max(_MERGE_MIN, _MERGE_SHARE * (indexed or 0)) or (
            size > self.max_size
        )

    @staticmethod
    def _merge(db: sqlite3.Connection) -> None:
        """The staged rows (every run's: whichever merges them) into `answers`, and out of
        `staged`, in one transaction: a merge is never half done, nor done twice. (The
        INSERT, not alone in its transaction, has a statement journal: it did not show in
        the bytes written, 777 MB at 500,000 answers against 788 with the INSERT and the
        DELETE each its own transaction.)"""
        db.execute("BEGIN IMMEDIATE")
        try:
            (last,) = db.execute("SELECT max(rowid) FROM staged").fetchone()
            if last is not None:
                db.execute(_MERGE, (last,))
                db.execute("DELETE FROM staged")
        except BaseException:
            # a full disk rolls the transaction back itself: a ROLLBACK then failed, and its
            # error ("cannot rollback - no transaction is active") replaced the one that says why
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _put(self, item: _Item, *, block: bool = True) -> None:
        """Queue `item` for the writer; nothing once `close` ended it (else the queue, which
        no one takes from any more, filled and the next store waited for ever). A full queue
        is waited on holding no lock: the event loop's `store_soon` comes here too, and a
        lock held by a thread waiting on a writer stuck behind another process's lock
        stopped the loop, signals and all. An item slipping in after close's end is never
        written, as a store after close is not."""
        while not self._ended:
            try:
                self._writes.put(item, block=block, timeout=_PUT_LOOK if block else None)
                return
            except queue.Full:
                if not block:
                    raise

    def flush(self) -> None:
        """Wait until every answer stored so far is written."""
        if self._ended:  # the writer is gone, and wrote all it was given
            return
        self._put(_FLUSH)
        self._writes.join()

    def _break(self, why: str, exc: sqlite3.Error | None = None) -> None:
        if exc is not None and _corrupt(exc):
            self.damaged = True
        if self.broken is None:
            self.broken = why
            log.warning("cache: %s; the run goes on without the cache", why)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # the connection is in autocommit mode: group many rows into one commit explicitly
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # SQLite may have rolled it back itself (a full disk): a ROLLBACK then would
            # raise "no transaction is active" in place of what happened
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Finish the pending writes, then close; a cache found damaged is moved aside, so
        that the next run starts anew."""
        uncounted, self._uncounted = self._uncounted, 0
        self.add_requests(uncounted)
        self._ended = True
        self._writes.put(None)
        with self._lookup_start:
            for _ in self._lookup_threads:
                self._lookups.put(None)  # ends a lookups' thread once they read what they have
        self._writer.join()
        # a read walked away from finishes first; one that waits on another process's lock
        # longer leaves the connection open (to the process's end) rather than crash it
        free = self._reading.acquire(timeout=_CLOSE_WAIT)
        try:
            if free:
                with contextlib.suppress(sqlite3.Error):
                    self._size_at_close = self.size()
            for db in (self._db if free else None, self._budget_db):
                if db is not None:
                    with contextlib.suppress(sqlite3.Error):
                        db.close()
        finally:
            if free:
                self._reading.release()
        if self.damaged:
            self._set_aside(opened=True)

    async def aclose(self) -> None:
        """`close`, in a thread."""
        await call_in_thread(self.close, name="cache close")

    # -- size --------------------------------------------------------------------------------

    def size(self, db: sqlite3.Connection | None = None) -> int:
        """The database's size in bytes: the file's, once the WAL is checkpointed (during a
        run the WAL adds up to 64 MiB beside it)."""
        db = db or self._db
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        return int(pages * page_size)

    @staticmethod
    def _give_back(db: sqlite3.Connection) -> None:
        """Free pages back to the file system. (`execute` would step this pragma once, which
        frees one page; `executescript` runs it to the end.)"""
        db.executescript("PRAGMA incremental_vacuum")

    def _evict(self, db: sqlite3.Connection) -> None:
        """Past max_size: the oldest answers go (rows are appended, so by rowid), down to
        90% of it, and their pages back to the file system."""
        for _ in range(8):  # rows are not all the same size: a few rounds at most
            used = self.size(db)
            if used <= self.max_size:
                return
            low, high = db.execute("SELECT min(rowid), max(rowid) FROM answers").fetchone()
            if low is None:
                return
            share = 1 - _EVICT_TO * self.max_size / used
            cut = low + max(1, int((high - low + 1) * share))
            cur = db.execute("DELETE FROM answers WHERE rowid < ?", (cut,))
            self.evicted += cur.rowcount
            self._give_back(db)

    # -- answers -----------------------------------------------------------------------------

    def lookup(
        self, endpoint: Endpoint, keys: Sequence[str], *, identity: ApiIdentity | None = None
    ) -> dict[str, tuple[str, str, bytes]]:
        """(verdict, fmt, record line as a hit writes it) of the live cached answers among
        `keys` for `identity` (else the one the cache is bound to). Expired ones, older than
        max_ttl or (with max_age) max_age, ones dated in the future, and ones whose record is
        not of their key (a row damaged, or copied over another) are misses. With each key a
        hit whose line is served as it is, `served` holds their lines and verdicts in the
        order of `keys` (`hits.Found`)."""
        # a lookups' thread's own connection, or the cache's
        db = getattr(self._local, "db", None) or self._db
        return self._lookup_in(db, endpoint, keys, identity)

    def _lookup_in(
        self,
        db: sqlite3.Connection,
        endpoint: Endpoint,
        keys: Sequence[str],
        identity: ApiIdentity | None,
    ) -> Found:
        """`lookup` through the connection `db` (the cache's, or a lookup thread's own)."""
        ident = self._bound(identity)
        now = self._clock()
        oldest = max(now - self.max_ttl, now - self.max_age if self.max_age is not None else -1.0)
        found = Found()
        if self.broken:
            return found
        # a row's age counts from no later than now (a clock that was a little ahead): with
        # --max-age 0 nothing is young enough
        where = (ident, _ENDPOINT[endpoint], now, now, oldest, now + _SKEW)
        try:
            if self._json:
                lines: list[bytes] = []
                verdicts: list[str] = []
                whole = True
                for i in range(0, len(keys), _PACKED_SLICE):
                    served = self._lookup_packed(db, keys[i : i + _PACKED_SLICE], where, found)
                    if served is None:
                        whole = False
                    elif whole:
                        lines += served[0]
                        verdicts += served[1]
                if whole:
                    found.served = (lines, verdicts)
            else:
                self._lookup_slices(db, keys, where, found)
        except sqlite3.Error as exc:
            self._break(f"reading failed: {exc}", exc)
            found.clear()
            found.served = None
        self.tally(hits=len(found), misses=len(keys) - len(found))
        return found

    def _lookup_packed(
        self,
        db: sqlite3.Connection,
        keys: Sequence[str],
        where: _Where,
        found: dict[str, tuple[str, str, bytes]],
    ) -> Served | None:
        """`lookup` of `keys` in one statement that gives one row: the hits' keys, verdicts,
        formats and sizes as JSON, and their records end to end, decompressed in one call.
        SQLite finds them without the GIL; a row at a time took the GIL back at each row,
        waiting for the event loop each time. Anything amiss (a row damaged, the hits'
        records together past SQLite's length limit, 1 GB): row by row. What `found` gives of
        the hits' lines in the keys' order (`Found.served`), if anything."""
        asked = orjson.dumps(list(keys))
        if _NUL in asked:
            self._lookup_slices(db, keys, where, found)
            return None
        try:
            found_at, found_verdicts, found_formats, found_sizes, records = db.execute(
                _SELECT_PACKED, (*where, asked)
            ).fetchone()
        except sqlite3.DataError:  # "string or blob too big": it broke the cache
            self._lookup_slices(db, keys, where, found)
            return None
        try:
            at: list[int] = orjson.loads(found_at)
            if not at:
                return None
            sizes: list[int] = orjson.loads(found_sizes)
            if len(at) != len(sizes):
                raise ValueError("records and their sizes differ")
            segments, claimed = frames(records, sizes, _LINE_MAX)
            lines = self._unpack_all(
                zstandard.BufferWithSegments(records, segments), claimed, threads=_UNPACK_THREADS
            )
            hits, served = found_hits(
                lines,
                keys,
                at,
                orjson.loads(found_verdicts),
                orjson.loads(found_formats),
                VERDICTS,
                self._formats,
                self.fmt,
            )
            unreadable = len(at) - len(hits)
            if unreadable:
                # a key given twice was found twice: once is one hit
                unreadable -= len(at) - len({keys[i] for i in at})
        except (ValueError, *_UNREADABLE):
            self._lookup_slices(db, keys, where, found)
            return None
        found.update(hits)
        if unreadable:
            self.tally(unreadable=unreadable)
        return served

    def _lookup_slices(
        self,
        db: sqlite3.Connection,
        keys: Sequence[str],
        where: _Where,
        found: dict[str, tuple[str, str, bytes]],
    ) -> None:
        """`lookup` of `keys` row by row, `_SLICE` keys a statement."""
        for i in range(0, len(keys), _SLICE):
            self._lookup_rows(db, keys[i : i + _SLICE], where, found)

    def _lookup_rows(
        self,
        db: sqlite3.Connection,
        keys: Sequence[str],
        where: _Where,
        found: dict[str, tuple[str, str, bytes]],
    ) -> None:
        """`lookup` of at most `_SLICE` keys, a row at a time (a SQLite without JSON
        functions, a row `_lookup_packed` could not read)."""
        marks = ",".join("?" * len(keys))
        rows = db.execute(
            f"SELECT key, verdict, format, record FROM answers {_LIVE} AND key IN ({marks})",
            (*where, *keys),
        ).fetchall()
        line_of, verdicts, formats, head = self._line_of, VERDICTS, self._formats, _LINE_HEAD
        try:
            hits = {
                k: (verdicts[v], formats[f], line)
                for k, v, f, r in rows
                if (line := line_of(r, head % k.encode())) is not None
            }
        except _UNREADABLE:
            self._read_slowly(db, rows, found)
        else:
            found.update(hits)
            if len(rows) > len(hits):
                self.tally(unreadable=len(rows) - len(hits))

    def _read_slowly(
        self,
        db: sqlite3.Connection,
        rows: list[tuple[str, int, int, bytes]],
        found: dict[str, tuple[str, str, bytes]],
    ) -> None:
        """`lookup`'s rows one by one: a record format written by another run since this one
        read them, or a row that does not decompress, or not to a record of its key (a miss:
        asked again, and replaced)."""
        self._formats = formats = dict(db.execute("SELECT id, fmt FROM formats"))
        unreadable = 0
        for key, verdict, fid, record in rows:
            try:
                line = self._line_of(record, _LINE_HEAD % key.encode())
                if line is not None:
                    found[key] = (VERDICTS[verdict], formats.get(fid, ""), line)
                    continue
            except _UNREADABLE:
                pass
            unreadable += 1
        if unreadable:
            self.tally(unreadable=unreadable)

    def _line_of(self, record: bytes, head: bytes) -> bytes | None:
        """A row's record line, if it begins with `head` (its key's); None if it does not,
        or the frame ends short. Streamed: what is set aside follows what the frame holds,
        not what its header claims (a window past `_WINDOW_MAX` is refused: ZstdError), and
        a row not of its key is decompressed no further than the blocks that hold its head
        (at most 128 KiB each: a frame of 64 MiB of spaces is 2 KB of them)."""
        # a lookups' thread's own: zstandard's decompressobj streams through its
        # decompressor's one context, without the GIL, and two threads streaming through
        # one trampled each other ("Data corruption detected", or a crash)
        unpacker = getattr(self._local, "unpacker", None) or self._unpacker
        reader = unpacker.decompressobj()
        pieces: list[bytes] = []
        got = fed = 0
        at = zstandard.frame_header_size(record)  # (ZstdError: not a frame)
        while got < len(head) and fed < len(record) and not reader.eof:
            # the next block: a 3-byte header (last, type, size), then its size in bytes, or
            # one byte (a block of one byte repeated); the checksum after the last
            kind_size = int.from_bytes(record[at : at + 3], "little")
            at += 3 + (1 if kind_size >> 1 & 3 == 1 else kind_size >> 3)
            at += 4 * (kind_size & 1)  # (whether a checksum follows is the reader's)
            piece = reader.decompress(record[fed:at])
            fed = at
            pieces.append(piece)
            got += len(piece)
        if not b"".join(pieces).startswith(head):
            return None
        if fed < len(record) and not reader.eof:
            pieces.append(reader.decompress(record[fed:]))
        return b"".join(pieces) if reader.eof else None

    async def answers(
        self, keys: Mapping[Endpoint, Sequence[str]], *, identity: ApiIdentity | None = None
    ) -> dict[Endpoint, dict[str, tuple[str, str, bytes]]]:
        """`lookup` of each endpoint's keys (`AnswerStore`), in one of the lookups' threads
        (`_LOOKUP_THREADS`: calls made together are read at once, each answered when read): a
        read may wait for another process's lock, which must never hold up the event loop
        (nor a stop: cancelled, the caller goes on at once, and the thread finishes the
        read). The same threads for the cache's life, where a thread a call (a chunk of
        input's keys) cost the event loop 0.6 s of a warm run's 9 over 500,000 keys,
        starting them (py-spy)."""

        def read_closed() -> dict[Endpoint, dict[str, tuple[str, str, bytes]]]:
            # holding `_reading`, as the lookups' thread reads: `close` may be closing the
            # connection now (it set `_ended` first), and closing it while this steps a
            # statement crashes the process
            with self._reading:
                return self._read(keys, identity)

        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[Endpoint, dict[str, tuple[str, str, bytes]]]]
        done = loop.create_future()
        with self._lookup_start:  # (never held across an await: another caller on this
            closed = self._ended  # loop would block the loop on it for ever)
            if not closed:
                threads = self._lookup_threads
                if not threads or not all(thread.is_alive() for thread in threads):
                    # the first lookup; or in a child forked since the threads started (it
                    # has no such threads: what is put on the queue would wait for ever)
                    for _ in threads:
                        self._lookups.put(None)  # (one left alive ends)
                    self._lookups = queue.SimpleQueue()
                    self._lookup_threads = [
                        threading.Thread(
                            target=self._lookup_loop,
                            args=(self._lookups, n > 0),
                            name="cache lookup",
                            daemon=True,
                        )
                        for n in range(_LOOKUP_THREADS)
                    ]
                    for thread in self._lookup_threads:
                        thread.start()
                self._lookups.put((keys, identity, loop, done))
        if closed:  # read as `lookup` reads a closed cache, in a thread
            return await call_in_thread(read_closed, name="cache lookup")
        return await done

    def _read(
        self, keys: Mapping[Endpoint, Sequence[str]], identity: ApiIdentity | None
    ) -> dict[Endpoint, dict[str, tuple[str, str, bytes]]]:
        """`lookup` of each endpoint's keys."""
        return {ep: self.lookup(ep, vs, identity=identity) for ep, vs in keys.items()}

    def _lookup_loop(self, lookups: queue.SimpleQueue[_Lookup | None], own: bool) -> None:
        """A lookups' thread: each read given to `answers` (on `lookups`) it takes, its
        result handed to the loop that waits for it (unless that stopped waiting: then not
        read at all). With `own`, through a connection of its own (`_local`), which it alone
        uses and closes (the cache's when it cannot open one)."""
        db: sqlite3.Connection | None = None
        opened: tuple[int, int] | None = None  # the file `db` is of
        self._local.unpacker = zstandard.ZstdDecompressor(
            dict_data=self._dictionary, max_window_size=_WINDOW_MAX
        )
        try:
            while (item := lookups.get()) is not None:
                keys, identity, loop, done = item
                if done.cancelled():  # (the loop's to set: seen late at worst, then read)
                    continue
                try:
                    if own and (db is None or opened != self._file):
                        if db is not None:  # of a file set aside since (`_renew`)
                            db.close()
                        opened, db = self._file, self._own_reader()
                        own = db is not None  # else the cache's, from now on
                        self._local.db = db
                    if db is not None:
                        result, error = self._read(keys, identity), None
                    else:
                        with self._reading:
                            result, error = self._read(keys, identity), None
                except BaseException as exc:  # handed to the caller, raised there
                    result, error = None, exc
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, done, result, error)
        finally:
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()

    def _own_reader(self) -> sqlite3.Connection | None:
        """A lookup thread's own connection to the file this cache opened; None if none can
        be opened (the cache's is used then). Not mapped: the pages a second map touches
        count in the RSS again (a warm run over 200,000 keys, 2 threads, 3 runs each: peak
        RSS 231-235 MiB mapped, 206-209 not, 169-181 with one thread; 95,539-131,373 IOCs/s
        mapped, 115,442-131,656 not, 64,256-115,119 with one thread, load 5-6)."""
        try:
            # (_Vanished: a file made anew at the path, not the one opened)
            db = self._connect(reader=True, same=True)
        except sqlite3.Error:
            return None
        try:
            db.execute("PRAGMA mmap_size=0")
        except sqlite3.Error:
            db.close()
            return None
        return db

    async def unanswered_endpoints(self, *, identity: ApiIdentity | None = None) -> set[Endpoint]:
        """`empty_endpoints` (`AnswerStore`), in a thread: it waits for the writer."""

        def read() -> set[Endpoint]:
            with self._reading:
                return self.empty_endpoints(identity=identity)

        return await call_in_thread(read, name="cache endpoints")

    def tally(self, *, hits: int = 0, misses: int = 0, unreadable: int = 0) -> None:
        """Add to the counts `report` gives (from any thread: the lookups' threads count
        at once)."""
        with self._counting:
            self.hits += hits
            self.misses += misses
            self.unreadable += unreadable

    def empty_endpoints(self, *, identity: ApiIdentity | None = None) -> set[Endpoint]:
        """The endpoints the cache holds no answer for `identity` (else the one the cache is
        bound to) for, once what is queued is written."""
        ident = self._bound(identity)
        self.flush()
        try:
            return {
                ep
                for ep in Endpoint
                if self._db.execute(
                    "SELECT 1 FROM answers WHERE identity = ? AND endpoint = ? LIMIT 1",
                    (ident, _ENDPOINT[ep]),
                ).fetchone()
                is None
            }
        except sqlite3.Error as exc:
            self._break(f"reading failed: {exc}", exc)
            return set()

    def store(
        self,
        endpoint: Endpoint,
        items: Iterable[tuple[str, str, bytes, int | None]],
        *,
        identity: ApiIdentity | None = None,
    ) -> None:
        """Remember answers: (key, verdict, record line, ttl in milliseconds or None), as
        `identity`'s (else the bound one's); written by the writer thread, all of them by
        `close()`. Waits while the writer is `_WRITES_BEHIND` batches behind (see
        `store_soon` for the event loop)."""
        stored = self._stored(endpoint, items, identity)
        if stored is not None:
            self._put((stored, 0))

    async def store_soon(
        self,
        endpoint: Endpoint,
        items: Iterable[tuple[str, str, bytes, int | None]],
        *,
        identity: ApiIdentity | None = None,
    ) -> None:
        """`store` for a coroutine: while the writer is behind (a disk that stalls, another
        process holding the write lock), the wait is in a thread, never on the event loop."""
        await self._put_soon(self._stored(endpoint, items, identity))

    async def store_lines_soon(
        self,
        endpoint: Endpoint,
        answered: Sequence[_Answered],
        lines: Sequence[bytes],
        *,
        identity: ApiIdentity | None = None,
    ) -> None:
        """`store_soon` of answers as the pipeline holds them: (key, verdict, ttl in
        milliseconds or None) and their record lines, in one order; the two lists copied
        as they are (the caller may add to them later), without a step an answer."""
        if len(answered) != len(lines):
            raise ValueError("store_lines_soon: one record line an answer")
        ident = self._bound(identity)
        if self.broken or self.not_kept or not answered:
            return
        await self._put_soon(
            (ident, _ENDPOINT[endpoint], self._fmt_id, self._clock(), list(answered), list(lines))
        )

    async def _put_soon(self, stored: _Stored | None) -> None:
        """Queue `stored` for the writer; while its queue is full, waiting in a thread."""
        if stored is None:
            return
        try:
            self._put((stored, 0), block=False)
        except queue.Full:
            await call_in_thread(lambda: self._put((stored, 0)), name="cache store")

    def _stored(
        self,
        endpoint: Endpoint,
        items: Iterable[_Answer],
        identity: ApiIdentity | None,
    ) -> _Stored | None:
        """`items` to queue for the writer, as `identity`'s (else the bound one's), stored
        now; None if there are none, or none is kept."""
        ident = self._bound(identity)
        if self.broken or self.not_kept:
            return None
        # a copy: the writer makes the rows later, after the caller may reuse its list
        answers = tuple(items)
        if not answers:
            return None
        answered = [(key, verdict, ttl_ms) for key, verdict, _, ttl_ms in answers]
        lines = [line for _, _, line, _ in answers]
        return ident, _ENDPOINT[endpoint], self._fmt_id, self._clock(), answered, lines

    def keep_no_answers(self, why: str) -> None:
        """Store no answer from now on (they are still served): `why` says so in the
        summary and the manifest."""
        self.not_kept = why

    def purge(self) -> int:
        """Drop expired answers (and rows dated in the future, and past max_ttl), the oldest
        past max_size, and give their pages back; how many expired. A cache found damaged
        here is moved aside and started anew."""
        now = self._clock()
        try:
            with self._transaction():
                cur = self._db.execute(
                    "DELETE FROM answers WHERE expires_at <= ? OR fetched_at <= ?"
                    " OR fetched_at > ?",
                    (now, now - self.max_ttl, now + _SKEW),
                )
                self._db.execute("DELETE FROM quota WHERE until <= ?", (now,))
                self._db.execute("DELETE FROM budget WHERE day < ?", (self._day(now - 86400),))
            self._give_back(self._db)
            self._evict(self._db)
        except sqlite3.Error as exc:
            if _full(exc):  # what is in the file is still good to serve: only store nothing
                self.keep_no_answers(f"the cache's disk is full (purging failed: {exc})")
                log.warning("cache: %s; its answers are served, no new one is kept", self.not_kept)
                return 0
            if not _corrupt(exc):
                self._break(f"purging failed: {exc}", exc)
                return 0
            self._renew()
            return 0
        self.purged += cur.rowcount
        return cur.rowcount

    def _renew(self) -> None:
        """The file is damaged: move it aside and go on with a new one."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._set_aside(opened=True)
        if self.damaged:
            # what found it damaged before (a read on opening) read the file just set aside:
            # else close set the new one aside too, and the run went on without it
            self.damaged, self.broken = False, None
        self._create()
        self._db = self._connect(reader=True)
        self._load(self._db)
        self._file = _file_id(self.path)
        # a new file numbers its identities anew: each admitted one is admitted again
        admitted = list(self._ids)
        self._ids.clear()
        for identity in admitted:
            self.admit(identity)
        if self.identity is not None:
            self.bind(self.identity)

    def __len__(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()
        return int(n)

    # -- budget and quota ----------------------------------------------------------------

    def _day(self, when: float | None = None) -> str:
        return datetime.fromtimestamp(self._clock() if when is None else when, UTC).strftime(
            "%Y-%m-%d"
        )

    def requests_today(self) -> int:
        """Requests counted today for this identity, by every run."""
        try:
            return self._requests(self._db)
        except sqlite3.Error as exc:
            self._break(f"reading the budget failed: {exc}", exc)
            return 0

    def _requests(self, db: sqlite3.Connection) -> int:
        """Today's count for this identity: its own, and what a 0.1.0 cache had counted
        today (its requests belong to no identity it could tell: to each, then)."""
        (n,) = db.execute(
            "SELECT coalesce(sum(requests), 0) FROM budget WHERE identity IN (?, ?) AND day = ?",
            (self._bound(), _NO_IDENTITY, self._day()),
        ).fetchone()
        return int(n)

    def _count(self, db: sqlite3.Connection, n: int) -> None:
        db.execute(
            "INSERT INTO budget VALUES (?, ?, ?) "
            "ON CONFLICT(identity, day) DO UPDATE SET requests = requests + excluded.requests",
            (self._bound(), self._day(), n),
        )

    def add_requests(self, n: int, *, wait: bool = True) -> bool:
        """Count `n` requests sent today (by the writer thread). Without `wait`, False (and
        nothing counted) while the writer is too far behind to take it now."""
        if n and not self.broken:
            self._bound()
            try:
                self._put((None, n), block=wait)
            except queue.Full:
                return False
        return True

    def count_soon(self, n: int) -> None:
        """`add_requests` without waiting: what the writer cannot take now is counted with
        the next, or as the cache closes."""
        n += self._uncounted
        self._uncounted = 0 if self.add_requests(n, wait=False) else n

    def reserve_request(self, daily: int) -> bool:
        """Count one request for today if that keeps today's count within `daily`: False,
        and nothing counted, if the budget is spent. One transaction that checks and counts,
        so runs sharing the file never send more than `daily` between them. Raises
        BudgetSpent when the count cannot be kept (then nothing may be sent)."""
        self._bound()
        with self._budget_lock:
            try:
                db = self._budget_db = self._budget_db or self._connect_again()
                db.execute("BEGIN IMMEDIATE")
                try:
                    if self._requests(db) >= daily:
                        return False
                    self._count(db, 1)
                finally:
                    db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise BudgetSpent(
                    f"the daily budget cannot be counted in the cache: {exc}"
                ) from None
        return True

    def quota_until(self, longest: float) -> float | None:
        """Until when the server said this identity's quota is spent, if that is still ahead:
        never more than `longest` seconds from now (a time stored by an earlier release, or
        under a longer `retry.max_quota_wait`, is capped)."""
        ident = self._bound()
        now = self._clock()
        try:
            row = self._db.execute(
                "SELECT until FROM quota WHERE identity = ? AND until > ?", (ident, now)
            ).fetchone()
        except sqlite3.Error as exc:
            self._break(f"reading the quota failed: {exc}", exc)
            return None
        if row is None:
            return None
        until = float(row[0])
        return until if until <= now + longest else now + longest  # inf and nan too

    def set_quota_until(self, until: float) -> None:
        """Remember that this identity's quota is spent until `until` (epoch seconds)."""
        ident = self._bound()
        if not self._still_there():
            log.error("cache: %s; the spent quota is not kept", _VANISHED.format(path=self.path))
            return
        try:
            self._db.execute(
                "INSERT INTO quota VALUES (?, ?) ON CONFLICT(identity) DO UPDATE"
                " SET until = max(until, excluded.until)",
                (ident, until),
            )
        except sqlite3.Error as exc:
            log.error("cache: saving the quota failed: %s", exc)

    def quotas(self) -> list[tuple[str, float]]:
        """The spent quotas the file holds: (identity, until), of every identity."""
        names = dict(self._db.execute("SELECT id, name FROM identities").fetchall())
        rows = self._db.execute("SELECT identity, until FROM quota ORDER BY until").fetchall()
        return [(names.get(i, f"#{i}"), float(until)) for i, until in rows]

    def clear_quotas(self) -> list[tuple[str, float]]:
        """Forget every spent quota (the operator knows better: a quota raised, a server
        that gave a wrong time); what was forgotten."""
        gone = self.quotas()
        self._db.execute("DELETE FROM quota")
        return gone

    # -- deferred -----------------------------------------------------------------------------

    def deferred(self, job: str) -> list[tuple[IocType, str]]:
        """The IOCs earlier runs of this job deferred for this identity (and those a cache of
        the previous layout had deferred, which belong to no job)."""
        out: list[tuple[IocType, str]] = []
        try:
            rows = self._db.execute(
                "SELECT type, ioc FROM deferred WHERE identity = ? AND job = ?"
                " OR identity = ? ORDER BY rowid",
                (self._bound(), job, _NO_IDENTITY),
            ).fetchall()
        except sqlite3.Error as exc:
            self._break(f"reading the deferred list failed: {exc}", exc)
            return out
        for t, ioc in rows:
            with contextlib.suppress(ValueError):
                out.append((IocType(t), ioc))
        return out

    def set_deferred(self, job: str, items: Iterable[tuple[str, str, str]]) -> None:
        """Replace this job's deferred list (for this identity) with `items` (type, ioc,
        reason); the previous layout's rows, taken up by this run, go too."""
        ident = self._bound()
        if not self._still_there():
            log.error("error: %s; this run's deferred IOCs are only in its deferred file",
                      _VANISHED.format(path=self.path))  # fmt: skip
            return
        try:
            with self._transaction():
                self._db.execute(
                    "DELETE FROM deferred WHERE identity = ? AND job = ? OR identity = ?",
                    (ident, job, _NO_IDENTITY),
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO deferred VALUES (?, ?, ?, ?, ?)",
                    ((ident, job, t, ioc, reason) for t, ioc, reason in items),
                )
        except sqlite3.Error as exc:
            log.error("cache: saving the deferred list failed: %s", exc)

    def waiting(self, job: str | None = None) -> list[tuple[str, str, str, str, str]]:
        """What is deferred, for `enricher deferred`: (identity, job, type, ioc, reason) of
        every identity, of one job or of all."""
        names = dict(self._db.execute("SELECT id, name FROM identities").fetchall())
        names[_NO_IDENTITY] = "(any: deferred before API identities)"
        query = "SELECT identity, job, type, ioc, reason FROM deferred"
        args: tuple[str, ...] = ()
        if job is not None:
            query += " WHERE job = ?"
            args = (job,)
        rows = self._db.execute(query + " ORDER BY job, identity, rowid", args).fetchall()
        return [(names.get(i, f"#{i}"), j, t, ioc, why) for i, j, t, ioc, why in rows]

    # -- report --------------------------------------------------------------------------------

    def report(self, *, measure: bool = True) -> dict[str, object]:
        """What the summary and the manifest say of the cache (its size as it was closed,
        or now; unknown without `measure`: a thread left behind in a transaction, waiting
        for another process's lock, holds the connection a measure would wait for)."""
        size = self._size_at_close
        if size is None and measure:
            with contextlib.suppress(sqlite3.Error):
                size = self.size()
        return {
            "path": str(self.path),
            "identity": self.identity_name,
            "size_bytes": size,
            "max_size_bytes": self.max_size,
            "hits": self.hits,
            "stored": self.stored,
            "purged": self.purged,
            "evicted": self.evicted,
            "unreadable": self.unreadable,
            "broken": self.broken,
            "not_kept": self.not_kept,
        }
