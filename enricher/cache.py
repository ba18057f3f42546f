"""The persistent state of nightly runs: an answer cache, the daily request budget, deferred IOCs.

One SQLite file (standard library), WAL mode, readable by its owner only:

- `answers`: (endpoint, key) → the API's verbatim answer entry, with when it was fetched and
  when it expires (its `ttl`, capped by `cache.max_ttl`). Expired rows are purged at start;
  the live set is bounded by what the last `max_ttl` seconds asked, so the file does not grow
  without bound (freed pages are reused, and `incremental_vacuum` returns them).
- `budget`: requests sent per UTC day, for `limits.daily_budget` across runs.
- `deferred`: IOCs a run could not send (budget spent, stopped); the next run takes them first.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .errors import SettingsError
from .ioc import Endpoint, IocType

__all__ = ["Cache", "default_cache_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    endpoint TEXT NOT NULL,
    key TEXT NOT NULL,
    entry BLOB NOT NULL,
    fetched_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (endpoint, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS answers_expiry ON answers (expires_at);
CREATE TABLE IF NOT EXISTS budget (day TEXT PRIMARY KEY, requests INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deferred (
    type TEXT NOT NULL,
    ioc TEXT NOT NULL,
    PRIMARY KEY (type, ioc)
);
"""

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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path).expanduser()
        self.max_ttl = max_ttl
        self.default_ttl = default_ttl
        self.max_age = max_age
        self._clock = clock
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.purged = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # create it private: it holds what this team asked about
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SettingsError(f"cannot open the cache {self.path}: {exc}") from None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- answers ------------------------------------------------------------------------

    def lookup(self, endpoint: Endpoint, keys: Sequence[str]) -> dict[str, bytes]:
        """The live cached entries among `keys` (expired, or older than max_age, are misses)."""
        now = self._clock()
        oldest = now - self.max_age if self.max_age is not None else -1.0
        found: dict[str, bytes] = {}
        for i in range(0, len(keys), _SLICE):
            part = keys[i : i + _SLICE]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT key, entry FROM answers WHERE endpoint = ? AND key IN ({marks})"
                " AND expires_at > ? AND fetched_at >= ?",
                (endpoint.value, *part, now, oldest),
            )
            found.update(rows)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def store(self, endpoint: Endpoint, items: Iterable[tuple[str, bytes, int | None]]) -> None:
        """Remember answers: (key, entry JSON, ttl in milliseconds or None)."""
        now = self._clock()
        rows = [
            (
                endpoint.value,
                key,
                entry,
                now,
                now + min(self.max_ttl, ttl_ms / 1000 if ttl_ms is not None else self.default_ttl),
            )
            for key, entry, ttl_ms in items
        ]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)", rows)
        self.stored += len(rows)

    def purge(self) -> int:
        """Drop expired answers and give their pages back; how many were dropped."""
        cur = self._db.execute("DELETE FROM answers WHERE expires_at <= ?", (self._clock(),))
        self._db.execute("PRAGMA incremental_vacuum")
        self.purged += cur.rowcount
        return cur.rowcount

    def __len__(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()
        return int(n)

    # -- budget -------------------------------------------------------------------------

    def _today(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")

    def requests_today(self) -> int:
        row = self._db.execute("SELECT requests FROM budget WHERE day = ?", (self._today(),))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def add_requests(self, n: int) -> None:
        if n:
            self._db.execute(
                "INSERT INTO budget VALUES (?, ?) "
                "ON CONFLICT(day) DO UPDATE SET requests = requests + excluded.requests",
                (self._today(), n),
            )

    # -- deferred -----------------------------------------------------------------------

    def deferred(self) -> list[tuple[IocType, str]]:
        rows = self._db.execute("SELECT type, ioc FROM deferred ORDER BY rowid")
        out: list[tuple[IocType, str]] = []
        for t, ioc in rows:
            with contextlib.suppress(ValueError):
                out.append((IocType(t), ioc))
        return out

    def set_deferred(self, items: Iterable[tuple[str, str]]) -> None:
        """Replace the deferred list with `items` (type, ioc)."""
        with self._db:
            self._db.execute("DELETE FROM deferred")
            self._db.executemany("INSERT OR IGNORE INTO deferred VALUES (?, ?)", items)
