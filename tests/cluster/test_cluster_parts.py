"""The cluster's tasks as plain functions: what travels to a worker, and how an IOC finds
its part."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from enricher.cluster.client import ClusterEnricher
from enricher.cluster.forkserver import asked_for_workers
from enricher.cluster.parts import (
    _whole_batches,
    enrich_new,
    part_of,
    read_input,
    settings_from,
    settings_wire,
)
from enricher.config.settings import load_settings
from enricher.inputs import InputOptions
from enricher.ioc import Endpoint, IocType
from enricher.pipeline.dedupe import Deduper
from enricher.pipeline.stats import RunStats


def test_a_deduper_travels_to_workers() -> None:
    # --resume: the IOCs already written go to every part's task
    done = Deduper()
    keys = [(IocType.MD5, "0" * 32), (IocType.SHA1, "1" * 40), (IocType.SHA256, "2" * 64),
            (IocType.DOMAIN, "evil.example.com"), (IocType.IPV4, "8.8.8.8"),
            (IocType.IPV6, "2001:db8::1")]  # fmt: skip
    for key in keys:
        done.add(*key)
    copy = pickle.loads(pickle.dumps(done))
    assert all(key in copy for key in keys)
    assert len(copy) == len(keys)
    assert (IocType.DOMAIN, "good.example.com") not in copy


def test_settings_travel_to_workers() -> None:
    settings = load_settings(
        environ={"ENRICHER_LIMITS_RATE": "7", "ENRICHER_VERDICTS_SINKHOLED": "benign"}
    )
    again = settings_from(pickle.loads(pickle.dumps(settings_wire(settings))))
    assert again == settings
    assert again.verdicts["sinkholed"] == "benign"


def test_an_iocs_part_is_the_same_in_every_process() -> None:
    # not Python's hash(), which each process salts differently
    values = ["evil.example.com", "8.8.8.8", "0" * 32]
    code = f"from enricher.cluster.parts import part_of\nprint([part_of(v, 7) for v in {values!r}])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([part_of(v, 7) for v in values])


def test_a_read_keeps_max_rejects_and_counts_the_rest(tmp_path: Path) -> None:
    """A garbage input's rejects past --max-rejects stay on the worker as a count, not in
    memory on it and the client (attack15-cluster.md, finding 3); the job counts them as
    not written, as one process does."""
    source = tmp_path / "bad.txt"
    source.write_text("".join(f"not an ioc {i} !!\n" for i in range(10)) + "example.com\n")
    read = read_input(str(source), InputOptions(), max_line=1 << 20, parts=2, max_rejects=3)
    assert len(read.rejects) == 3 and read.rejects_dropped == {str(source): 7}
    assert sum(map(len, read.parts)) == 1
    stats = RunStats()
    job = ClusterEnricher(
        load_settings("emulator"), stats=stats, inputs=[], reading=InputOptions(), read_as={}
    )
    assert job._read(read).rejects == read.rejects
    assert stats.rejects_not_written == {str(source): 7}
    assert stats.rejected == 10


def test_inputs_are_said_in_their_order_not_their_reads(tmp_path: Path) -> None:
    """The summary's and the manifest's inputs, and their rejects past --max-rejects, in the
    order given, as one process says them: reads complete in any order."""
    paths = [str(tmp_path / f"in{i}.txt") for i in range(3)]
    for path in paths:
        Path(path).write_text("8.8.8.8\nnot an ioc ###\nbad ioc ###\n")
    stats, read_as = RunStats(), {}
    job = ClusterEnricher(
        load_settings("emulator"), stats=stats, inputs=paths, reading=InputOptions(),
        read_as=read_as,
    )  # fmt: skip
    for path in reversed(paths):
        job._read(read_input(path, InputOptions(), max_line=1 << 20, parts=2, max_rejects=1))
    job._in_inputs_order()
    assert list(read_as) == paths
    assert list(stats.rejects_not_written.items()) == [(path, 1) for path in paths]


def test_a_wave_of_nothing_new_opens_no_enricher(tmp_path: Path) -> None:
    """A part's later waves of reads (a log's vocabulary again) count the IOCs its waves
    before met as duplicates, and with nothing new open no `Enricher` (its state, its
    Redis connection): the settings' state here is unreachable, so one opened would fail."""
    wire = settings_wire(load_settings(environ={"ENRICHER_STATE_URL": "redis://127.0.0.1:1/0"}))
    seen = {"a.example.com", "8.8.8.8"}
    part = enrich_new(wire, 3, ["8.8.8.8", "a.example.com", "8.8.8.8"], seen)
    assert part.index == 3 and part.fatal is None and not part.outcome.lines
    assert part.counts["duplicates"] == 3 and part.counts["unique"] == 0
    assert seen == {"a.example.com", "8.8.8.8"}


def test_a_balanced_plan_cuts_small_inputs_finer(tmp_path: Path) -> None:
    """Blocks of `cluster.block_bytes` at most, and no bigger than the inputs cut in
    `balance` blocks a thread, down to 2 MB: two inputs of 4 MB on 2 threads are read in
    2 MB blocks, where `block_bytes` (16 MB) alone would read each whole."""
    paths = []
    for i in range(2):
        path = tmp_path / f"in{i}.txt"
        path.write_bytes(b"8.8.8.8\n" * 500_000)
        paths.append(str(path))
    job = ClusterEnricher(
        load_settings("emulator"), stats=RunStats(), inputs=paths, reading=InputOptions(),
        read_as={},
    )  # fmt: skip
    job._threads = 2
    plans = job._plan(max_line=1 << 20)
    halves = [(0, 2_000_000), (2_000_000, 4_000_000)]
    assert [[(b.start, b.end) for b in plan] for plan in plans] == [halves, halves]
    job.settings = load_settings("emulator", overrides={"cluster": {"block_bytes": 0}})
    assert job._plan(max_line=1 << 20) == paths


@pytest.mark.parametrize(
    ("argv", "asked"),
    [
        (["run", "a.txt", "--workers", "2"], True),
        (["run", "--workers=3", "a.txt"], True),
        (["run", "a.txt", "--workers", "1"], False),
        (["run", "a.txt"], False),
        (["run", "a.txt", "--workers", "2", "--cluster", "tcp://h:8786"], False),
        (["run", "a.txt", "--workers=2", "--cluster=tcp://h:8786"], False),
        (["lookup", "--workers", "2"], False),
        (["run", "--workers"], False),
        (["run", "a.txt", "--workers", "¹"], False),  # a digit, not an int: argparse says so
        (["run", "a.txt", "--workers=²"], False),
        (["run", "a.txt", "--workers", " 2"], True),  # as argparse reads it
    ],
)
def test_the_command_line_asks_for_a_fork_server_early(argv: list[str], asked: bool) -> None:
    assert asked_for_workers(argv) is asked


def test_a_wave_holds_back_what_does_not_fill_a_batch() -> None:
    batches = {Endpoint.FILE: 2, Endpoint.DOMAIN: 3, Endpoint.IP: 2}
    held: list[str] = []
    seen: set[str] = set()
    values = ["a.example.com", "b.example.com", "8.8.8.8", "a.example.com"]
    part = enrich_new({}, 0, values, seen, held=held, batches=batches)
    # nothing filled a batch: no Enricher opened (its settings are not even there)
    assert (bool(part.outcome), part.counts["duplicates"], part.counts["unique"]) == (False, 1, 0)
    assert held == ["a.example.com", "b.example.com", "8.8.8.8"]
    assert _whole_batches([*held, "c.example.com", "1.1.1.1"], batches) == [
        "a.example.com", "b.example.com", "c.example.com", "8.8.8.8", "1.1.1.1"
    ]  # fmt: skip
    taken = [*held, "c.example.com", "d.example.com"]
    assert _whole_batches(taken, batches) == ["a.example.com", "b.example.com", "c.example.com"]
    assert taken == ["d.example.com", "8.8.8.8"]


def test_a_stopped_job_says_why(tmp_path: Path) -> None:
    # as one process's run says it: the summary said "done in …", the manifest "stopped": null
    stats = RunStats()
    job = ClusterEnricher(
        load_settings("emulator"), stats=stats, inputs=["a"], reading=InputOptions(), read_as={}
    )
    job.stop()
    assert job.interrupted and stats.stopped == "interrupted"
    # an input that could not be read (removed as the job ran: exit 1)
    stats = RunStats()
    job = ClusterEnricher(
        load_settings("emulator"), stats=stats, inputs=["a"], reading=InputOptions(), read_as={}
    )
    job._read(read_input(str(tmp_path / "gone.txt"), InputOptions(), max_line=1 << 20, parts=2))
    assert job.input_error is not None and stats.stopped == str(job.input_error)
    assert "gone.txt" in stats.stopped
