"""The fork server a local cluster's workers are forked from, started as early as the
command line asks for workers: its start (a fresh interpreter importing Dask and what the
tasks need, ~3 s of the ~4.5 s from a job's start to its cluster up, measured at load 5)
then runs on another core while this process loads the program, reads its settings, opens
the state and plans the inputs, instead of being waited for as the cluster starts.

Nothing here imports Dask: a job of one process asks for no fork server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["PRELOAD", "START", "asked_for_workers", "start_fork_server", "stop_fork_server"]

#: how a local cluster's worker processes start: forked from a fork server, a fresh process
#: that imports Dask and what the tasks need once (`PRELOAD`, while the job imports Dask
#: itself) and forks each worker from itself while it runs no other thread. Spawned, each
#: worker imported them again (~1.5 s of CPU a worker). Forked from the job itself, a worker
#: would copy the job's threads' locks (the nannies' queue feeders and watchers run as the
#: second worker forks; Dask's offload pool): one held at that instant is held for ever in
#: the worker, and a pool copied without its threads runs nothing (Python 3.12 warns of
#: such forks).
START = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
PRELOAD = ["distributed", "enricher.cluster.warm"]


def start_fork_server() -> None:
    """Start the fork server the local workers are forked from, now (without Dask installed,
    none: the job says what to install). A server already running (started earlier by this
    process) is kept."""
    if START == "forkserver" and importlib.util.find_spec("distributed") is not None:
        ctx: Any = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        if threading.current_thread() is not threading.main_thread():
            importlib.import_module("multiprocessing.forkserver").ensure_running()
            return
        # started with SIGINT ignored (kept across its exec): a Ctrl-C reaches the terminal's
        # whole process group, and the server, importing Dask for seconds, printed a
        # KeyboardInterrupt traceback of ~40 lines on the job's stderr. Its workers keep it
        # ignored too: the job stops them (its nannies), not the terminal.
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            importlib.import_module("multiprocessing.forkserver").ensure_running()
        finally:
            signal.signal(signal.SIGINT, handler)


def stop_fork_server() -> None:
    """Stop the fork server this process started, if any (its workers are gone by then): a
    job that stops at its settings (a bad flag, no shared state) left it importing Dask for
    seconds after its exit, on a core, holding the job's stdout and stderr open (a caller
    reading them to their end waited 5 s more)."""
    module = sys.modules.get("multiprocessing.forkserver")
    server: Any = getattr(module, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
        server._stop()  # closes its pipe and reaps it


def asked_for_workers(argv: Sequence[str]) -> bool:
    """Whether a command line (`enricher run …`) asks for a local cluster of more than one
    worker (`--workers N`, no `--cluster`): a first look, before it is parsed (settings
    files and the environment may ask for one too: the cluster starts the server then)."""
    args = list(argv)
    if not args or args[0] != "run" or any(a.partition("=")[0] == "--cluster" for a in args):
        return False
    for i, arg in enumerate(args):
        if arg.startswith("--workers="):
            value = arg.partition("=")[2]
        elif arg == "--workers" and i + 1 < len(args):
            value = args[i + 1]
        else:
            continue
        try:  # as argparse reads it (int: "¹" is a digit, not an int)
            return int(value) > 1
        except ValueError:
            return False
    return False
