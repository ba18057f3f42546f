"""Nightly jobs: outputs kept safe, resume after a crash, cache, budget, manifest, signals."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from helpers import (
    PlainEmulator,
    emulator_process,
    emulator_stats,
    enricher,
    kill_when_written,
    line_of,
    read_ndjson,
    start_run,
)

from enricher.api.identity import ApiIdentity
from enricher.ioc import Endpoint, IocType
from enricher.pipeline.dedupe import Deduper
from enricher.state.answers import Cache
from enricher.state.resume import read_written, repair

API = ApiIdentity("https://gti.example/rest/classification_v1")


def make_input(path: Path, n: int, seed: int = 1) -> set[str]:
    rng = random.Random(seed)
    iocs = []
    for i in range(n):
        h = f"{rng.getrandbits(160):040x}"
        iocs.append([h[:32], h, f"n{i}.night.example.com", f"11.9.{i >> 8 & 255}.{i & 255}"][i % 4])
    lines = iocs + rng.sample(iocs, n // 2)
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    return set(iocs)


def outputs(out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    base = str(out)
    return (
        read_ndjson(out),
        read_ndjson(Path(base + ".failed.ndjson")),
        read_ndjson(Path(base + ".deferred.ndjson")),
    )


def assert_exactly_once(out: Path, expected: set[str]) -> list[dict]:
    records, failures, _ = outputs(out)
    seen = Counter(r["ioc"] for r in records + failures)
    dupes = [k for k, n in seen.items() if n > 1]
    assert not dupes, f"{len(dupes)} IOCs written twice, e.g. {dupes[:3]}"
    assert set(seen) == expected
    return records


def run(url: str, src: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return enricher(
        "run", str(src), "-o", str(out), "--base-url", url, "--rate", "0",
        "--batch-size", "50", *flags,
    )  # fmt: skip


def test_existing_output_is_never_silently_overwritten(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 40)
    out.write_text('{"precious": true}\n')
    proc = enricher("run", "--emulator", str(src), "-o", str(out))
    assert proc.returncode == 1
    assert "exists: add --resume to continue that run, or --force to replace it" in proc.stderr
    assert out.read_text() == '{"precious": true}\n'
    proc = enricher("run", "--emulator", str(src), "-o", str(out), "--force")
    assert proc.returncode == 0, proc.stderr
    assert len(read_ndjson(out)) == 40


def test_resume_needs_a_file() -> None:
    proc = enricher("run", "--emulator", "--resume", "-o", "-", stdin=b"a.example.com\n")
    assert proc.returncode == 1 and "standard output cannot be resumed" in proc.stderr


def test_warm_cache_sends_nothing_and_gives_the_same_records(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    src = tmp_path / "in.txt"
    expected = make_input(src, 400)
    first, second = tmp_path / "1.ndjson", tmp_path / "2.ndjson"
    with plain_emulator() as url:
        assert run(url, src, first, "--send-sha256").returncode == 0
        asked = emulator_stats(url, reset=True)
        proc = run(url, src, second, "--send-sha256")
        again = emulator_stats(url)
    assert proc.returncode == 0, proc.stderr
    assert asked["total_requests"] > 0
    assert again["total_requests"] == 0  # zero requests at the emulator's stats
    a = {r["ioc"]: r for r in assert_exactly_once(first, expected)}
    b = {r["ioc"]: r for r in assert_exactly_once(second, expected)}
    assert all(r["cached"] is False for r in a.values())
    assert all(r["cached"] is True for r in b.values())
    for ioc, record in a.items():
        assert {**record, "cached": True} == b[ioc]


def test_no_cache_cache_only_and_max_age(tmp_path: Path, plain_emulator: PlainEmulator) -> None:
    src = tmp_path / "in.txt"
    expected = make_input(src, 120)
    with plain_emulator() as url:
        # --cache-only on a cold cache: nothing sent, everything deferred
        proc = run(url, src, tmp_path / "0.ndjson", "--cache-only")
        assert proc.returncode == 2
        assert emulator_stats(url)["total_requests"] == 0
        _, _, deferred = outputs(tmp_path / "0.ndjson")
        assert {d["ioc"] for d in deferred} == expected
        # fill it (the deferred ones are asked first), then --no-cache asks again
        assert run(url, src, tmp_path / "1.ndjson").returncode == 0
        emulator_stats(url, reset=True)
        assert run(url, src, tmp_path / "2.ndjson", "--no-cache").returncode == 0
        assert emulator_stats(url, reset=True)["keys_asked"] == len(expected)
        # an answer older than --max-age is not used
        assert run(url, src, tmp_path / "3.ndjson", "--max-age", "0s").returncode == 0
        assert emulator_stats(url, reset=True)["keys_asked"] == len(expected)
        assert (
            run(url, src, tmp_path / "4.ndjson", "--cache-only", "--max-age", "1h").returncode == 0
        )
        assert emulator_stats(url)["total_requests"] == 0


def test_cache_honours_ttl_and_purges() -> None:
    now = [1_000_000.0]
    path = Path(os.environ["XDG_CACHE_HOME"]) / "t.sqlite3"
    cache = Cache(path, max_ttl=3600, default_ttl=60, clock=lambda: now[0], identity=API)
    cache.store(
        Endpoint.DOMAIN,
        [
            ("a.com", "benign", line_of("a.com"), 10_000),
            ("b.com", "unknown", line_of("b.com"), None),
        ],
    )
    cache.store(
        Endpoint.DOMAIN, [("c.com", "benign", line_of("c.com"), 10**12)]
    )  # capped at max_ttl
    cache.flush()
    assert set(cache.lookup(Endpoint.DOMAIN, ["a.com", "b.com", "c.com", "d.com"])) == {
        "a.com", "b.com", "c.com",
    }  # fmt: skip
    assert cache.lookup(Endpoint.FILE, ["a.com"]) == {}
    now[0] += 30  # a.com's ttl (10 s) is over
    assert set(cache.lookup(Endpoint.DOMAIN, ["a.com", "b.com"])) == {"b.com"}
    now[0] += 3600  # everything is over
    assert cache.purge() == 3 and len(cache) == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    cache.close()


def test_cache_writes_coalesce_and_an_empty_endpoint_is_not_looked_up(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3", max_ttl=3600, default_ttl=60, identity=API)
    assert cache.empty_endpoints() == set(Endpoint)
    for i in range(300):  # many small batches: queued ones go in one transaction
        cache.store(Endpoint.DOMAIN, [(f"d{i}.example", "benign", line_of(f"d{i}.example"), None)])
    assert cache.empty_endpoints() == {Endpoint.FILE, Endpoint.IP}  # after what was queued
    assert cache.stored == 300 and len(cache.lookup(Endpoint.DOMAIN, ["d7.example"])) == 1
    cache.close()


async def test_a_second_run_in_the_same_process_is_answered_by_the_first(tmp_path: Path) -> None:
    # a run skips lookups for endpoints the cache had nothing for when it started; the next
    # run, with the same Enricher and cache, must still find what the first one stored
    from enricher.config.settings import load_settings
    from enricher.emulator import Emulator, EmulatorConfig
    from enricher.pipeline.run import Enricher

    iocs = [f"h{i}.example.com" for i in range(300)] + [
        f"11.0.{i // 250}.{i % 250}" for i in range(300)
    ]
    async with Emulator(EmulatorConfig()) as emu:
        settings = load_settings(
            environ={}, overrides={"api": {"base_url": emu.base_url}, "limits": {"rate": 0}}
        )
        cache = Cache(tmp_path / "c.sqlite3", max_ttl=3600, default_ttl=3600, fmt="f")
        async with Enricher(settings, cache=cache, cache_owner=False) as e:
            first = [item async for item in e.enrich(iocs[:400])]
            asked = emu.stats()["total_requests"]
            second = [item async for item in e.enrich(iocs)]
        cache.close()
    assert len(first) == 400 and len(second) == 600
    assert sum(1 for r in second if r["cached"]) == 400  # all of the first run's, from the cache
    assert not any("error" in r for r in first + second)
    assert emu.stats()["total_requests"] > asked  # only the 200 new ones were asked


def test_budget_stops_cleanly_and_resume_finishes(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    expected = make_input(src, 1000)
    with plain_emulator() as url:
        first = run(url, src, out, "--max-requests", "10", "--send-sha256", "--no-cache")
        assert first.returncode == 2, first.stderr
        assert emulator_stats(url)["total_requests"] == 10
        records, failures, deferred = outputs(out)
        assert len(records) + len(failures) + len(deferred) == len(expected)
        assert len(records) == 10 * 50
        second = run(url, src, out, "--resume", "--send-sha256", "--no-cache")
        assert second.returncode == 0, second.stderr
    assert_exactly_once(out, expected)
    assert not (tmp_path / "out.ndjson.deferred.ndjson").exists()


def test_daily_budget_is_shared_by_the_runs_of_a_day(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    src = tmp_path / "in.txt"
    expected = make_input(src, 300)
    env = {"ENRICHER_LIMITS_DAILY_BUDGET": "4"}
    with plain_emulator() as url:
        base = ["run", str(src), "--base-url", url, "--rate", "0", "--batch-size", "50"]
        one = enricher(*base, "-o", str(tmp_path / "1.ndjson"), env=env)
        assert one.returncode == 2 and emulator_stats(url)["total_requests"] == 4
        # the same day, another output: no request left, everything still open is deferred
        two = enricher(*base, "-o", str(tmp_path / "2.ndjson"), env=env)
        assert two.returncode == 2 and emulator_stats(url)["total_requests"] == 4
    _, _, deferred = outputs(tmp_path / "2.ndjson")
    records, failures, _ = outputs(tmp_path / "1.ndjson")
    done = {r["ioc"] for r in records + failures}
    assert {d["ioc"] for d in deferred} == expected - done


def test_manifest_says_what_happened_and_no_secret(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    src, out, manifest = tmp_path / "in.txt", tmp_path / "out.ndjson", tmp_path / "run.json"
    make_input(src, 80)
    env = {"ENRICHER_PASSWORD": "pw-should-never-show", "ENRICHER_AUTH_HEADER": "Bearer tok-secret"}
    with plain_emulator() as url:
        proc = enricher(
            "run", str(src), "-o", str(out), "--base-url", url.replace("http://", "http://u:pw-in-url@"),
            "--rate", "0", "--manifest", str(manifest), "--send-sha256", env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = manifest.read_text()
    for secret in ("pw-should-never-show", "tok-secret", "pw-in-url"):
        assert secret not in text and secret not in proc.stderr
    doc = orjson.loads(text)
    assert doc["exit_code"] == 0 and doc["invariant_holds"] is True
    counts = doc["counts"]
    assert counts["unique"] == 80 == counts["ok"] == counts["queried"]
    assert counts["lines_read"] == 120 and counts["duplicates"] == 40
    assert doc["requests"]["total"] >= 3 and doc["rate_limited_429"] == 0
    assert set(doc["latency_ms"]) == {"p50", "p95", "p99"}
    assert doc["settings"]["api"]["base_url"].startswith("http://***@127.0.0.1")
    assert doc["inputs"] == [{"path": str(src), "read_as": "lines"}]
    assert doc["first_record_s"] >= 0
    assert doc["peak_rss_mib"] is None or 10 < doc["peak_rss_mib"] < 2048
    # uvloop runs the job where it is installed (enricher[fast]), else asyncio's own loop
    assert doc["event_loop"] == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_the_event_loop_can_be_chosen(
    tmp_path: Path, choice: str, plain_emulator: PlainEmulator
) -> None:
    src, out, manifest = tmp_path / "in.txt", tmp_path / "out.ndjson", tmp_path / "run.json"
    make_input(src, 30)
    env = {"ENRICHER_PIPELINE_EVENT_LOOP": choice}
    with plain_emulator() as url:
        proc = enricher(
            "run", str(src), "-o", str(out), "--base-url", url, "--rate", "0",
            "--manifest", str(manifest), "--send-sha256", env=env,
        )  # fmt: skip
    if choice == "uvloop" and importlib.util.find_spec("uvloop") is None:
        # asked for and missing: one clear line, not a traceback
        assert proc.returncode == 1 and "uvloop is not installed" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(manifest.read_text())["event_loop"] == choice


@pytest.mark.parametrize("where", ["a directory", "a missing directory"])
def test_a_manifest_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, where: str
) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    make_input(src, 10)
    manifest = tmp_path if where == "a directory" else tmp_path / "nowhere" / "run.json"
    proc = enricher(
        "run", str(src), "-o", str(out), "--base-url", "http://127.0.0.1:9/none",
        "--manifest", str(manifest), "--no-cache",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # a usage error, before any request
    assert "--manifest" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_repair_cuts_only_a_torn_last_line(tmp_path: Path) -> None:
    f = tmp_path / "o.ndjson"
    f.write_bytes(b'{"ioc":"a.com","type":"domain"}\n{"ioc":"b.co')
    assert repair(f) == len(b'{"ioc":"b.co')
    assert f.read_bytes() == b'{"ioc":"a.com","type":"domain"}\n'
    assert repair(f) == 0
    done = Deduper()
    assert read_written([str(f)], done) == 1 and (IocType.DOMAIN, "a.com") in done


def test_sigkill_at_random_moments_then_resume_is_exactly_once(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    expected = make_input(src, 4000, seed=5)
    rng = random.Random(11)
    sizes = []
    with emulator_process("--latency-ms", "100", "--jitter-ms", "30") as url:
        flags: tuple[str, ...] = ()
        for _ in range(10):  # bounded: ten kills at random moments, mid-write included
            before = out.stat().st_size if out.exists() else 0
            proc = start_run(url, src, out, *flags)
            sizes.append(kill_when_written(proc, out, before, rng.uniform(0.0, 0.5)))
            flags = ("--resume",)
        # the rest at full speed: the kills, not the last run, are what this test is about
        proc = start_run(url, src, out, "--resume", "--concurrency", "8", "--batch-size", "100")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)  # each run got further
    assert_exactly_once(out, expected)


def test_sigint_stops_gracefully_then_resume_finishes(tmp_path: Path) -> None:
    src, out, manifest = tmp_path / "in.txt", tmp_path / "out.ndjson", tmp_path / "m.json"
    expected = make_input(src, 2400, seed=6)
    with emulator_process("--latency-ms", "100") as url:
        proc = start_run(url, src, out, "--manifest", str(manifest))
        deadline = time.monotonic() + 30  # once it writes (start-up is slower under load)
        while not (out.exists() and out.stat().st_size > 0):
            assert time.monotonic() < deadline, "the run wrote nothing in 30 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 3, err.decode()
        assert b"Traceback" not in err and b"--resume" in err
        doc = orjson.loads(manifest.read_bytes())
        assert doc["stopped"] == "interrupted" and doc["invariant_holds"] is True
        records, failures, deferred = outputs(out)
        assert records and deferred
        assert len(records) + len(failures) + len(deferred) == doc["counts"]["unique"]
        proc = start_run(url, src, out, "--resume")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert_exactly_once(out, expected)


def test_json_logs_and_progress(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    make_input(src, 40)
    proc = enricher(
        "run", "--emulator", str(src), "-o", str(tmp_path / "o"), "--log-format", "json"
    )
    assert proc.returncode == 0
    events = [orjson.loads(line) for line in proc.stderr.splitlines()]
    summary = [e for e in events if e["event"] == "summary"]
    assert len(summary) == 1 and summary[0]["data"]["unique"] == 40
    proc = enricher("run", "--emulator", str(src), "-o", str(tmp_path / "p"), "--progress")
    assert proc.returncode == 0
    # a short run may end before the first redraw; the flag must at least be accepted
    assert "invariant" in proc.stderr


@pytest.mark.parametrize("flag", ["--max-age", "--max-requests"])
def test_bad_nightly_flags(flag: str) -> None:
    proc = enricher("run", flag, "soon")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_a_changed_verdict_table_remakes_cached_records(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    src = tmp_path / "in.txt"
    make_input(src, 200)
    with plain_emulator() as url:
        assert run(url, src, tmp_path / "1.ndjson").returncode == 0
        emulator_stats(url, reset=True)
        cfg = tmp_path / "v.toml"
        cfg.write_text('[verdicts]\nindifferent = "suspicious"\n')
        proc = enricher(
            "run", str(src), "-o", str(tmp_path / "2.ndjson"), "--base-url", url, "--rate", "0",
            "--config", str(cfg),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert emulator_stats(url)["total_requests"] == 0  # all from the cache
    first = {r["ioc"]: r for r in read_ndjson(tmp_path / "1.ndjson")}
    second = {r["ioc"]: r for r in read_ndjson(tmp_path / "2.ndjson")}
    assert set(first) == set(second)
    changed = [i for i, r in first.items() if r["classification"] == "indifferent"]
    assert changed
    for ioc in changed:
        assert first[ioc]["verdict"] == "benign"
        assert second[ioc]["verdict"] == "suspicious" and second[ioc]["cached"] is True


def test_deferred_survive_a_run_that_never_reached_them(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    expected = make_input(src, 200)
    other = tmp_path / "other.txt"
    other.write_text("only.example.com\n")
    with emulator_process("--api-token", "tok-right-1") as url:
        env = {"ENRICHER_AUTH_HEADER": "Bearer tok-right-1"}
        # one job (as a nightly job with dated outputs is): its deferred IOCs are its own
        base = ["--base-url", url, "--rate", "0", "--batch-size", "50", "--job", "nightly"]
        auth = {"ENRICHER_AUTH_MODE": "header"}
        one = enricher("run", str(src), "-o", str(tmp_path / "1"), "--max-requests", "2", *base,
                       env={**env, **auth})  # fmt: skip
        assert one.returncode == 2, one.stderr
        # wrong credentials: the run stops at once and must not forget what run 1 deferred
        two = enricher("run", str(other), "-o", str(tmp_path / "2"), *base,
                       env={"ENRICHER_AUTH_HEADER": "Bearer tok-wrong-1", **auth})  # fmt: skip
        assert two.returncode == 3, two.stderr
        three = enricher("run", str(other), "-o", str(tmp_path / "3"), *base, env={**env, **auth})
        assert three.returncode == 0, three.stderr
    written = set()
    for n in ("1", "3"):
        records, failures, _ = outputs(tmp_path / n)
        written |= {r["ioc"] for r in records + failures}
    assert written == expected | {"only.example.com"}


def test_progress_line_and_eta() -> None:
    import io

    from enricher.output.console import Progress
    from enricher.pipeline.stats import RunStats

    stats = RunStats(started=time.monotonic() - 10.0)
    stats.unique, stats.ok, stats.requests, stats.retries = 1000, 500, 7, 2
    stats.bytes_read = 50
    line = Progress(stats, live=True, json=False, total_bytes=100, stream=io.StringIO()).line()
    # half the input read holds 1,000 unique IOCs: about 2,000 in all, 1,500 left at 50/s
    assert line.startswith("500 IOCs done · 50/s · 7 requests · 2 retries · 0 errors")
    assert line.endswith("50% read · ETA 0:00:30")
