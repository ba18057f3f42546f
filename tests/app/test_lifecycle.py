"""The `enricher` process's own signal handlers, outside a run (`enricher.app.lifecycle`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# a SIGTERM while the interpreter tears itself down, after the run finished and atexit ran:
# the object's finaliser sends it while module globals are cleared
FINISHED_THEN_SIGTERM = textwrap.dedent("""
    import os, signal, time
    from enricher.app import lifecycle
    lifecycle.install()
    lifecycle.finished(0)
    class Late:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
    late = Late()
""")


def test_a_signal_during_the_interpreters_tear_down_keeps_the_exit_code() -> None:
    # the interpreter puts back SIGTERM's default action when it finalises its signal
    # handlers: a finished run was killed, exit 143, in CI (1 of 8 signals, at the last moment)
    proc = subprocess.run(
        [sys.executable, "-c", FINISHED_THEN_SIGTERM], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_a_signal_before_the_run_is_one_line_and_exit_3() -> None:
    code = "import os, signal; from enricher.app import lifecycle; lifecycle.install(); "
    code += "os.kill(os.getpid(), signal.SIGTERM)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert (
        proc.stderr == "enricher: interrupted before the run started; run the same command again\n"
    )


def test_a_signal_after_the_run_exits_with_its_code() -> None:
    code = "import os, signal; from enricher.app import lifecycle; lifecycle.install(); "
    code += "lifecycle.finished(2); os.kill(os.getpid(), signal.SIGHUP)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (2, "")
