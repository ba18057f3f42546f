"""The files a run writes, and the promise that nothing else writes them meanwhile.

A job writes an output set: the records (`-o OUT`), and beside them the failures, rejects and
deferred files. This module

- names the set: `OUT.failed.ndjson`, `OUT.rejects.ndjson`, `OUT.deferred.ndjson` beside a
  regular file; for standard output, or an output that is no regular file (a pipe, a device),
  side files of this run's own in the working directory (`enricher-<UTC time>-<pid>.*`), so
  that no run ever reads, replaces or deletes another run's;
- locks it: one `flock` on a hidden lock file beside each file named (`.OUT.lock`), taken
  before anything is opened, repaired or read, so an overlapping run (cron firing twice, a
  `--resume` while the first is still going) stops at once instead of interleaving lines. The
  operating system drops the lock with the process, so a SIGKILL never leaves a stale one;
- writes each file from a daemon thread of its own (`threads.Drain`), whole batches a write,
  so a full pipe or a stalled disk never blocks the event loop, and a stop can walk away from
  a writer that cannot finish;
- notices a file that is removed or moved while being written (its link count drops to 0, or
  its path no longer leads to it): records on no path are lost, and the run must say so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import janus

from .errors import OutputError, SettingsError
from .threads import Drain

__all__ = ["OutputFile", "OutputLock", "OutputPaths", "check_new", "is_file_path", "plan_outputs"]

STDOUT = "-"

#: how an output file is opened: created (refused if it exists), replaced (--force) or
#: appended to (--resume)
Mode = Literal["new", "replace", "append"]


@dataclass(frozen=True)
class OutputPaths:
    records: str
    failed: str
    rejects: str
    deferred: str
    #: the records go to a regular file (so the run can be resumed and is locked)
    regular: bool
    #: the side files are this run's own (standard output, a pipe or a device as output):
    #: made only when there is a line to write
    per_run: bool

    @property
    def side(self) -> tuple[str, str, str]:
        return (self.failed, self.rejects, self.deferred)


def _kind(path: str) -> str:
    """ "missing", "regular", "directory" or "special" (a pipe, a device, a socket)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise SettingsError(f"cannot use the output {path}: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        return "regular"
    return "directory" if stat.S_ISDIR(st.st_mode) else "special"


def plan_outputs(
    output: str,
    *,
    failed: str | None,
    rejects: str | None,
    deferred: str | None,
    inputs: Sequence[str],
    resume: bool,
    now: float | None = None,
) -> OutputPaths:
    """The output set of a run, checked: no path is a directory, an input or another of the
    set; `--resume` needs a regular file. Raises SettingsError naming the path."""
    kind = "special" if output == STDOUT else _kind(output)
    if kind == "directory":
        raise SettingsError(f"-o {output} is a directory; give a file path")
    regular = kind in ("regular", "missing")
    if resume and not regular:
        what = "standard output" if output == STDOUT else f"{output} (not a regular file)"
        raise SettingsError(f"--resume needs an output file (-o OUT): {what} cannot be resumed")
    if regular:
        stem = output
    else:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        stem = f"enricher-{stamp}-{os.getpid()}"
    paths = OutputPaths(
        records=output,
        failed=failed or f"{stem}.failed.ndjson",
        rejects=rejects or f"{stem}.rejects.ndjson",
        deferred=deferred or f"{stem}.deferred.ndjson",
        regular=regular,
        per_run=not regular,
    )
    flags = {"failed": failed, "rejects": rejects, "deferred": deferred}
    for name, path in zip(("failed", "rejects", "deferred"), paths.side, strict=True):
        shown = f"--{name} {path}" if flags[name] else path
        if _kind(path) == "directory":
            raise SettingsError(f"{shown} is a directory; give a file path")
    _check_distinct(paths, inputs)
    return paths


def _identity(path: str) -> tuple[int, int] | str:
    """What makes two paths the same file: its device and inode, or (not there yet) its
    absolute, resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def _check_distinct(paths: OutputPaths, inputs: Sequence[str]) -> None:
    named = [("-o", paths.records)] if paths.regular else []
    named += [("--failed", paths.failed), ("--rejects", paths.rejects)]
    named.append(("--deferred", paths.deferred))
    ins = {_identity(p): p for p in inputs if p != STDOUT}
    seen: dict[tuple[int, int] | str, str] = {}
    for flag, path in named:
        if _kind(path) == "special":
            continue  # /dev/null may take several of them
        key = _identity(path)
        if key in ins:
            raise SettingsError(
                f"{flag} {path} is also an input ({ins[key]}): writing it would destroy it"
            )
        if key in seen:
            raise SettingsError(f"{flag} {path} is the same file as {seen[key]}")
        seen[key] = path


def is_file_path(path: str) -> bool:
    """A regular file, or nothing yet: a path the run makes, locks and may replace (not
    standard output, /dev/null, a pipe or a device, which are only written to)."""
    return path != STDOUT and _kind(path) in ("regular", "missing")


def check_new(paths: Sequence[str]) -> None:
    """Refuse (SettingsError) if any of these files exists: a new run never overwrites one."""
    for path in paths:
        if os.path.lexists(path) and (os.path.islink(path) or is_file_path(path)):
            raise SettingsError(
                f"{path} exists: add --resume to continue that run, or --force to replace it"
            )


class OutputLock:
    """Exclusive locks on a set of output paths, one hidden lock file beside each.

    Taken with `flock`, which the operating system releases when the process ends (however
    it ends), so no lock outlives its run. The lock file holds the owner's pid, for the
    message the next run prints; it is removed on release. A run that opens a lock file
    just as its owner removes it would lock a file no other run can find: after locking,
    the path is checked to still lead to the locked file, and the lock taken again if not.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        # in a fixed order, so two runs that share some paths cannot deadlock
        self.paths = sorted(set(paths), key=os.path.abspath)
        self._held: list[tuple[str, int]] = []

    @staticmethod
    def lock_path(path: str) -> str:
        head, tail = os.path.split(path)
        return os.path.join(head, f".{tail}.lock")

    def __enter__(self) -> OutputLock:
        try:
            for path in self.paths:
                self._held.append((path, self._take(path)))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _take(self, path: str) -> int:
        lock = self.lock_path(path)
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise SettingsError(f"cannot write {path}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise SettingsError(
                    f"{path} is being written by another enricher run (pid {owner})"
                ) from None
            except OSError as exc:  # a file system without locks
                os.close(fd)
                raise SettingsError(f"cannot lock {lock}: {exc.strerror}") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                return fd
            os.close(fd)  # removed or replaced by its last owner as we took it: again

    def release(self) -> None:
        while self._held:
            path, fd = self._held.pop()
            # removed while still held, so no other run can lock this file after us
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path(path))
            os.close(fd)


class OutputFile:
    """One file of the output set (or standard output), written by a daemon thread of its own.

    `lazy`: made only when the first line comes (a run with nothing to say leaves no empty
    failures file). Each hand-over is written whole with `os.write` (no Python buffer, which a
    writer blocked on a full pipe would hold locked at exit). Errors become `FatalError`s
    that name the file: the next `write` or `close` raises the first.
    """

    def __init__(self, path: str, *, mode: Mode, lazy: bool = False, resumable: bool) -> None:
        self.path = path
        self.mode = mode
        self.lazy = lazy
        #: the job writes its records to a regular file, so `--resume` can finish it
        self.resumable = resumable
        self.lines = 0  # lines written (by the thread), for the summary
        self.created = False
        #: closed with every line written and the file where it was made
        self.complete = False
        self._fd: int | None = None
        self._regular = False
        self._drain: Drain[tuple[bytes, int]] | None = None
        if path != STDOUT and not lazy and _kind(path) != "special":
            try:
                self._open()  # found out now, not after the first batch
            except OutputError as exc:
                raise SettingsError(str(exc)) from None

    @property
    def display(self) -> str:
        return "standard output" if self.path == STDOUT else self.path

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        if self.path == STDOUT:
            self._fd = 1
            return 1
        flags = os.O_WRONLY | os.O_CLOEXEC
        if _kind(self.path) != "special":
            flags |= (
                os.O_CREAT
                | {
                    "new": os.O_EXCL,
                    "replace": os.O_TRUNC,
                    "append": os.O_APPEND,
                }[self.mode]
            )
        try:
            fd = os.open(self.path, flags, 0o666)
        except FileExistsError:
            raise OutputError(
                f"{self.path} was made by someone else during the run",
                "move it away, then run the same command again",
            ) from None
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}", self._again) from None
        self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
        self._fd = fd
        self.created = True
        return fd

    def _write(self, item: tuple[bytes, int]) -> None:
        data, n = item
        fd = self._open()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            raise OutputError(
                f"{self.display} was closed by its reader after {self.lines:,} lines",
                "run it again with a reader that takes every line, or with -o FILE",
            ) from None
        except OSError as exc:
            raise OutputError(
                f"cannot write {self.display}: {exc.strerror or exc}", self._again
            ) from None
        if self._regular and os.fstat(fd).st_nlink == 0:
            raise OutputError(
                f"{self.display} was removed while the run was writing it",
                "run the same command again",
            )
        self.lines += n

    @property
    def _again(self) -> str:
        """What to do after this file could not be written to its end."""
        if self.resumable:
            return "fix that, then run the same command with --resume to finish"
        return "fix that, then run the same command again"

    async def write(self, data: bytes, n: int) -> None:
        """`n` lines (each ending in a newline), written whole, in order."""
        if not data:
            return
        if self._drain is None:
            self._drain = Drain(self._write, name=f"write {self.display}")
        try:
            await self._drain.put((data, n))
        except janus.AsyncQueueShutDown:
            raise self._not_finished() from None

    def _not_finished(self) -> OutputError:
        return OutputError(
            f"{self.display} was not written to its end: nothing took it in before the run stopped",
            "run the same command with --resume to finish"
            if self.resumable
            else "run it again with a reader that takes every line, or with -o FILE",
        )

    @property
    def error(self) -> OutputError | None:
        error = self._drain.error if self._drain is not None else None
        if error is None or isinstance(error, OutputError):
            return error
        return OutputError(f"cannot write {self.display}: {error}", self._again)

    @property
    def busy(self) -> bool:
        """Lines handed over and not yet written."""
        return self._drain is not None and self._drain.pending > 0

    async def close(self) -> None:
        """Write what is pending, check the file is still where it was made, and close.
        Raises the first error met."""
        if self._drain is not None:
            await self._drain.close()
        try:
            if self.error is not None:
                raise self.error
            if self._drain is not None and self._drain.abandoned:
                raise self._not_finished()
            self._check_in_place()
            self.complete = True
        finally:
            abandoned = self._drain is not None and self._drain.abandoned
            # an abandoned writer's thread may still be inside a write to this descriptor
            if self._fd is not None and self.path != STDOUT and not abandoned:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

    def abandon(self) -> None:
        """Stop writing at once; a write stuck in the operating system is left behind."""
        if self._drain is not None:
            self._drain.abandon()

    def _check_in_place(self) -> None:
        if self._fd is None or not self._regular:
            return
        try:
            moved = not os.path.samestat(os.fstat(self._fd), os.stat(self.path))
        except OSError as exc:
            moved = exc.errno in (errno.ENOENT, errno.ENOTDIR)
        if moved:
            raise OutputError(
                f"{self.display} was removed or moved while the run was writing it",
                "run the same command again",
            )
