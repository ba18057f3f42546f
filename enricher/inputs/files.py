"""The inputs to read: paths, directories (recursive) and globs, checked up front.

Globs are expanded here, not by a shell, so `enricher run 'logs/**/*.json.gz'` works quoted
(`**` crosses directories). A directory stands for every file under it, in name order,
hidden files and directories (`.git`, `.DS_Store`) left out, linked directories followed
(each read once). A path that exists is taken as it is, even with glob characters in its
name. Each file is checked to be readable before anything is read: a path named on its own
that cannot be read stops the run at once (a typo must not cost a night); a file found inside
a directory or by a glob that cannot be read (a broken link, no permission, a pipe) is left
out and reported, and the run goes on with the rest and ends with exit code 1.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterator, Sequence

from ..errors import InputError

__all__ = ["STDIN", "check_inputs", "find_inputs", "utf8_name"]

STDIN = "-"
_GLOB = re.compile(r"[*?\[]")


def check_inputs(paths: Sequence[str]) -> list[str]:
    """The files to read (stdin when none), with directories and globs expanded, each
    checked to be a readable file; InputError says what is wrong with the first that is not.
    """
    files, problems = find_inputs(paths)
    if problems:
        raise InputError(problems[0])
    return files


def find_inputs(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The files to read (stdin when none), and what was wrong with the files found inside
    directories and by globs that cannot be read (a broken link, a pipe, no permission): those
    are left out and said, so one bad file in an export directory does not stop a night's run.

    A path named on its own that cannot be read raises InputError at once: a typo must not
    cost a run.
    """
    if not paths:
        return [STDIN], []
    found: dict[str, None] = {}  # ordered, without repeats
    problems: list[str] = []
    for path in paths:
        if path == STDIN:
            found[STDIN] = None
            continue
        if os.path.lexists(path):
            matches = [path]
        elif _GLOB.search(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise InputError(f"no input matches the pattern {path!r}")
        else:
            raise InputError(f"input not found: {path}")
        files: list[str] = []
        for match in matches:
            if os.path.isdir(match):
                files += _walk(match, problems)
            elif match == path:
                _check_file(match, named=True)
                files.append(match)
            elif (problem := _problem(match)) is None:
                files.append(match)
            else:
                problems.append(problem)
        if not files and not problems:
            if path == matches[0]:
                raise InputError(f"input is a directory with no files in it: {path}")
            raise InputError(f"no input files match the pattern {path!r}")
        found.update(dict.fromkeys(files))
    return list(found), problems


def _walk(top: str, problems: list[str]) -> Iterator[str]:
    """The files under `top`, in name order, hidden ones left out; linked directories are
    followed, each directory read once (a link back up is no loop)."""

    def fail(exc: OSError) -> None:
        problems.append(f"cannot list input directory {exc.filename}: {exc.strerror}")

    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(top, onerror=fail, followlinks=True):
        try:
            st = os.stat(root)
        except OSError as exc:
            fail(exc)
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                path = os.path.join(root, name)
                if (problem := _problem(path)) is None:
                    yield path
                else:
                    problems.append(problem)


def _problem(path: str) -> str | None:
    """Why a file found in a directory or by a glob cannot be read, or None."""
    try:
        _check_file(path, named=False)
    except InputError as exc:
        return str(exc)
    return None


def _check_file(path: str, *, named: bool) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"input not found (a broken link?): {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read input {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):  # pragma: no cover - directories are expanded before
        raise InputError(f"input is a directory, not a file: {path}")
    if not named and not stat.S_ISREG(st.st_mode):
        # a pipe or a device inside a directory would block or never end: only one named
        # on the command line (/dev/stdin, <(zcat ...)) is read
        raise InputError(f"input is not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input is not readable (permissions): {path}")


def utf8_name(name: str) -> str:
    """`name` (a path or an argument, as Python decodes the command line) as UTF-8 text can
    hold it: its bytes that are not UTF-8 (surrogates in the str) written as `\\xff` escapes,
    for the records' origins, the rejects, the manifest and the state's job keys."""
    return os.fsencode(name).decode(errors="backslashreplace")
