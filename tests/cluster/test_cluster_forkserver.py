"""The fork server a local cluster's workers are forked from, as the command line starts it
early: deaf to a terminal's Ctrl-C while it imports, and never left behind."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enricher.app import cli
from enricher.cluster import forkserver
from enricher.cluster.forkserver import start_fork_server, stop_fork_server

pytestmark = pytest.mark.skipif(forkserver.START != "forkserver", reason="no fork server here")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fork server started by the test, with a preload of its own; stopped after, and the
    preload as the cluster sets it again (a local cluster of another test forks from it)."""
    stop_fork_server()
    yield
    stop_fork_server()
    multiprocessing.get_context("forkserver").set_forkserver_preload(forkserver.PRELOAD)


def _pid() -> int | None:
    pid: int | None = multiprocessing.forkserver._forkserver._forkserver_pid
    return pid


def test_the_fork_server_ignores_ctrl_c_as_it_imports(
    server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a Ctrl-C reaches the terminal's process group: the server, importing Dask, printed a
    # KeyboardInterrupt traceback on the job's stderr
    probe = tmp_path / "sigint"
    monkeypatch.setenv("SIGINT_PROBE_FILE", str(probe))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the server's, for the probe
    monkeypatch.setattr(forkserver, "PRELOAD", ["sigint_probe"])
    start_fork_server()
    pid = _pid()
    assert pid is not None
    deadline = time.monotonic() + 30
    while not probe.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "SIG_IGN" in probe.read_text()
    stop_fork_server()
    assert _pid() is None
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(pid, 0)


def test_a_command_line_that_fails_leaves_no_fork_server(
    server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it went on importing Dask for seconds after the job's exit, holding its stderr open
    monkeypatch.setattr(forkserver, "PRELOAD", [])
    with pytest.raises(SystemExit):
        cli.main(["run", "--workers", "2", "in.txt", "--no-such-flag"])
    assert _pid() is None
