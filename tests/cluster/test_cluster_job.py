"""`enricher run --workers N` / `--cluster URL`: one job over a Dask cluster gives what one
process gives, each unique IOC once, even when a worker is killed mid-run."""

from __future__ import annotations

import json
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

from distributed import Client

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


def test_a_script_with_no_main_guard_is_told_in_one_line(
    tmp_path: Path, cluster_redis: str
) -> None:
    # each worker runs the script again as it starts: the job it starts there stops at once,
    # unsaid (it said "being written by another enricher run" in each worker), and the
    # script's own process says why its workers did not start
    script = tmp_path / "nightly.py"
    script.write_text(
        "from enricher.app.cli import main\n"
        f"main(['run', '--emulator', {str(SAMPLE)!r}, '-o', {str(tmp_path / 'o.ndjson')!r},"
        " '--workers', '2'])\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **_state(cluster_redis)},
    )
    assert proc.stderr.strip().splitlines() == [
        "enricher: error: cluster: cannot start a local one: Nanny failed to start (each worker"
        f" runs {script} again as it starts: start the job there under"
        ' `if __name__ == "__main__":`)'
    ]


def test_a_cluster_not_there_is_said_in_one_line(tmp_path: Path, cluster_redis: str) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**_state(cluster_redis), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    out = tmp_path / "o.ndjson"
    proc = enricher("run", "--emulator", str(SAMPLE), "-o", str(out), "--cluster", address, env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"enricher: error: cluster: cannot reach the scheduler at {address}: "
    )


@pytest.mark.parametrize(
    ("inputs", "flags", "says"),
    [
        ([], {}, "standard input"),
        (["-"], {}, "standard input"),
        # <(zcat x.gz): read by the job early (before the cluster was up) or by a worker,
        # which cannot open it (exit 1, and --resume could not either)
        (["a", "/dev/fd/63"], {}, "open file /dev/fd/63"),
        (["/dev/stdin"], {}, "open file /dev/stdin"),
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


def test_a_cluster_of_ones_own_needs_the_password_on_its_hosts() -> None:
    """The tasks would carry a password of the state URL to the scheduler (which shows them):
    a local cluster's workers get it in their environment (test_cluster_lost.py), a cluster
    of one's own must have it on each host."""
    environ = {"ENRICHER_CLUSTER_ADDRESS": "tcp://127.0.0.1:1"}
    flags: dict[str, object] = {"with_source": False, "max_requests": None, "use_cache": True}
    settings = load_settings(
        environ={**environ, "ENRICHER_STATE_URL": "redis://:not-in-any-task-7@127.0.0.1:1/0"}
    )
    with pytest.raises(SettingsError, match=r"ENRICHER_STATE_PASSWORD or state\.password_file"):
        check_job(settings, inputs=["a"], **flags)  # type: ignore[arg-type]
    settings = load_settings(environ={**environ, "ENRICHER_STATE_URL": "redis://127.0.0.1:1/0"})
    check_job(settings, inputs=["a"], **flags)  # type: ignore[arg-type]
    # a proxy's or the API's URL with credentials: in every task's settings as well
    for name, url in [
        ("NETWORK_PROXY", "http://u:not-in-any-task-7@127.0.0.1:3128"),
        ("NETWORK_PROXY", "u:not-in-any-task-7@127.0.0.1:3128"),
        ("API_BASE_URL", "https://u:not-in-any-task-7@127.0.0.1:1/rest/classification_v1"),
    ]:
        named = {**environ, "ENRICHER_STATE_URL": "redis://127.0.0.1:1/0", f"ENRICHER_{name}": url}
        with pytest.raises(SettingsError, match=r"no credentials in network\.proxy"):
            check_job(load_settings(environ=named), inputs=["a"], **flags)  # type: ignore[arg-type]


def test_two_workers_give_the_records_of_one(tmp_path: Path, cluster_redis: str) -> None:
    inputs = [str(p) for p in _inputs(tmp_path, 600, 3)]
    inputs += [str(SAMPLE), str(FORMATS / "zeek-dns.log"), str(FORMATS / "report.md")]
    one, two = tmp_path / "1.ndjson", tmp_path / "2.ndjson"
    with emulator_process() as url:
        base = ["run", *inputs, "--base-url", url, "--rate", "0", "--batch-size", "50"]
        first = enricher(*base, "-o", str(one), "--no-cache", "--manifest", str(tmp_path / "1.m"))
        assert first.returncode == 0, first.stderr
        # the inputs of lines and text read in blocks of ~1.5 KB (3 to 4 each), the rest whole
        env = {**_state(cluster_redis), "ENRICHER_CLUSTER_BLOCK_BYTES": "1500"}
        manifest = ["--manifest", str(tmp_path / "2.m")]
        second = enricher(*base, "-o", str(two), "--workers", "2", *manifest, env=env)
        assert second.returncode == 0, second.stderr
    for suffix in ("", ".failed.ndjson", ".rejects.ndjson", ".skipped.ndjson"):
        a, b = Path(f"{one}{suffix}"), Path(f"{two}{suffix}")
        assert _sorted(a) == _sorted(b), suffix
    assert len(read_ndjson(two)) > 600
    # the same summary, counts and invariant, whichever ran it
    summary = [line for line in second.stderr.splitlines() if "invariant" in line]
    assert summary == [line for line in first.stderr.splitlines() if "invariant" in line]
    assert "holds" in summary[0]
    # the parts' answers are counted (the manifest's "cached"), not the client's own store
    assert "hits 0, stored 0" not in second.stderr
    m1, m2 = (json.loads((tmp_path / f"{n}.m").read_text()) for n in (1, 2))
    # the state is named as one process names its cache, with what the parts' stores did
    assert m2["cache"]["path"] == cluster_redis
    assert m2["cache"]["stored"] == m2["counts"]["ok"] > 600
    # a part's IOCs that do not fill a batch wait for its next wave: at most a part-filled
    # request per part (4) and endpoint more than one process (18 and 47 when each part's
    # wave sent its own)
    assert m2["requests"]["total"] <= m1["requests"]["total"] + 4 * 3


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


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A `dask scheduler` and two `dask worker` processes (one thread each, no nanny to
    start a killed one again) on 127.0.0.1 and free ports: (address, workers). Shared by
    this module's tests (starting them takes seconds); the last one kills a worker."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")]
    try:
        worker = ["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
        workers = [_dask(*worker, "--host", "127.0.0.1", "--name", f"w{i}") for i in range(2)]
        procs += workers
        yield address, workers
    finally:
        for proc in procs:  # ours, by pid
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _cluster_run(
    inputs: list[str], out: Path, url: str, address: str, env: dict[str, str], *flags: str
) -> subprocess.Popen[bytes]:
    """`enricher run` over the cluster at `address`, slow enough to be caught mid-run against
    an emulator with 100 ms of latency: 20 keys a batch, 2 in flight per part."""
    return subprocess.Popen(
        [sys.executable, "-m", "enricher", "run", *inputs, "-o", str(out),
         "--base-url", url, "--rate", "0", "--batch-size", "20", "--concurrency", "2",
         "--cluster", address, *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, **env, "ENRICHER_CLUSTER_PARTITIONS": "6"},
    )  # fmt: skip


def _each_once(out: Path, summary: str) -> list[str]:
    """The IOCs of the output set, each once (asserted), and the summary's invariant held."""
    records = read_ndjson(out)
    skipped = read_ndjson(Path(f"{out}.skipped.ndjson"))
    failed = read_ndjson(Path(f"{out}.failed.ndjson"))
    everything = [r["ioc"] for r in records + skipped + failed]
    assert len(everything) == len(set(everything))
    assert "holds" in next(line for line in summary.splitlines() if "invariant" in line)
    return [r["ioc"] for r in records]


@pytest.mark.slow
def test_an_interrupted_cluster_run_resumes(
    tmp_path: Path,
    cluster_redis: str,
    dask_cluster: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    address, _ = dask_cluster
    inputs = [str(p) for p in _inputs(tmp_path, 1_200, 4)]
    out = tmp_path / "out.ndjson"
    env = _state(cluster_redis)
    with emulator_process("--latency-ms", "100") as url:
        run = _cluster_run(inputs, out, url, address, env)
        try:
            deadline = time.monotonic() + 60
            while not out.exists() or out.stat().st_size == 0:  # a part written
                assert run.poll() is None, run.communicate()[1]
                assert time.monotonic() < deadline, "nothing was written in 60 s"
                time.sleep(0.02)
            run.send_signal(signal.SIGINT)
            _, err = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        assert run.returncode == 3, err.decode()
        assert err.decode().splitlines()[-1] == (
            "enricher: interrupted: run the same command with --resume to finish"
        )
        written = len(read_ndjson(out))
        assert written > 0
        again = _cluster_run(inputs, out, url, address, env, "--resume")
        _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    iocs = _each_once(out, err.decode())
    assert {f"host{i}.example.com" for i in range(1_200) if i % 3} <= set(iocs)
    assert f"earlier runs  ok {written:,}  " in err.decode()


def _enriching(client: Client, name: str) -> bool:
    """Whether the worker named `name` is running a part's task right now."""
    workers = client.scheduler_info()["workers"]
    address = next((a for a, w in workers.items() if w.get("name") == name), None)
    tasks = client.processing().get(address, ()) if address else ()
    return any(str(key).startswith("enrich_part") for key in tasks)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing(
    tmp_path: Path,
    cluster_redis: str,
    dask_cluster: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    address, workers = dask_cluster
    inputs = [str(p) for p in _inputs(tmp_path, 1_200, 4)]
    out = tmp_path / "out.ndjson"
    with (
        emulator_process("--latency-ms", "100") as url,
        Client(address, timeout=10) as client,
    ):
        run = _cluster_run(inputs, out, url, address, _state(cluster_redis))
        try:
            deadline = time.monotonic() + 60
            while not _enriching(client, "w0") or emulator_stats(url)["total_requests"] < 10:
                assert run.poll() is None, run.communicate()[1]
                assert time.monotonic() < deadline, "the first worker enriched nothing in 60 s"
                time.sleep(0.05)
            # mid-part, some of its IOCs asked: its tasks go to the other worker
            workers[0].send_signal(signal.SIGKILL)
            _, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert run.returncode == 0, err.decode()
    assert workers[0].wait() == -signal.SIGKILL
    iocs = _each_once(out, err.decode())
    assert {f"host{i}.example.com" for i in range(1_200) if i % 3} <= set(iocs)
