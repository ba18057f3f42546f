"""Issue 15's bar for the limiter alone: three processes, each told the API key's full rate
(20/s), against a server that allows 20 requests/s in all (the emulator's sliding 1-second
window): with the shared limiter, 429s are at most 1% of requests and at least 90% of the
20/s is used."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from enricher.emulator import Emulator, EmulatorConfig

WORKER = Path(__file__).with_name("redis_worker.py")
#: `limits.rate_headroom` for this test: 3%, not the default 1.5%. The headroom is how late a
#: request may arrive (share of a second) before the server's window counts one too many;
#: this 2-core machine, shared at a load of 5, holds a request up 15-30 ms now and then. With
#: 1.5% we measured 0-2 429s of 240, and two within 10 s (from any job: AIMD is shared) halve
#: every job's rate: 16.1-17.4/s used. With 3%: 0-1 429s of 240, 19.39-19.44/s.
HEADROOM = 0.03


async def _job(**args: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), "send", json.dumps(args), stdout=asyncio.subprocess.PIPE
    )


@pytest.mark.serial
async def test_three_jobs_share_the_servers_rate(redis_url: str, prefix: str) -> None:
    n = 40  # 120 requests in all: 6 s at 20/s
    async with Emulator(EmulatorConfig(rate_limit=20)) as emu:
        start = time.time() + 3.0  # every process started by then
        procs = [
            await _job(
                url=redis_url,
                prefix=prefix,
                rate=20.0,
                headroom=HEADROOM,
                n=n,
                start=start,
                base=emu.base_url,
                who=who,
            )
            for who in range(3)
        ]
        results = [json.loads((await p.communicate())[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    statuses = [s for r in results for s in r["statuses"]]
    assert len(statuses) == 3 * n and set(statuses) <= {200, 429}
    assert statuses.count(429) <= 0.01 * len(statuses), statuses.count(429)
    began = min(r["began"] for r in results)
    ended = max(r["ended"] for r in results)
    used = len(statuses) / (ended - began)
    assert used >= 0.9 * 20, used  # measured: 19.4/s (20 less the 3% headroom)
