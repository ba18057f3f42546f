"""The benchmark suite in one command: `python -m benchmarks [--quick]` from the repository root.

The scenarios, most of them against `enricher emulator` in a process of its own (the seventh,
text extraction against the public extractors, is also `python -m benchmarks extract-peers`),
each printing its line as it finishes; one that fails is reported as failed, with its reason,
and the rest still run.
Results go to benchmarks/results/latest.json and latest.md (headed with the machine, the Python,
the enricher version and commit, the date and this command), and the plot of IOCs/s over time
of the scale runs to latest.png when matplotlib is installed (the `plot` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import (
    baselines,
    cache_hits,
    extract_peers,
    fault_storm,
    input_formats,
    instructions,
    messy,
    rate_fidelity,
    scale,
    shared_state,
    workers,
)
from benchmarks.bytecode import compile_sources
from benchmarks.emulator_throughput import bodies_for, transport_ceiling
from benchmarks.workload import expected, unique_iocs, write_input
from enricher import __version__
from enricher.emulator.process import emulator_process

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
T = TypeVar("T")

#: The baselines' fault mix: 5% 5xx, 2% dropped connections, 2% truncated bodies, 1% of keys
#: left out of the answers.
FAULT_MIX = ("--server-error-rate", "0.05", "--drop-rate", "0.02", "--malformed-json-rate",
             "0.02", "--missing-key-rate", "0.01", "--seed", "11")  # fmt: skip

TARGETS = {
    "ceiling_ratio": 0.85,
    "iocs_per_s": 100_000,
    "used_share": 0.98,
    "bytes_per_unique": 80,  # issue 16 (it was 100)
    # issue 16
    "floor_ratio": 0.8,  # engine / floor on the tidy input
    "cpu_us_tidy": 7.0,  # engine CPU (user + sys) per unique IOC
    "cpu_us_messy": 10.0,
    "cache_ratio": 0.6,  # with a fresh cache / without, unique IOCs/s
    "cache_rss_ratio": 1.5,  # peak RSS with a fresh cache / without
    "warm_iocs_per_s": 200_000,
}


@dataclass(frozen=True)
class Sizes:
    main_lines: int  # the input of the ceiling, the engine, the baselines and the cache
    scale_lines: tuple[int, ...]
    fault_lines: int
    one_by_one_keys: int
    one_by_one_seconds: float
    latency_seconds: float
    format_lines: int
    format_text_mb: float
    format_runs: int
    peers_mb: float = 10.0  # text extraction against the public extractors (extract_peers)
    peer_seconds: float = 4.0
    floor_runs: int = 3  # the floor scenario: alternating runs of each contender, the median
    # text extraction with --workers 2 against 1 (workers.py): 812 MB of logs, where the
    # cluster's fixed start-up (seconds) is small beside the reading, as on a night's input
    workers_mb: float = 1000.0
    shared_seconds: float = 30.0  # jobs sharing one Redis state: their requests together


QUICK = Sizes(
    200_000,
    (200_000,),
    20_000,
    1_000,
    5,
    12,
    50_000,
    1,
    1,
    1.0,
    1.0,
    workers_mb=20,
    shared_seconds=15,
)
FULL = Sizes(1_000_000, (1_000_000, 10_000_000), 200_000, 5_000, 20, 20, 1_000_000, 40, 1)
CONCURRENCY = 8  # the engine's default, and what the ceiling and the gather baseline use
BATCH = 500  # likewise


@dataclass
class Suite:
    sizes: Sizes
    tmp: Path
    base_url: str  # the clean emulator, shared by the scenarios that need no faults
    loop: str  # the event loop of the suite's own ceiling client
    engine: dict[str, Any] | None = None  # the engine's run on the main input (scenario 1)
    main_input: tuple[Path, int] | None = None
    event_loops: set[str] = field(default_factory=set)
    plot_series: list[tuple[str, list[tuple[float, int]]]] = field(default_factory=list)

    def input(self) -> tuple[Path, int]:
        """The main input (half duplicates), written once."""
        if self.main_input is None:
            path = self.tmp / "main.txt"
            self.main_input = path, write_input(path, self.sizes.main_lines)
        return self.main_input

    def saw(self, run: dict[str, Any]) -> None:
        self.event_loops.add(run.get("event_loop") or "not reported by the engine")


@dataclass
class Row:
    scenario: str
    what: str
    figure: str
    target: str = ""
    verdict: str = ""  # met, not met, failed: ..., or empty


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _mib(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _run_loop(coro: Coroutine[Any, Any, T], loop: str) -> T:
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


# --- 1. transport ceiling --------------------------------------------------------------------


def ceiling(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    src, unique = suite.input()
    bodies = bodies_for(unique_iocs(unique), BATCH)  # built before any clock starts

    def ceiling_run() -> dict[str, float]:
        return _run_loop(transport_ceiling(suite.base_url, bodies, CONCURRENCY), suite.loop)

    # ceiling, engine, ceiling, engine, ceiling: the best of each, so that a burst of load
    # from elsewhere on the machine costs neither side its figure
    ceilings = [ceiling_run()]
    engines = []
    for _ in range(2):
        run = scale.run_enricher([str(src)], scale.enricher_flags(suite.base_url, None))
        if run.exit_code != 0 or run.records != unique:
            raise RuntimeError(
                f"the engine run failed: exit {run.exit_code}, {run.records:,} records of "
                f"{unique:,}: {' | '.join(run.stderr_tail[-3:])}"
            )
        engines.append(run.summary())
        suite.saw(engines[-1])
        ceilings.append(ceiling_run())
    top = max(r["keys_per_s"] for r in ceilings)
    engine = max(engines, key=lambda e: float(e["iocs_per_s"]))
    suite.engine = engine
    rate = engine["iocs_per_s"]
    ratio = rate / top
    each = ", ".join(_n(e["iocs_per_s"]) for e in engines)
    rows = [
        Row("1. transport ceiling", f"minimal client, {CONCURRENCY} connections, batch {BATCH}",
            f"{_n(top)} IOCs/s (best of {', '.join(_n(r['keys_per_s']) for r in ceilings)})"),
        Row("1. transport ceiling", f"engine end to end, {suite.sizes.main_lines:,} lines, "
            f"{unique:,} unique, --no-cache", f"{_n(rate)} unique IOCs/s (best of {each})",
            f">= {_n(TARGETS['iocs_per_s'])}", _met(rate >= TARGETS["iocs_per_s"])),
        Row("1. transport ceiling", "**engine / ceiling**", f"**{ratio:.2f}**",
            f">= {TARGETS['ceiling_ratio']}", _met(ratio >= TARGETS["ceiling_ratio"])),
    ]  # fmt: skip
    data = {"unique": unique, "lines": suite.sizes.main_lines, "ceiling_runs": ceilings,
            "ceiling_iocs_per_s": top, "engine_runs": engines, "engine": engine,
            "ratio": ratio}  # fmt: skip
    return rows, data


# --- 1b. the floor: the least any correct pipeline must do ----------------------------------

FLOOR = HERE / "floor.py"
ON_ASYNCIO = "engine on asyncio's loop"
FLOOR_NORMALIZE = "floor, enricher's normalize"
WITH_CACHE = "engine, fresh cache"


@dataclass(frozen=True)
class Contender:
    name: str
    run: Callable[[], scale.CliRun]


def _contenders(suite: Suite, src: Path, messy_input: bool) -> list[Contender]:
    """The engine and the floor over `src`; on the tidy input the engine on asyncio's loop too
    (issue 16: uvloop measured with and without), on the messy one the floor with enricher's
    `normalize` (what it costs over the floor's own) and the engine with a fresh cache."""
    flags = scale.enricher_flags(suite.base_url, None) + ["--send-sha256"] * messy_input
    floor_cmd = [sys.executable, str(FLOOR), suite.base_url, str(src)]
    with_normalize = [*floor_cmd, "--normalize", "enricher"]
    asyncio_loop = {"ENRICHER_PIPELINE_EVENT_LOOP": "asyncio"}
    out = [
        Contender("engine", lambda: scale.run_enricher([str(src)], flags)),
        Contender("floor", lambda: scale.run_process(floor_cmd)),
    ]
    if messy_input:
        out.append(Contender(FLOOR_NORMALIZE, lambda: scale.run_process(with_normalize)))
        cache = suite.tmp / "floor-cache.sqlite3"

        def fresh_cache() -> scale.CliRun:
            for path in cache.parent.glob(cache.name + "*"):  # the file and its WAL
                path.unlink()
            cached = [*scale.enricher_flags(suite.base_url, cache), "--send-sha256"]
            return scale.run_enricher([str(src)], cached)

        out.append(Contender(WITH_CACHE, fresh_cache))
    else:
        run = functools.partial(scale.run_enricher, [str(src)], flags, env=asyncio_loop)
        out.append(Contender(ON_ASYNCIO, run))
    return out


def _median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def _alternate(
    inputs: list[tuple[str, list[Contender], int]], times: int
) -> dict[str, dict[str, list[Any]]]:
    """Each input's contenders `times` times, in turn, the inputs interleaved round by round
    (a drift of the machine's load lands on every input alike, not on the one measured last);
    each run's summary with its unique IOCs/s from process start to exit and its CPU time
    per unique IOC, by input label and contender name."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        label: {c.name: [] for c in contenders} for label, contenders, _ in inputs
    }
    for _ in range(times):
        for label, contenders, unique in inputs:
            for c in contenders:
                run = c.run()
                if run.exit_code != 0 or run.records != unique:
                    raise RuntimeError(
                        f"{label}, {c.name}: exit {run.exit_code}, {run.records:,} records of "
                        f"{unique:,}: " + " | ".join(run.stderr_tail[-3:])
                    )
                summary = run.summary()
                summary["unique_per_s"] = unique / run.wall_s
                summary["cpu_us_per_unique"] = (run.user_s + run.sys_s) / unique * 1e6
                runs[label][c.name].append(summary)
    return runs


def _startup_cpu(suite: Suite) -> dict[str, float]:
    """CPU seconds of each contender over a 4-line file: the interpreter, the imports and
    the session, which the CPU per unique IOC includes (0.5 s is 5 µs per IOC at 100,000)."""
    tiny = suite.tmp / "tiny.txt"
    write_input(tiny, 4, duplicates=0.0)
    each = {
        c.name: c for messy_input in (False, True) for c in _contenders(suite, tiny, messy_input)
    }
    runs = _alternate([("4 lines", list(each.values()), 4)], 1)["4 lines"]
    return {name: r[0]["user_s"] + r[0]["sys_s"] for name, r in runs.items()}


def floor(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    tidy_src, tidy_unique = suite.input()
    startup = _startup_cpu(suite)
    messy_src = suite.tmp / "messy.txt"
    messy_unique = messy.write_messy(messy_src, suite.sizes.main_lines)
    rows: list[Row] = []
    data: dict[str, Any] = {"runs_each": suite.sizes.floor_runs, "startup_cpu_s": startup}
    inputs = [("tidy", tidy_src, tidy_unique), ("messy", messy_src, messy_unique)]
    measured = _alternate(
        [(label, _contenders(suite, src, label == "messy"), n) for label, src, n in inputs],
        suite.sizes.floor_runs,
    )
    for label, _src, unique in inputs:
        runs = measured[label]
        for name, each in runs.items():
            if name.startswith("engine"):
                for summary in each:
                    suite.saw(summary)
        rate = {name: _median_of(r, "unique_per_s") for name, r in runs.items()}
        cpu = {name: _median_of(r, "cpu_us_per_unique") for name, r in runs.items()}
        lines = suite.sizes.main_lines
        for name, each in runs.items():
            target = verdict = ""
            if name == "engine":
                limit = TARGETS[f"cpu_us_{label}"]
                target, verdict = f"<= {limit:g} µs CPU per unique IOC", _met(cpu[name] <= limit)
            rss = _mib(_median_of(each, "peak_rss_bytes"))
            every = ", ".join(_n(r["unique_per_s"]) for r in each)
            start = startup[name]
            figure = (
                f"{_n(rate[name])} unique IOCs/s process start to exit ({every}); "
                f"{cpu[name]:.1f} µs CPU per unique IOC (start-up {start:.2f} s of it); "
                f"peak RSS {rss}"
            )
            what = f"{label}, {lines:,} lines, {unique:,} unique: {name}"
            rows.append(Row("1b. floor", what, figure, target, verdict))
        ratio = rate["engine"] / rate["floor"]
        target = verdict = ""
        if label == "tidy":
            target = f">= {TARGETS['floor_ratio']}"
            verdict = _met(ratio >= TARGETS["floor_ratio"])
        # CPU per IOC varies less with the machine's load than wall time does
        cpu_ratio = cpu["engine"] / cpu["floor"]
        figure = f"**{ratio:.2f}** (CPU per unique IOC: the engine's {cpu_ratio:.2f} × the floor's)"
        rows.append(Row("1b. floor", f"{label}: **engine / floor**", figure, target, verdict))
        if label == "tidy":
            speed = rate["engine"] / rate[ON_ASYNCIO]
            used = cpu["engine"] / cpu[ON_ASYNCIO]
            figure = f"{speed:.2f} × the IOCs/s, {used:.2f} × the CPU per IOC"
            loop = runs["engine"][0].get("event_loop") or "its default loop"
            rows.append(Row("1b. floor", f"tidy: the engine on {loop} / on asyncio's", figure))
        else:
            extra = cpu[FLOOR_NORMALIZE] - cpu["floor"]
            what = "messy: enricher's `normalize` in the floor instead of its own"
            rows.append(Row("1b. floor", what, f"{extra:+.2f} µs CPU per unique IOC"))
            cached = rate[WITH_CACHE] / rate["engine"]
            rows.append(Row("1b. floor", "messy: the engine with a fresh cache / without",
                            f"{cached:.2f} × the IOCs/s", f">= {TARGETS['cache_ratio']}",
                            _met(cached >= TARGETS["cache_ratio"])))  # fmt: skip
        data[label] = {"lines": lines, "unique": unique, "unique_per_s": rate,
                       "cpu_us_per_unique": cpu, "engine_over_floor": ratio,
                       "engine_cpu_over_floor": cpu_ratio, "runs": runs}  # fmt: skip
    messy_src.unlink()
    return rows, data


# --- 2. what users write by hand -----------------------------------------------------------


def _baseline_options(name: str, sizes: Sizes) -> dict[str, Any]:
    if name == "one_by_one":
        return {"max_keys": sizes.one_by_one_keys, "max_seconds": sizes.one_by_one_seconds}
    if name == "gather_semaphore":
        return {"batch": BATCH, "concurrency": CONCURRENCY}
    return {}


def by_hand(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    src, _unique = suite.input()
    engine_rate = suite.engine["iocs_per_s"] if suite.engine else None
    fault_src = suite.tmp / "faults.txt"
    fault_unique = write_input(fault_src, suite.sizes.fault_lines, seed=2)
    rows: list[Row] = []
    data: dict[str, Any] = {"engine_iocs_per_s": engine_rate, "fault_mix": " ".join(FAULT_MIX),
                            "fault_unique": fault_unique, "baselines": {}}  # fmt: skip
    with emulator_process(*FAULT_MIX) as faulty:
        engine_faults = fault_storm.enrich_and_check(
            fault_src, faulty, expected(fault_unique), ["--rate", "0"]
        )
        engine_faults.pop("summary")
        data["engine_under_faults"] = engine_faults
        for name, how in baselines.BASELINES.items():
            options = _baseline_options(name, suite.sizes)
            clean = baselines.run(name, suite.base_url, src, **options)
            seconds = clean.seconds - (clean.load_seconds if name == "one_by_one" else 0)
            rate = clean.correct() / seconds
            faulted = baselines.run(name, faulty, fault_src, **options)
            lost = faulted.asked - faulted.correct()
            data["baselines"][name] = {
                "what": how, "asked": clean.asked, "correct": clean.correct(),
                "seconds": round(clean.seconds, 3), "iocs_per_s": round(rate, 1),
                "ratio_to_engine": round(rate / engine_rate, 4) if engine_rate else None,
                "faults": {"asked": faulted.asked, "lost": lost, "requests": faulted.requests,
                           "failed_requests": faulted.failed_requests},
            }  # fmt: skip
            ratio = f"{rate / engine_rate:.3f} × engine" if engine_rate else "engine: n/a"
            subset = f" ({clean.asked:,} keys)" if name == "one_by_one" else ""
            rows.append(Row(
                "2. by hand", f"`{name}`: {how}{subset}",
                f"{_n(rate)} IOCs/s = {ratio}; under faults lost {lost:,} of {faulted.asked:,}",
                "slower than the engine, loses more",
                _met(rate < engine_rate) if engine_rate else "",
            ))  # fmt: skip
    lost = engine_faults["lost"]
    rows.append(Row("2. by hand", f"engine under the same faults ({fault_unique:,} unique)",
                    f"lost {lost:,}, exit {engine_faults['exit_code']}", "lost 0",
                    _met(lost == 0 and engine_faults["ok"])))  # fmt: skip
    return rows, data


# --- 3. latency-bound ----------------------------------------------------------------------


def latency_bound(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    report = rate_fidelity.measure(
        rate=20, seconds=suite.sizes.latency_seconds, latency_ms=100, jitter_ms=30
    )
    used = report["used_share"]
    server_429 = report["server_429"]
    rows = [
        Row("3. latency-bound", "100 ms ± 30 ms, 20 requests/s at the server, `--rate 20`: "
            "share of the allowed requests used", f"{used:.2%} ({report['requests']:,} requests "
            f"in {report['run_s']:.1f} s)", f">= {TARGETS['used_share']:.0%}",
            _met(used >= TARGETS["used_share"])),
        Row("3. latency-bound", "429s drawn (server's count)", f"{server_429:,}", "0",
            _met(server_429 == 0)),
    ]  # fmt: skip
    if report["exit_code"] != 0:
        rows[0].verdict = f"failed: exit {report['exit_code']}"
    return rows, report


# --- 4. scale ------------------------------------------------------------------------------


def scale_scenario(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    baseline = scale.baseline_rss(suite.base_url)
    rows: list[Row] = []
    data: dict[str, Any] = {"baseline_rss_bytes": baseline, "sizes": []}
    for lines in suite.sizes.scale_lines:
        src = suite.tmp / f"scale-{lines}.txt"
        unique = write_input(src, lines, seed=3)
        runs = scale.scale_runs(src, suite.base_url, unique, baseline, suite.tmp / "scale.sqlite3")
        src.unlink()
        data["sizes"].append({"lines": lines, "unique": unique, "runs": runs})
        for run in runs:
            suite.saw(run)
            label = f"{lines:,} lines, {unique:,} unique, {run['run']}"
            suite.plot_series.append((label, run["series"]))
            per_ioc = run["bytes_per_unique_above_baseline"]
            figure = (
                f"{_n(run['iocs_per_s'])} unique IOCs/s; peak RSS {_mib(run['peak_rss_bytes'])}, "
                f"{per_ioc:,.0f} B/unique IOC above the {_mib(baseline)} baseline; first "
                f"record {run['first_record_s']} s (engine clock), "
                f"{run['first_record_wall_s']} s from process start"
            )
            target = verdict = ""
            if run["run"] == "no cache":
                # the speed target holds at every size; the memory target is set at 10 M lines
                checks = {"IOCs/s": run["iocs_per_s"] >= TARGETS["iocs_per_s"]}
                target = f">= {_n(TARGETS['iocs_per_s'])}/s"
                if lines >= 10_000_000:
                    checks["memory"] = per_ioc <= TARGETS["bytes_per_unique"]
                    target += f"; <= {TARGETS['bytes_per_unique']} B/IOC"
                missed = [what for what, ok in checks.items() if not ok]
                verdict = "met" if not missed else "not met: " + ", ".join(missed)
            if "error" in run:
                verdict = f"failed: {run['error']}"
            rows.append(Row("4. scale", label, figure, target, verdict))
        rows.append(_cache_against_none(lines, runs))
    return rows, data


def _cache_against_none(lines: int, runs: list[dict[str, Any]]) -> Row:
    """Issue 16: a fresh cache costs at most 40% of the speed and 50% more peak RSS."""
    none, fresh = runs
    speed = fresh["iocs_per_s"] / max(1e-9, none["iocs_per_s"])
    rss = fresh["peak_rss_bytes"] / max(1, none["peak_rss_bytes"])
    ok = speed >= TARGETS["cache_ratio"] and rss <= TARGETS["cache_rss_ratio"]
    return Row("4. scale", f"{lines:,} lines: fresh cache / no cache",
               f"**{speed:.2f}** × the IOCs/s, {rss:.2f} × the peak RSS",
               f">= {TARGETS['cache_ratio']} ×; <= {TARGETS['cache_rss_ratio']} × RSS",
               _met(ok))  # fmt: skip


# --- 5. cache ------------------------------------------------------------------------------


def cache(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    src, unique = suite.input()
    cold, warm = cache_hits.cold_then_warm(src, suite.base_url, suite.tmp / "cache.sqlite3")
    for run in (cold, warm):
        suite.saw(run)
    rows = [
        Row("5. cache", f"{suite.sizes.main_lines:,} lines, {unique:,} unique, warm cache "
            f"(the cold run that filled it: {_n(cold['iocs_per_s'])}/s)",
            f"{_n(warm['iocs_per_s'])} unique IOCs/s, {warm['server_requests']:,} requests",
            f"0 requests; >= {_n(TARGETS['warm_iocs_per_s'])}/s",
            _met(warm["server_requests"] == 0 and warm["exit_code"] == 0
                 and warm["iocs_per_s"] >= TARGETS["warm_iocs_per_s"])),
    ]  # fmt: skip
    return rows, {"unique": unique, "runs": [cold, warm]}


# --- 6. inputs -----------------------------------------------------------------------------


def inputs(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    s = suite.sizes
    results = input_formats.run_cases(s.format_lines, s.format_text_mb, s.format_runs)
    rows = []
    for r in results:
        chosen = r["columns"] or r["fields"]
        how = r["format"] + (f" `{chosen[0]}`" if chosen else "")
        rows.append(Row("6. inputs", f"`{r['file']}` as {how} ({r['mb']} MB), one core",
                        f"{_n(r['lines_per_s'])} lines/s, {r['mb_per_s']} MB/s "
                        f"(read stage alone {r['read_only_mb_per_s']} MB/s)"))  # fmt: skip
    return rows, {"results": results}


# --- 7. text extraction against the public extractors ---------------------------------------


def extraction_peers(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    s = suite.sizes
    results = extract_peers.measure(s.peers_mb, s.peer_seconds)
    verdicts = extract_peers.verdicts(results)
    results["verdicts"] = verdicts
    rows = []
    for name, e in results["extractors"].items():
        if not e["installed"]:
            rows.append(Row("7. extraction", name, "not installed (pip install -e '.[bench]')"))
            continue
        recall = ", ".join(f"{k} {v:.1%}" for k, v in e["recall"].items())
        rows.append(Row("7. extraction", f"{name} {e['version']}".strip(),
                        f"recall {recall}; domain precision {e['precision']['domain']:.1%}; "
                        f"{e['speed']['reports']['mb_per_s']:.2f} MB/s reports, "
                        f"{e['speed']['logs']['mb_per_s']:.2f} MB/s logs"))  # fmt: skip
    missed = [k for k, v in verdicts["recall_per_kind"].items() if not v["met"]]
    figure = "below on " + ", ".join(missed) if missed else "as high or higher on every kind"
    rows.append(
        Row("7. extraction", "enricher's recall against the best peer's, per kind", figure,
            ">= the best peer", _met(not missed))
    )  # fmt: skip
    precision = verdicts["domain_precision"]
    target = f">= {extract_peers.TARGETS['domain_precision']:.0%}"
    rows.append(
        Row("7. extraction", "enricher's domain precision", f"{precision['enricher']:.1%}",
            target, _met(precision["met"]))
    )  # fmt: skip
    for label in ("reports", "logs"):
        v = verdicts[f"speed_{label}"]
        ratio = f" = {v['ratio']:.1f} x the fastest peer" if v["ratio"] else ""
        target = f">= {extract_peers.TARGETS['speed_ratio']:.0f} x the fastest peer"
        if label == "reports":
            target += f", >= {extract_peers.TARGETS['report_mb_per_s']:.0f} MB/s"
        figure = f"{v['enricher_mb_per_s']:.2f} MB/s{ratio}"
        rows.append(
            Row("7. extraction", f"enricher's speed on {label}", figure, target, _met(v["met"]))
        )
    return rows, results


# --- 8. text extraction over workers ---------------------------------------------------------


def workers_scenario(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    r = workers.measure(suite.sizes.workers_mb, 4, 1)
    one, two = r["one_worker"][0], r["two_workers"][0]
    rows = [
        Row("8. workers", f"{r['mb']} MB of logs in 4 files, {one['unique']:,} unique IOCs, "
            f"API idle; --workers 1: {one['wall_s']} s ({r['mb_per_s_one']} MB/s), --workers 2: "
            f"{two['wall_s']} s ({r['mb_per_s_two']} MB/s), cluster start-up included",
            f"{r['speedup']} x", f">= {workers.TARGET} x on 2 cores, the same counts",
            _met(r["met"] and r["same_counts"])),
    ]  # fmt: skip
    return rows, r


# --- 9. shared state -----------------------------------------------------------------------


def shared(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    """Three jobs, disjoint inputs, `--state redis://… --rate 20` each, against a server
    allowing 20 requests/s in all (issue 15), then a fourth over all their inputs."""
    with shared_state.redis_process() as url:
        report = asyncio.run(
            shared_state.measure(url, rate=20, seconds=suite.sizes.shared_seconds, jobs=3)
        )
    once = all(report["exactly_once"]) and report["fourth_exactly_once"]
    rows = [
        Row("9. shared state", "3 jobs at `--rate 20` each, one Redis state, a server allowing "
            "20/s: share of the 20/s used", f"{report['used_share']:.2%} ({report['requests']:,}"
            f" requests in {report['span_s']:.1f} s)", ">= 90%", _met(report["used_share"] >= 0.9)),
        Row("9. shared state", "429s drawn (server's count)", f"{report['server_429']:,} "
            f"({report['share_429']:.2%})", "<= 1%", _met(report["share_429"] <= 0.01)),
        Row("9. shared state", "every job exactly-once; a fourth over all inputs: requests",
            f"{'yes' if once else 'NO'}; {report['fourth_requests']:,}", "yes; 0",
            _met(once and report["fourth_requests"] == 0)),
    ]  # fmt: skip
    return rows, report


# --- 10. start-up --------------------------------------------------------------------------


def startup(suite: Suite) -> tuple[list[Row], dict[str, Any]]:
    """The instructions `enricher` executes to start, by command (`instructions.py`): what
    every cron job, every `lookup` of one IOC and every test that launches it pays."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed")
    tiny = suite.tmp / "startup.txt"
    write_input(tiny, 4, duplicates=0.0)
    by = instructions.startup(suite.base_url, tiny)
    rows = [
        Row("10. start-up", "`enricher run` of 4 lines, `--no-cache`, process start to exit, "
            "valgrind's instruction count", f"{by['run'] / 1e6:,.0f} M instructions"),
        Row("10. start-up", "`enricher lookup 8.8.8.8 --no-cache`",
            f"{by['lookup'] / 1e6:,.0f} M instructions"),
        Row("10. start-up", "`enricher --help`", f"{by['help'] / 1e6:,.0f} M instructions"),
    ]  # fmt: skip
    return rows, {"instructions": by}


SCENARIOS: list[tuple[str, Callable[[Suite], tuple[list[Row], dict[str, Any]]]]] = [
    ("ceiling", ceiling),
    ("floor", floor),
    ("by_hand", by_hand),
    ("latency_bound", latency_bound),
    ("scale", scale_scenario),
    ("cache", cache),
    ("inputs", inputs),
    ("extract_peers", extraction_peers),
    ("workers", workers_scenario),
    ("shared", shared),
    ("startup", startup),
]


# --- the report ----------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.strip()


def machine(command: str, loop: str) -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    dirty = _git("status", "--porcelain", "--", "enricher")
    try:
        import uvloop  # noqa: F401

        has_uvloop = True
    except ImportError:
        has_uvloop = False
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu,
        "python": platform.python_version(),
        "enricher": __version__,
        "commit": _git("rev-parse", "--short", "HEAD") + (" (enricher/ modified)" if dirty else ""),
        "uvloop_installed": has_uvloop,
        "ceiling_client_loop": loop,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(info: dict[str, Any], rows: list[Row], notes: list[str]) -> str:
    loops = ", ".join(info.get("engine_event_loops") or ["not reported by the engine"])
    head = [
        "# Benchmark results",
        "",
        f"`{info['command']}` on {info['date']}",
        "",
        f"- machine: {info['cores']} cores ({info['cores_usable']} usable), {info['cpu']}; "
        f"load average {info['load_average_start']} at the start, "
        f"{info.get('load_average_end')} at the end",
        f"- Python {info['python']}; enricher {info['enricher']}, commit {info['commit']}",
        f"- {info.get('bytecode', 'bytecode: as found')}",
        f"- event loop: engine {loops}; the suite's ceiling client {info['ceiling_client_loop']}"
        f" (uvloop {'installed' if info['uvloop_installed'] else 'not installed'})",
        f"- the emulator in its own process; {info['elapsed_s']:.0f} s in all",
        "",
        "| scenario | what | figure | target | |",
        "|---|---|---|---|---|",
    ]
    body = [
        f"| {r.scenario} | {r.what} | {r.figure} | {r.target} | {r.verdict} |".replace("\n", " ")
        for r in rows
    ]
    return "\n".join(head + body + (["", *notes] if notes else [])) + "\n"


def plot(series: list[tuple[str, list[tuple[float, int]]]], path: Path) -> str:
    """IOCs/s over time of each scale run, as a PNG; or the one-line reason there is none."""
    path.unlink(missing_ok=True)  # never leave an older run's plot beside these results
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install -e '.[plot]')"
    if not series:
        return "no plot: no scale run finished"
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, points in series:
        xs, ys = [], []
        # the rate over windows of about a sixtieth of the run (at least half a second)
        window = max(0.5, points[-1][0] / 60)
        start_t, start_n = points[0]
        for t, n in points[1:]:
            if t - start_t >= window or (t, n) == points[-1]:
                if t > start_t:
                    xs.append((start_t + t) / 2)
                    ys.append((n - start_n) / (t - start_t))
                start_t, start_n = t, n
        ax.plot(xs, ys, label=label)
    ax.set_xlabel("seconds since the process started")
    ax.set_ylabel("records (unique IOCs) per second")
    ax.set_title("enricher run, scale: IOCs/s over time")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path.relative_to(HERE.parent)}"


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="enricher-bench-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: one to two minutes")
    ap.add_argument(
        "--only",
        nargs="+",
        choices=[n for n, _ in SCENARIOS],
        metavar="SCENARIO",
        help="run only these scenarios: " + ", ".join(n for n, _ in SCENARIOS),
    )
    ap.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop of the suite's ceiling client (auto: uvloop if installed)",
    )
    ap.add_argument("--results", type=Path, default=RESULTS, help="where latest.* are written")
    args = ap.parse_args(argv)  # fmt: skip
    loop = args.loop
    if loop == "auto":
        try:
            import uvloop  # noqa: F401

            loop = "uvloop"
        except ImportError:
            loop = "asyncio"
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    info = machine(command, loop)
    info["bytecode"] = compile_sources()  # the engine as installed: see bytecode.py
    print(f"enricher {info['enricher']} ({info['commit']}), Python {info['python']}, "
          f"{info['cores']} cores, load {info['load_average_start']}", flush=True)  # fmt: skip
    started = time.perf_counter()
    rows: list[Row] = []
    results: dict[str, Any] = {}
    chosen = [(n, f) for n, f in SCENARIOS if args.only is None or n in args.only]
    with _scratch() as tmp, emulator_process() as base:
        suite = Suite(QUICK if args.quick else FULL, tmp, base, loop)
        for i, (name, scenario) in enumerate(chosen, 1):
            t0 = time.perf_counter()
            try:
                got, data = scenario(suite)
                results[name] = {"status": "ok", **data}
            except Exception as exc:  # a failed scenario is reported; the others still run
                reason = f"{type(exc).__name__}: {exc}".strip()
                got = [Row(name, "", "", "", f"failed: {reason}")]
                results[name] = {"status": "failed", "reason": reason,
                                 "traceback": traceback.format_exc()}  # fmt: skip
            took = time.perf_counter() - t0
            load = round(os.getloadavg()[0], 2)
            results[name].update(seconds=round(took, 1), load_average_1min=load)
            rows += got
            head = f"[{i}/{len(chosen)} {name}, {took:.0f} s, load {load}]"
            for r in got:
                verdict = f" [{r.verdict}]" if r.verdict else ""
                print(f"{head} {r.what}: {r.figure}{verdict}", flush=True)
    info["elapsed_s"] = round(time.perf_counter() - started, 1)
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    info["engine_event_loops"] = sorted(suite.event_loops)
    args.results.mkdir(parents=True, exist_ok=True)
    note = plot(suite.plot_series, args.results / "latest.png")
    print(note, flush=True)
    (args.results / "latest.json").write_bytes(
        orjson.dumps({"machine": info, "scenarios": results}, option=orjson.OPT_INDENT_2)
    )
    (args.results / "latest.md").write_text(markdown(info, rows, [note]))
    print(f"results: {args.results / 'latest.md'}, latest.json", flush=True)
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
