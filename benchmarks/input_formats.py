"""Throughput of the read stage per input format: read + normalize + dedupe on one core.

    python benchmarks/input_formats.py [--lines 1000000] [--text-mb 40] [--runs 3]

Writes sample inputs to a temporary directory (the same IOCs as plain lines, CSV, NDJSON with
nested records, one JSON array, and the plain lines gzipped; and free text: squid, BIND and
Sysmon log text, and Markdown threat reports with defanged IOCs), then, pinned to one CPU,
drives `enricher.inputs.read_inputs` over each and does what the engine's ingest does with
each candidate: strip, skip blanks and comments, `normalize`, `Deduper.add`. Reports lines/s
and MB/s (of the uncompressed text) per format as JSON, the best of `--runs` runs, and
`read_only_mb_per_s`: the read stage alone (reading, decompressing, parsing, extracting).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from enricher.inputs import InputOptions, read_inputs
from enricher.pipeline.dedupe import Deduper
from enricher.pipeline.normalize import normalize

WORDS = [
    "the", "loader", "contacts", "its", "server", "after", "a", "delay", "and", "downloads",
    "second", "stage", "which", "is", "then", "injected", "into", "legitimate", "process",
    "while", "operators", "keep", "infrastructure", "behind", "content", "delivery", "network",
    "rotate", "domains", "every", "few", "days", "as", "observed",
]  # fmt: skip
TLDS = ["com", "net", "org", "ru", "io", "xyz", "top", "co.uk", "info", "biz"]


def iocs(rng: random.Random, n: int) -> list[str]:
    """`n` IOCs, half of them repeats, as a nightly export would have."""
    pool: list[str] = []
    for i in range(max(1, n // 2)):
        kind = i % 5
        if kind == 0:
            pool.append(rng.randbytes(16).hex())
        elif kind == 1:
            pool.append(rng.randbytes(20).hex())
        elif kind == 2:
            pool.append(rng.randbytes(32).hex())
        elif kind == 3:
            pool.append(f"host{i}.{rng.choice(WORDS)}-{rng.choice(WORDS)}.{rng.choice(TLDS)}")
        else:
            pool.append(".".join(str(rng.randrange(1, 255)) for _ in range(4)))
    return [rng.choice(pool) for _ in range(n)]


def write_inputs(folder: Path, rng: random.Random, n: int, text_mb: float) -> dict[str, Path]:
    values = iocs(rng, n)
    paths = {name: folder / name for name in ("lines.txt", "iocs.csv", "iocs.ndjson")}
    paths["lines.txt"].write_text("\n".join(values) + "\n")
    with paths["iocs.csv"].open("w") as f:
        f.write("first_seen,indicator,source,comment\n")
        for i, v in enumerate(values):
            f.write(f'2024-02-{i % 28 + 1:02d},{v},feed-{i % 7},"seen by sensor {i % 13}, ok"\n')
    records = [
        {
            "@timestamp": f"2024-02-20T10:{i % 60:02d}:00Z",
            "event": {"kind": "alert", "severity": i % 4},
            "indicator": {"value": v, "provider": f"feed-{i % 7}"},
        }
        for i, v in enumerate(values)
    ]
    with paths["iocs.ndjson"].open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    paths["iocs.json"] = folder / "iocs.json"
    with paths["iocs.json"].open("w") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(r) for r in records))
        f.write("\n]\n")
    paths["lines.txt.gz"] = folder / "lines.txt.gz"
    paths["lines.txt.gz"].write_bytes(gzip.compress(paths["lines.txt"].read_bytes(), 6))
    paths["logs.txt"] = folder / "logs.txt"
    write_logs(paths["logs.txt"], rng, text_mb)
    paths["reports.md"] = folder / "reports.md"
    write_reports(paths["reports.md"], rng, text_mb / 4)
    return paths


def _pools(rng: random.Random, n: int) -> tuple[list[str], list[str], list[str]]:
    """Hosts, public addresses and internal addresses that the logs keep coming back to."""
    hosts = [
        f"{rng.choice(['cdn', 'api', 'www', 'login', 'static'])}{i}."
        f"{rng.choice(WORDS)}-{rng.choice(WORDS)}.{rng.choice(TLDS)}"
        for i in range(n)
    ]
    public = [f"{rng.randrange(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{i % 254 + 1}"
              for i in range(n)]  # fmt: skip
    internal = [f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                for _ in range(max(1, n // 20))]  # fmt: skip
    return hosts, public, internal


def _hex(rng: random.Random, n: int) -> str:
    return rng.randbytes(n).hex().upper()


def write_logs(path: Path, rng: random.Random, mb: float) -> None:
    """Log text: squid access lines, BIND query-log lines and Sysmon events as Windows renders
    them (process creation with hashes, network connections), in equal shares of bytes."""
    hosts, public, internal = _pools(rng, 20_000)
    size = 0
    lines: list[str] = []
    i = 0
    while size < mb * 1_000_000:
        host, ip, src = rng.choice(hosts), rng.choice(public), rng.choice(internal)
        t = 1708423200 + i // 10
        kind = i % 10
        if kind < 5:
            if kind == 0:
                line = (f"{t}.{i % 1000:03d}    245 {src} TCP_TUNNEL/200 5120 CONNECT {host}:443"
                        f" - HIER_DIRECT/{ip} -")  # fmt: skip
            else:
                line = (f"{t}.{i % 1000:03d}   {i % 900 + 12} {src} TCP_MISS/200 {i % 90000 + 300}"
                        f" GET http://{host}/static/js/app.{i % 90}.js - HIER_DIRECT/{ip}"
                        " application/javascript")  # fmt: skip
        elif kind < 9:
            qtype = rng.choice(["A", "AAAA", "HTTPS"])
            line = (f"20-Feb-2024 10:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 1000:03d}"
                    f" queries: info: client @0x7f1c2c0a1b20 {src}#{1024 + i % 60000} ({host}):"
                    f" query: {host} IN {qtype} +E(0)K (10.0.0.1)")  # fmt: skip
        elif i % 20 == 9:
            line = "\n".join([
                "Process Create:", "RuleName: -", f"UtcTime: 2024-02-20 10:00:{i % 60:02d}.512",
                "ProcessGuid: {a1b2c3d4-0000-1111-2222-333344445555}", f"ProcessId: {i % 9000}",
                "Image: C:\\Users\\bob\\AppData\\Local\\Temp\\updater.exe",
                "FileVersion: 1.0.0.1", "Description: Updater", "OriginalFileName: updater.exe",
                'CommandLine: "C:\\Users\\bob\\AppData\\Local\\Temp\\updater.exe" /S',
                "User: CORP\\bob", "IntegrityLevel: Medium",
                f"Hashes: SHA1={_hex(rng, 20)},MD5={_hex(rng, 16)},"
                f"SHA256={_hex(rng, 32)},IMPHASH={_hex(rng, 16)}",
                "ParentImage: C:\\Windows\\explorer.exe", "",
            ])  # fmt: skip
        else:
            line = "\n".join([
                "Network connection detected:", "RuleName: -", f"ProcessId: {i % 9000}",
                "Image: C:\\Users\\bob\\AppData\\Local\\Temp\\updater.exe",
                "User: CORP\\bob", "Protocol: tcp", "Initiated: true", f"SourceIp: {src}",
                f"SourceHostname: WS-{i % 500:04d}.corp.example.com",
                f"SourcePort: {49152 + i % 9999}",
                f"DestinationIp: {ip}", f"DestinationHostname: {host}", "DestinationPort: 443", "",
            ])  # fmt: skip
        lines.append(line)
        size += len(line) + 1
        i += 1
    path.write_text("\n".join(lines) + "\n")


def write_reports(path: Path, rng: random.Random, mb: float) -> None:
    """Threat reports in Markdown: prose that names some IOCs defanged, file names and
    versions, then an IOC table and a code block of hashes, report after report."""
    hosts, public, _ = _pools(rng, 2_000)
    parts: list[str] = []
    size = 0
    n = 0
    while size < mb * 1_000_000:
        iocs_of = [(rng.choice(hosts), rng.choice(public)) for _ in range(6)]
        prose = []
        for host, ip in iocs_of[:3]:
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90)))
            prose.append(
                f"{words.capitalize()}. The dropper `invoice.pdf` installs `setup.exe`"
                f" (version 2.4.1), which reaches {host.replace('.', '[.]')} over HTTPS and"
                f" falls back to {ip.rsplit('.', 1)[0]}[.]{ip.rsplit('.', 1)[1]}."
            )
        table = ["| Indicator | Type | Note |", "|---|---|---|"]
        for host, ip in iocs_of[3:]:
            table.append(f"| `{host.replace('.', '[.]')}` | domain | C2 |")
            table.append(f"| `{ip.replace('.', '[.]')}` | ipv4 | C2 |")
        hashes = ["```text"] + [
            f"sha256  {rng.randbytes(32).hex()}  stage{k}.bin" for k in range(4)
        ]
        part = "\n".join([f"## Report {n}", "", *prose, "", *table, "", *hashes, "```", ""])
        parts.append(part)
        size += len(part) + 1
        n += 1
    path.write_text("\n".join(parts))


async def consume(path: Path, options: InputOptions, ingest: bool = True) -> dict[str, int]:
    """What the engine's ingest does with each candidate, without batching or sending (or,
    with `ingest` false, only the reading: how fast the read stage alone goes)."""
    seen = Deduper()
    lines = candidates = rejected = unique = 0
    async for chunk in read_inputs([str(path)], options):
        lines += len(chunk.lines) if chunk.lines_read is None else chunk.lines_read
        if not ingest:
            candidates += len(chunk.lines)
            continue
        for text in chunk.lines:
            if text is None:
                rejected += 1
                continue
            stripped = text.strip()
            if not stripped or stripped[0] == "#":
                continue
            candidates += 1
            ioc_type, value = normalize(stripped)
            if ioc_type is None:
                rejected += 1
            elif seen.add(ioc_type, value):
                unique += 1
    return {"lines": lines, "candidates": candidates, "rejected": rejected, "unique": unique}


def measure(path: Path, options: InputOptions, size: int, runs: int) -> dict[str, Any]:
    best = read_only = float("inf")
    counts: dict[str, int] = {}
    for _ in range(runs):
        start = time.perf_counter()
        counts = asyncio.run(consume(path, options))
        best = min(best, time.perf_counter() - start)
        start = time.perf_counter()
        asyncio.run(consume(path, options, ingest=False))
        read_only = min(read_only, time.perf_counter() - start)
    return {
        "file": path.name,
        "format": options.format,
        "columns": list(options.columns),
        "fields": list(options.fields),
        "mb": round(size / 1e6, 1),
        "seconds": round(best, 3),
        "lines_per_s": round(counts["lines"] / best),
        "mb_per_s": round(size / 1e6 / best, 1),
        "read_only_mb_per_s": round(size / 1e6 / read_only, 1),
        **counts,
    }


CASES = [
    ("lines.txt", InputOptions(format="lines")),
    ("lines.txt.gz", InputOptions(format="lines")),
    ("iocs.csv", InputOptions(format="csv")),
    ("iocs.csv", InputOptions(format="csv", columns=("indicator",))),
    ("iocs.ndjson", InputOptions(format="ndjson")),
    ("iocs.ndjson", InputOptions(format="ndjson", fields=("indicator.value",))),
    ("iocs.json", InputOptions(format="json")),
    ("iocs.json", InputOptions(format="json", fields=("[*].indicator.value",))),
    ("logs.txt", InputOptions(format="text")),
    ("reports.md", InputOptions(format="text")),
]


def run_cases(lines: int, text_mb: float, runs: int, seed: int = 1) -> list[dict[str, Any]]:
    """Every case of `CASES` on fresh sample inputs, on one core (the process's CPU set is
    put back afterwards)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if cpus is not None:
        os.sched_setaffinity(0, {min(cpus)})  # one core, both threads
    try:
        rng = random.Random(seed)
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_inputs(Path(tmp), rng, lines, text_mb)
            plain = paths["lines.txt"].stat().st_size
            results = []
            for name, options in CASES:
                path = paths[name]
                size = plain if name.endswith(".gz") else path.stat().st_size
                results.append(measure(path, options, size, runs))
                if name.endswith(".gz"):
                    results[-1]["compressed_mb"] = round(path.stat().st_size / 1e6, 1)
    finally:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="IOCs in the list formats")
    parser.add_argument("--text-mb", type=float, default=40.0, help="size of the log text")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (the best counts)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = run_cases(args.lines, args.text_mb, args.runs, args.seed)
    print(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
