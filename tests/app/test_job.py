"""Deferred IOCs follow their job: a run takes up only what earlier runs of its own job (and
API identity) deferred, with or without the answer cache; `enricher deferred` lists what
waits. Through the real command line, against the emulator in a process of its own."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import orjson
import pytest
from helpers import PlainEmulator, emulator_process, emulator_stats, enricher, read_ndjson

from enricher.app import job as job_module
from enricher.app.job import _GC_YOUNG, Job, run_job
from enricher.config.settings import load_settings

TIMEOUT = 60


def iocs(path: Path, prefix: str, n: int) -> set[str]:
    values = [f"{prefix}{i}.jobs.example.com" for i in range(n)]
    path.write_text("\n".join(values) + "\n")
    return set(values)


def run(url: str, src: Path, out: Path, *flags: str) -> tuple[int, str]:
    proc = enricher("run", str(src), "-o", str(out), "--base-url", url, "--rate", "0",
                    "--batch-size", "50", *flags, timeout=TIMEOUT)  # fmt: skip
    return proc.returncode, proc.stderr


def written(out: Path) -> set[str]:
    return {r["ioc"] for r in read_ndjson(out)}


def test_dated_outputs_of_one_job_carry_the_deferred_without_the_cache(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    # the README's nightly pattern: an output a day; day 1 runs out of budget
    day1, day2 = tmp_path / "day1.txt", tmp_path / "day2.txt"
    first = iocs(day1, "a", 400)
    second = iocs(day2, "b", 1)
    with plain_emulator() as url:
        code, err = run(url, day1, tmp_path / "2026-12-01.ndjson", "--job", "nightly",
                        "--no-cache", "--max-requests", "2")  # fmt: skip
        assert code == 2, err
        done = written(tmp_path / "2026-12-01.ndjson")
        assert len(done) == 100
        code, err = run(url, day2, tmp_path / "2026-12-02.ndjson", "--job", "nightly",
                        "--no-cache")  # fmt: skip
        assert code == 0, err
    # day 2 asked day 1's 300 deferred IOCs first, then its own one
    assert written(tmp_path / "2026-12-02.ndjson") == (first - done) | second
    assert "job           nightly" in err


def test_another_job_never_takes_up_what_a_job_deferred(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    a_in, b_in = tmp_path / "a.txt", tmp_path / "b.txt"
    a = iocs(a_in, "a", 200)
    b = iocs(b_in, "b", 3)
    with plain_emulator() as url:
        # with the cache (the default), the list is kept in it, per job
        code, _ = run(url, a_in, tmp_path / "a.ndjson", "--max-requests", "1")
        assert code == 2
        code, err = run(url, b_in, tmp_path / "b.ndjson")
        assert code == 0, err
        assert written(tmp_path / "b.ndjson") == b  # not a's 150
        asked = emulator_stats(url)["keys_asked"]
        # the same job again (--resume of its output) takes them up
        code, err = run(url, a_in, tmp_path / "a.ndjson", "--resume")
        assert code == 0, err
        assert emulator_stats(url)["keys_asked"] == asked + 150
    assert written(tmp_path / "a.ndjson") == a


def test_a_run_on_stdout_belongs_to_no_job(tmp_path: Path, plain_emulator: PlainEmulator) -> None:
    src, other = tmp_path / "in.txt", tmp_path / "other.txt"
    iocs(src, "s", 200)
    iocs(other, "o", 2)
    with plain_emulator() as url:
        base = ["run", "--base-url", url, "--rate", "0", "--batch-size", "50"]
        proc = enricher(*base, str(src), "--max-requests", "1", timeout=TIMEOUT)
        assert proc.returncode == 2, proc.stderr
        assert "belongs to no job" in proc.stderr and "--job NAME" in proc.stderr
        proc = enricher(*base, str(other), timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
    got = {orjson.loads(x)["ioc"] for x in proc.stdout.splitlines()}
    assert got == {"o0.jobs.example.com", "o1.jobs.example.com"}


def test_each_api_identity_keeps_its_own_list(tmp_path: Path) -> None:
    src, other = tmp_path / "in.txt", tmp_path / "other.txt"
    deferred = iocs(src, "i", 200)
    iocs(other, "x", 1)
    with emulator_process() as one, emulator_process() as two:
        code, _ = run(one, src, tmp_path / "1.ndjson", "--job", "j", "--max-requests", "0")
        assert code == 2
        # the same job name against another server: not its list
        code, err = run(two, other, tmp_path / "2.ndjson", "--job", "j")
        assert code == 0, err
        assert written(tmp_path / "2.ndjson") == {"x0.jobs.example.com"}
        code, err = run(one, other, tmp_path / "3.ndjson", "--job", "j")
        assert code == 0, err
    assert written(tmp_path / "3.ndjson") == deferred | {"x0.jobs.example.com"}


def test_enricher_deferred_lists_what_waits(tmp_path: Path, plain_emulator: PlainEmulator) -> None:
    src = tmp_path / "in.txt"
    iocs(src, "w", 120)
    with plain_emulator() as url:
        code, _ = run(url, src, tmp_path / "w.ndjson", "--job", "weekly", "--max-requests", "1")
        assert code == 2
    listed = enricher("deferred", timeout=TIMEOUT)
    assert listed.returncode == 0, listed.stderr
    assert "job weekly" in listed.stdout
    assert "waiting   70 (domain 70)" in listed.stdout
    assert "the request budget is spent 70" in listed.stdout
    one = enricher("deferred", "--job", "weekly", timeout=TIMEOUT)
    lines = [orjson.loads(x) for x in one.stdout.splitlines()]
    assert len(lines) == 70 and {d["reason"] for d in lines} == {"the request budget is spent"}
    assert enricher("deferred", "--job", "nope", timeout=TIMEOUT).stdout == ""


def test_no_state_file_yet() -> None:
    proc = enricher("deferred", timeout=TIMEOUT)
    assert proc.returncode == 0 and "nothing is deferred" in proc.stderr


def test_the_daily_budget_holds_with_no_cache(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    """--no-cache keeps no answer, but the day's count is in the state file all the same:
    two runs the same day with a budget of 3 send 3 between them (the attack saw 60)."""
    src = tmp_path / "in.txt"
    iocs(src, "n", 200)
    env = {"ENRICHER_LIMITS_DAILY_BUDGET": "3", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    with plain_emulator() as url:
        for n in (1, 2):
            proc = enricher("run", str(src), "-o", str(tmp_path / f"{n}.ndjson"), "--base-url",
                            url, "--rate", "0", "--batch-size", "5", "--no-cache", env=env,
                            timeout=TIMEOUT)  # fmt: skip
            assert proc.returncode == 2 and "budget is spent" in proc.stderr, proc.stderr
        assert emulator_stats(url)["total_requests"] == 3
    assert len(written(tmp_path / "1.ndjson")) == 15 and written(tmp_path / "2.ndjson") == set()


def test_a_daily_budget_without_a_usable_state_file_sends_nothing(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    """A state file that cannot be used was a warning, and the budget was dropped: the run
    sent everything. Now it refuses to start."""
    src = tmp_path / "in.txt"
    iocs(src, "u", 20)
    (tmp_path / "a-directory").mkdir()
    env = {"ENRICHER_LIMITS_DAILY_BUDGET": "3",
           "ENRICHER_CACHE_PATH": str(tmp_path / "a-directory")}  # fmt: skip
    with plain_emulator() as url:
        proc = enricher("run", str(src), "-o", str(tmp_path / "o.ndjson"), "--base-url", url,
                        "--no-cache", env=env, timeout=TIMEOUT)  # fmt: skip
        assert emulator_stats(url)["total_requests"] == 0
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "limits.daily_budget is counted in the state file" in proc.stderr
    assert not (tmp_path / "o.ndjson").exists()


async def test_a_job_collects_young_objects_less_often_and_gives_the_thresholds_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = gc.get_threshold()
    set_to: list[tuple[int, ...]] = []
    real = gc.set_threshold

    def spy(*thresholds: int) -> None:
        set_to.append(thresholds)
        real(*thresholds)

    monkeypatch.setattr(gc, "set_threshold", spy)
    src = tmp_path / "in.txt"
    src.write_text("8.8.8.8\nexample.com\n")
    job = Job(inputs=[str(src)], output=str(tmp_path / "out.ndjson"), emulator=True,
              use_cache=False)  # fmt: skip
    assert await run_job(job, load_settings("emulator")) == 0
    assert set_to[0] == (_GC_YOUNG, *before[1:])
    assert gc.get_threshold() == before


async def test_jobs_that_overlap_give_the_thresholds_back_when_the_last_ends(
    tmp_path: Path,
) -> None:
    # a library running two jobs in one process: the second saved the first's raised
    # threshold and gave it back last, so the process kept the raised one after both ended
    before = gc.get_threshold()
    jobs = []
    for i, n in enumerate((20_000, 20_000)):
        src = tmp_path / f"in{i}.txt"
        src.write_text("".join(f"h{j}.example{i}.com\n" for j in range(n)))
        jobs.append(Job(inputs=[str(src)], output=str(tmp_path / f"out{i}.ndjson"),
                        emulator=True, use_cache=False, job=f"j{i}", quiet=True))  # fmt: skip
    first = asyncio.create_task(run_job(jobs[0], load_settings("emulator")))
    for _ in range(10_000):  # until the first job has raised the threshold
        if gc.get_threshold()[0] == _GC_YOUNG or first.done():
            break
        await asyncio.sleep(0.001)
    second = asyncio.create_task(run_job(jobs[1], load_settings("emulator")))
    for _ in range(10_000):  # until the second has begun too: the two overlap
        if job_module._gc_jobs == 2 or first.done():
            break
        await asyncio.sleep(0.001)
    assert job_module._gc_jobs == 2  # they overlap (a first job of 200 lines ended before)
    assert await first == 0
    # raised while the second is still in its run (it may have left it, and still be closing)
    assert (gc.get_threshold()[0] == _GC_YOUNG) == (job_module._gc_jobs == 1)
    assert await second == 0
    assert gc.get_threshold() == before
