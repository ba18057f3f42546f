"""An independent rate limiter in front: nginx's `limit_req` between the engine and the
emulator, as an API gateway would stand in front of the real API.

nginx is started by the test as one process (no master, no daemon) with a config written into
tmp_path, on a free loopback port, and is stopped (killed if need be) when the test ends.
The 429s are counted from nginx's own access log, not only from the engine's stats. The tests
skip only when no nginx binary can be found; `.ci/run` installs Debian's nginx-light.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from enricher.config.settings import Settings, load_settings
from enricher.emulator import Emulator, EmulatorConfig

pytest.register_assert_rewrite("nothing_lost")  # its asserts explain themselves, as ours do
from nothing_lost import check_run, enrich_all, mixed_iocs  # noqa: E402


def find_nginx() -> str | None:
    # Debian puts it in /usr/sbin, which is not on a non-root user's PATH
    candidates = (shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx")
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


NGINX = find_nginx()
pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(
        NGINX is None,
        reason="nginx not found on PATH, in /usr/sbin or /usr/local/sbin "
        "(.ci/run installs it with apt-get: nginx-light, or nginx)",
    ),
]

RATE = 20  # requests per second nginx lets through
# The gateway a real API would have: `nodelay`, because a gateway should say no at once
# rather than queue a request (a queued one holds the client's connection and looks like a
# slow server, so the client never learns the limit); a small `burst` because nginx keeps
# its bucket to the millisecond, and with burst=0 a request arriving 49 ms after the previous
# one is "over 20 r/s" and refused. Five requests (a quarter of a second's worth) absorb the
# jitter a client pacing exactly at the rate meets on its way (its event loop, a new
# connection), while a client going faster than the rate exhausts it within a second.
BURST = 5
# No `Retry-After` on the 429 (nginx sends none unless told): the harder case for a client.
CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log notice;
events {{ worker_connections 256; }}
http {{
    log_format gateway '$msec $status $upstream_status';
    access_log {tmp}/access.log gateway;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 16m;

    limit_req_zone $binary_remote_addr zone=api:1m rate={rate}r/s;
    limit_req_status 429;
    limit_req_log_level notice;

    upstream gti {{
        server 127.0.0.1:{upstream};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /rest/ {{
            limit_req zone=api burst={burst} nodelay;
            proxy_pass http://gti;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@dataclass
class Gateway:
    base_url: str  # the API base, through nginx
    access_log: Path

    def statuses(self) -> list[tuple[float, int]]:
        """(time, status) of every request nginx saw, in order."""
        rows = [line.split() for line in self.access_log.read_text().splitlines()]
        return [(float(row[0]), int(row[1])) for row in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """For Popen: on Linux, nginx is killed if this test process dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)

    return arm


def start_nginx(tmp: Path, upstream_port: int) -> tuple[subprocess.Popen[bytes], int]:
    """nginx in front of 127.0.0.1:`upstream_port`, everything it writes under `tmp`."""
    assert NGINX is not None
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        CONFIG.format(tmp=tmp, rate=RATE, burst=BURST, upstream=upstream_port, port=port)
    )
    with open(tmp / "stderr.log", "wb") as out:
        proc = subprocess.Popen(
            [NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            preexec_fn=_die_with_parent(),  # one prctl call in the child, nothing more
        )
    return proc, port


def stop_nginx(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # with no master process, this is the whole of nginx
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.asynccontextmanager
async def nginx_in_front(upstream: Emulator, tmp: Path) -> AsyncIterator[Gateway]:
    """A running nginx in front of `upstream`; stopped on the way out, whatever happened."""
    proc, port = start_nginx(tmp, upstream.port)
    try:
        for _ in range(250):  # up to 5 s for it to listen
            if proc.poll() is not None:
                logs = [tmp / "stderr.log", tmp / "error.log"]
                said = "".join(p.read_text() for p in logs if p.exists())
                raise AssertionError(f"nginx exited with {proc.returncode}: {said}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("nginx did not listen within 5 s")
        yield Gateway(f"http://127.0.0.1:{port}/rest/classification_v1", tmp / "access.log")
    finally:
        stop_nginx(proc)


def settings_for(base_url: str, rate: float) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "api": {
                "base_url": base_url,
                "send_sha256": True,
                # small batches: many requests, so the rate is what limits the run
                "file_batch_size": 8,
                "domain_batch_size": 8,
                "ip_batch_size": 8,
            },
            "limits": {"rate": rate, "concurrency": 4},
            "retry": {"attempts": 10, "backoff_base": 0.05, "backoff_max": 1.0},
            "network": {"read_timeout": 5.0, "total_timeout": 10.0},
            "pipeline": {"batch_deadline": 0.05},
        },
    )


async def test_at_the_gateways_rate_no_429(tmp_path: Path) -> None:
    """Configured at nginx's rate, the engine draws no 429 and still uses the allowance."""
    lines, expected = mixed_iocs(1000, seed=20)
    async with Emulator(EmulatorConfig()) as emu:
        async with nginx_in_front(emu, tmp_path) as gw:
            s = settings_for(gw.base_url, RATE)
            run = await enrich_all(s, lines)
        forwarded = emu.stats()["total_requests"]
    check_run(run, expected, s)
    assert run.failures == []
    seen = gw.statuses()
    assert [status for _, status in seen].count(429) == 0 == run.stats.rate_limited
    assert len(seen) == run.stats.requests == forwarded
    assert run.limiter is not None and run.limiter.changes == []
    span = seen[-1][0] - seen[0][0]
    used = (len(seen) - 1) / span
    assert 0.9 * RATE <= used <= RATE, f"{used:.2f} requests/s through a {RATE}/s gateway"


async def test_at_twice_the_rate_it_adapts_and_loses_nothing(tmp_path: Path) -> None:
    """Configured at twice nginx's rate, the engine draws 429s, halves its rate, and every
    IOC still comes out, right, exactly once."""
    lines, expected = mixed_iocs(1000, seed=40)
    async with Emulator(EmulatorConfig()) as emu:
        async with nginx_in_front(emu, tmp_path) as gw:
            s = settings_for(gw.base_url, 2 * RATE)
            run = await enrich_all(s, lines)
        forwarded = emu.stats()["total_requests"]
    check_run(run, expected, s)
    assert run.failures == []
    seen = gw.statuses()
    refused = [status for _, status in seen].count(429)
    assert refused > 0 and refused == run.stats.rate_limited
    # what nginx refused never reached the emulator; everything else did
    assert len(seen) - refused == forwarded
    assert run.limiter is not None
    drops = [c for c in run.limiter.changes if c.reason == "429s from server"]
    assert drops and min(c.rate for c in drops) <= RATE, run.limiter.changes
    # adapting is what keeps the refusals few: at 40/s against 20/s, without it half would be
    assert refused < 0.25 * len(seen), f"{refused} of {len(seen)} requests refused"
