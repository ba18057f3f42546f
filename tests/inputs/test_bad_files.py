"""Broken, hostile and odd inputs through the real command line, in every format.

Each bad input gives counted rejects (in the summary and in the rejects file, the same number)
or stops the run with one clear line and a documented exit code. Never a traceback, never a
hang (every run has a timeout), and when a run completes its invariant holds. A bad input
never keeps the inputs after it from being read. An input that cannot be read to its end (a
corrupt or truncated stream, a JSON document that stops being JSON) never ends in exit 0: what
was read of it may be garbage, or what was not read lost.

Already covered elsewhere, and not repeated here: garbage with a 10 MB line among good lines,
a missing input, an empty directory and a `--column` name missing from a CSV header
(test_cli.py); an unreadable file and a broken link (test_formats_inputs.py, through
`check_inputs`); JSON cut half way, read directly (test_formats_inputs.py).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
import re
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import enricher, read_ndjson

TIMEOUT = 60
CAP = 1 << 20  # the longest line, in bytes
CANARY = "canary.example.com"
CORRUPT = "data is corrupt or truncated"


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    out: Path

    @property
    def records(self) -> list[dict[str, Any]]:
        return read_ndjson(self.out)

    @property
    def iocs(self) -> set[str]:
        return {r["ioc"] for r in self.records}

    @property
    def rejects(self) -> list[dict[str, Any]]:
        return read_ndjson(Path(f"{self.out}.rejects.ndjson"))

    def reasons(self, source: Path) -> Counter[str]:
        return Counter(r["reason"] for r in self.rejects if r["source"] == str(source))


def run(tmp_path: Path, *args: str) -> Run:
    out = tmp_path / "out.ndjson"
    for old in tmp_path.glob("out.ndjson*"):
        old.unlink()
    proc = enricher("run", "--emulator", "--no-cache", *args, "-o", str(out), timeout=TIMEOUT)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc, out)


def completed(r: Run, code: int = 0) -> Run:
    """Checks a run that went to its end: exit 0 (or `code`), the invariant, and every reject
    counted."""
    assert r.proc.returncode == code, r.proc.stderr
    assert re.search(r"invariant .*: holds", r.proc.stderr), r.proc.stderr
    said = re.search(r"lines read .*, rejected ([\d,]+)", r.proc.stderr)
    assert said is not None, r.proc.stderr
    assert int(said[1].replace(",", "")) == len(r.rejects)
    for reject in r.rejects:
        assert reject["reason"]
        assert reject["input"] is None or len(reject["input"]) <= 200
    return r


def stopped(r: Run, code: int, message: str) -> None:
    """Checks a run refused or stopped: the exit code, and the one line that says why."""
    assert r.proc.returncode == code, r.proc.stderr
    errors = [line for line in r.proc.stderr.splitlines() if line.startswith("enricher: error:")]
    assert len(errors) == 1, r.proc.stderr
    assert message in errors[0], errors[0]


# -- one input of each kind of damage, read in each format ------------------------------------

BAD_UTF8 = [b"\xff\xfe evil.com", b"\xc0\xaf", b"\x80abc", b"x\xe2\x82", b"\xed\xa0\x80.com"]


def _bad_files(root: Path) -> dict[str, Path]:
    rng = random.Random(7)
    packed = gzip.compress(b"".join(b"host%d.example.com\n" % i for i in range(50_000)))
    content = {
        "random.bin": rng.randbytes(300_000),
        "nul.txt": b"\x00" * 300_000,
        "invalid-utf8.txt": b"\n".join([*BAD_UTF8, b"utf8.example.com", b""]),
        "one-line.txt": b"A" * (10 * CAP),  # 10 MB, no line end
        "over-the-cap.txt": b"b" * (CAP + 100_000) + b"\nspanning.example.com\n",
        "empty.txt": b"",
        "truncated.csv.gz": packed[: len(packed) // 2],
        "not-gzip.gz": b"plain.example.com\n",
        "zero.zst": b"",
        "deflate.gz": b"\x1f\x8b\x08" + bytes(12),  # a gzip header, then a corrupt deflate stream
        "junk.gz": b"\x1f\x8b" + rng.randbytes(2000),
        "junk.bz2": b"BZh9" + rng.randbytes(2000),
        "junk.xz": b"\xfd7zXZ\x00" + rng.randbytes(2000),
        "junk.zst": b"\x28\xb5\x2f\xfd" + rng.randbytes(2000),
        "cut.bz2": bz2.compress(b"bz.example.com\n" * 10_000)[:-20],
        "cut.xz": lzma.compress(b"xz.example.com\n" * 10_000)[:-20],
        "cut.zst": zstandard.ZstdCompressor().compress(b"zst.example.com\n" * 10_000)[:-20],
        "ragged.csv": b'a,b,c\n1.2.3.4\nragged.example.com,x,y,z,w\n"open,quote.example.com\n',
        "half.json": b'[{"ioc": "before.example.com"},\n{"ioc": "x" "y"},\n{"ioc": "after.net"}]\n',
    }
    paths = {}
    for name, data in content.items():
        paths[name] = root / name
        paths[name].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _bad_files(tmp_path_factory.mktemp("bad"))


GOOD = {  # a good last input in each format: it must still be read
    "lines": b"canary.example.com\n",
    "csv": b"canary.example.com\n",
    "tsv": b"canary.example.com\n",
    "text": b"the canary.example.com\n",
    "ndjson": b'{"ioc": "canary.example.com"}\n',
    "json": b'[{"ioc": "canary.example.com"}]\n',
    "auto": b"canary.example.com\n",
}
COMPRESSED_BAD = ["truncated.csv.gz", "deflate.gz", "junk.gz", "junk.bz2", "junk.xz", "junk.zst",
                  "cut.bz2", "cut.xz", "cut.zst"]  # fmt: skip


@pytest.mark.parametrize("fmt", sorted(GOOD))
def test_every_kind_of_damage_in_every_format(
    tmp_path: Path, bad_files: dict[str, Path], fmt: str
) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(GOOD[fmt])
    # damaged inputs: exit 1, and one line that names the first of them
    r = completed(run(tmp_path, "--format", fmt, *map(str, bad_files.values()), str(good)), 1)
    errors = [x for x in r.proc.stderr.splitlines() if x.startswith("enricher: error:")]
    assert len(errors) == 1 and "not read to its end" in errors[0], r.proc.stderr
    assert CANARY in r.iocs  # read after every bad input
    sources = {str(p) for p in bad_files.values()} | {str(good)}
    assert {reject["source"] for reject in r.rejects} <= sources
    # each corrupt stream: one reject that says so, at its end (JSON: or where its text stops
    # being JSON, which ends that input before the damage)
    ends = (CORRUPT, "not valid JSON") if fmt == "json" else (CORRUPT,)
    for name in COMPRESSED_BAD:
        whys = r.reasons(bad_files[name]).elements()
        assert sum(any(end in why for end in ends) for why in whys) == 1, name
    assert not r.reasons(bad_files["empty.txt"]) and not r.reasons(bad_files["zero.zst"])
    if fmt in ("lines", "auto"):
        assert "plain.example.com" in r.iocs  # a .gz that is plain text is read as such
    if fmt == "lines":
        assert r.reasons(bad_files["one-line.txt"]) == {f"line longer than {CAP} bytes": 1}
        assert r.reasons(bad_files["over-the-cap.txt"]) == {f"line longer than {CAP} bytes": 1}
        assert "spanning.example.com" in r.iocs
        assert sum(r.reasons(bad_files["invalid-utf8.txt"]).values()) == len(BAD_UTF8)
        assert "utf8.example.com" in r.iocs
        assert r.reasons(bad_files["nul.txt"]) == {"too long": 1}
        # the gzip stream cut in half: the lines before the cut, then the reject
        assert {f"host{i}.example.com" for i in range(1000)} <= r.iocs
    if fmt == "json":
        assert r.reasons(bad_files["half.json"]) == {"not valid JSON: Expecting ',' delimiter": 1}
        assert "before.example.com" in r.iocs and "after.net" not in r.iocs
    if fmt in ("csv", "text"):
        assert {"ragged.example.com", "quote.example.com", "1.2.3.4"} <= r.iocs


def _flipped(packed: bytes) -> bytes:
    data = bytearray(packed)
    middle = len(data) // 2
    for i in range(middle, middle + 8):
        data[i] ^= 0x55
    return bytes(data)


LINES = b"".join(b"host%d.example.com\n" % i for i in range(20_000))
DAMAGED_IN_THE_MIDDLE = {
    # stored blocks: the bytes in the middle decode as they are, to lines that were never in
    # the original, and only the CRC at the end says so
    "garbage.gz": gzip.compress(LINES, compresslevel=0).replace(
        b"host10000.example.com\n", b"never-sent.example.ru\n"
    ),
    "flipped.gz": _flipped(gzip.compress(LINES)),
    "flipped.bz2": _flipped(bz2.compress(LINES)),
    "flipped.xz": _flipped(lzma.compress(LINES)),
    "flipped.zst": _flipped(zstandard.ZstdCompressor(write_checksum=True).compress(LINES)),
}


@pytest.mark.parametrize("name", sorted(DAMAGED_IN_THE_MIDDLE))
def test_a_stream_damaged_in_the_middle_never_exits_0(tmp_path: Path, name: str) -> None:
    """Decoders check a stream (gzip, zstd) or a block (bzip2, xz) only at its end: lines
    decoded before that may be garbage. They are enriched, but the run exits 1 and says the
    input was damaged, so that a scheduler never takes the output as the export's."""
    damaged = tmp_path / name
    damaged.write_bytes(DAMAGED_IN_THE_MIDDLE[name])
    good = tmp_path / "good.txt"
    good.write_bytes(GOOD["lines"])
    r = run(tmp_path, str(damaged), str(good))
    stopped(r, 1, "data is corrupt or truncated")
    assert "not read to its end" in r.proc.stderr and "inputs damaged" in r.proc.stderr
    assert CANARY in r.iocs  # the input after it is read
    assert sum(CORRUPT in why for why in r.reasons(damaged).elements()) == 1
    assert re.search(r"invariant .*: holds", r.proc.stderr)


def test_bad_bytes_on_stdin(tmp_path: Path, bad_files: dict[str, Path]) -> None:
    # (input, reject, whether anything was read): a run that read nothing and exits 1 says
    # so in one line, without a summary
    for name, why, read in [
        ("random.bin", None, True),
        ("truncated.csv.gz", CORRUPT, True),
        ("junk.zst", CORRUPT, False),
    ]:
        out = tmp_path / f"{name}.ndjson"
        proc = subprocess.run(
            [sys.executable, "-m", "enricher", "run", "--emulator", "--no-cache", "--format",
             "auto", "-", "-o", str(out)],
            input=bad_files[name].read_bytes(),
            capture_output=True,
            timeout=TIMEOUT,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )  # fmt: skip
        stderr = proc.stderr.decode()
        assert proc.returncode == (0 if why is None else 1), stderr
        assert "Traceback" not in stderr
        assert bool(re.search(r"invariant .*: holds", stderr)) == read, stderr
        rejects = read_ndjson(Path(f"{out}.rejects.ndjson"))
        if why is not None:
            assert [r["source"] for r in rejects if why in r["reason"]] == ["<stdin>"]


# -- CSV columns ------------------------------------------------------------------------------


def test_ragged_rows_with_a_column_are_counted_rejects(
    tmp_path: Path, bad_files: dict[str, Path]
) -> None:
    ragged = bad_files["ragged.csv"]
    r = completed(run(tmp_path, "--format", "csv", "--column", "3", str(ragged)))
    # the header (a,b,c) is told apart; `1.2.3.4` alone has no third cell; `y` is no IOC; the
    # row whose quote never closes runs to the end of the file, as one cell
    assert r.reasons(ragged) == {"short row: no column 3": 2, "single-label name (no dot)": 1}
    assert [x["line"] for x in r.rejects] == [2, 3, 4]


def test_a_column_past_the_header_is_a_usage_error(tmp_path: Path) -> None:
    csv = tmp_path / "export.csv"
    csv.write_text("host,ip\na.example.com,1.2.3.4\n")
    stopped(run(tmp_path, "--format", "csv", "--column", "3", str(csv)), 1, "no column 3")
    gz = tmp_path / "export.csv.gz"
    gz.write_bytes(gzip.compress(csv.read_bytes()))
    stopped(run(tmp_path, "--format", "auto", "--column", "nope", str(gz)), 1, "'nope'")


# -- paths that are no regular file -------------------------------------------------------------


def test_every_input_is_checked_before_anything_is_sent(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(f"{CANARY}\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "csv").mkdir()
    first = tmp_path / "csv" / "first.csv"
    first.write_text(f"sha256,host\n{'ab' * 32},{CANARY}\n")
    second = tmp_path / "csv" / "second.csv.gz"  # the same export, a day its header changed
    second.write_bytes(gzip.compress(b"hash,hostname\n" + b"cd" * 32 + b",a.example.com\n"))
    for args, message in [
        ([good, tmp_path / "missing.txt"], "input not found"),
        ([good, tmp_path / "empty"], "input is a directory with no files in it"),
        ([good, tmp_path / "*.gz"], "no input matches the pattern"),
        (["--format", "csv", "--column", "host", first, second], "no column named 'host'"),
        (["--format", "auto", "--column", "2", "--column", "host", first, second], "'host'"),
    ]:
        r = run(tmp_path, *map(str, args))
        stopped(r, 1, message)
        assert r.records == []
        assert r.proc.stderr.count("\n") == 1  # that line and nothing else


def test_special_files_are_read_as_streams(tmp_path: Path) -> None:
    r = completed(run(tmp_path, "/dev/null"))
    assert r.records == [] and r.rejects == []
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as f:  # blocks until enricher opens the pipe to read
            f.write(b"fifo.example.com\n\xff\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    r = completed(run(tmp_path, str(fifo)))
    writer.join(TIMEOUT)
    assert r.iocs == {"fifo.example.com"}
    assert [x["reason"] for x in r.rejects] == ["not valid UTF-8 (byte 0)"]


def test_a_directory_where_a_file_is_expected(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(f"{CANARY}\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    stopped(run(tmp_path, "--config", str(folder), str(good)), 1, "settings file is a directory")
    # a path that cannot be written is a usage error, found before anything is read or sent
    stopped(run(tmp_path, "--rejects", str(folder), str(good)), 1, f"--rejects {folder} is a")
    stopped(run(tmp_path, "--deferred", str(folder), str(good)), 1, f"--deferred {folder} is a")
    proc = enricher("run", "--emulator", str(good), "-o", str(folder), "--force", timeout=TIMEOUT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"enricher: error: -o {folder} is a directory; give a file path" in proc.stderr
    proc = enricher("run", "--emulator", str(good), "-o", str(folder), "--resume", timeout=TIMEOUT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"enricher: error: -o {folder} is a directory; give a file path" in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_stops_the_run_before_anything_is_sent(tmp_path: Path) -> None:
    good, secret = tmp_path / "good.txt", tmp_path / "secret.txt"
    good.write_text(f"{CANARY}\n")
    secret.write_text("hidden.example.com\n")
    secret.chmod(0)
    r = run(tmp_path, str(good), str(secret))
    stopped(r, 1, "input is not readable (permissions)")
    assert r.records == []
