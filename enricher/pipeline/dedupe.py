"""Deduplicate stage: exact, streaming, compact.

Each IOC type keeps its values in their most compact exact form, `pack`: a hash as its raw
digest bytes (16, 20 or 32 bytes instead of 32-64 characters), an IPv4/IPv6 address as its
4/16 packed bytes, a domain as ASCII bytes. Separate tables keep types apart (a domain's
bytes can never be mistaken for a digest). No probabilistic structure: nothing is ever
dropped.

A table is not a `set` of bytes objects: there each IOC costs an object (33 bytes of header
plus its own, rounded up to 16) and a 16-byte slot at a load of 0.3-0.6, about 95 bytes in
all. It is a hash table of buckets instead, each bucket one `bytes` object holding its records
end to end (fixed-width records for the packed types, a match counting only at a record's
boundary; names each followed by a byte UTF-8 never holds), 32-256 bytes of records to a
bucket: about 30 bytes per IOC (`benchmarks/dedupe_memory.py`). A lookup costs about twice
a set's (`bytes.partition` in a bucket, not a hash probe), and a table that fills is
rehashed into 8 times the buckets, each record moved in Python.

Where the C module `_dedupe.c` was built (hatch_build.py), each table is its `Table` instead:
the same records, packed in C, in one flat arena (the pickled blob itself) under an
open-addressing index, about 4 times fewer instructions an add. Both pickle the same blobs,
so a deduper pickled by one loads in the other (a cluster's workers, `--resume`); the Python
tables run where it was not built, or with ENRICHER_NO_C=1.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any, Protocol

from ..inputs.native import load
from ..ioc import IocType

__all__ = ["Deduper", "PlainTaker", "PyDeduper", "Screen", "pack"]

_inet6 = socket.AF_INET6

_PACK: dict[IocType, Callable[[str], bytes]] = {
    IocType.MD5: bytes.fromhex,
    IocType.SHA1: bytes.fromhex,
    IocType.SHA256: bytes.fromhex,
    IocType.DOMAIN: str.encode,  # A-labels: ASCII only after normalization
    IocType.IPV4: socket.inet_aton,
    IocType.IPV6: lambda v: socket.inet_pton(_inet6, v),
}

#: the record width of each packed type (0: a name, framed, of any length)
_WIDTH = {
    IocType.MD5: 16,
    IocType.SHA1: 20,
    IocType.SHA256: 32,
    IocType.DOMAIN: 0,
    IocType.IPV4: 4,
    IocType.IPV6: 16,
}

# A name is stored as its UTF-8 + END, in a bucket that starts with END: the byte never
# occurs in UTF-8, so END + NAME + END is found in a bucket only where that very record
# is (the empty name included).
_END = b"\xfe"

#: bytes of records a bucket holds on average before there are `_GROWTH` times as many
_BUCKET_BYTES = 256
_GROWTH = 8
#: a name's bytes on average, as a table of names counts them
_NAME_BYTES = 24
_FIRST_BUCKETS = 256


def pack(ioc_type: IocType, value: str) -> bytes:
    """The compact exact form of a normalized value (what the deduper stores)."""
    return _PACK[ioc_type](value)


class _Table:
    """One type's records: a hash table of `bytes` buckets, records end to end."""

    __slots__ = ("buckets", "count", "limit", "mask", "pack", "width")

    def __init__(self, ioc_type: IocType) -> None:
        self.width = _WIDTH[ioc_type]
        self.pack = _PACK[ioc_type]
        self.buckets = [b"" if self.width else _END] * _FIRST_BUCKETS
        self.mask = _FIRST_BUCKETS - 1
        self.count = 0
        #: records before the buckets grow: `_BUCKET_BYTES` of them a bucket on average
        self.limit = _FIRST_BUCKETS * _BUCKET_BYTES // (self.width or _NAME_BYTES)

    def record(self, value: str) -> bytes:
        """What the table holds of `value`: its packed bytes, a name's followed by END."""
        key = self.pack(value)
        if not self.width:
            return key + _END
        if len(key) != self.width:  # a record across two others' boundary would match
            raise ValueError(f"not a normalized value of its type: {value!r}")
        return key

    def __len__(self) -> int:
        return self.count

    def has(self, value: str) -> bool:
        """Whether `value`'s record is held (the packer's exception if it has none)."""
        record = self.record(value)
        return self.holds(self.buckets[hash(record) & self.mask], record)

    def holds(self, bucket: bytes, record: bytes) -> bool:
        w = self.width
        if not w:
            return bool(bucket.partition(_END + record)[1])
        head, found, _ = bucket.partition(record)
        if not found or not len(head) % w:
            return bool(found)
        # found across two records' boundary, only a match at a boundary counts
        return any(bucket[j : j + w] == record for j in range(0, len(bucket), w))

    def put(self, record: bytes) -> None:
        """Store `record`, known not to be held."""
        self.buckets[hash(record) & self.mask] += record
        self.count += 1
        if self.count > self.limit:
            self.grow()

    def records(self, bucket: bytes) -> list[bytes]:
        w = self.width
        if w:
            return [bucket[j : j + w] for j in range(0, len(bucket), w)]
        return [r + _END for r in bucket.split(_END)[1:-1]]

    def grow(self) -> None:
        """`_GROWTH` times the buckets, each record moved into its new one as its old one
        is emptied (the table is never held twice)."""
        old = self.buckets
        w = self.width
        empty = b"" if w else _END
        size = len(old) * _GROWTH
        mask = size - 1
        new = [empty] * size
        # each record moved in Python: the loops are written out (no `records` list)
        for i, bucket in enumerate(old):
            if w:
                if bucket:
                    old[i] = empty
                    for j in range(0, len(bucket), w):
                        record = bucket[j : j + w]
                        new[hash(record) & mask] += record
            elif len(bucket) > 1:
                old[i] = empty
                for name in bucket[1:-1].split(_END):
                    name += _END
                    new[hash(name) & mask] += name
        self.buckets = new
        self.mask = mask
        self.limit *= _GROWTH

    def blob(self) -> bytes:
        """Every record, end to end (a name's with its END)."""
        if self.width:
            return b"".join(self.buckets)
        return b"".join([b[1:] for b in self.buckets])

    def load(self, blob: bytes) -> None:
        """Store the records of `blob` (one of `blob`'s) not held yet, as the C table does:
        a damaged blob (a pickle cut or spliced) neither counts a record twice nor holds a
        part of one."""
        w = self.width
        if w and len(blob) % w:
            raise ValueError(f"a blob of {len(blob)} bytes holds no whole {w}-byte records")
        for record in self.records(blob if w else _END + blob):
            if not self.holds(self.buckets[hash(record) & self.mask], record):
                self.put(record)


# `add` (store a value's record; True when it was not held), the hot path of ingest (every
# line): one per kind of table, `record`, `holds` and `put` inlined


class _Fixed(_Table):
    """The records of a packed type, all of its width."""

    __slots__ = ()

    def add(self, value: str) -> bool:
        key = self.pack(value)
        w = self.width
        if len(key) != w:
            raise ValueError(f"not a normalized value of its type: {value!r}")
        h = hash(key) & self.mask
        bucket = self.buckets[h]
        # `partition`, not `in` or `find`: those try the key as an int first, and pay for
        # the TypeError's message each time; partition copies only on a match
        head, found, _ = bucket.partition(key)
        if found and (not len(head) % w or self.holds(bucket, key)):
            return False
        self.buckets[h] = bucket + key
        self.count += 1
        if self.count > self.limit:
            self.grow()
        return True


class _Names(_Table):
    """The records of names, each followed by END."""

    __slots__ = ()

    def add(self, value: str) -> bool:
        key = self.pack(value) + _END
        h = hash(key) & self.mask
        bucket = self.buckets[h]
        if bucket.partition(_END + key)[1]:
            return False
        self.buckets[h] = bucket + key
        self.count += 1
        if self.count > self.limit:
            self.grow()
        return True


class _Store(Protocol):
    """What the deduper asks of a table, Python's or C's."""

    def add(self, value: str, /) -> bool: ...
    def has(self, value: str, /) -> bool: ...
    def blob(self) -> bytes: ...
    def load(self, blob: bytes, /) -> None: ...
    def __len__(self) -> int: ...


def _python_table(ioc_type: IocType) -> _Store:
    return (_Fixed if _WIDTH[ioc_type] else _Names)(ioc_type)


def _c_tables() -> Callable[[IocType], _Store] | None:
    """The C module's tables (`_dedupe.c`, `native.load`), or None."""
    if load("enricher.pipeline._dedupe", __file__) is None:
        return None
    from . import _dedupe

    kinds = {IocType.DOMAIN: _dedupe.NAME, IocType.IPV4: _dedupe.IPV4, IocType.IPV6: _dedupe.IPV6}

    def table(ioc_type: IocType) -> _Store:
        return _dedupe.Table(kinds.get(ioc_type, _dedupe.HEX), _WIDTH[ioc_type], _PACK[ioc_type])

    return table


#: the C tables (None where the module is not there)
C_TABLES = _c_tables()


def _c_fill() -> Callable[..., int] | None:
    """The batcher's step in C (`_dedupe.fill`: batcher.py), or None."""
    if C_TABLES is None:
        return None
    from . import _dedupe

    return _dedupe.fill


#: `_dedupe.fill`, the batcher's per-key step in C (None where the module is not there)
C_FILL = _c_fill()

#: the types `take_plain` decides, in the order of its tables
_PLAIN_TYPES = (IocType.MD5, IocType.SHA1, IocType.SHA256, IocType.DOMAIN, IocType.IPV4,
                IocType.IPV6)  # fmt: skip
#: (where it stopped, lines skipped, duplicates) of the lines from `start` on:
#: `taker(lines, start, fresh, flagged)`
PlainTaker = Callable[
    [list[str | None], int, list[tuple[IocType, str]], list[int]], tuple[int, int, int]
]
#: which of a type's new keys `take_plain` flags: None, none; True, all; for IPv4 and IPv6,
#: 256 bytes, by the first byte of the address, those where the byte is not 0
Screen = bool | bytes | None


class Deduper:
    """Remembers every normalized IOC seen; `add` is True only the first time.

    Exact for `normalize`'s values: two values of a type with one packed form (a hash in
    upper and lower case, `1.2.772` and `1.2.3.4` to `inet_aton`) are one IOC here. One
    thread at a time: the C tables hold the GIL through an add, the Python tables do not (two
    threads adding at once can each be told True, or lose a record)."""

    __slots__ = ("_tables", "adders")

    #: a table of a type: C's where it was built, else Python's
    _table: Callable[[IocType], _Store] = staticmethod(C_TABLES or _python_table)

    def __init__(self) -> None:
        # keyed by the type itself: a StrEnum member hashes as its str (cached, in C)
        self._tables: dict[IocType, _Store] = {t: self._table(t) for t in IocType}
        #: `add` by type, `adders[t](value)`: for a hot loop, one call where `add` makes two
        self.adders: dict[IocType, Callable[[str], bool]] = {
            t: table.add for t, table in self._tables.items()
        }

    def add(self, ioc_type: IocType, value: str) -> bool:
        return self._tables[ioc_type].add(value)

    def plain_taker(
        self, tops: frozenset[str], screen: dict[IocType, Screen] | None = None
    ) -> PlainTaker | None:
        """Ingest's step for plain lines in C, with these tables (`_dedupe.take_plain`):
        `taker(lines, start, fresh, flagged)` takes the lines from `start` on that are blank,
        a `#` comment or one IOC in the form `normalize`'s fast path takes (a name only when
        its top label is in `tops`) or a common messy form, adds their keys, appends the new
        ones to `fresh` and the index in `fresh` of each one `screen` flags (by type; a type
        not in it: none) to `flagged`, and says where it stopped, how many it skipped and how
        many were duplicates. None where the tables are Python's."""
        if C_TABLES is None:
            return None
        from . import _dedupe

        tables = tuple(self._tables[t] for t in _PLAIN_TYPES)
        if not all(isinstance(table, _dedupe.Table) for table in tables):
            return None
        screens = tuple((screen or {}).get(t) for t in _PLAIN_TYPES)
        return functools.partial(_dedupe.take_plain, tables, _PLAIN_TYPES, tops, screens)  # type: ignore[arg-type]

    def __contains__(self, item: tuple[IocType, str]) -> bool:
        try:
            return self._tables[item[0]].has(item[1])
        except (ValueError, OSError):  # no value of its type (`Enricher.reached`): never added
            return False

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())

    def __reduce__(self) -> tuple[Callable[[dict[str, bytes]], Deduper], tuple[Any]]:
        # pickled for a cluster's workers (`--resume`): each table's records end to end, put
        # in a table again on the other side (whose hashes of bytes are not this process's),
        # a C table or a Python one, whichever that side has
        return _unpickle, ({t.value: table.blob() for t, table in self._tables.items()},)


class PyDeduper(Deduper):
    """A deduper of Python tables, whether or not the C module is there (tests, comparisons)."""

    __slots__ = ()
    _table = staticmethod(_python_table)


def _unpickle(blobs: dict[str, bytes]) -> Deduper:
    deduper = Deduper()
    for t, blob in blobs.items():
        deduper._tables[IocType(t)].load(blob)
    return deduper
