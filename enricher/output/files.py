"""The files a run writes, and the promise that nothing else writes them meanwhile.

A job writes an output set: the records (`-o OUT`), and beside them the failures, rejects,
deferred and skipped (withheld: see `privacy`) files. This module

- names the set: `OUT.failed.ndjson`, `OUT.rejects.ndjson`, `OUT.deferred.ndjson`,
  `OUT.skipped.ndjson` beside a
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
import fnmatch
import os
import re
import secrets
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import janus

from ..errors import OutputError, SettingsError
from ..threads import Drain

if TYPE_CHECKING:
    from .formats import RecordWriter

__all__ = [
    "OutputFile",
    "OutputLock",
    "OutputPaths",
    "check_new",
    "check_not_among",
    "is_file_path",
    "lock_file",
    "plan_outputs",
    "reader_gone",
    "write_stdout",
    "write_whole",
]

STDOUT = "-"
_GLOB = re.compile(r"[*?\[]")

#: how an output file is opened: created (refused if it exists), replaced (--force) or
#: appended to (--resume)
Mode = Literal["new", "replace", "append"]


@dataclass(frozen=True)
class OutputPaths:
    records: str
    failed: str
    rejects: str
    deferred: str
    #: IOCs the privacy rule withheld (see `privacy`)
    skipped: str
    #: the records go to a regular file (so the run can be resumed and is locked)
    regular: bool
    #: the side files are this run's own (standard output, a pipe or a device as output):
    #: made only when there is a line to write
    per_run: bool

    @property
    def side(self) -> tuple[str, str, str, str]:
        return (self.failed, self.rejects, self.deferred, self.skipped)


#: paths that are never made, locked or replaced, only written to: /dev/stdout, /dev/fd/N,
#: /dev/null (as root, replacing one of them breaks the machine)
_SYSTEM = ("/dev/", "/proc/", "/sys/")


def _kind(path: str) -> str:
    """ "missing", "regular", "directory" or "special" (standard output, a pipe, a device,
    a socket, anything under /dev, /proc or /sys)."""
    if path == STDOUT or os.path.abspath(path).startswith(_SYSTEM):
        return "special"
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
    skipped: str | None = None,
    inputs: Sequence[str],
    sources: Sequence[str] = (),
    manifest: str | None = None,
    resume: bool,
    now: float | None = None,
) -> OutputPaths:
    """The output set of a run, checked: no path is a directory, an input (or inside an input
    directory, or matched by an input pattern: a later run would read it), the manifest or
    another of the set; `--resume` needs a regular file. `inputs` are the files found,
    `sources` the paths and patterns given. Raises SettingsError naming the path."""
    kind = _kind(output)
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
        skipped=skipped or f"{stem}.skipped.ndjson",
        regular=regular,
        per_run=not regular,
    )
    flags = {"failed": failed, "rejects": rejects, "deferred": deferred, "skipped": skipped}
    for name, path in zip(flags, paths.side, strict=True):
        shown = f"--{name} {path}" if flags[name] else path
        if _kind(path) == "directory":
            raise SettingsError(f"{shown} is a directory; give a file path")
    _check_distinct(paths, inputs, sources, manifest)
    return paths


def _identity(path: str) -> tuple[int, int] | str:
    """What makes two paths the same file: its device and inode, or (not there yet) its
    absolute, resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def _check_distinct(
    paths: OutputPaths, inputs: Sequence[str], sources: Sequence[str], manifest: str | None
) -> None:
    named = [("-o", paths.records)] if paths.regular else []
    named += [("--failed", paths.failed), ("--rejects", paths.rejects)]
    named += [("--deferred", paths.deferred), ("--skipped", paths.skipped)]
    if manifest:
        named.append(("--manifest", manifest))
    ins = {p: "also an input" for p in inputs}
    seen: dict[tuple[int, int] | str, str] = {}
    for flag, path in named:
        if _kind(path) == "special":
            continue  # /dev/null may take several of them
        check_not_among(flag, path, ins)
        key = _identity(path)
        if (source := _read_by(path, sources)) is not None:
            raise SettingsError(
                f"{flag} {path} is inside the input {source}: the next run would read it"
            )
        if key in seen:
            raise SettingsError(f"{flag} {path} is the same file as {seen[key]}")
        seen[key] = path


def check_not_among(flag: str, path: str, kept: Mapping[str, str]) -> None:
    """Refuse (SettingsError) to write `path` when it is the same file as one of `kept`
    (path: what it is, `also an input`): standard output, /dev/null and the like excepted."""
    if _kind(path) == "special":
        return
    key = _identity(path)
    for other, what in kept.items():
        if other != STDOUT and _identity(other) == key:
            raise SettingsError(f"{flag} {path} is {what} ({other}): writing it would destroy it")


def _read_by(path: str, sources: Sequence[str]) -> str | None:
    """The input directory or pattern that would take `path` in, if any."""
    real = os.path.realpath(path)
    for source in sources:
        if source == STDOUT:
            continue
        if os.path.isdir(source):
            top = os.path.realpath(source)
            if real.startswith(top.rstrip(os.sep) + os.sep):
                return source
        elif not os.path.lexists(source) and _GLOB.search(source):
            pattern = os.path.abspath(source)
            whole = os.path.abspath(path)
            if fnmatch.fnmatch(whole, pattern) or fnmatch.fnmatch(
                whole, pattern.replace("**" + os.sep, "")
            ):
                return source
    return None


def is_file_path(path: str) -> bool:
    """A regular file, or nothing yet: a path the run makes, locks and may replace (not
    standard output, /dev/null, a pipe or a device, which are only written to)."""
    return path != STDOUT and _kind(path) in ("regular", "missing")


def check_new(
    paths: Sequence[str], hint: str = "add --resume to continue that run, or --force to replace it"
) -> None:
    """Refuse (SettingsError, `hint` says what to do) if any of these files exists: a new run
    never overwrites one."""
    for path in paths:
        if os.path.lexists(path) and (os.path.islink(path) or is_file_path(path)):
            raise SettingsError(f"{path} exists: {hint}")


class OutputLock:
    """Exclusive locks on a set of output paths: no other enricher run writes them meanwhile.

    Two locks a path, both with `flock`, which the operating system releases when the
    process ends (however it ends), so no lock outlives its run:

    - on a hidden lock file beside the file the path leads to (`.NAME.lock`; links are
      resolved first, so `out`, `./out` and a link to it share one), which exists before the
      output does and holds the owner's pid for the message the next run prints. It is
      removed on release; a run that opened it just as its owner removed it would lock a
      file no other run can find, so after locking the path is checked to still lead to it;
    - on the output itself, when it exists, so that a second name for it (a hard link)
      cannot get past. An output made later is locked as it is made (`OutputFile`).
    """

    def __init__(self, paths: Sequence[str]) -> None:
        # in a fixed order, so two runs that share some paths cannot deadlock
        real = {os.path.realpath(p): p for p in paths}
        self.paths = [(real[r], r) for r in sorted(real)]
        self._held: list[tuple[str, int]] = []  # (lock file, descriptor)

    @staticmethod
    def lock_path(path: str) -> str:
        head, tail = os.path.split(os.path.realpath(path))
        return os.path.join(head, f".{tail}.lock")

    def __enter__(self) -> OutputLock:
        try:
            for shown, real in self.paths:
                lock = self.lock_path(real)
                self._held.append((lock, self._take_name(shown, lock)))
                fd = self._take_file(shown, real)
                if fd is not None:
                    self._held.append(("", fd))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _take_name(self, shown: str, lock: str) -> int:
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise SettingsError(
                    f"cannot write {shown}: cannot make its lock file {lock}: {exc.strerror}"
                ) from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise SettingsError(f"cannot lock {shown}: {lock} is not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise _taken(shown, owner) from None
            except OSError as exc:  # a file system without locks
                os.close(fd)
                raise SettingsError(f"cannot lock {lock}: {exc.strerror}") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                # the pid is for the message only: a full disk must not stop the run here
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                return fd
            os.close(fd)  # removed or replaced by its last owner as we took it: again

    @staticmethod
    def _take_file(shown: str, real: str) -> int | None:
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None  # locked as it is made
        except OSError as exc:
            raise SettingsError(f"cannot use {shown}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        if not lock_file(fd):
            os.close(fd)
            raise _taken(shown, _flock_owner(real))
        return fd

    def release(self) -> None:
        while self._held:
            lock, fd = self._held.pop()
            if lock:
                # removed while still held, so no other run can lock this file after us
                with contextlib.suppress(OSError):
                    os.unlink(lock)
            os.close(fd)


def _taken(shown: str, owner: str) -> SettingsError:
    return SettingsError(f"{shown} is being written by another enricher run (pid {owner})")


def lock_file(fd: int) -> bool:
    """An exclusive flock on an open file; False if another open file holds one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # a file system without locks: the lock file's lock still stands
    return True


def _flock_owner(path: str) -> str:
    """The pid holding a flock on `path` (Linux: /proc/locks), or "unknown"."""
    try:
        st = os.stat(path)
        wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            for line in f:
                fields = line.split()
                if "FLOCK" in fields and wanted in fields:
                    return fields[fields.index(wanted) - 1]
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


class OutputFile:
    """One file of the output set (or standard output), written by a daemon thread of its own.

    `lazy`: made only when the first line comes (a run with nothing to say leaves no empty
    failures file). Each hand-over is written whole with `os.write` (no Python buffer, which a
    writer blocked on a full pipe would hold locked at exit). Errors become `FatalError`s
    that name the file: the next `write` or `close` raises the first. `writer` (the records
    file) turns the NDJSON lines handed over into its format, in the thread: its beginning
    goes before the first batch of a file that is empty, its end is written on `close`.
    """

    def __init__(
        self,
        path: str,
        *,
        mode: Mode,
        lazy: bool = False,
        resumable: bool,
        writer: RecordWriter | None = None,
    ) -> None:
        self.path = path
        self.writer = writer
        self._begun = False
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
        #: a hand-over is (NDJSON lines, how many), or (None, 0): the end of the file
        self._drain: Drain[tuple[bytes | None, int]] | None = None
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
        special = _kind(self.path) == "special"
        made = not special and (self.mode == "new" or not os.path.lexists(self.path))
        if not special:
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
        # a file this run made is locked as it is made (an existing one already is, by
        # OutputLock): a second name for it, a hard link, cannot let another run in
        if made and not lock_file(fd):
            os.close(fd)
            raise OutputError(
                f"{self.path} is being written by another enricher run (pid "
                f"{_flock_owner(self.path)})",
                "let it finish, then run the same command with --resume",
            )
        self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
        self._fd = fd
        self.created = True
        return fd

    def _write(self, item: tuple[bytes | None, int]) -> None:
        lines, n = item
        fd = self._open()
        data = lines if lines is not None else b""
        if self.writer is not None:
            data = self._formatted(fd, lines)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            raise reader_gone(self.display) from None
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

    def _formatted(self, fd: int, lines: bytes | None) -> bytes:
        """`lines` in the writer's format (None: the file's end), after the file's beginning
        if nothing is in the file yet (a resumed file has it already)."""
        assert self.writer is not None
        head = b""
        if not self._begun:
            self._begun = True
            if not self._regular or os.fstat(fd).st_size == 0:
                head = self.writer.begin()
        if lines is None:
            return head + self.writer.end()
        return head + self.writer.encode(lines)

    @property
    def _again(self) -> str:
        """What to do after this file could not be written to its end."""
        if self.resumable:
            return "fix that, then run the same command with --resume to finish"
        if self.writer is not None and not self.writer.resumable and is_file_path(self.path):
            return "fix that, then run the same command with --force to do it again"
        return "fix that, then run the same command again"

    async def write(self, data: bytes, n: int) -> None:
        """`n` lines (each ending in a newline), written whole, in order."""
        if data:
            await self._put((data, n))

    async def _put(self, item: tuple[bytes | None, int]) -> None:
        if self._drain is None:
            self._drain = Drain(self._write, name=f"write {self.display}")
        try:
            await self._drain.put(item)
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
        """Write what is pending, check the file is still where it was made, have it on disk
        (fsync: an error a file system reports only now, NFS or a quota, is an error too),
        and close. Raises the first error met."""
        if self.writer is not None and self.writer.framed and self.error is None:
            with contextlib.suppress(OutputError):  # raised below, as the file's error
                await self._put((None, 0))
        if self._drain is not None:
            await self._drain.close()
        abandoned = self._drain is not None and self._drain.abandoned
        try:
            if self.error is not None:
                raise self.error
            if abandoned:
                raise self._not_finished()
            self._check_in_place()
            if self._fd is not None and self._regular:
                fd, self._fd = self._fd, None
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self.complete = True
        except OSError as exc:
            raise OutputError(
                f"cannot write {self.display}: {exc.strerror or exc}", self._again
            ) from None
        finally:
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
            here = os.stat(self.path)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
            raise OutputError(
                f"{self.display} was removed or moved while the run was writing it",
                "run the same command again",
            ) from None
        if not os.path.samestat(os.fstat(self._fd), here):
            raise OutputError(
                f"{self.display} was replaced by another file while the run was writing it",
                f"move {self.display} away, then run the same command again",
            )


def reader_gone(display: str) -> OutputError:
    """The error of an output its reader closed (`| head`): fatal, exit 3."""
    return OutputError(
        f"{display} was closed by its reader before the run ended",
        "run it again with a reader that takes every line, or with -o FILE",
    )


def write_stdout(data: bytes) -> None:
    """Write `data` whole to standard output. OutputError (see `reader_gone`) when its reader
    closed it; standard output is then /dev/null, so that nothing fails again at exit."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise reader_gone("standard output") from None


def write_whole(path: str, data: bytes) -> None:
    """Write a small file whole: into a temporary file renamed into place, so a reader never
    sees half of one. A path that is no regular file (/dev/null, a pipe) is written as it is,
    never replaced (as root, a rename over /dev/null would replace the device).

    Made with the umask, as the outputs are (a manifest holds settings without secrets and
    counts, the outputs the IOCs themselves): `umask 077` makes them all private, and a
    scheduler's monitoring can read them under the usual 022."""
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "wb") as f:
            f.write(data)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _new_file(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _new_file(directory: str, name: str) -> tuple[int, str]:
    """A new file of a random name beside `name` in `directory`, mode 0666 less the umask
    (where `tempfile.mkstemp` always makes 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    while True:
        tmp = os.path.join(directory, f".{name}-{secrets.token_hex(6)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
