"""A cluster that has no worker, loses them all, or fails a task: the job says so in one line
and ends (exit 1 at start, a fatal condition mid-run), and a stop ends it at once, rather
than waiting for ever on results that cannot come (attack15-cluster.md, findings 1 and 2).

An in-process scheduler and worker (no subprocess: cheap), the job's `ClusterEnricher` driven
as `enricher run` drives it."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from enricher.cluster.client import ClusterEnricher
from enricher.cluster.parts import settings_from
from enricher.config.settings import load_settings
from enricher.errors import SettingsError
from enricher.inputs import InputOptions
from enricher.pipeline.stats import RunStats
from enricher.threads import Abandoned

pytest.importorskip("distributed", reason="Dask is missing: pip install -e '.[dask]'")

from distributed import Scheduler, Worker


@pytest.fixture
async def scheduler() -> AsyncIterator[Any]:
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0") as s:
        yield s


def _job(address: str, tmp_path: Path) -> ClusterEnricher:
    source = tmp_path / "in.txt"
    source.write_text("example.com\n8.8.8.8\n")
    settings = load_settings(
        "emulator",
        overrides={"cluster": {"address": address}, "state": {"url": "redis://127.0.0.1:1/0"}},
    )
    job = ClusterEnricher(
        settings, stats=RunStats(), inputs=[str(source)], reading=InputOptions(), read_as={}
    )
    job.no_workers_wait = 0.5
    job._LOOK = 0.1
    return job


async def test_a_scheduler_without_workers_is_one_line(scheduler: Any, tmp_path: Path) -> None:
    job = _job(scheduler.address, tmp_path)
    with pytest.raises(SettingsError) as caught:
        async with job:
            pass
    assert str(caught.value) == (
        f"cluster: the scheduler at {scheduler.address} has no workers (waited 0.5 s):"
        f" start some (dask worker {scheduler.address})"
    )


async def test_a_signal_ends_the_wait_for_a_first_worker(scheduler: Any, tmp_path: Path) -> None:
    """A SIGTERM while the job waits for workers ends it then, not after the wait."""
    job = _job(scheduler.address, tmp_path)
    job.no_workers_wait = 3_600
    job.stopping = lambda: True
    with pytest.raises(Abandoned):
        await asyncio.wait_for(job.__aenter__(), 10)


async def _collect(job: ClusterEnricher) -> list[Any]:
    return [outcome async for outcome in job.outcomes()]


async def test_workers_lost_mid_run_end_the_job(scheduler: Any, tmp_path: Path) -> None:
    worker = await Worker(
        scheduler.address, nthreads=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    async with _job(scheduler.address, tmp_path) as job:
        await worker.close()  # every worker gone before its tasks ran
        assert await asyncio.wait_for(_collect(job), 20) == []
    assert job.fatal is not None
    assert str(job.fatal) == (
        "cluster: no worker for 0.5 s; what is done is written: run again with --resume"
        " once workers are back"
    )


async def test_a_stop_ends_a_wait_for_results_that_do_not_come(
    scheduler: Any, tmp_path: Path
) -> None:
    worker = await Worker(
        scheduler.address, nthreads=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    async with _job(scheduler.address, tmp_path) as job:
        job.no_workers_wait = 3_600  # only the stop ends it
        await worker.close()
        collecting = asyncio.ensure_future(_collect(job))
        await asyncio.sleep(0.5)
        job.stop()
        assert await asyncio.wait_for(collecting, 10) == []
        assert job.interrupted and job.fatal is None and job.in_flight == 0


async def test_a_local_cluster_listens_on_this_host_alone(tmp_path: Path) -> None:
    """`--workers N`: the local scheduler's HTTP server (its workers' logs and call stacks)
    bound 0.0.0.0 (attack15-cluster.md, finding 5). And (one cluster started for both: they
    take seconds) a worker that stops answering (SIGSTOP, a swapped-out host) held its part
    past Dask's 5-minute worker TTL (finding 7): this scheduler drops it after `worker_ttl`
    (its part redone elsewhere ~20 s after the freeze: benchmarks/README.md). And a password
    of the state URL reaches the workers in their environment, not in the tasks' arguments
    (which the scheduler shows)."""
    source = tmp_path / "in.txt"
    source.write_text("example.com\n8.8.8.8\nexample.com\n")
    settings = load_settings(
        "emulator",
        overrides={
            "cluster": {"workers": 1},
            "state": {"url": f"redis://:{_SECRET}@127.0.0.1:1/0"},
        },
    )
    job = ClusterEnricher(
        settings, stats=RunStats(), inputs=[str(source)], reading=InputOptions(), read_as={}
    )
    # as a run's `Stopper` does: this loop's wakeup pipe takes the process's signals
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: None)
    async with job:
        scheduler = job._cluster.scheduler
        assert scheduler.worker_ttl == job.worker_ttl == 10
        # and its workers import what the tasks need as they start (enricher.cluster.warm)
        where = "import sys; found = 'enricher.state.redis.answers' in sys.modules"
        assert await job._client.run(_found, where) == {w: True for w in scheduler.workers}
        # and they print no traceback of their own: a worker losing the scheduler as the
        # cluster closes logged "Failed to communicate with scheduler during heartbeat" and
        # its traceback (ERROR) into a successful run's stderr (attack-start finding)
        quiet = (
            "import logging; found = all(h.level >= logging.CRITICAL for h in"
            " logging.getLogger('distributed').handlers)"
        )
        assert await job._client.run(_found, quiet) == {w: True for w in scheduler.workers}
        # forked from the fork server, not from this process (whose threads' locks it would
        # copy), and a signal to it is its own, not written into this process's wakeup pipe
        # (read here as one more signal)
        where = f"import os, signal; found = os.getppid() != {os.getpid()}"
        where += " and (signal.set_wakeup_fd"
        where += "(-1), signal.getsignal(signal.SIGTERM)) == (-1, signal.SIG_DFL)"
        assert await job._client.run(_found, where) == {w: True for w in scheduler.workers}
        bound = {s.getsockname()[0] for s in scheduler.http_server._sockets.values()}
        bound |= {urlparse(scheduler.address).hostname}
        # and looks at its memory every second, not 10 times a second (no dashboard to feed)
        where = "import dask; found = dask.config.get('distributed.worker.memory.monitor-interval')"
        where += " == '1s' and not dask.config.get('distributed.worker.profile.enabled')"
        assert await job._client.run(_found, where) == {w: True for w in scheduler.workers}
        where = f"import os; found = os.environ.get('ENRICHER_STATE_PASSWORD') == {_SECRET!r}"
        assert await job._client.run(_found, where) == {w: True for w in scheduler.workers}
        wire = job._wire("job.0")
        assert _SECRET.encode() not in pickle.dumps(wire)
        assert settings_from(wire).state.url == "redis://127.0.0.1:1/0"
    asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
    assert bound == {"127.0.0.1"}


_SECRET = "not-in-any-task-7"


def _found(code: str) -> bool:
    """What `code` sets `found` to, run on a worker."""
    scope: dict[str, Any] = {}
    exec(code, scope)
    return bool(scope["found"])


def _failing_read(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the disk\nis gone.")


async def test_a_failed_task_is_one_line_naming_resume(
    scheduler: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dask's messages span lines (a lost scheduler's: two sentences); the job's is one,
    and says what to run next (attack15-cluster.md, finding 4)."""
    monkeypatch.setattr("enricher.cluster.client.read_input", _failing_read)
    worker = await Worker(
        scheduler.address, nthreads=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    try:
        async with _job(scheduler.address, tmp_path) as job:
            assert await asyncio.wait_for(_collect(job), 20) == []
    finally:
        await worker.close()
    assert str(job.fatal) == (
        "cluster: a task failed: the disk is gone; what is done is written: run again with --resume"
    )


async def test_a_reads_lines_count_before_its_waves_parts(scheduler: Any, tmp_path: Path) -> None:
    """A read's head (its counts: the progress's lines read) goes before the parts' tasks its
    wave made ready (Dask's priority: among the ready tasks, the highest first): at the
    parts' priority, it came after them, and the progress said 0 lines read until then.
    Which task a worker runs first is the scheduler's race: the priorities asked are what
    is checked, and that the first outcome counts lines."""
    worker = await Worker(
        scheduler.address, nthreads=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    try:
        job = _job(scheduler.address, tmp_path)
        async with job:
            asked: dict[str, set[int]] = {}
            submit = job._client.submit

            def recorded(fn: Any, *args: Any, priority: int = 0, **kwargs: Any) -> Any:
                asked.setdefault(fn.__name__, set()).add(priority)
                return submit(fn, *args, priority=priority, **kwargs)

            job._client.submit = recorded
            outcomes = job.outcomes()
            # the first outcome is what is checked, not its speed: a worker and a scheduler on a
            # loaded 2-core machine took more than 20 s once (load ~9)
            await asyncio.wait_for(anext(outcomes), 90)
            assert job.stats.lines_read > 0  # a read's, not a part's (it counts no line)
            await outcomes.aclose()
    finally:
        await worker.close()
    others = asked["_share"] | asked["_enrich_wave"] | asked["_wave_part"]
    assert min(asked["_head"]) > max(others) > max(asked["read_input"])
