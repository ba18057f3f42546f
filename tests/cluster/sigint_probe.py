"""Preloaded by a fork server in test_cluster_forkserver: writes how the server handles
SIGINT while it preloads, to the file `SIGINT_PROBE_FILE` names (nothing without it)."""

import os
import signal

if path := os.environ.get("SIGINT_PROBE_FILE"):
    with open(f"{path}.tmp", "w") as probe:
        probe.write(repr(signal.getsignal(signal.SIGINT)))
    os.replace(f"{path}.tmp", path)
