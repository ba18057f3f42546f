"""`--state redis://…` through the real command line: Redis unreachable at start is exit 1
and one line naming it (never its password); Redis lost mid-run stops the sending, keeps
what was written and defers the rest, exit 3 and one line, and `--resume` (Redis back)
finishes with every IOC once; a job's deferred IOCs are listed by `enricher deferred`, and a
second job over the same IOCs is answered from the shared answers, sending nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from redis_server import free_port, running_redis, stop

ENV = {**os.environ, "PYTHONWARNINGS": "error", "ENRICHER_PIPELINE_GRACE_PERIOD": "2"}


def _enricher(*args: str) -> list[str]:
    return [sys.executable, "-m", "enricher", *args]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _enricher(*args), capture_output=True, text=True, env=env or ENV, timeout=120
    )


def _iocs(path: Path, n: int, name: str) -> list[str]:
    iocs = [f"{name}{i}.example{i % 7}.com" for i in range(n)]
    path.write_text("\n".join(iocs) + "\n")
    return iocs


def _records(path: Path) -> list[str]:
    return [orjson.loads(line)["ioc"] for line in path.read_bytes().splitlines()]


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_redis_unreachable_at_start_is_exit_1_naming_it(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    _iocs(src, 5, "a")
    port = free_port()
    env = {**ENV, "ENRICHER_STATE_URL": f"redis://:pw-not-shown-42@127.0.0.1:{port}/0"}
    done = _run("run", "--emulator", str(src), "-o", str(tmp_path / "out.ndjson"), env=env)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in done.stderr
    assert "pw-not-shown-42" not in done.stderr
    assert not (tmp_path / "out.ndjson").exists()


def test_redis_lost_mid_run_is_exit_3_and_resume_finishes(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    iocs = _iocs(src, 100, "lost")
    port = free_port()
    with running_redis(port=port) as (url, server):
        # 100 requests at 20/s: 5 s, Redis stopped once the first records are out
        args = ["run", "--emulator", "--state", url, "--rate", "20", "--batch-size", "1",
                "--job", "nightly", str(src), "-o", str(out)]  # fmt: skip
        with subprocess.Popen(_enricher(*args), stderr=subprocess.PIPE, text=True, env=ENV) as p:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
                time.sleep(0.05)
            stop(server)
            _, stderr = p.communicate(timeout=60)
    assert p.returncode == 3, stderr
    assert _last_line(stderr).startswith(f"enricher: error: state: lost Redis at {url}")
    assert "--resume" in _last_line(stderr)
    written = _records(out)
    deferred = (tmp_path / "out.ndjson.deferred.ndjson").read_bytes().splitlines()
    assert written and deferred and len(written) + len(deferred) == len(iocs)
    with running_redis(port=port) as (url, _):
        again = _run(*args, "--resume", "--rate", "0")
    assert again.returncode == 0, again.stderr
    assert sorted(_records(out)) == sorted(iocs)  # every IOC once


def test_deferred_lists_and_answers_are_shared(tmp_path: Path, redis_url: str) -> None:
    src = tmp_path / "in.txt"
    iocs = _iocs(src, 20, "shared")
    env = {**ENV, "ENRICHER_STATE_URL": redis_url, "ENRICHER_STATE_PREFIX": f"t{os.getpid()}"}
    first = _run("run", "--emulator", "--rate", "0", "--batch-size", "5", "--max-requests", "2",
                 "--job", "first", str(src), "-o", str(tmp_path / "a.ndjson"), env=env)  # fmt: skip
    assert first.returncode == 2, first.stderr
    listed = _run("deferred", "--job", "first", env=env)
    assert listed.returncode == 0, listed.stderr
    waiting = [orjson.loads(line)["ioc"] for line in listed.stdout.splitlines()]
    assert len(waiting) == 10 and set(waiting) <= set(iocs)
    assert set(waiting).isdisjoint(_records(tmp_path / "a.ndjson"))
    # another job over the same IOCs: the 10 answered come from the shared answers
    second = _run("run", "--emulator", "--rate", "0", "--batch-size", "5", "--max-requests", "0",
                  str(src), "-o", str(tmp_path / "b.ndjson"), env=env)  # fmt: skip
    assert second.returncode == 2, second.stderr
    assert sorted(_records(tmp_path / "b.ndjson")) == sorted(_records(tmp_path / "a.ndjson"))
