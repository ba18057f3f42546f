"""Build hook: compiles the optional C modules (`SOURCES`: the text extractor's
enricher/inputs/_scan.c, the deduper's enricher/pipeline/_dedupe.c, the record lines'
enricher/output/_records.c, the cache hits' enricher/state/_hits.c).

With a compiler and Python's headers, `pip install .` ships the module in the wheel (tagged
for this interpreter and platform), and `pip install -e .` places it beside its source (git
ignores it). Without them the hook says so in one line and the install goes on: enricher
then runs its pure-Python path, which gives the same results, slower.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("enricher/inputs/_scan.c")
#: each module's source; each is built, or not, on its own, beside it
SOURCES = (
    SOURCE,
    Path("enricher/pipeline/_dedupe.c"),
    Path("enricher/output/_records.c"),
    Path("enricher/state/_hits.c"),
)
#: what runs in pure Python when a module is not built
_FALLBACK = {
    "_scan": "pure-Python text extraction",
    "_dedupe": "pure-Python dedupe",
    "_records": "pure-Python record lines",
    "_hits": "pure-Python cache hits",
}


class CModulesBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"
    built: tempfile.TemporaryDirectory[str] | None = None  # a wheel's module, until it is packed

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        for source in SOURCES:
            if not (root / source).is_file():  # a tree that holds only some of them
                continue
            name = source.stem + suffix
            if version == "editable":  # an editable install imports it from beside its source
                compile_module(root / source, root / source.with_name(name))
                continue
            # a wheel's is built outside the source tree, which the build leaves as it found
            # it (a read-only checkout builds it too)
            if self.built is None:
                self.built = tempfile.TemporaryDirectory()
            target = Path(self.built.name, name)
            if compile_module(root / source, target):
                build_data["force_include"][str(target)] = str(source.with_name(name))
                build_data["pure_python"] = False
                build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self.built is not None:
            self.built.cleanup()


def compile_module(source: Path, target: Path) -> bool:
    """Compile `source` into the extension module `target` with `linker()`; False (and one
    line on stderr) when that cannot be done."""
    include = sysconfig.get_paths()["include"]
    digest = source_digest(source.read_bytes())
    cmd = [*linker(), "-O2", "-fPIC", "-Wall", "-Wextra", f"-I{include}"]
    # `_scan.c` reads SCAN_SOURCE, `_dedupe.c` DEDUPE_SOURCE, `_records.c` RECORDS_SOURCE, …
    cmd.append(f'-D{source.stem.lstrip("_").upper()}_SOURCE="{digest}"')
    cmd += [str(source), "-o", str(target)]
    if not Path(include, "Python.h").is_file():
        print(f"enricher: no Python.h in {include}: {_FALLBACK[source.stem]}", file=sys.stderr)
        return False
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except OSError as e:
        why = str(e)
    except subprocess.CalledProcessError as e:
        # the compiler's first error, not its `In function` line nor the whole command
        lines = e.stderr.strip().splitlines()
        errors = [line for line in lines if "error" in line] or lines
        why = errors[0] if errors else f"{cmd[0]} exited with status {e.returncode}"
    else:
        return True
    print(f"enricher: C module not built ({why}): {_FALLBACK[source.stem]}", file=sys.stderr)
    return False


def linker() -> list[str]:
    """The command that compiles and links the module: the one this Python was built with,
    unless the environment names another, as setuptools reads it: `LDSHARED` whole, or `CC`
    in place of the compiler (`CC=clang pip install .`; `CC=false`: no C module)."""
    words = shlex.split(
        os.environ.get("LDSHARED") or sysconfig.get_config_var("LDSHARED") or "cc -shared"
    )
    built_with = shlex.split(sysconfig.get_config_var("CC") or "cc")
    chosen = os.environ.get("CC")
    if chosen and "LDSHARED" not in os.environ and words[: len(built_with)] == built_with:
        words = shlex.split(chosen) + words[len(built_with) :]
    return words


def source_digest(source: bytes) -> str:
    """What the module built from `source` carries as its `SOURCE` (`native.built_from`
    computes the same of the C source beside the module)."""
    return hashlib.sha256(source).hexdigest()[:16]
