"""The README, run: every command block that can run here does, as written, so that the README
cannot drift from what enricher does.

Each ```sh and ```python block is marked by the HTML comment above it (invisible on GitHub):

    <!-- readme: run -->                  run it, as written
    <!-- readme: run (OPTION; ...) -->    run it, with these changes:
        needs TOOL ...                      skipped, saying so, where a tool is not installed
        paths /DIR ...                      a server's folder (/data) is a folder of the sandbox
        port N                              port N is a free loopback port; what the block
                                            leaves running in the background is ended after it
    <!-- readme: skip: REASON -->         it cannot run here (it installs, it runs the suite)
    <!-- readme: output: COMMAND -->      (above a ```text block) what COMMAND prints on stderr

A block is run in a folder of its own holding the files the README's commands name (exports,
a Zeek log, a MISP event, ...), with `enricher` on the PATH. Commands for the real API go to
the emulator instead, through `ENRICHER_API_BASE_URL`: the settings they load are otherwise
the shipped default profile.
"""

from __future__ import annotations

import ast
import gzip
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard
from helpers import emulator_process

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
DATA = ROOT / "tests" / "data"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
_MARK = re.compile(r"<!-- readme: (.+?) -->\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # where its fence opens
    lang: str
    text: str
    mark: str | None  # the marker's words, or None

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"

    @property
    def options(self) -> dict[str, list[str]]:
        """`run (needs zstdcat; paths /exports /data)` -> {"needs": [...], "paths": [...]}."""
        found = re.fullmatch(r"run \((.+)\)", self.mark or "")
        parts = found.group(1).split(";") if found else []
        return {word: rest for word, *rest in (part.split() for part in parts)}


def blocks() -> list[Block]:
    text = README.read_text()
    found = []
    for fence in _FENCE.finditer(text):
        line = text.count("\n", 0, fence.start()) + 1
        before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        found.append(Block(line, fence.group(1), fence.group(2), mark.group(1) if mark else None))
    return found


def _to_run() -> list[Block]:
    return [b for b in blocks() if b.mark is not None and b.mark.startswith("run")]


def _outputs() -> list[Block]:
    return [b for b in blocks() if b.mark is not None and b.mark.startswith("output: ")]


def test_every_command_block_says_whether_it_runs() -> None:
    for block in blocks():
        if block.lang in ("sh", "python"):
            assert block.mark is not None and re.match(r"run( \(.+\))?$|skip: .+", block.mark), (
                f"{block.name}: mark it <!-- readme: run --> or <!-- readme: skip: why -->"
            )
            assert set(block.options) <= {"needs", "paths", "port"}, block.name
        elif block.mark is not None:
            assert block.mark.startswith("output: ") and block.lang == "text", block.name
    assert len(_to_run()) >= 4 and _outputs()


# -- the folder a block runs in --------------------------------------------------------------------


def _sandbox(root: Path) -> Path:
    """A folder with every file the README's commands name."""
    formats = DATA / "formats"
    (root / "tests" / "data").mkdir(parents=True)
    shutil.copy(DATA / "sample-iocs.txt", root / "tests" / "data" / "sample-iocs.txt")
    (root / "export-1.txt").write_text("evil-update.com\n1.2.3.4\n")
    (root / "export-2.txt").write_text("1.2.3.4\n92f44e405db16ac55d97e3bfe3b132fa\n")
    (root / "iocs.txt.gz").write_bytes(gzip.compress(b"www.cybereason.com\n8.8.8.8\n"))
    (root / "exports").mkdir()
    shutil.copy(formats / "export.csv", root / "exports" / "export.csv")
    shutil.copy(formats / "hashes.txt", root / "exports" / "hashes.txt")
    zeek = root / "zeek" / "2024-02-20"
    zeek.mkdir(parents=True)
    (zeek / "conn.log.gz").write_bytes(gzip.compress((formats / "zeek-conn.log").read_bytes()))
    (zeek / "dns.log.gz").write_bytes(gzip.compress((formats / "zeek-dns.log").read_bytes()))
    shutil.copy(formats / "report.adoc", root / "report.adoc")
    shutil.copy(formats / "misp-event.json", root / "misp-event.json")
    (root / "edr-export.csv").write_text(
        "Time,Host,sha256,Destination IP\n"
        f"2024-02-20T10:00:01Z,ws-17,{'ab' * 32},185.220.101.47\n"
        f"2024-02-20T10:00:02Z,ws-18,{'cd' * 32},-\n"
    )
    eve = (formats / "suricata-eve.json").read_bytes()
    (root / "eve.json.zst").write_bytes(zstandard.ZstdCompressor().compress(eve))
    bin_dir = root / ".bin"  # `enricher` as the README means it: this interpreter's
    bin_dir.mkdir()
    shim = bin_dir / "enricher"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m enricher "$@"\n')
    shim.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    """The far end of the README's commands for the real API."""
    with emulator_process() as url:
        yield url


def _environment(sandbox: Path, api: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{sandbox / '.bin'}{os.pathsep}{os.environ['PATH']}",
        "ENRICHER_API_BASE_URL": api,
        "PYTHONWARNINGS": "error",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _script(block: Block, sandbox: Path) -> str:
    """The block's text with its options applied (see the module's docstring)."""
    text = block.text
    for folder in block.options.get("paths", []):
        assert folder.startswith("/"), block.name
        mine = sandbox / folder.strip("/")
        mine.mkdir(parents=True, exist_ok=True)
        text = re.sub(rf"(?<![\w.]){re.escape(folder)}(?=/|\b)", str(mine), text)
    for port in block.options.get("port", []):
        assert port in text, block.name
        text = re.sub(rf"\b{port}\b", str(_free_port()), text)
        # what the block leaves running is ended by its pid as the script ends
        text = f"trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{text}"
    return text


def _run(block: Block, sandbox: Path, api: str) -> subprocess.CompletedProcess[str]:
    for tool in block.options.get("needs", []):
        if shutil.which(tool) is None:
            pytest.skip(f"{block.name} needs {tool}, not installed here")
    if block.lang == "python":
        script = sandbox / "example.py"
        script.write_text(block.text)
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-e", "-o", "pipefail", "-c", _script(block, sandbox)]
    return subprocess.run(
        argv, cwd=sandbox, env=_environment(sandbox, api), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("block", _to_run(), ids=lambda b: b.name)
def test_readme_block_runs(block: Block, tmp_path: Path, api: str) -> None:
    proc = _run(block, _sandbox(tmp_path), api)
    assert proc.returncode == 0, f"{block.name}\n{block.text}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "error:" not in proc.stderr, proc.stderr


def test_the_library_example_runs_as_written(tmp_path: Path, api: str) -> None:
    """The README's first Python block, as written: three IOCs in, three records out (the
    default profile sends no sha256; these are md5, domain and IPv4), and stats that add up."""
    (block,) = [b for b in _to_run() if b.lang == "python" and "async with Enricher" in b.text]
    assert 'load_settings("' not in block.text  # no path into a checkout
    proc = _run(block, _sandbox(tmp_path), api)
    assert proc.returncode == 0, proc.stderr
    *items, stats = [ast.literal_eval(line) for line in proc.stdout.splitlines()]
    assert sorted(i["ioc"] for i in items) == [
        "1.2.3.4", "92f44e405db16ac55d97e3bfe3b132fa", "evil.example.com",
    ]  # fmt: skip
    assert all(i["verdict"] in ("malicious", "suspicious", "benign", "unknown") for i in items)
    assert stats["invariant_holds"] and stats["ok"] == 3 and stats["requests"] == 3


def test_the_notebook_example_runs_as_written(tmp_path: Path, api: str) -> None:
    (block,) = [b for b in _to_run() if b.lang == "python" and "enrich_sync" in b.text]
    proc = _run(block, _sandbox(tmp_path), api)
    assert proc.returncode == 0, proc.stderr
    counts, holds = proc.stdout.splitlines()
    assert counts.startswith("2 [] [] [{'source': '<iterable>', 'line': 3, 'input': 'not an IOC'")
    assert holds == "True"


# -- shown output ----------------------------------------------------------------------------------

#: what differs from run to run: times, latencies, speeds, sizes, the version, a run's own name
_VARIES = [
    (re.compile(r"in [\d.]+ s$"), "in <t> s"),
    (re.compile(r"(latency ms\s+).*"), r"\1<latency>"),
    (re.compile(r"(speed\s+).*"), r"\1<speed>"),
    (re.compile(r"(cache\s+)[\d.]+ [KMG]?i?B of"), r"\1<size> of"),
    (re.compile(r"enricher \d+\.\d+\.\d+\S*"), "enricher <version>"),
    (re.compile(r"enricher-\d{8}T\d{6}Z-\d+"), "enricher-<run>"),
]


def _masked(text: str) -> list[str]:
    lines = []
    for line in text.strip("\n").splitlines():
        for pattern, replacement in _VARIES:
            line = pattern.sub(replacement, line)
        lines.append(line.rstrip())
    return lines


@pytest.mark.parametrize("block", _outputs(), ids=lambda b: b.name)
def test_readme_output_is_what_the_command_prints(block: Block, tmp_path: Path, api: str) -> None:
    command = (block.mark or "").removeprefix("output: ")
    shown = Block(block.line, "sh", command, "run")
    proc = _run(shown, _sandbox(tmp_path), api)
    assert proc.returncode == 0, proc.stderr
    assert _masked(proc.stderr) == _masked(block.text)
