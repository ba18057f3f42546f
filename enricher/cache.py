"""The persistent state of nightly runs: an answer cache, the daily request budget, deferred IOCs.

One SQLite file (standard library), WAL mode, readable by its owner only:

- `answers`: (endpoint, key) → the output record line written for it (the API's verbatim
  answer inside), its verdict, the `fmt` it was made with (schema version, verdict table, ttl
  unit: a hit made the same way is written as it is, with `"cached":true`, without parsing),
  when it was fetched and when it expires (its `ttl`, capped by `cache.max_ttl`). Expired
  rows are purged at start;
  the live set is bounded by what the last `max_ttl` seconds asked, so the file does not grow
  without bound (freed pages are reused, and `incremental_vacuum` returns them).
- `budget`: requests sent per UTC day, for `limits.daily_budget` across runs.
- `deferred`: IOCs a run could not send (budget spent, stopped); the next run takes them first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .errors import SettingsError
from .ioc import Endpoint, IocType

__all__ = ["Cache", "default_cache_path"]

log = logging.getLogger("enricher")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    endpoint TEXT NOT NULL,
    key TEXT NOT NULL,
    verdict TEXT NOT NULL,
    fmt TEXT NOT NULL,
    record BLOB NOT NULL,
    fetched_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS answers_key ON answers (endpoint, key);
CREATE TABLE IF NOT EXISTS budget (day TEXT PRIMARY KEY, requests INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deferred (
    type TEXT NOT NULL,
    ioc TEXT NOT NULL,
    PRIMARY KEY (type, ioc)
);
"""

#: the layout of the tables below (PRAGMA user_version)
_LAYOUT = 2

# SQLite allows 32,766 host parameters; lookups go in slices well under that
_SLICE = 900


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "enricher" / "cache.sqlite3"


class Cache:
    """Answers by (endpoint, key) with expiry, the daily budget and the deferred list."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_ttl: float,
        default_ttl: float,
        max_age: float | None = None,
        fmt: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path).expanduser()
        self.fmt = fmt
        self.max_ttl = max_ttl
        self.default_ttl = default_ttl
        self.max_age = max_age
        self._clock = clock
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.purged = 0
        self.broken: str | None = None  # why the cache stopped being used, if it did
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # create it private: it holds what this team asked about
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            try:
                self._db = self._connect(create=True)
            except sqlite3.DatabaseError:
                # a cache is only a cache: a damaged one is moved aside and started anew
                aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
                self.path.rename(aside)
                log.warning("cache: %s was damaged; moved to %s, starting anew", self.path, aside)
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))  # private again
                self._db = self._connect(create=True)
        except (OSError, sqlite3.Error) as exc:
            raise SettingsError(f"cannot open the cache {self.path}: {exc}") from None
        # Answers are written by a thread of their own, on its own connection: inserting at
        # random places in the key index costs ~15 µs a row, which SQLite does without the GIL.
        self._writes: queue.Queue[list[tuple[str, str, str, str, bytes, float, float]] | None]
        self._writes = queue.Queue(maxsize=64)
        self._writer = threading.Thread(target=self._write_loop, name="cache-writer", daemon=True)
        self._writer.start()

    def _connect(self, *, create: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if create:
            # Rows are ~1.2 KB record lines: 16 KiB pages hold a dozen each where 4 KiB pages
            # spill them, so a new cache takes rows ~30% faster and is ~15% smaller. (Only a
            # file without tables takes a page size; an existing cache keeps its own.)
            db.execute("PRAGMA page_size=16384")
        db.execute("PRAGMA journal_mode=WAL")
        # No fsync: after an OS crash the newest answers may be gone (or the file damaged,
        # and then replaced); an application crash, SIGKILL included, loses nothing.
        db.execute("PRAGMA synchronous=OFF")
        # Answers go in rowid order (appended); only the small key index takes inserts at
        # random places, and 64 MiB of page cache keeps most of it in memory.
        db.execute("PRAGMA cache_size=-65536")
        if create:
            # The reading connection: hits read record lines from pages all over the file, so
            # map (the first 256 MiB of) it rather than pread each page. Mapped pages count in
            # the process's RSS, hence the bound; the writer does not map.
            db.execute("PRAGMA mmap_size=268435456")
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version != _LAYOUT:
                # a cache of another layout (an older enricher): start it anew
                db.executescript(
                    "DROP TABLE IF EXISTS answers; DROP TABLE IF EXISTS meta;"
                    "DROP TABLE IF EXISTS budget; DROP TABLE IF EXISTS deferred;"
                )
                db.execute(f"PRAGMA user_version={_LAYOUT}")
            db.executescript(_SCHEMA)
        return db

    def _write_loop(self) -> None:
        db: sqlite3.Connection | None = None
        last = False
        while not last:
            rows = self._writes.get()
            if rows is None:
                self._writes.task_done()
                break
            # what has queued up meanwhile goes in the same transaction: fewer commits
            taken = 1
            while len(rows) < 20_000:
                try:
                    more = self._writes.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if more is None:
                    last = True
                    break
                rows.extend(more)
            try:
                if not self.broken:
                    db = db or self._connect()
                    db.execute("BEGIN")
                    db.executemany(
                        "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                    )
                    db.execute("COMMIT")
                    self.stored += len(rows)
            except sqlite3.Error as exc:
                if db is not None and db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                self._break(f"writing failed: {exc}")
            finally:
                for _ in range(taken):
                    self._writes.task_done()
        if db is not None:
            db.close()

    def flush(self) -> None:
        """Wait until every answer stored so far is written."""
        self._writes.join()

    def _break(self, why: str) -> None:
        if self.broken is None:
            self.broken = why
            log.warning("cache: %s; the run goes on without the cache", why)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # the connection is in autocommit mode: group many rows into one commit explicitly
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Finish the pending writes, then close."""
        self._writes.put(None)
        self._writer.join()
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- answers ------------------------------------------------------------------------

    def lookup(self, endpoint: Endpoint, keys: Sequence[str]) -> dict[str, tuple[str, str, bytes]]:
        """(verdict, fmt, record line) of the live cached answers among `keys` (expired ones,
        and with max_age older ones, are misses)."""
        now = self._clock()
        oldest = now - self.max_age if self.max_age is not None else -1.0
        found: dict[str, tuple[str, str, bytes]] = {}
        if self.broken:
            return found
        try:
            for i in range(0, len(keys), _SLICE):
                part = keys[i : i + _SLICE]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT key, verdict, fmt, record FROM answers WHERE endpoint = ?"
                    f" AND key IN ({marks}) AND expires_at > ? AND fetched_at >= ?",
                    (endpoint.value, *part, now, oldest),
                )
                found.update((row[0], row[1:]) for row in rows)
        except sqlite3.Error as exc:
            self._break(f"reading failed: {exc}")
            found.clear()
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def empty_endpoints(self) -> set[Endpoint]:
        """The endpoints the cache holds no answer for (once what is queued is written)."""
        self.flush()
        try:
            return {
                ep
                for ep in Endpoint
                if self._db.execute(
                    "SELECT 1 FROM answers WHERE endpoint = ? LIMIT 1", (ep.value,)
                ).fetchone()
                is None
            }
        except sqlite3.Error as exc:
            self._break(f"reading failed: {exc}")
            return set()

    def store(
        self, endpoint: Endpoint, items: Iterable[tuple[str, str, bytes, int | None]]
    ) -> None:
        """Remember answers: (key, verdict, record line, ttl in milliseconds or None); written
        by the writer thread, all of them by `close()`."""
        now = self._clock()
        max_ttl, default_ttl, fmt, ep = self.max_ttl, self.default_ttl, self.fmt, endpoint.value
        rows = [
            (
                ep,
                key,
                verdict,
                fmt,
                record,
                now,
                now + min(max_ttl, ttl_ms / 1000 if ttl_ms is not None else default_ttl),
            )
            for key, verdict, record, ttl_ms in items
        ]
        if not self.broken:
            self._writes.put(rows)

    def purge(self) -> int:
        """Drop expired answers and give their pages back; how many were dropped."""
        try:
            cur = self._db.execute("DELETE FROM answers WHERE expires_at <= ?", (self._clock(),))
            self._db.execute("PRAGMA incremental_vacuum")
        except sqlite3.Error as exc:
            self._break(f"purging failed: {exc}")
            return 0
        self.purged += cur.rowcount
        return cur.rowcount

    def __len__(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()
        return int(n)

    # -- budget -------------------------------------------------------------------------

    def _today(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")

    def requests_today(self) -> int:
        try:
            row = self._db.execute("SELECT requests FROM budget WHERE day = ?", (self._today(),))
            found = row.fetchone()
        except sqlite3.Error as exc:
            self._break(f"reading the budget failed: {exc}")
            return 0
        return int(found[0]) if found else 0

    def add_requests(self, n: int) -> None:
        if n and not self.broken:
            try:
                self._db.execute(
                    "INSERT INTO budget VALUES (?, ?) "
                    "ON CONFLICT(day) DO UPDATE SET requests = requests + excluded.requests",
                    (self._today(), n),
                )
            except sqlite3.Error as exc:
                self._break(f"counting requests failed: {exc}")

    # -- deferred -----------------------------------------------------------------------

    def deferred(self) -> list[tuple[IocType, str]]:
        out: list[tuple[IocType, str]] = []
        try:
            rows = self._db.execute("SELECT type, ioc FROM deferred ORDER BY rowid").fetchall()
        except sqlite3.Error as exc:
            self._break(f"reading the deferred list failed: {exc}")
            return out
        for t, ioc in rows:
            with contextlib.suppress(ValueError):
                out.append((IocType(t), ioc))
        return out

    def set_deferred(self, items: Iterable[tuple[str, str]]) -> None:
        """Replace the deferred list with `items` (type, ioc)."""
        try:
            with self._transaction():
                self._db.execute("DELETE FROM deferred")
                self._db.executemany("INSERT OR IGNORE INTO deferred VALUES (?, ?)", items)
        except sqlite3.Error as exc:
            log.error("cache: saving the deferred list failed: %s", exc)
