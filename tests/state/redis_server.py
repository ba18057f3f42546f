"""A real redis-server for tests: on 127.0.0.1 and a free port, saving nothing
(`--save '' --appendonly no`), in a temporary folder, ended by its pid."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def redis_server_path() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: int, proc: subprocess.Popen[bytes], password: str | None) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return True
            time.sleep(0.05)
        return False
    finally:
        client.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server by its pid (our own child), at once if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_redis(
    password: str | None = None, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(`redis://127.0.0.1:PORT/0`, the process) of a redis-server of our own (on `port`,
    else a free one); skips the test, saying why, where redis-py or redis-server is
    missing."""
    pytest.importorskip("redis", reason="redis-py is missing: pip install -e '.[redis]'")
    server = redis_server_path()
    if server is None:
        pytest.skip("redis-server is missing (Debian: apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="enricher-redis-") as folder:
        for _ in range(3):  # a free port can be taken by someone else before the server binds
            port = port or free_port()
            args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", folder, "--loglevel", "warning"]  # fmt: skip
            if password is not None:
                args += ["--requirepass", password]
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                if _ready(port, proc, password):
                    yield f"redis://127.0.0.1:{port}/0", proc
                    return
            finally:
                stop(proc)
        pytest.fail("redis-server did not start on a free port in 3 tries")
