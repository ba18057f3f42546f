"""`Enricher` as a library: what a playbook, a notebook or a service sees. Every way to use it
wrongly raises the project's errors, every way to leave a run early leaves stats that add up,
and refused credentials are never silent. Against the emulator on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sqlite3
import subprocess
import sys
import threading
import time
import typing
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_helpers import make_iocs, settings_for
from helpers import emulator_process
from mypy import api as mypy_api  # in the test extra

import enricher
from enricher import (
    AuthRefused,
    Deferred,
    Enricher,
    Failure,
    InputError,
    Record,
    Reject,
    RunStats,
    Skipped,
    UsageError,
    enrich_sync,
    load_settings,
)
from enricher.api.identity import identity_of
from enricher.config.settings import Settings, config_path
from enricher.emulator import Emulator, EmulatorConfig
from enricher.state.answers import Cache

# -- refused credentials ----------------------------------------------------------------------


async def test_refused_credentials_raise_after_what_finished() -> None:
    async with Emulator(EmulatorConfig(api_token="tok")) as emu, Enricher(settings_for(emu)) as e:
        items: list[Any] = []
        with pytest.raises(AuthRefused, match="refused our credentials"):
            async for item in e.enrich(make_iocs(300)):
                items.append(item)
    # everything read came out (deferred, for a run with the right credentials) first
    assert len(items) == e.stats.unique == e.stats.deferred > 0
    assert e.stats.invariant_holds


async def test_a_thread_bound_cursor_fails_loudly_and_its_rows_as_a_list_work() -> None:
    """The README: an iterator that must be read in the thread that made it (sqlite3's) is an
    InputError; a list of its rows is the way."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (ioc TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("1.2.3.4",), ("c.example.com",)])
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        with pytest.raises(InputError, match="same thread"):
            [_ async for _ in e.enrich(r[0] for r in db.execute("SELECT ioc FROM t"))]
        rows = [r[0] for r in db.execute("SELECT ioc FROM t")]
        assert len([i async for i in e.enrich(rows)]) == 2
    db.close()


# -- a run that stops before the input's end -----------------------------------------------------


async def test_refused_credentials_give_every_ioc_of_a_long_list_an_item() -> None:
    """The reader runs ~1000 IOCs ahead: the 49,000 it had not read when the credentials
    were refused still come out, deferred (never sent), and are counted."""
    iocs = [f"r{i}.example.com" for i in range(50_000)]
    async with Emulator(EmulatorConfig(api_token="tok")) as emu, Enricher(settings_for(emu)) as e:
        items: list[Any] = []
        with pytest.raises(AuthRefused):
            async for item in e.enrich(iocs):
                items.append(item)
    assert len(items) == len({i["ioc"] for i in items}) == 50_000
    assert e.stats.unique == e.stats.deferred == 50_000 and e.stats.invariant_holds
    assert emu.stats()["total_requests"] <= 8  # the rest were not sent to find out
    assert not e.stats.input_unread


def test_a_deadline_gives_every_ioc_of_a_list_an_item() -> None:
    iocs = [f"d{i}.example.com" for i in range(5000)]

    async def main() -> Any:
        async with Emulator(EmulatorConfig(hang_rate=1.0)) as emu:
            s = settings_for(
                emu,
                network={"read_timeout": 30.0, "total_timeout": 60.0},
                api={"domain_batch_size": 10},  # what the workers hold: 80 IOCs
                pipeline={"read_queue": 1},  # the reader is 1000 IOCs ahead, not 8000
            )
            return await asyncio.to_thread(enrich_sync, iocs, s, deadline=0.5)

    out = asyncio.run(main())
    assert sorted(i["ioc"] for i in out.deferred) == sorted(iocs)
    assert {i["reason"] for i in out.deferred} == {
        "deadline: the run's 0.5 s were up before it was answered",
        "not reached: the run stopped before it",
    }
    assert out.stats.unique == out.stats.deferred == 5000 and out.stats.invariant_holds


@pytest.mark.parametrize("kind", ["list", "set"])
async def test_stop_before_anything_was_read_gives_every_ioc_an_item(kind: str) -> None:
    listed = [f"s{i}.example.com" for i in range(3000)] + ["no IOC", "s1.example.com"]
    iocs = listed if kind == "list" else set(listed)
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        items = e.enrich(iocs, rejects=True)
        e.stop()
        got = [i async for i in items]
    assert emu.stats()["total_requests"] == 0
    deferred = [i for i in got if "reason" in i and "input" not in i]
    assert len(deferred) == 3000 and [i["input"] for i in got if "input" in i] == ["no IOC"]
    assert {i["reason"] for i in deferred} == {"not reached: the run stopped before it"}
    assert e.stats.unique == e.stats.deferred == 3000 and e.stats.invariant_holds
    assert e.stats.rejected == 1 and e.stats.duplicates == (1 if kind == "list" else 0)


async def test_closing_gives_the_rest_of_a_list_to_a_run_going_in_another_task() -> None:
    async with Emulator(EmulatorConfig(latency_ms=30)) as emu:
        e = Enricher(settings_for(emu, api={"domain_batch_size": 20}))
        await e.__aenter__()
        got: list[Any] = []
        first = asyncio.Event()

        async def consume() -> None:
            async for item in e.enrich([f"c{i}.example.com" for i in range(5000)]):
                got.append(item)
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 10)
        await e.__aexit__(None, None, None)
        await asyncio.wait_for(task, 10)
    assert len(got) == len({i["ioc"] for i in got}) == 5000
    assert e.stats.invariant_holds and e.stats.unique == 5000


@pytest.mark.parametrize("kind", ["generator", "async generator"])
async def test_a_stopped_generator_gives_what_it_yielded_and_is_closed(kind: str) -> None:
    """A generator may be endless: it is not drained. What it yielded comes out (what the
    reader had pulled ahead too), it is closed, and the stats say it was not read to its end."""
    yielded = 0
    closed = asyncio.Event() if kind == "async generator" else None
    ended = threading.Event()

    def gen() -> Iterator[str]:
        nonlocal yielded
        try:
            while True:
                yielded += 1
                yield f"g{yielded}.example.com"
        finally:
            ended.set()

    async def agen() -> AsyncIterator[str]:
        for ioc in gen():
            yield ioc
            if yielded % 100 == 0:
                await asyncio.sleep(0)

    async with Emulator(EmulatorConfig(latency_ms=20)) as emu:
        s = settings_for(emu, api={"domain_batch_size": 20})
        async with Enricher(s) as e:
            got = [i async for i in e.enrich(gen() if closed is None else agen(), deadline=0.5)]
    assert ended.wait(5)  # closed
    assert len(got) == len({i["ioc"] for i in got}) == yielded > 0
    assert e.stats.invariant_holds and e.stats.unique == yielded
    assert e.stats.input_unread and e.stats.as_dict()["input_unread"]


# -- what enrich() takes ------------------------------------------------------------------------


async def test_a_sync_iterable_that_raises_loses_nothing() -> None:
    def source() -> Iterator[str]:
        for i in range(1500):
            yield f"h{i}.example.com"
        raise ValueError("the export went away")

    got = set()
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        with pytest.raises(InputError, match="the export went away"):
            async for item in e.enrich(source()):
                got.add(item["ioc"])
    assert got == {f"h{i}.example.com" for i in range(1500)}


async def test_a_blocking_iterable_is_pulled_off_the_event_loop() -> None:
    """A generator that blocks (a socket, a cursor) must not stall the loop: the first item
    is enriched while the generator waits for the loop to release it."""
    released = threading.Event()
    waited: list[bool] = []

    def source() -> Iterator[str]:
        yield "first.example.com"
        waited.append(released.wait(10))  # on the loop's thread this would wait 10 s
        yield "second.example.com"

    got = []
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        async for item in e.enrich(source()):
            got.append(item["ioc"])
            released.set()
    assert got == ["first.example.com", "second.example.com"]
    assert waited == [True]


async def test_rejects_come_as_typed_items_when_asked_for() -> None:
    junk: list[Any] = ["1.2.3.4", "not an ioc", 42, "", "evil[.]example.com"]
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        plain = [item async for item in e.enrich(junk)]
        every = [item async for item in e.enrich(junk, rejects=True)]
    assert sorted(i["ioc"] for i in plain if "ioc" in i) == ["1.2.3.4", "evil.example.com"]
    rejects = [i for i in every if "input" in i]
    assert rejects == [
        {"source": "<iterable>", "line": 2, "input": "not an ioc", "reason": rejects[0]["reason"]},
        {"source": "<iterable>", "line": 3, "input": None, "reason": "not a string: int"},
    ]
    assert len(every) == len(plain) + 2 == 4


@pytest.mark.parametrize("one", ["8.8.8.8", b"8.8.8.8", bytearray(b"x"), 42])
async def test_one_string_or_no_iterable_is_refused(one: Any) -> None:
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        with pytest.raises(UsageError, match="iterable of IOC"):
            e.enrich(one)  # at the call, before anything is read
        assert e.stats.lines_read == 0
    with pytest.raises(UsageError, match="iterable of IOCs"):
        enrich_sync("8.8.8.8")


# -- stop(), runs at once and one after another -----------------------------------------------


async def test_stop_reaches_a_run_while_another_on_the_instance_ended() -> None:
    """Two runs at once on one instance (one pool, one limiter), each with its own stats; the
    short one ends first, and stop() still stops the long one."""
    async with Emulator(EmulatorConfig(latency_ms=30)) as emu:
        s = settings_for(emu, api={"domain_batch_size": 20}, limits={"concurrency": 2})
        async with Enricher(s) as e:
            long_stats, short_stats = RunStats(), RunStats()

            async def long_run() -> list[Any]:
                return [i async for i in e.enrich(make_iocs(3000), stats=long_stats)]

            task = asyncio.create_task(long_run())
            short = [i async for i in e.enrich(["a.example.com"], stats=short_stats)]
            assert [i["ioc"] for i in short] == ["a.example.com"]
            e.stop()
            long = await asyncio.wait_for(task, 30)
            assert not task.cancelled()
            # a later run starts clean: nothing of the stop leaks into it
            again = [i async for i in e.enrich(["b.example.com"])]
            assert e.stats.stopped is None and e.interrupted is False
    assert [i["ioc"] for i in again] == ["b.example.com"]
    assert short_stats.unique == short_stats.ok == 1 and short_stats.stopped is None
    assert long_stats.stopped == "interrupted" and long_stats.deferred > 0
    assert long_stats.invariant_holds and len(long) == long_stats.accounted
    assert any(i.get("reason") == "interrupted before it was sent" for i in long)


async def test_library_stats_say_when_the_first_record_came() -> None:
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        [_ async for _ in e.enrich(["a.example.com", "1.2.3.4"])]
    first = e.stats.as_dict()["first_record_s"]
    # as_dict rounds to the millisecond: 0.008 for a first record at 7.8 ms of 7.8
    assert first is not None and 0 <= first <= e.stats.elapsed + 0.0005


async def test_stats_are_per_run() -> None:
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        [_ async for _ in e.enrich(["a.example.com", "b.example.com"])]
        first = e.stats
        [_ async for _ in e.enrich(["c.example.com"])]
        second = e.stats
    assert first is not second
    assert (first.unique, second.unique) == (2, 1)
    assert (first.requests, second.requests) == (1, 1)
    # each run's clock starts with it, not with the instance: the second began after the first
    assert first.finished is not None and second.finished is not None
    assert first.started < first.finished <= second.started < second.finished


# -- leaving early --------------------------------------------------------------------------------


async def test_break_with_the_generator_held_stops_sending_at_exit() -> None:
    """`break` out of a generator held in a variable does not close it; leaving the
    `async with` does: nothing is sent after it, and the stats add up."""
    async with Emulator(EmulatorConfig(latency_ms=20)) as emu:
        async with Enricher(settings_for(emu, api={"domain_batch_size": 50})) as e:
            items = e.enrich([f"b{i}.example.com" for i in range(5000)])
            async for _ in items:
                break
        sent = emu.stats()["total_requests"]
        await asyncio.sleep(0.3)
        assert emu.stats()["total_requests"] == sent
    assert e.stats.invariant_holds, e.stats.as_dict()
    assert e.stats.deferred > 0 and e.stats.stopped is not None
    await items.aclose()


@pytest.mark.parametrize("how", ["aclosing", "wait_for"])
async def test_leaving_early_leaves_stats_that_add_up(how: str) -> None:
    s = {"domain_batch_size": 50}
    async with (
        Emulator(EmulatorConfig(latency_ms=30)) as emu,
        Enricher(settings_for(emu, api=s)) as e,
    ):
        iocs = [f"c{i}.example.com" for i in range(5000)]
        if how == "aclosing":
            async with contextlib.aclosing(e.enrich(iocs)) as items:
                async for _ in items:
                    break
        else:

            async def consume() -> None:
                async for _ in e.enrich(iocs):
                    pass

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(consume(), 0.3)
        sent = emu.stats()["total_requests"]
        await asyncio.sleep(0.3)
        assert emu.stats()["total_requests"] == sent  # nothing more is sent
        assert e.in_flight == 0
    stats = e.stats
    assert stats.invariant_holds, stats.as_dict()
    assert stats.deferred > 0 and stats.stopped == "left early: the consumer stopped reading"


CTRL_C = """
import asyncio, os, signal, sys
import orjson
from enricher import Enricher, load_settings

async def main(e_box):
    settings = load_settings(overrides={
        "api": {"base_url": sys.argv[1], "domain_batch_size": 20},
        "limits": {"rate": 0, "concurrency": 2},
    })
    async with Enricher(settings) as e:
        e_box.append(e)
        n = 0
        async for _ in e.enrich([f"k{i}.example.com" for i in range(4000)]):
            n += 1
            if n == 40:
                os.kill(os.getpid(), signal.SIGINT)

box = []
try:
    asyncio.run(main(box))
except KeyboardInterrupt:
    stats = box[0].stats
    print(orjson.dumps({"holds": stats.invariant_holds, "unique": stats.unique,
                        "deferred": stats.deferred, "stopped": stats.stopped}).decode())
"""


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[str]:
    """An emulator process answering in 20 ms, for scripts that stop a run part way."""
    with emulator_process("--latency-ms", "20") as url:
        yield url


def _script_against_an_emulator(path: Path, code: str, url: str) -> Any:
    """What `code`, run as a script against the emulator at `url` (its argument), printed:
    one JSON document."""
    path.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(path), url], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return orjson.loads(proc.stdout)


def test_ctrl_c_leaves_stats_that_add_up(tmp_path: Path, slow_emulator: str) -> None:
    found = _script_against_an_emulator(tmp_path / "ctrl_c.py", CTRL_C, slow_emulator)
    assert found["holds"] and found["deferred"] > 0, found


NOTEBOOK_CTRL_C = """
import asyncio, sys
import orjson
import enricher.pipeline.run as engine
from enricher import Enricher, load_settings

real, calls = engine.record_line, [0]


def record_line(*args, **kwargs):
    calls[0] += 1
    if calls[0] == 30:  # Ctrl-C, as a kernel delivers it, landing in a worker of the run
        raise KeyboardInterrupt
    return real(*args, **kwargs)


engine.record_line = record_line
loop = asyncio.new_event_loop()  # a kernel's loop, kept across cells
settings = load_settings(overrides={
    "api": {"base_url": sys.argv[1], "domain_batch_size": 10},
    "limits": {"rate": 0, "concurrency": 2},
})
e = Enricher(settings)
loop.run_until_complete(e.__aenter__())
got = []


async def cell():
    async for item in e.enrich([f"k{i}.example.com" for i in range(3000)]):
        got.append(item)


try:
    loop.run_until_complete(cell())
    raised = None
except KeyboardInterrupt:
    raised = "KeyboardInterrupt"
sent = e.stats.requests
loop.run_until_complete(asyncio.sleep(0.5))  # the next cell
after = e.stats.requests
loop.run_until_complete(e.__aexit__(None, None, None))
print(orjson.dumps({"raised": raised, "items": len(got), "sent": sent, "after": after,
                    "holds": e.stats.invariant_holds, "unique": e.stats.unique,
                    "stopped": e.stats.stopped}).decode())
"""


def test_ctrl_c_inside_the_run_in_a_notebook_loop_stops_it(
    tmp_path: Path, slow_emulator: str
) -> None:
    """A kernel keeps one loop across cells and its Ctrl-C lands wherever that loop is: in a
    stage of the run, it stops the run (nothing is sent in the next cell), every IOC comes
    out, and the KeyboardInterrupt reaches the cell after the last item."""
    found = _script_against_an_emulator(tmp_path / "notebook.py", NOTEBOOK_CTRL_C, slow_emulator)
    assert found["raised"] == "KeyboardInterrupt", found
    assert found["after"] == found["sent"], found  # nothing sent in the next cell
    assert found["items"] == found["unique"] == 3000 and found["holds"], found
    assert found["stopped"] == "interrupted", found


NOTEBOOK_CTRL_C_OUTSIDE = """
import asyncio, os, signal, sys
import orjson
from enricher import Enricher, load_settings

loop = asyncio.new_event_loop()  # a loop kept across cells (IPython's), Python's SIGINT handler
settings = load_settings(overrides={
    "api": {"base_url": sys.argv[1], "domain_batch_size": 10},
    "limits": {"rate": 0, "concurrency": 2},
})
e = Enricher(settings)
loop.run_until_complete(e.__aenter__())
got = []


async def cell():
    async for item in e.enrich([f"k{i}.example.com" for i in range(3000)]):
        got.append(item)
        if len(got) == 40 and sys.argv[2] == "body":  # Ctrl-C in the caller's own code
            os.kill(os.getpid(), signal.SIGINT)


if sys.argv[2] == "callback":  # Ctrl-C in a callback of the loop's, none of the run's tasks
    loop.call_later(0.3, os.kill, os.getpid(), signal.SIGINT)
try:
    loop.run_until_complete(cell())
    raised = None
except KeyboardInterrupt:
    raised = "KeyboardInterrupt"
sent = e.stats.requests
loop.run_until_complete(asyncio.sleep(0.5))  # the next cell
after = e.stats.requests
left = [t.get_name() for t in asyncio.all_tasks(loop) if not t.done()]
loop.run_until_complete(e.__aexit__(None, None, None))
print(orjson.dumps({"raised": raised, "items": len(got), "sent": sent, "after": after,
                    "holds": e.stats.invariant_holds, "unique": e.stats.unique,
                    "stopped": e.stats.stopped, "left": left,
                    "handler": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                    }).decode())
"""


@pytest.mark.parametrize("where", ["callback", "body"])
def test_ctrl_c_outside_the_run_in_a_notebook_loop_stops_it(
    tmp_path: Path, slow_emulator: str, where: str
) -> None:
    """Ctrl-C landing outside the run's tasks (a callback of the loop's; the caller's code
    between items): the run stops at once, nothing is sent in the next cell, no task is left,
    every IOC comes out and the KeyboardInterrupt reaches the cell after the last item;
    Python's handler is back afterwards."""
    script = tmp_path / "outside.py"
    script.write_text(NOTEBOOK_CTRL_C_OUTSIDE)
    proc = subprocess.run(
        [sys.executable, str(script), slow_emulator, where],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr  # nothing logged from a task of ours
    found = orjson.loads(proc.stdout)
    assert found["raised"] == "KeyboardInterrupt", found
    assert found["after"] == found["sent"] and found["left"] == [], found
    assert found["items"] == found["unique"] == 3000 and found["holds"], found
    assert found["stopped"] == "interrupted" and found["handler"], found


AT_EXIT = """
import asyncio, atexit, sys
import orjson
from enricher import Enricher, load_settings

loop = asyncio.new_event_loop()
settings = load_settings(overrides={
    "api": {"base_url": sys.argv[1], "domain_batch_size": 10},
    "limits": {"rate": 0, "concurrency": 2},
})
e = Enricher(settings)


def report():  # registered before enricher's own: runs after it
    print(orjson.dumps({"stopped": e.stats.stopped, "holds": e.stats.invariant_holds,
                        "left": [t.get_name() for t in asyncio.all_tasks(loop) if not t.done()],
                        }).decode(), flush=True)


atexit.register(report)
loop.run_until_complete(e.__aenter__())


async def main():
    async for item in e.enrich([f"k{i}.example.com" for i in range(3000)]):
        if item["ioc"] == "k99.example.com":
            raise ValueError("a bug in the caller's code")


loop.run_until_complete(main())
"""


def test_a_run_left_going_at_exit_is_stopped(tmp_path: Path, slow_emulator: str) -> None:
    """A kept loop stopped by the caller's own exception, the script ending with the run
    still going: it is stopped as the interpreter exits (stats that add up, no task left to
    be collected half-way: CPython 3.11 before 3.11.8 could crash there, gh-113566)."""
    script = tmp_path / "exit.py"
    script.write_text(AT_EXIT)
    proc = subprocess.run(
        [sys.executable, str(script), slow_emulator], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "ValueError: a bug" in proc.stderr, proc.stderr
    found = orjson.loads(proc.stdout)
    assert found["stopped"] is not None and found["holds"] and found["left"] == [], found


# -- misuse ----------------------------------------------------------------------------------------


async def test_misuse_raises_the_projects_errors() -> None:
    async with Emulator(EmulatorConfig()) as emu:
        e = Enricher(settings_for(emu))
        with pytest.raises(UsageError, match="open the Enricher first"):
            e.enrich(["a.example.com"])
        async with e:
            with pytest.raises(UsageError, match="open already"):
                async with e:
                    pass
            # still usable after the refused nesting
            assert [i["ioc"] async for i in e.enrich(["a.example.com"])] == ["a.example.com"]
        # closed, it can be opened again (in this loop or another)
        async with e:
            assert len([i async for i in e.enrich(["b.example.com"])]) == 1


async def test_an_instance_belongs_to_its_loop() -> None:
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        found: list[BaseException] = []

        def elsewhere() -> None:
            async def use() -> None:
                async for _ in e.enrich(["a.example.com"]):
                    pass

            try:
                asyncio.run(use())
            except BaseException as exc:
                found.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        await asyncio.to_thread(thread.join, 10)
    assert len(found) == 1 and isinstance(found[0], UsageError), found
    assert "belongs to the event loop it was opened in" in str(found[0])


async def test_closing_while_another_task_enriches() -> None:
    """A service shutting down: the other task's run ends, its unanswered IOCs deferred,
    no ExceptionGroup anywhere."""
    async with Emulator(EmulatorConfig(latency_ms=30)) as emu:
        e = Enricher(settings_for(emu, api={"domain_batch_size": 20}))
        await e.__aenter__()
        got: list[Any] = []
        first = asyncio.Event()

        async def consume() -> None:
            async for item in e.enrich(make_iocs(3000)):
                got.append(item)
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 10)
        await e.__aexit__(None, None, None)
        await asyncio.wait_for(task, 10)  # ends, and raises nothing
    assert e.stats.invariant_holds and len(got) == e.stats.accounted
    assert e.stats.stopped == "closed: the Enricher was closed while it ran"
    assert any(i.get("reason") == "not answered: the Enricher was closed first" for i in got)


# -- types ---------------------------------------------------------------------------------------


def test_item_types_are_final_typed_dicts_with_literals() -> None:
    for kind in (Record, Failure, Deferred, Reject, Skipped):
        assert getattr(kind, "__final__", False), kind
    hints = typing.get_type_hints(Record)
    assert typing.get_args(hints["verdict"]) == ("malicious", "suspicious", "benign", "unknown")
    assert set(typing.get_args(hints["type"])) == {e.value for e in enricher.IocType}


ANNOTATED = """
import contextlib
from enricher import Enricher, Failure, Deferred, Record, Reject, Skipped

async def use(e: Enricher) -> list[str]:
    out = []
    async with contextlib.aclosing(e.enrich(["1.2.3.4"])) as items:
        async for item in items:
            if "error" in item:
                failure: Failure = item
                out.append(failure["error"])
            elif "reason" in item:
                later: Deferred = item
                out.append(later["reason"])
            elif "skipped" in item:
                withheld: Skipped = item
                out.append(withheld["skipped"])
            else:
                record: Record = item
                out.append(record["verdict"])
    async for every in e.enrich(["x"], rejects=True):
        if "input" in every:
            reject: Reject = every
            out.append(reject["reason"])
    return out
"""


def test_the_readme_way_of_telling_items_apart_type_checks(tmp_path: Path) -> None:
    source = tmp_path / "use.py"
    source.write_text(ANNOTATED)
    out, err, code = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", os.devnull, str(source)]
    )
    assert code == 0, out + err


# -- notebooks and services ------------------------------------------------------------------------


def test_load_settings_without_a_path_is_the_shipped_default() -> None:
    assert load_settings(environ={}) == load_settings(config_path("default.toml"), environ={})
    # and the shipped default profile says what the built-in defaults say
    assert load_settings(environ={}) == Settings()
    emulator = load_settings("emulator", environ={})
    assert emulator == load_settings(config_path("emulator.toml"), environ={})
    assert emulator.limits.rate == 0
    with pytest.raises(enricher.SettingsError, match="the shipped ones are default, emulator"):
        load_settings("emulater", environ={})


def _sync_settings(url: str) -> Settings:
    return load_settings("emulator", environ={}, overrides={"api": {"base_url": url}})


@pytest.fixture(scope="module")
def far_emulator() -> Iterator[str]:
    """An emulator in a process of its own: `enrich_sync` blocks the calling thread (and, in
    a running loop, that loop), so the far end cannot share it."""
    with emulator_process() as url:
        yield url


def test_enrich_sync_outside_a_loop(far_emulator: str) -> None:
    iocs = ["1.2.3.4", "evil[.]example.com", "x", "ab" * 32]
    out = enrich_sync(iocs, _sync_settings(far_emulator))
    assert sorted(r["ioc"] for r in out.records) == ["1.2.3.4", "ab" * 32, "evil.example.com"]
    assert [r["input"] for r in out.rejects] == ["x"] and out.failures == out.deferred == []
    assert out.stats.invariant_holds and out.stats.unique == 3


def test_enrich_sync_raises_with_what_it_enriched(far_emulator: str) -> None:
    """The 1500 IOCs before the input broke were enriched (requests sent): the exception
    carries them."""

    def export() -> Iterator[str]:
        yield from (f"x{i}.example.com" for i in range(1500))
        raise ValueError("export went away")

    with pytest.raises(InputError, match="export went away") as raised:
        enrich_sync(export(), _sync_settings(far_emulator))
    partial = raised.value.enriched  # type: ignore[attr-defined]
    assert isinstance(partial, enricher.Enriched)
    assert sorted(r["ioc"] for r in partial.records) == sorted(
        f"x{i}.example.com" for i in range(1500)
    )
    assert partial.stats.invariant_holds and partial.stats.unique == 1500


async def test_enrich_sync_raises_auth_refused_with_every_ioc_deferred() -> None:
    iocs = [f"a{i}.example.com" for i in range(2000)]
    async with Emulator(EmulatorConfig(api_token="a-long-token")) as emu:
        with pytest.raises(AuthRefused) as raised:
            # from a thread: enrich_sync blocks its caller's loop, the emulator's here
            await asyncio.to_thread(enrich_sync, iocs, settings_for(emu))
    partial = raised.value.enriched  # type: ignore[attr-defined]
    assert sorted(i["ioc"] for i in partial.deferred) == sorted(iocs)
    assert partial.stats.invariant_holds


async def test_enrich_sync_inside_a_running_loop(far_emulator: str) -> None:
    # as a Jupyter cell would call it: asyncio.run would fail here
    out = enrich_sync(["1.2.3.4"], _sync_settings(far_emulator))
    assert [r["ioc"] for r in out.records] == ["1.2.3.4"]


CELL = """
import asyncio, sys, threading, _thread, time
from enricher import enrich_sync, load_settings

settings = load_settings(overrides={"api": {"base_url": sys.argv[1], "domain_batch_size": 1},
                                    "limits": {"rate": 5}})
threading.Timer(1.0, _thread.interrupt_main).start()
started = time.monotonic()


def cell():
    enrich_sync([f"n{i}.example.com" for i in range(200)], settings)


async def in_a_loop():
    cell()


try:
    if sys.argv[2] == "script":
        cell()
    elif sys.argv[2] == "kernel":  # a notebook: its loop runs, Ctrl-C is the default handler's
        asyncio.new_event_loop().run_until_complete(in_a_loop())
    else:  # asyncio.run: its own handler cancels the task that called enrich_sync
        asyncio.run(in_a_loop())
except (KeyboardInterrupt, asyncio.CancelledError) as exc:
    print(f"interrupted after {time.monotonic() - started:.1f} s")
    # asyncio.run raises a KeyboardInterrupt of its own, from the cancellation it made
    out = getattr(exc, "enriched", None) or getattr(exc.__context__, "enriched", None)
    print("kept", len(out.records) + len(out.deferred) + len(out.failures), out.stats.unique,
          out.stats.invariant_holds)
    print("threads left:", threading.active_count() - 1)
"""


@pytest.mark.parametrize("where", ["script", "kernel", "asyncio.run"])
def test_ctrl_c_stops_enrich_sync(tmp_path: Path, far_emulator: str, where: str) -> None:
    """Ctrl-C (a notebook's interrupt) stops enrich_sync at once, in a script and in a
    running event loop (where it runs on a loop of its own in another thread)."""
    script = tmp_path / "cell.py"
    script.write_text(CELL)
    proc = subprocess.run(
        [sys.executable, str(script), far_emulator, where],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("interrupted after "), proc.stdout + proc.stderr
    assert float(proc.stdout.split()[2]) < 10  # not the 40 s 200 requests at 5/s take
    assert int(proc.stdout.split()[-1]) == 0  # the run's thread has ended
    # what the run gave before it stopped (records, and the rest deferred) is kept
    assert proc.stdout.splitlines()[1] == "kept 200 200 True", proc.stdout


TWICE = """
import asyncio, os, signal, sys, threading, time
from enricher import enrich_sync, load_settings

settings = load_settings(overrides={"api": {"base_url": sys.argv[1], "domain_batch_size": 10},
                                    "limits": {"rate": 5}})


def ctrl_c_twice():  # as a kernel's interrupt, a real SIGINT: the second while the rest comes
    time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # collecting 100,000 IOCs not reached takes far longer
    os.kill(os.getpid(), signal.SIGINT)


async def in_a_loop():
    enrich_sync([f"n{i}.example.com" for i in range(100_000)], settings)


threading.Thread(target=ctrl_c_twice, daemon=True).start()
try:
    asyncio.new_event_loop().run_until_complete(in_a_loop())
except KeyboardInterrupt as exc:
    out = exc.enriched
    kept = len(out.records) + len(out.deferred) + len(out.failures)
    time.sleep(0.3)
    print(threading.active_count() - 1, kept <= out.stats.unique, out.stats.invariant_holds,
          kept == len(out.records) + len(out.deferred) + len(out.failures))
"""


def test_a_second_ctrl_c_gives_up_collecting_and_leaves_no_thread(
    tmp_path: Path, far_emulator: str
) -> None:
    """enrich_sync in a running loop: the first Ctrl-C stops the run and collects its last
    items (a long list's IOCs not reached); a second gives up collecting them, and still
    returns only once the run's thread has ended (what it gave no longer changes)."""
    script = tmp_path / "twice.py"
    script.write_text(TWICE)
    proc = subprocess.run(
        [sys.executable, str(script), far_emulator], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "True", "True", "True"], proc.stdout + proc.stderr


async def test_a_deadline_defers_what_is_left() -> None:
    """A server that hangs would hold an IOC for minutes of timeouts and retries; a deadline
    ends the whole run on time, with what is left deferred."""
    async with Emulator(EmulatorConfig(hang_rate=1.0)) as emu:
        s = settings_for(emu, network={"read_timeout": 30.0, "total_timeout": 60.0})
        async with Enricher(s) as e:
            started = time.monotonic()
            items = [i async for i in e.enrich(["a.example.com", "1.2.3.4"], deadline=0.5)]
            took = time.monotonic() - started
            with pytest.raises(UsageError, match="deadline"):
                e.enrich(["a.example.com"], deadline=0)
    assert took < 5
    assert sorted(i["ioc"] for i in items) == ["1.2.3.4", "a.example.com"]
    assert {i["reason"] for i in items} == {
        "deadline: the run's 0.5 s were up before it was answered"
    }
    assert e.stats.stopped == "deadline: 0.5 s passed" and e.stats.invariant_holds


# -- the cache -------------------------------------------------------------------------------------


def _cache(path: Path) -> Cache:
    return Cache(path, max_ttl=86400.0, default_ttl=86400.0)


def _cached(path: Path, settings: Settings, iocs: list[str]) -> int:
    probe = _cache(path)
    try:
        probe.bind(identity_of(settings))
        return sum(len(probe.lookup(ep, iocs)) for ep in enricher.Endpoint)
    finally:
        probe.close()


async def test_a_cache_given_to_an_enricher_is_flushed_and_closed(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    iocs = [f"c{i}.example.com" for i in range(50)]
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(emu)
        cache = _cache(path)
        async with Enricher(s, cache=cache) as e:
            assert len([i async for i in e.enrich(iocs)]) == 50
        assert not cache._writer.is_alive()  # no thread left behind
        assert _cached(path, s, iocs) == 50  # every answer written
        with pytest.raises(UsageError, match="closed as it closed"):
            async with e:
                pass
        # cache_owner=False: it stays the caller's, open, to use again and to close
        kept = _cache(path)
        for _ in range(2):
            async with Enricher(s, cache=kept, cache_owner=False) as e:
                assert all([i["cached"] async for i in e.enrich(iocs)])
        assert kept._writer.is_alive()
        kept.close()


async def test_a_shared_cache_serves_each_enricher_only_what_its_identity_fetched(
    tmp_path: Path,
) -> None:
    """A Cache shared with cache_owner=False (the README's "Services"): what Enricher A
    fetched is not served to B with another token or another base URL; B asks the server
    (and a wrong token is refused), while A and an Enricher of A's identity are served."""

    def as_token(emu: Emulator, token: str, base_url: str | None = None) -> Settings:
        value = tmp_path / f"{token}.txt"
        value.write_text(f"Bearer {token}")
        value.chmod(0o600)
        auth = {"mode": "header", "header_value_file": str(value)}
        return settings_for(emu, api={"base_url": base_url or emu.base_url}, auth=auth)

    iocs = ["1.2.3.4", "evil.example.com"]
    shared = _cache(tmp_path / "shared.sqlite3")
    try:
        async with Emulator(EmulatorConfig(api_token="token-of-A")) as emu:
            a_settings = as_token(emu, "token-of-A")
            async with Enricher(a_settings, cache=shared, cache_owner=False) as a:
                assert not any([i["cached"] async for i in a.enrich(iocs)])
            sent = emu.stats()["total_requests"]
            async with Enricher(as_token(emu, "WRONG-token"), cache=shared, cache_owner=False) as b:
                with pytest.raises(AuthRefused):
                    [_ async for _ in b.enrich(iocs)]
            assert emu.stats()["total_requests"] > sent  # B asked, and was refused
            # the same account at another name of the server is another identity
            other = emu.base_url.replace("127.0.0.1", "localhost")
            c_settings = as_token(emu, "token-of-A", other)
            async with Enricher(c_settings, cache=shared, cache_owner=False) as c:
                assert not any([i["cached"] async for i in c.enrich(iocs)])
            # A's identity, on another instance, is served from the cache
            async with Enricher(a_settings, cache=shared, cache_owner=False) as a2:
                assert all([i["cached"] async for i in a2.enrich(iocs)])
    finally:
        shared.close()


# -- the limiter, when a run stops -----------------------------------------------------------------


async def test_requests_waiting_for_the_limiter_are_not_sent_after_a_stop() -> None:
    """The first SIGINT calls stop(): requests that were waiting their turn at the limiter
    (here 8 workers at 4 requests/s) must not go out after it."""
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(emu, api={"domain_batch_size": 1}, limits={"rate": 4, "concurrency": 8})
        async with Enricher(s) as e:
            n = 0
            async for _ in e.enrich([f"w{i}.example.com" for i in range(40)]):
                n += 1
                if n == 3:
                    stopped_at = time.monotonic()
                    e.stop()
        late = [x for x in emu.log if x.arrival > stopped_at + 0.05]
    assert late == [], f"{len(late)} requests arrived after the stop"
    assert e.stats.invariant_holds and e.stats.deferred > 0


async def test_stop_from_another_thread_is_handed_to_the_loop() -> None:
    """A service's admin thread or a notebook widget calls stop(): no error in that thread,
    the run stops as from the loop, and nothing is sent after it."""
    errors: list[BaseException] = []
    stopped_at: list[float] = []

    def from_a_thread(e: Enricher) -> None:
        try:
            stopped_at.append(time.monotonic())
            e.stop()
        except BaseException as exc:
            errors.append(exc)

    async with Emulator(EmulatorConfig(latency_ms=20)) as emu:
        s = settings_for(emu, api={"domain_batch_size": 10}, limits={"rate": 20})
        async with Enricher(s) as e:
            got: list[Any] = []
            async for item in e.enrich([f"t{i}.example.com" for i in range(2000)]):
                got.append(item)
                if len(got) == 10:
                    threading.Thread(target=from_a_thread, args=(e,)).start()
        late = [x for x in emu.log if x.arrival > stopped_at[0] + 0.1]
    assert errors == []
    assert e.interrupted and e.stats.stopped == "interrupted"
    assert late == [], f"{len(late)} requests arrived after the stop"
    assert len(got) == 2000 and e.stats.invariant_holds


async def test_a_generator_never_iterated_starts_no_run() -> None:
    """A service handler that builds the generator and fails before iterating it: nothing is
    sent, nothing is held; iterated later, it runs then."""
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        dropped = e.enrich([f"n{i}.example.com" for i in range(3000)])
        kept = e.enrich(["k.example.com"])
        await asyncio.sleep(0.3)
        assert emu.stats()["total_requests"] == 0 and e.in_flight == 0
        del dropped
        gc.collect()
        assert len(e._later) == 1  # only `kept`: a dropped generator holds nothing
        assert [i["ioc"] async for i in kept] == ["k.example.com"]
        assert emu.stats()["total_requests"] == 1 and e.stats.unique == 1
        late = e.enrich(["l.example.com"])
    with pytest.raises(UsageError, match="closed before this enrich"):
        [_ async for _ in late]


@pytest.mark.parametrize("bad", ["5", True, [5]])
async def test_a_deadline_that_is_no_number_is_a_usage_error(bad: Any) -> None:
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        with pytest.raises(UsageError, match="deadline"):
            e.enrich(["a.example.com"], deadline=bad)


async def test_a_stop_does_not_wait_the_grace_period_for_the_limiter() -> None:
    """Workers waiting for their turn at the limiter (8 at 0.5 requests/s) are released by
    a stop at once: only a request in flight is given the grace period (30 s here)."""
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(
            emu,
            api={"domain_batch_size": 10},
            limits={"rate": 0.5, "concurrency": 8},
            pipeline={"grace_period": 30.0},
        )
        async with Enricher(s) as e:
            stopped_at = 0.0
            async for _ in e.enrich([f"q{i}.example.com" for i in range(200)]):
                if not stopped_at:
                    sent = emu.stats()["total_requests"]
                    stopped_at = time.monotonic()
                    e.stop()
            took = time.monotonic() - stopped_at
        assert emu.stats()["total_requests"] == sent
    assert took < 5, f"the stop took {took:.1f} s"  # the last turn was 14 s away
    assert e.stats.stopped == "interrupted" and e.stats.invariant_holds


# -- a signal before the run starts ----------------------------------------------------------------


async def test_a_stop_before_the_first_item_is_taken_stops_the_run() -> None:
    """The job installs its signal handler before the pipeline starts: a stop between
    `run()` and the first item taken must not be lost."""

    async def slow() -> AsyncIterator[str]:
        for i in range(100):
            yield f"s{i}.example.com"
            await asyncio.sleep(0.01)

    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        items = e.enrich(slow())
        e.stop()
        got = [i async for i in items]
    assert e.interrupted and e.stats.stopped == "interrupted"
    assert e.stats.lines_read < 100 and len(got) == e.stats.accounted


def test_sigint_in_a_script_does_not_leave_threads_behind() -> None:
    """`python script.py` with a blocking generator as input and Ctrl-C: the process ends."""
    code = (
        "import asyncio, os, signal, time\n"
        "from enricher import Enricher, load_settings\n"
        "def slow():\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "        yield '1.2.3.4'\n"
        "async def main():\n"
        "    s = load_settings('emulator', overrides={'api': {'base_url': 'http://127.0.0.1:9/x'}})\n"
        "    async with Enricher(s) as e:\n"
        "        asyncio.get_running_loop().call_later(0.5, os.kill, os.getpid(), signal.SIGINT)\n"
        "        async for _ in e.enrich(slow()):\n"
        "            pass\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
        env={**os.environ, "ENRICHER_RETRY_ATTEMPTS": "1"},
    )  # fmt: skip
    assert proc.stdout.strip() == "interrupted", proc.stderr
