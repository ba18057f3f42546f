"""What a run says on stderr: log lines (text or JSON for schedulers) and a live progress line.

The progress line is drawn only on a terminal (`\\r`, redrawn twice a second); with
`--log-format json` a `progress` event is logged every 10 seconds instead, which a scheduler
can collect. `--quiet` leaves only errors.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from ..pipeline.stats import RunStats

if TYPE_CHECKING:
    import asyncio

__all__ = ["JsonFormatter", "Progress", "json_logging", "setup_logging"]

log = logging.getLogger("enricher")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, event, message, and any `extra={"data": ...}`."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        data = getattr(record, "data", None)
        if data is not None:
            doc["data"] = data
        return orjson.dumps(doc, default=str).decode()


def setup_logging(*, json: bool, quiet: bool, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("enricher: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.ERROR if quiet else logging.INFO)


def json_logging() -> bool:
    """Whether enricher's log lines are JSON (`--log-format json`)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in log.handlers)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Reports a run's progress while it goes; `total_bytes` (when known) gives an ETA."""

    def __init__(
        self,
        stats: RunStats,
        *,
        live: bool,
        json: bool,
        total_bytes: int | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = stats
        self.live = live
        self.json = json
        self.total_bytes = total_bytes
        self.stream = stream or sys.stderr
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._width = 0

    def line(self) -> str:
        s = self.stats
        elapsed = max(s.elapsed, 1e-9)
        done = s.accounted
        text = (
            f"{done:,} IOCs done · {done / elapsed:,.0f}/s · {s.requests:,} requests"
            f" · {s.retries:,} retries · {s.failed:,} errors"
        )
        if self.total_bytes and s.bytes_read and done:
            share = min(1.0, s.bytes_read / self.total_bytes)
            if share > 0.001:
                # the unique IOCs of the whole input, estimated from the share read so far
                expected = (s.unique + s.already_done) / share
                left = max(0.0, expected - done - s.already_done)
                eta = left / (done / elapsed)
                text += f" · {share:.0%} read · ETA {_clock(eta)}"
        return text

    async def _loop(self) -> None:
        import asyncio  # not at the top: `enricher --help` imports this module, not asyncio

        period = 0.5 if self.live else 10.0
        while True:
            await asyncio.sleep(period)
            if self.live:
                text = self.line()
                pad = max(0, self._width - len(text))
                self.stream.write("\r" + text + " " * pad)
                self.stream.flush()
                self._width = len(text)
            else:
                log.info(self.line(), extra={"event": "progress", "data": self.stats.as_dict()})

    def start(self) -> None:
        if self.live or self.json:
            import asyncio

            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            import asyncio

            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
