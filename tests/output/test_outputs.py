"""The output set of a run, tried as cron, a shell and a busy disk try it: overlapping runs,
files that vanish or fill a disk, side files of runs on standard output, and the exit code
and summary of a job resumed after a crash. Through the real command line, against the
emulator in a process of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from helpers import PlainEmulator, emulator_process, enricher, read_ndjson

from enricher.errors import SettingsError
from enricher.output.files import OutputLock

TIMEOUT = 60


def make_input(path: Path, n: int) -> set[str]:
    iocs = [f"host{i}.overlap.example.com" for i in range(n)]
    path.write_text("\n".join(iocs + iocs[: n // 2]) + "\n")
    return set(iocs)


def start(*args: str, cwd: Path | None = None, **env: str) -> subprocess.Popen[str]:
    """`python -m enricher ARGS` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "enricher", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "error", **env},
    )


def wait_for(check: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def exactly_once(records: list[dict], expected: set[str]) -> None:
    seen = Counter(r["ioc"] for r in records)
    assert not [k for k, n in seen.items() if n > 1], "IOCs written twice"
    assert set(seen) == expected


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


@contextlib.contextmanager
def held_run(src: Path, out: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`enricher run - -o OUT ARGS` fed the first third of `src`'s lines, yielded once it has
    written its first records: it runs (holding its locks) until the block ends, which feeds
    it the rest and waits for it to finish. No slow server to wait out."""
    lines = src.read_bytes().splitlines(keepends=True)
    cut = len(lines) // 3
    with subprocess.Popen(
        [sys.executable, "-m", "enricher", "run", "-", "-o", str(out), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as first:  # fmt: skip
        assert first.stdin is not None
        first.stdin.write(b"".join(lines[:cut]))
        first.stdin.flush()
        wait_for(lambda: out.exists() and out.stat().st_size > 0, "the first records")
        yield first
        first.stdin.write(b"".join(lines[cut:]))
        first.communicate(timeout=TIMEOUT)


@pytest.fixture
def slow_url() -> Iterator[str]:
    """An emulator with latency: a run of a few thousand IOCs lasts a few seconds."""
    with emulator_process("--latency-ms", "40") as url:
        yield url


# -- two runs on one output (cron overlap) ---------------------------------------------------


@pytest.mark.serial  # "at once" is < 10 s with the start-up: an xdist neighbour starved it
def test_a_second_run_on_the_same_output_stops_at_once(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    """A second run, plain, with --resume or with --force, while the first still writes: the
    three in turn against one first run (not at once: each would find the others' locks)."""
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    expected = make_input(src, 3000)
    with plain_emulator() as url:
        args = ["--base-url", url, "--rate", "0", "--batch-size", "50", "--no-cache"]
        with held_run(src, out, *args) as first:
            for second in ([], ["--resume"], ["--force"]):
                began = time.monotonic()
                proc = enricher("run", str(src), "-o", str(out), *args, *second, timeout=TIMEOUT)
                assert time.monotonic() - began < 10
                assert first.poll() is None, "the second run must not wait for the first"
                assert proc.returncode == 1, proc.stderr
                assert (
                    f"enricher: error: {out} is being written by another enricher run "
                    f"(pid {first.pid})" in proc.stderr
                )
                assert "Traceback" not in proc.stderr
    assert first.returncode == 0, first.stderr
    exactly_once(read_ndjson(out), expected)
    assert not any(p.name.endswith(".lock") for p in tmp_path.iterdir())  # cleaned up


def test_a_run_killed_leaves_no_lock_behind(tmp_path: Path, slow_url: str) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    expected = make_input(src, 2000)
    args = ["run", str(src), "-o", str(out), "--base-url", slow_url, "--batch-size", "50",
            "--no-cache"]  # fmt: skip
    with start(*args, "--rate", "20") as first:
        wait_for(lambda: out.exists() and out.stat().st_size > 0, "the first records")
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=TIMEOUT)
    assert (tmp_path / ".out.ndjson.lock").exists()  # the file stays; its lock died with it
    proc = enricher(*args, "--rate", "0", "--resume", timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    exactly_once(read_ndjson(out), expected)


def test_lock_is_exclusive_and_taken_again_after_release(tmp_path: Path) -> None:
    path = str(tmp_path / "o.ndjson")
    with OutputLock([path]):
        with pytest.raises(SettingsError, match=rf"pid {os.getpid()}\)"), OutputLock([path]):
            pass
        assert Path(OutputLock.lock_path(path)).read_text() == f"{os.getpid()}\n"
    assert not Path(OutputLock.lock_path(path)).exists()
    with OutputLock([path]):  # free again
        pass


def test_an_existing_output_is_never_opened_even_if_empty(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 10)
    out.touch()
    proc = enricher("run", "--emulator", "--no-cache", str(src), "-o", str(out), timeout=TIMEOUT)
    assert proc.returncode == 1
    assert f"{out} exists: add --resume to continue that run, or --force" in proc.stderr
    assert out.read_bytes() == b""
    # a link planted where the output goes is not followed
    out.unlink()
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    out.symlink_to(target)
    proc = enricher("run", "--emulator", "--no-cache", str(src), "-o", str(out), timeout=TIMEOUT)
    assert proc.returncode == 1 and target.read_text() == "keep\n"


# -- outputs that vanish, fill a disk, or are inputs ------------------------------------------


def test_output_directory_removed_mid_run_is_exit_3(tmp_path: Path, slow_url: str) -> None:
    src, od = tmp_path / "in.txt", tmp_path / "od"
    od.mkdir()
    make_input(src, 3000)
    out = od / "out.ndjson"
    with start("run", str(src), "-o", str(out), "--base-url", slow_url, "--rate", "20",
               "--batch-size", "50", "--no-cache") as run:  # fmt: skip
        wait_for(lambda: out.exists() and out.stat().st_size > 0, "the first records")
        shutil.rmtree(od)
        _, err = run.communicate(timeout=TIMEOUT)
    assert run.returncode == 3, err
    assert f"{out} was removed" in err
    assert "run the same command again" in err
    assert "Traceback" not in err


def test_output_moved_away_at_the_end_is_exit_3(tmp_path: Path) -> None:
    # moved, not removed: the records are on no path the job named
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 3000)
    with (
        emulator_process("--latency-ms", "40") as url,
        start("run", str(src), "-o", str(out), "--base-url", url, "--rate", "20",
              "--batch-size", "50", "--no-cache") as run,
    ):  # fmt: skip
        wait_for(lambda: out.exists() and out.stat().st_size > 0, "the first records")
        out.rename(tmp_path / "moved.ndjson")
        _, err = run.communicate(timeout=TIMEOUT)
    assert run.returncode == 3, err
    assert f"{out} was removed or moved while the run was writing it" in err


def test_dev_full_is_exit_3_with_summary_and_manifest(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    src = tmp_path / "in.txt"
    make_input(src, 50)
    manifest = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "enricher", "run", "--emulator", "--no-cache", str(src),
         "-o", "/dev/full", "--manifest", str(manifest)],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("enricher: error:")]
    assert errors == ["enricher: error: cannot write /dev/full: No space left on device; "
                      "fix that, then run the same command again"]  # fmt: skip
    assert "invariant" in proc.stderr  # the summary was printed
    assert orjson.loads(manifest.read_bytes())["exit_code"] == 3
    assert not os.path.exists("/dev/full.failed.ndjson")


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       check=True, capture_output=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def test_a_full_disk_stops_the_run_and_resume_finishes_it(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    expected = make_input(src, 2000)  # ~2.2 MB of records
    with small_disk(tmp_path / "disk", "3m") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (2 * 1024 * 1024))
        out = disk / "out.ndjson"
        manifest = disk / "run.json"
        args = ["run", "--emulator", "--no-cache", str(src), "-o", str(out), "--batch-size", "50"]
        proc = enricher(*args, "--manifest", str(manifest), timeout=TIMEOUT)
        assert proc.returncode == 3, proc.stderr
        assert f"cannot write {out}: No space left on device" in proc.stderr
        assert "run the same command with --resume to finish" in proc.stderr
        assert "Traceback" not in proc.stderr
        filler.unlink()
        proc = enricher(*args, "--resume", timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        exactly_once(read_ndjson(out), expected)


def test_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    make_input(src, 10)
    before = src.read_bytes()
    for flags in (["-o", str(src), "--force"], ["-o", str(src), "--resume"],
                  ["--failed", str(src)], ["--rejects", str(src)]):  # fmt: skip
        proc = enricher("run", "--emulator", "--no-cache", str(src), *flags, timeout=TIMEOUT)
        assert proc.returncode == 1, proc.stderr
        assert f"{src} is also an input" in proc.stderr
    assert src.read_bytes() == before
    # inside an input directory: found by the walk on --resume
    d = tmp_path / "exports"
    d.mkdir()
    (d / "a.txt").write_text("a.example.com\n")
    (d / "out.ndjson").write_text("")
    proc = enricher("run", "--emulator", "--no-cache", str(d), "-o", str(d / "out.ndjson"),
                    "--resume", timeout=TIMEOUT)  # fmt: skip
    assert proc.returncode == 1 and "is also an input" in proc.stderr


# -- side files of runs on standard output ---------------------------------------------------


def test_stdout_runs_never_touch_each_others_side_files(tmp_path: Path) -> None:
    refused = "refused.example.com"
    with emulator_process("--refuse-key", refused) as url:

        def run(*lines: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "enricher", "run", "-", "--base-url", url, "--rate", "0",
                 "--no-cache"],
                input="\n".join(lines) + "\n", capture_output=True, text=True,
                timeout=TIMEOUT, cwd=tmp_path, env={**os.environ, "ENRICHER_RETRY_ATTEMPTS": "1"},
            )  # fmt: skip

        first = run("a.example.com", refused, "not an ioc")
        assert first.returncode == 2, first.stderr
        time.sleep(1.1)  # a new second: the per-run name would differ even for the same pid
        second = run("b.example.com", refused)
        assert second.returncode == 2, second.stderr
        clean = run("c.example.com")
        assert clean.returncode == 0, clean.stderr
    failed = sorted(tmp_path.glob("enricher-*.failed.ndjson"))
    assert len(failed) == 2  # one each, and none from the clean run
    for f in failed:
        assert [orjson.loads(x)["ioc"] for x in lines_of(f)] == [refused]
        assert f.name in first.stderr + second.stderr
    assert len(list(tmp_path.glob("enricher-*.rejects.ndjson"))) == 1
    assert not list(tmp_path.glob("enricher.*"))


def test_summary_counts_one_line_in_the_singular(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    src.write_text("1.2.3.4\nnot an IOC\n")
    proc = enricher("run", "--emulator", "--no-cache", str(src), "-o", str(out), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert f"rejects written to {out}.rejects.ndjson (1 line)" in proc.stderr, proc.stderr


def test_summary_names_the_deferred_file_that_exists(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 200)
    proc = enricher("run", "--emulator", "--no-cache", str(src), "-o", str(out),
                    "--max-requests", "1", "--batch-size", "50", timeout=TIMEOUT)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    deferred = Path(f"{out}.deferred.ndjson")
    assert f"deferred written to {deferred} (150 lines)" in proc.stderr
    assert deferred.exists() and ".new" not in proc.stderr and ".tmp" not in proc.stderr


# -- a job's summary and exit code cover all its runs ----------------------------------------


def test_resume_reports_earlier_failures_and_exits_2(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    expected = make_input(src, 100)
    refused = "host7.overlap.example.com"
    env = {"ENRICHER_RETRY_ATTEMPTS": "1"}
    with emulator_process("--refuse-key", refused) as url:
        args = ["run", str(src), "-o", str(out), "--base-url", url, "--rate", "0", "--no-cache"]
        first = enricher(*args, env=env, timeout=TIMEOUT)
        assert first.returncode == 2, first.stderr
        # as if the first run had been killed after writing everything
        again = enricher(*args, "--resume", env=env, timeout=TIMEOUT)
    assert again.returncode == 2, again.stderr
    assert "earlier runs  ok 99  failed 1  unsupported 0" in again.stderr
    exactly_once(read_ndjson(out) + read_ndjson(Path(f"{out}.failed.ndjson")), expected)


def test_side_files_on_dev_null_are_written_not_replaced(tmp_path: Path) -> None:
    # as root, replacing /dev/null (unlink, rename over it) would break the machine
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 40)
    before = os.stat("/dev/null")
    side = ["--failed", "/dev/null", "--rejects", "/dev/null", "--deferred", "/dev/null"]
    for extra in ([], ["--resume"], ["--force"]):
        proc = enricher("run", "--emulator", "--no-cache", str(src), "-o", str(out), *side,
                        "--max-requests", "0", *extra, timeout=TIMEOUT)  # fmt: skip
        assert proc.returncode == 2, proc.stderr  # all deferred: --max-requests 0
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_mode, after.st_rdev) == (
        before.st_ino, before.st_mode, before.st_rdev
    )  # fmt: skip
    assert not [n for n in os.listdir("/dev") if n.endswith((".lock", ".new"))]


# -- found by trying to break it (second reading) ---------------------------------------------


def test_manifest_may_not_be_an_output_or_an_input(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 20)
    before = src.read_bytes()
    for manifest, said in ((out, "is the same file as"), (src, "is also an input"),
                           (Path(f"{out}.failed.ndjson"), "is the same file as")):  # fmt: skip
        proc = enricher("run", "--emulator", "--no-cache", str(src), "-o", str(out),
                        "--manifest", str(manifest), timeout=TIMEOUT)  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert f"--manifest {manifest} {said}" in proc.stderr
    assert src.read_bytes() == before and not out.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_device_nodes_are_written_never_replaced(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 20)
    null = tmp_path / "mynull"
    os.mknod(null, 0o666 | 0o020000, os.makedev(1, 3))  # a character device, like /dev/null
    for flags in (
        ["--manifest", str(null)],
        ["--deferred", str(null), "--force"],
        ["--deferred", str(null), "--resume"],
        ["--failed", str(null), "--force"],
    ):
        proc = enricher("run", "--emulator", "--no-cache", str(src), "-o", str(out), *flags,
                        "--max-requests", "0", timeout=TIMEOUT)  # fmt: skip
        assert proc.returncode in (1, 2), proc.stderr
        st = os.stat(null, follow_symlinks=False)
        assert (st.st_mode & 0o170000, st.st_rdev) == (0o020000, os.makedev(1, 3)), flags


def test_another_name_for_the_output_does_not_get_past_the_lock(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    """A symbolic link and a hard link to the output, each named by a second run."""
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    expected = make_input(src, 3000)
    with plain_emulator() as url:
        args = ["--base-url", url, "--rate", "0", "--batch-size", "100", "--no-cache"]
        with held_run(src, out, *args) as first:
            for link in ("symlink", "hardlink"):
                other = tmp_path / f"{link}.ndjson"
                if link == "symlink":
                    other.symlink_to(out)
                else:
                    os.link(out, other)
                proc = enricher("run", str(src), *args, "-o", str(other), "--resume")
                assert first.poll() is None
                assert proc.returncode == 1, proc.stderr
                assert "is being written by another enricher run (pid" in proc.stderr
    assert first.returncode == 0, first.stderr
    exactly_once(read_ndjson(out), expected)


def test_a_side_file_of_one_run_cannot_be_named_by_another(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    src = tmp_path / "in.txt"
    make_input(src, 3000)
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    with plain_emulator() as url:
        args = ["--base-url", url, "--rate", "0", "--batch-size", "50", "--no-cache"]
        with held_run(src, a, *args) as first:
            for side in ("--failed", "--rejects", "--deferred"):
                kind = side[2:]
                proc = enricher("run", str(src), *args, "-o", str(b), side, f"{a}.{kind}.ndjson")
                assert first.poll() is None
                assert proc.returncode == 1, proc.stderr
                assert "is being written by another enricher run" in proc.stderr
    assert first.returncode == 0, first.stderr
    assert not b.exists()


def test_an_output_inside_an_input_directory_is_refused_from_the_start(tmp_path: Path) -> None:
    d = tmp_path / "exports"
    d.mkdir()
    (d / "a.txt").write_text("a.example.com\n")
    for out in (d / "out.ndjson", d / "sub" / "out.ndjson"):
        proc = enricher("run", "--emulator", "--no-cache", str(d), "-o", str(out), timeout=TIMEOUT)
        assert proc.returncode == 1, proc.stderr
        assert f"-o {out} is inside the input {d}" in proc.stderr
    proc = enricher("run", "--emulator", "--no-cache", f"{d}/*.txt", "-o", str(d / "o.txt"),
                    timeout=TIMEOUT)  # fmt: skip
    assert proc.returncode == 1 and "is inside the input" in proc.stderr


def test_dev_stdout_is_standard_output(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    expected = make_input(src, 30)
    target = tmp_path / "captured.ndjson"
    with target.open("wb") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "enricher", "run", "--emulator", "--no-cache", str(src),
             "-o", "/dev/stdout"],
            stdout=f, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT, cwd=tmp_path,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    exactly_once(read_ndjson(target), expected)
    assert not [n for n in os.listdir("/dev") if n.startswith("stdout.")]


def test_a_stdout_run_in_a_read_only_directory(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    expected = make_input(src, 30)
    with small_disk(tmp_path / "ro", "1m") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True, timeout=10)
        proc = subprocess.run(
            [sys.executable, "-m", "enricher", "run", "--emulator", "--no-cache", str(src)],
            capture_output=True, text=True, timeout=TIMEOUT, cwd=ro,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {orjson.loads(x)["ioc"] for x in proc.stdout.splitlines()} == expected


def wait_until_handled(pid: int, sig: int, timeout: float = 30) -> None:
    """Until process `pid` catches `sig` (its SigCgt mask in /proc says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
        if caught >> (sig - 1) & 1:
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never handled signal {sig}")


def test_sigterm_at_start_up_is_one_line_and_exit_3(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 20)
    # all through start-up, the run and the way out, once the process handles SIGTERM (a
    # signal before the interpreter has run a line of ours kills it, exit 143: on a loaded
    # machine that moment comes late); one of these, raising an exception at an arbitrary
    # point, gave tracebacks, exit 130 and a segmentation fault
    for delay in (0.0, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3):
        with start("run", "--emulator", "--no-cache", str(src), "-o", str(out), "--force") as p:
            wait_until_handled(p.pid, signal.SIGTERM)
            time.sleep(delay)
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=TIMEOUT)
        assert "Traceback" not in err
        assert p.returncode in (0, 3), err  # 0: it had finished (and written) everything
        if p.returncode == 3:
            assert "interrupted" in err
