"""Signals and standard streams, as a scheduler and a shell deliver them: one SIGTERM (or
SIGHUP) ends a run within a few seconds whatever it is blocked on, and a closed standard
stream is no worse than one on /dev/null. Through the real command line."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import orjson
import pytest
from helpers import read_ndjson

ENV = {**os.environ, "PYTHONWARNINGS": "error", "ENRICHER_PIPELINE_GRACE_PERIOD": "2"}
#: how long a stopped run may take to exit: the grace period, and start-up on a loaded machine
PROMPT = 8.0


def enricher_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "enricher", *args]


def stop_and_time(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> float:
    """Send `sig`; seconds until the process is gone."""
    began = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("still running 30 s after the signal") from None
    return time.monotonic() - began


def wait_for_file(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written")


def wait_for_full_pipe(r: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the pipe `r` reads from holds 64 KiB unread (its writer is blocked), however
    long start-up takes on a loaded machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its output filled the pipe"
        if struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0" * 4))[0] >= 65536:
            time.sleep(0.2)  # the writer is in write() now
            return
        time.sleep(0.05)
    raise AssertionError("the pipe did not fill")


def test_sigterm_while_stdin_is_quiet(tmp_path: Path) -> None:
    # (echo 1.2.3.4; sleep 60) | enricher run -: the reader is blocked in read()
    out, manifest = tmp_path / "out.ndjson", tmp_path / "run.json"
    r, w = os.pipe()
    with subprocess.Popen(
        enricher_cmd("run", "--emulator", "--no-cache", "-", "-o", str(out),
                     "--manifest", str(manifest)),
        stdin=r, stderr=subprocess.PIPE, env=ENV,
    ) as proc:  # fmt: skip
        os.close(r)
        try:
            os.write(w, b"1.2.3.4\n")
            wait_for_file(out)  # the line went through while stdin stays open
            took = stop_and_time(proc)
        finally:
            os.close(w)
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert took < PROMPT
    assert proc.returncode == 3
    assert [r["ioc"] for r in read_ndjson(out)] == ["1.2.3.4"]
    assert orjson.loads(manifest.read_bytes())["exit_code"] == 3
    assert b"interrupted: run the same command with --resume to finish" in err


def test_sigterm_while_reading_an_endless_input(tmp_path: Path) -> None:
    # /dev/zero: no line ever ends; the reader thread never yields a chunk
    with subprocess.Popen(
        enricher_cmd("run", "--emulator", "--no-cache", "/dev/zero", "-o",
                     str(tmp_path / "out.ndjson")),
        stderr=subprocess.DEVNULL, env=ENV,
    ) as proc:  # fmt: skip
        time.sleep(1.5)
        assert proc.poll() is None
        assert stop_and_time(proc) < PROMPT
    assert proc.returncode == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_while_stdout_is_not_read(tmp_path: Path, sig: int) -> None:
    # enricher run big.txt -o - | sleep 40: the pipe fills, the writer blocks
    src = tmp_path / "big.txt"
    src.write_text("".join(f"host{i}.pipe.example.com\n" for i in range(30_000)))
    manifest = tmp_path / "run.json"
    r, w = os.pipe()
    # the default grace period (10 s): it is for requests in flight, and there are none
    env = {k: v for k, v in ENV.items() if k != "ENRICHER_PIPELINE_GRACE_PERIOD"}
    with subprocess.Popen(
        enricher_cmd("run", "--emulator", "--no-cache", str(src), "--manifest", str(manifest)),
        stdout=w, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    ) as proc:  # fmt: skip
        os.close(w)
        try:
            wait_for_full_pipe(r, proc)
            assert proc.poll() is None
            took = stop_and_time(proc, sig)
        finally:
            os.close(r)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert took < 5
    assert proc.returncode == 3
    assert "Traceback" not in err
    assert "standard output was not written to its end" in err
    assert "run it again" in err
    assert orjson.loads(manifest.read_bytes())["exit_code"] == 3


def test_a_stop_while_stdout_is_not_read_still_closes_the_state(tmp_path: Path) -> None:
    # enricher run big.txt -o - --cache c | sleep 40, then SIGTERM: the run stops at once (its
    # output takes nothing), and its state was then walked away from unclosed ("was not closed
    # in time"), losing the answers it had been given
    import re

    src, cache = tmp_path / "big.txt", tmp_path / "c.sqlite3"
    src.write_text("".join(f"host{i}.state.example.com\n" for i in range(30_000)))
    r, w = os.pipe()
    env = {k: v for k, v in ENV.items() if k != "ENRICHER_PIPELINE_GRACE_PERIOD"}
    with subprocess.Popen(
        enricher_cmd("run", "--emulator", "--cache", str(cache), str(src)),
        stdout=w, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    ) as proc:  # fmt: skip
        os.close(w)
        try:
            wait_for_full_pipe(r, proc)
            took = stop_and_time(proc)
        finally:
            os.close(r)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert took < 5, err
    assert proc.returncode == 3, err
    assert "not closed in time" not in err and "Traceback" not in err
    said = [line for line in err.splitlines() if line.startswith("enricher: error")]
    assert len(said) == 1 and "run it again" in said[0], err
    stored = re.search(r"stored ([0-9,]+)", err)
    assert stored is not None and int(stored[1].replace(",", "")) > 0, err
    again = subprocess.run(
        enricher_cmd("run", "--emulator", "--cache", str(cache), "--cache-only", str(src),
                     "-o", str(tmp_path / "again.ndjson")),
        capture_output=True, env=ENV, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    hits = re.search(rb"hits ([0-9,]+)", again.stderr)
    assert hits is not None and hits[1].decode() == stored[1], again.stderr


@pytest.mark.parametrize("closed", ["2>&-", "<&-", ">&-", "<&- >&- 2>&-"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_closed_standard_stream_is_like_dev_null(tmp_path: Path, closed: str, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    src, out, manifest = tmp_path / "in.txt", tmp_path / "out.ndjson", tmp_path / "run.json"
    src.write_text("".join(f"host{i}.closed.example.com\n" for i in range(500)) + "junk junk\n")
    cmd = " ".join(enricher_cmd("run", "--emulator", "--no-cache", str(src), "--manifest",
                                str(manifest)))  # fmt: skip
    if ">&-" not in closed:
        cmd += f" -o {out}"
    proc = subprocess.run(
        ["bash", "-c", f"{cmd} {closed}"],
        capture_output=True, timeout=60, cwd=tmp_path,
        env={**ENV, "ENRICHER_PIPELINE_EVENT_LOOP": loop},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(manifest.read_bytes())["exit_code"] == 0
    if ">&-" not in closed:
        assert len(read_ndjson(out)) == 500


def test_sigterm_while_the_cache_is_locked_by_another_process(tmp_path: Path) -> None:
    # another process holds the state file's write lock (a VACUUM, a migration, a stuck run):
    # the run's cache writes wait for it in threads, and a signal still ends the run
    import sqlite3

    from helpers import emulator_process

    cached, src = tmp_path / "cached.txt", tmp_path / "in.txt"
    out, cache = tmp_path / "out.ndjson", tmp_path / "c.sqlite3"
    # every other line is in the cache; the others are asked slowly, so the run goes on
    # looking up chunk after chunk for seconds
    names = [f"host{i}.locked.example.com" for i in range(40_000)]
    cached.write_text("".join(f"{n}\n" for n in names[::2]))
    src.write_text("".join(f"{n}\n" for n in names))
    with emulator_process("--latency-ms", "50") as url:
        base = enricher_cmd("run", "--base-url", url, "--cache", str(cache), "--batch-size", "50")
        warm = subprocess.run([*base, "--rate", "0", str(cached), "-o", str(tmp_path / "w")],
                              env=ENV, timeout=120, capture_output=True)  # fmt: skip
        assert warm.returncode == 0, warm.stderr
        with subprocess.Popen([*base, "--rate", "20", str(src), "-o", str(out)],
                              stderr=subprocess.PIPE, env=ENV) as proc:  # fmt: skip
            wait_for_file(out)
            holder = sqlite3.connect(cache, timeout=30)
            holder.execute("BEGIN IMMEDIATE")  # the write lock: readers go on
            try:
                # the run's cache writer now waits for the lock, the answers to store pile up
                # behind it (64 batches, 3,200 answers at 20 requests/s: ~3 s), and storing
                # one more then waits, as does closing the cache at the end
                time.sleep(5)
                assert proc.poll() is None
                took = stop_and_time(proc)
            finally:
                holder.rollback()
                holder.close()
            assert proc.stderr is not None
            err = proc.stderr.read()
    assert took < PROMPT, err
    assert proc.returncode == 3, err
    assert b"Traceback" not in err
