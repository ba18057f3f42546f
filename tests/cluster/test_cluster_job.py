"""`enricher run --workers N` / `--cluster URL`: one job over a Dask cluster gives what one
process gives, each unique IOC once, even when a worker is killed mid-run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import emulator_process, emulator_stats, enricher, read_ndjson

from enricher.cluster import check_job
from enricher.config.settings import load_settings
from enricher.errors import SettingsError

pytest.importorskip("distributed", reason="Dask is missing: pip install -e '.[dask]'")

SAMPLE = Path(__file__).parent.parent / "data" / "sample-iocs.txt"
FORMATS = Path(__file__).parent.parent / "data" / "formats"


def _inputs(folder: Path, n: int, files: int) -> list[Path]:
    """`files` inputs of `n` IOCs between them (domains, addresses, hashes, an internal name
    and a sha256 each), every fifth one in two files, with rejects."""
    paths = []
    for f in range(files):
        lines = ["# export", "not an ioc", "intranet.local", "a" * 64]
        for i in range(f, n, files):
            lines.append(f"host{i}.example.com" if i % 3 else f"8.8.{i // 250}.{i % 250}")
            if i % 5 == 0:
                lines.append(f"{i:032x}")
                lines.append(f"host{(i + 1) % n}.example.com")  # another file's too
        path = folder / f"in{f}.txt"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def _state(url: str) -> dict[str, str]:
    return {"ENRICHER_STATE_URL": url, "ENRICHER_STATE_PREFIX": f"t{uuid.uuid4().hex[:12]}"}


def _sorted(path: Path) -> list[bytes]:
    return sorted(path.read_bytes().splitlines()) if path.exists() else []


def test_one_worker_imports_no_dask(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from enricher.app.cli import main\n"
        f"rc = main(['run', '--emulator', {str(SAMPLE)!r}, '-o', {str(tmp_path / 'o')!r},"
        " '--no-cache', '-q'])\n"
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.split() == ["0", "[]"], proc.stderr


def test_a_cluster_needs_a_shared_state(tmp_path: Path) -> None:
    proc = enricher(
        "run", "--emulator", str(SAMPLE), "-o", str(tmp_path / "o.ndjson"), "--workers", "2"
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "enricher: error: --workers/--cluster need a shared state: give --state redis://HOST:PORT/DB"
        " (every worker enriches under its one rate limiter, answer cache and budget)"
    ]
    assert not (tmp_path / "o.ndjson").exists()


@pytest.mark.parametrize(
    ("inputs", "flags", "says"),
    [
        ([], {}, "standard input"),
        (["-"], {}, "standard input"),
        (["a"], {"with_source": True}, "--with-source"),
        (["a"], {"max_requests": 5}, "--max-requests"),
        (["a"], {"use_cache": False}, "--no-cache"),
    ],
)
def test_what_a_cluster_cannot_run_is_refused(
    inputs: list[str], flags: dict[str, object], says: str
) -> None:
    settings = load_settings(
        environ={"ENRICHER_STATE_URL": "redis://127.0.0.1:1/0", "ENRICHER_CLUSTER_WORKERS": "2"}
    )
    args: dict[str, object] = {"with_source": False, "max_requests": None, "use_cache": True}
    args.update(flags)
    with pytest.raises(SettingsError, match=says):
        check_job(settings, inputs=inputs, **args)  # type: ignore[arg-type]
    check_job(settings, inputs=["a"], with_source=False, max_requests=None, use_cache=True)


def test_two_workers_give_the_records_of_one(tmp_path: Path, cluster_redis: str) -> None:
    inputs = [str(p) for p in _inputs(tmp_path, 600, 3)]
    inputs += [str(SAMPLE), str(FORMATS / "zeek-dns.log"), str(FORMATS / "report.md")]
    one, two = tmp_path / "1.ndjson", tmp_path / "2.ndjson"
    with emulator_process() as url:
        base = ["run", *inputs, "--base-url", url, "--rate", "0", "--batch-size", "50"]
        first = enricher(*base, "-o", str(one), "--no-cache")
        assert first.returncode == 0, first.stderr
        second = enricher(*base, "-o", str(two), "--workers", "2", env=_state(cluster_redis))
        assert second.returncode == 0, second.stderr
    for suffix in ("", ".failed.ndjson", ".rejects.ndjson", ".skipped.ndjson"):
        a, b = Path(f"{one}{suffix}"), Path(f"{two}{suffix}")
        assert _sorted(a) == _sorted(b), suffix
    assert len(read_ndjson(two)) > 600
    # the same summary, counts and invariant, whichever ran it
    summary = [line for line in second.stderr.splitlines() if "invariant" in line]
    assert summary == [line for line in first.stderr.splitlines() if "invariant" in line]
    assert "holds" in summary[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dask(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dask"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def dask_cluster() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A `dask scheduler` and two `dask worker` processes (one thread each, no nanny to
    start a killed one again) on 127.0.0.1 and free ports: (address, workers)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")]
    try:
        worker = ["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
        workers = [_dask(*worker, "--host", "127.0.0.1") for _ in range(2)]
        procs += workers
        yield address, workers
    finally:
        for proc in procs:  # ours, by pid
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing(
    tmp_path: Path,
    cluster_redis: str,
    dask_cluster: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    address, workers = dask_cluster
    inputs = [str(p) for p in _inputs(tmp_path, 1_200, 4)]
    out = tmp_path / "out.ndjson"
    env = {**_state(cluster_redis), "ENRICHER_CLUSTER_PARTITIONS": "6"}
    with emulator_process("--latency-ms", "100") as url:
        run = subprocess.Popen(
            [sys.executable, "-m", "enricher", "run", *inputs, "-o", str(out),
             "--base-url", url, "--rate", "0", "--batch-size", "20", "--concurrency", "2",
             "--cluster", address],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while emulator_stats(url)["total_requests"] < 10:
                assert run.poll() is None, run.communicate()[1]
                assert time.monotonic() < deadline, "nothing was sent in 60 s"
                time.sleep(0.05)
            workers[0].send_signal(signal.SIGKILL)  # mid-part: its tasks go to the other
            _, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert run.returncode == 0, err.decode()
    assert workers[0].wait() == -signal.SIGKILL
    records = read_ndjson(out)
    iocs = [r["ioc"] for r in records]
    skipped = read_ndjson(Path(f"{out}.skipped.ndjson"))
    failed = read_ndjson(Path(f"{out}.failed.ndjson"))
    # every unique IOC once, across the outputs
    everything = iocs + [s["ioc"] for s in skipped] + [f["ioc"] for f in failed]
    assert len(everything) == len(set(everything))
    assert {f"host{i}.example.com" for i in range(1_200) if i % 3} <= set(iocs)
    summary = err.decode()
    assert f"unique IOCs   {len(everything):,}" in summary
    assert "holds" in next(line for line in summary.splitlines() if "invariant" in line)
