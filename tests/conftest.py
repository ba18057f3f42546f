"""Shared test fixtures, and the aioresponses shim for aiohttp 3.14."""

from __future__ import annotations

import contextlib
import functools
import inspect
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import aiohttp
import aioresponses.core
import pytest

from enricher.emulator.process import emulator_process, emulator_stats


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background by a shell without job control (`pytest &` in a
    # script) inherits SIGINT ignored, and so does every process its tests start: Python then
    # installs no KeyboardInterrupt handler there, and the tests that stop a run with SIGINT
    # (Ctrl-C in a script, a notebook, `enricher run`) fail. They get Python's default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    # xdist sends each report from its worker as UTF-8: captured output holding a surrogate (a
    # file name in bytes that are not UTF-8, escaped by Python) ended the worker ("strings
    # must be utf-8 encodable"). The surrogates are shown escaped instead.
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode())
        for title, text in report.sections
    ]
    return report


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test, and every process it starts, gets its own home and cache directory: no
    test reads or fills the user's real answer cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))


@pytest.fixture(scope="session")
def _session_emulator() -> Iterator[str]:
    with emulator_process() as url:
        yield url


@pytest.fixture
def plain_emulator(_session_emulator: str) -> Callable[[], contextlib.AbstractContextManager[str]]:
    """`with plain_emulator() as url:` is `with emulator_process() as url:` for a test that
    needs only a plain, fault-free emulator, without starting one (~1 s and ~0.7 s of CPU
    each): the session's (one per xdist worker), its stats and received keys reset first."""

    @contextlib.contextmanager
    def shared() -> Iterator[str]:
        emulator_stats(_session_emulator, reset=True)
        yield _session_emulator

    return shared


# --- aioresponses on aiohttp >= 3.14 -------------------------------------------------------
# aiohttp 3.14 (a security release we must keep) added a required keyword-only `stream_writer`
# argument to ClientResponse.__init__; aioresponses 0.7.9 does not pass it, so every mocked
# response fails with "missing 1 required keyword-only argument: 'stream_writer'"
# (pnuckowski/aioresponses#289, fix proposed in #288). aiohttp only reads
# `stream_writer.output_size` there, so a Mock with output_size=0 is enough. Remove this shim
# once an aioresponses release passes stream_writer itself.
if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:

    class _ClientResponse(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", Mock(output_size=0))
            super().__init__(*args, **kwargs)

    _build_response = aioresponses.core.RequestMatch._build_response

    @functools.wraps(_build_response)
    def _build_response_with_writer(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("response_class") is None:
            kwargs["response_class"] = _ClientResponse
        return _build_response(self, *args, **kwargs)

    aioresponses.core.RequestMatch._build_response = _build_response_with_writer  # type: ignore[method-assign]
