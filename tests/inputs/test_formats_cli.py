"""`enricher run --format auto` as a user runs it: a real process, compressed and free-text
inputs, the embedded emulator."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import zstandard
from format_helpers import DATA, expected, withheld
from helpers import enricher, read_ndjson


def test_auto_format_csv_gz_and_a_text_report(tmp_path: Path) -> None:
    csv_gz = tmp_path / "export.csv.gz"
    csv_gz.write_bytes(gzip.compress((DATA / "export.csv").read_bytes()))
    out = tmp_path / "out.ndjson"
    proc = enricher(
        "run", "--emulator", "--format", "auto", str(csv_gz), str(DATA / "report.adoc"),
        "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    iocs = [r["ioc"] for r in read_ndjson(out)]
    want = expected("export.csv") | expected("report.adoc")
    assert sorted(iocs) == sorted(want - withheld(want))  # each once
    skipped = [r["ioc"] for r in read_ndjson(tmp_path / "out.ndjson.skipped.ndjson")]
    assert sorted(skipped) == sorted(withheld(want)) and skipped
    assert f"{csv_gz} (csv, gzip, auto)" in proc.stderr
    assert "report.adoc (text, auto)" in proc.stderr
    assert read_ndjson(tmp_path / "out.ndjson.rejects.ndjson") == []


def test_compressed_stdin_with_chosen_fields(tmp_path: Path) -> None:
    data = zstandard.ZstdCompressor().compress((DATA / "records.ndjson").read_bytes())
    out = tmp_path / "out.ndjson"
    proc = subprocess.run(
        [sys.executable, "-m", "enricher", "run", "--emulator", "--format", "ndjson",
         "--field", "process.hash.md5", "--field", "dns.answers[*].rdata", "-", "-o", str(out)],
        input=data,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(r["ioc"] for r in read_ndjson(out)) == [
        "185.220.101.47",
        "45.146.164.110",
        "7353f60b1739074eb17c5f4dddefe239",
        "8b1fdfac8fe38356708b4bb683ff7cca",
    ]
    assert "<stdin> (ndjson, zstd)" in proc.stderr.decode()


def test_a_bad_flag_is_a_usage_error() -> None:
    proc = enricher("run", "--emulator", "--format", "lines", "--column", "ip", "-")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "enricher: error: --column reads CSV or TSV: use it with --format csv, tsv or auto"
    )


def test_text_with_wrapped_forms_through_the_command_line(tmp_path: Path) -> None:
    # every wrapper of the golden reports, one file, and the distractors they hold
    src = tmp_path / "wrapped.txt"
    names = ["report.adoc", "report.md", "report.html", "report.rst"]
    src.write_text("\n".join((DATA / name).read_text() for name in names))
    out = tmp_path / "out.ndjson"
    proc = enricher(
        "run", "--format", "text", str(src), "--emulator", "--no-cache", "-o", str(out)
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = set().union(*(expected(name) for name in names))
    records = [r["ioc"] for r in read_ndjson(out)]
    assert sorted(records) == sorted(want - withheld(want))  # each unique IOC once, nothing else
    skipped = [r["ioc"] for r in read_ndjson(tmp_path / "out.ndjson.skipped.ndjson")]
    assert sorted(skipped) == sorted(withheld(want))
    assert {"26::", "2::", "microsoft.net", "10.20.0.0", "kernel32.dll"}.isdisjoint(records)
    assert f"unique IOCs   {len(want)}" in proc.stderr
    assert ": holds" in proc.stderr
    assert read_ndjson(tmp_path / "out.ndjson.rejects.ndjson") == []


def test_utf16_files_as_powershell_writes_them(tmp_path: Path) -> None:
    # `Get-Content beacons.log | Out-File x.txt` in Windows PowerShell 5: UTF-16 LE with a BOM
    report = tmp_path / "triage.txt"
    report.write_bytes(
        "Beacon to c2-wide.example.net (11.51.100.71)\r\nDropped by 2a0b:4140:7::71\r\n".encode(
            "utf-16"
        )
    )
    listed = tmp_path / "iocs.lst"  # and a list without a BOM, big-endian
    listed.write_bytes("c2-wide2.example.net\n11.51.100.72\n".encode("utf-16-be"))
    out = tmp_path / "out.ndjson"
    proc = enricher(
        "run", "--emulator", "--no-cache", "--format", "auto", str(report), str(listed),
        "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["ioc"] for r in read_ndjson(out)) == [
        "11.51.100.71", "11.51.100.72", "2a0b:4140:7::71", "c2-wide.example.net",
        "c2-wide2.example.net",
    ]  # fmt: skip
    assert f"{report} (text, utf-16-le, auto)" in proc.stderr
    assert f"{listed} (lines, utf-16-be, auto)" in proc.stderr
    assert read_ndjson(tmp_path / "out.ndjson.rejects.ndjson") == []
    # read as lines, each line of the report that is no IOC gives the IOCs inside it
    proc = enricher(
        "run", "--emulator", "--no-cache", "--format", "lines", str(report), "-o", str(out),
        "--force",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["ioc"] for r in read_ndjson(out)) == [
        "11.51.100.71", "2a0b:4140:7::71", "c2-wide.example.net",
    ]  # fmt: skip
