"""The inputs to read: paths, directories (recursive) and globs, checked up front.

Globs are expanded here, not by a shell, so `enricher run 'logs/**/*.json.gz'` works quoted
(`**` crosses directories). A directory stands for every file under it, in name order,
hidden files and directories (`.git`, `.DS_Store`) left out. A path that exists is taken as
it is, even with glob characters in its name. Each file is checked to be readable before
anything is read, so a typo stops the run at once with a clear message.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterator, Sequence

from ..errors import InputError

__all__ = ["STDIN", "check_inputs"]

STDIN = "-"
_GLOB = re.compile(r"[*?\[]")


def check_inputs(paths: Sequence[str]) -> list[str]:
    """The files to read (stdin when none), with directories and globs expanded, each
    checked to be a readable file; InputError says what is wrong with the first that is not.
    """
    if not paths:
        return [STDIN]
    found: dict[str, None] = {}  # ordered, without repeats
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
                files += _walk(match)
            else:
                _check_file(match)
                files.append(match)
        if not files:
            if path == matches[0]:
                raise InputError(f"input is a directory with no files in it: {path}")
            raise InputError(f"no input files match the pattern {path!r}")
        found.update(dict.fromkeys(files))
    return list(found)


def _walk(top: str) -> Iterator[str]:
    def fail(exc: OSError) -> None:
        raise InputError(f"cannot list input directory {exc.filename}: {exc.strerror}")

    for root, dirs, files in os.walk(top, onerror=fail):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                path = os.path.join(root, name)
                _check_file(path)
                yield path


def _check_file(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"input not found (a broken link?): {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read input {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):  # pragma: no cover - directories are expanded before
        raise InputError(f"input is a directory, not a file: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input is not readable (permissions): {path}")
