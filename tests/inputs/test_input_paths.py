"""Input directories as export jobs leave them: linked sub-directories, links in a loop, broken
links and pipes among the files, and inputs that are nothing but garbage."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from helpers import enricher, read_ndjson

from enricher.errors import InputError
from enricher.inputs import check_inputs, find_inputs


def tree(tmp_path: Path) -> Path:
    top = tmp_path / "exports"
    (top / "a").mkdir(parents=True)
    (top / "a" / "one.txt").write_text("one.example.com\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "two.txt").write_text("two.example.com\n")
    (top / "linked").symlink_to(elsewhere, target_is_directory=True)
    (top / "a" / "up").symlink_to(top, target_is_directory=True)  # a loop
    return top


def test_linked_directories_are_followed_once(tmp_path: Path) -> None:
    top = tree(tmp_path)
    files, problems = find_inputs([str(top)])
    assert problems == []
    assert sorted(Path(f).name for f in files) == ["one.txt", "two.txt"]


def test_broken_links_and_pipes_in_a_directory_are_left_out_and_said(tmp_path: Path) -> None:
    top = tree(tmp_path)
    (top / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    os.mkfifo(top / "a" / "pipe")
    files, problems = find_inputs([str(top)])
    assert sorted(Path(f).name for f in files) == ["one.txt", "two.txt"]
    assert len(problems) == 2
    assert any("broken link" in p and "dangling.txt" in p for p in problems)
    assert any("not a regular file" in p and "pipe" in p for p in problems)
    with pytest.raises(InputError, match="broken link"):
        check_inputs([str(top)])  # the strict form, for callers that want it
    # a broken link named on its own is a typo: the run stops before it starts
    with pytest.raises(InputError, match="broken link"):
        find_inputs([str(top / "dangling.txt")])


def test_a_run_over_a_directory_with_a_broken_link(tmp_path: Path) -> None:
    top = tree(tmp_path)
    (top / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    out = tmp_path / "out.ndjson"
    proc = enricher("run", "--emulator", "--no-cache", str(top), "-o", str(out), timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert {r["ioc"] for r in read_ndjson(out)} == {"one.example.com", "two.example.com"}
    assert "dangling.txt" in proc.stderr
    assert "left out, the other inputs were enriched" in proc.stderr
    assert "run the same command with --resume to finish" in proc.stderr
    assert "Traceback" not in proc.stderr
    # once fixed, --resume finishes the job
    (top / "dangling.txt").unlink()
    (top / "dangling.txt").write_text("three.example.com\n")
    proc = enricher("run", "--emulator", "--no-cache", str(top), "-o", str(out), "--resume",
                    timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {r["ioc"] for r in read_ndjson(out)} == {
        "one.example.com", "two.example.com", "three.example.com"
    }  # fmt: skip


def test_rejects_are_capped_per_input(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(400_000))
    good = tmp_path / "good.txt"
    good.write_text("".join(f"not an ioc {i}\n" for i in range(30)) + "fine.example.com\n")
    out = tmp_path / "out.ndjson"
    proc = enricher("run", "--emulator", "--no-cache", str(garbage), str(good), "-o", str(out),
                    "--max-rejects", "20", timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rejects = read_ndjson(Path(f"{out}.rejects.ndjson"))
    by_source = {s: sum(1 for r in rejects if r["source"] == s) for s in (str(garbage), str(good))}
    assert by_source == {str(garbage): 20, str(good): 20}
    assert "rejects past --max-rejects (counted only)" in proc.stderr
    assert f"{good} 10" in proc.stderr


def test_dev_urandom_cannot_fill_a_disk_with_rejects(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    with subprocess.Popen(
        [sys.executable, "-m", "enricher", "run", "--emulator", "--no-cache", "/dev/urandom",
         "-o", str(out), "--max-rejects", "1000"],
        stderr=subprocess.DEVNULL, env={**os.environ, "ENRICHER_PIPELINE_GRACE_PERIOD": "1"},
    ) as proc:  # fmt: skip
        rejects = Path(f"{out}.rejects.ndjson")
        deadline = time.monotonic() + 60  # start-up is slow on a loaded machine
        while (rejects.read_bytes().count(b"\n") if rejects.exists() else 0) < 1000:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1)  # and more random bytes read past the limit
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 3
    assert len(read_ndjson(rejects)) == 1000


def test_files_named_in_bytes_that_are_not_utf8_are_named_in_every_output(
    tmp_path: Path,
) -> None:
    # a file name is bytes: one that is not UTF-8 reaches Python with surrogates, which
    # neither JSON nor SQLite holds. An input's ended the run in a traceback in the records'
    # origin (--with-source), the rejects and the manifest; an output's, in the job's name
    # (kept in the state file) and the manifest (attack16)
    src = tmp_path / os.fsdecode(b"in\xff.txt")
    src.write_text("evil.example.com\nbad!!\n")
    out, manifest = tmp_path / os.fsdecode(b"out\xfe.ndjson"), tmp_path / "manifest.json"
    proc = enricher(
        "run", "--emulator", "--no-cache", "--with-source", "-q", "--manifest", str(manifest),
        "-o", str(out), str(src),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shown = f"{tmp_path}/in\\xff.txt"
    assert [r["origin"] for r in read_ndjson(out)] == [{"file": shown, "line": 1}]
    [reject] = read_ndjson(Path(f"{out}.rejects.ndjson"))
    assert (reject["source"], reject["line"]) == (shown, 2)
    said = orjson.loads(manifest.read_bytes())
    assert [i["path"] for i in said["inputs"]] == [shown]
    assert said["outputs"]["records"] == f"{tmp_path}/out\\xfe.ndjson"
    assert said["job"] == f"output {os.path.realpath(tmp_path)}/out\\xfe.ndjson"
