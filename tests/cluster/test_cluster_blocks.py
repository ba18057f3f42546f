"""A big plain input is read in blocks that workers share: what its blocks give, handed on in
order by the client, is what reading it whole gives."""

from __future__ import annotations

import gzip
import itertools
import random
from pathlib import Path

import pytest

from enricher.cluster.blocks import plan_blocks
from enricher.cluster.client import ClusterEnricher, _InOrder
from enricher.cluster.parts import Read, read_input
from enricher.config.settings import load_settings
from enricher.inputs import InputOptions
from enricher.pipeline.stats import RunStats

MAX_LINE = 1 << 20


def _lines(n: int) -> list[str]:
    rng = random.Random(3)
    pool = ["", "# a comment", "not an ioc", "a" * 64, "intranet.local", "invoice.pdf"]
    pool += [f"host{i}.example.com" for i in range(40)] + [f"8.8.4.{i}" for i in range(30)]
    pool += ["GET http://evil.example.net/x from 10.0.0.5", "MD5=" + "b" * 32]
    return [rng.choice(pool) for _ in range(n)]


def _whole_and_blocks(path: Path, options: InputOptions, size: int) -> tuple[Read, list[Read]]:
    whole = read_input(str(path), options, max_line=MAX_LINE, parts=3, max_rejects=40)
    blocks = plan_blocks(str(path), options, size=size, max_line=MAX_LINE)
    assert blocks is not None and len(blocks) >= 4
    assert [b.index for b in blocks] == list(range(len(blocks)))
    assert blocks[0].start == 0 and blocks[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in itertools.pairwise(blocks))
    reads = [read_input(b, options, max_line=MAX_LINE, parts=3, max_rejects=40) for b in blocks]
    return whole, reads


@pytest.mark.parametrize("fmt", ["lines", "text", "auto"])
def test_blocks_read_as_the_whole_input(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "big.log"
    # a byte order mark at the start, and no line end at the end
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(_lines(3_000)).encode() + b"\nx" * 3)
    options = InputOptions(format=fmt)
    whole, reads = _whole_and_blocks(path, options, 4_000)
    job = ClusterEnricher(
        load_settings("emulator"), stats=RunStats(), inputs=[], reading=options, read_as={}
    )
    job._blocks[str(path)] = _InOrder()
    handed: list[Read] = []
    for read in reversed(reads):  # the last block's read comes first
        handed += job._in_order(read)
    assert handed == reads  # in the input's order
    for read in handed:
        job._read(read)
    assert job.stats.lines_read == whole.counts["lines_read"]
    assert job.stats.bytes_read == whole.counts["bytes_read"] == path.stat().st_size
    assert job.stats.skipped == whole.counts["skipped"]
    assert job.stats.rejected == whole.counts["rejected"]
    assert job.stats.reject_reasons == whole.counts["reject_reasons"]
    # the rejects kept are the input's first ones, at their lines in the whole input
    kept = [r for read in handed for r in read.rejects]
    assert kept[:40] == whole.rejects
    assert job.read_as == {str(path): whole.read_as[str(path)]}
    # each part's IOCs: the same set; those in two blocks are duplicates across reads (the
    # part counts them), so the duplicates add up to the whole input's
    for p in range(3):
        assert set().union(*(r.parts[p] for r in reads)) == set(whole.parts[p])
    found = sum(len(r.parts[p]) for r in reads for p in range(3))
    unique = sum(map(len, whole.parts))
    assert job.stats.duplicates + found - unique == whole.counts["duplicates"]


def test_what_is_read_whole(tmp_path: Path) -> None:
    text = "\n".join(_lines(2_000)) + "\n"
    small, packed, csv = tmp_path / "small.txt", tmp_path / "big.txt.gz", tmp_path / "big.csv"
    small.write_text(text[:3_000])
    packed.write_bytes(gzip.compress(text.encode()))
    csv.write_text("ioc,seen\n" + "".join(f"host{i}.example.com,1\n" for i in range(500)))
    utf16 = tmp_path / "big16.txt"
    utf16.write_bytes(text.encode("utf-16"))
    for path in (small, packed, csv, utf16):
        auto = InputOptions(format="auto")
        assert plan_blocks(str(path), auto, size=4_000, max_line=MAX_LINE) is None, path
    assert plan_blocks(str(small), InputOptions(), size=0, max_line=MAX_LINE) is None
    assert plan_blocks(str(tmp_path / "gone"), InputOptions(), size=10, max_line=MAX_LINE) is None


def test_a_file_changed_after_its_plan(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("".join(f"host{i}.example.com\n" for i in range(2_000)))
    options = InputOptions(format="lines")
    blocks = plan_blocks(str(path), options, size=5_000, max_line=MAX_LINE)
    assert blocks is not None and len(blocks) >= 4
    # lines added while the workers wait: the last block reads them, as a whole read would
    with path.open("a") as f:
        f.write("added.example.org\n")
    reads = [read_input(b, options, max_line=MAX_LINE, parts=1) for b in blocks]
    whole = read_input(str(path), options, max_line=MAX_LINE, parts=1)
    assert sum(r.counts["lines_read"] for r in reads) == whole.counts["lines_read"] == 2_001
    assert set().union(*(r.parts[0] for r in reads)) == set(whole.parts[0])
    # rotated and written again with other lines: the cuts fall inside lines, whose pieces
    # (`il-438.example.net`) are no IOC of the input; such a block is an input error instead
    path.write_text("".join(f"evil-{i}.example.net\n" for i in range(3_000)))
    written = {f"evil-{i}.example.net" for i in range(3_000)}
    reads = [read_input(b, options, max_line=MAX_LINE, parts=1) for b in blocks]
    assert set().union(*(r.parts[0] for r in reads)) <= written
    assert any(r.error and "changed while it was read" in r.error for r in reads)
