"""How many keys per second the GTI emulator answers, on one core.

Starts `enricher emulator --port 0` as a subprocess pinned to one CPU, and drives it with a
minimal aiohttp client (pinned to another CPU when there is one) that posts pre-built bodies of
unique, valid keys: no key is ever sent twice, so an answer cache could not help. For each
concurrency level it runs a few fixed-length rounds and reports the median keys/s as JSON.
`transport_ceiling` is the same client posting a given set of bodies once: the suite's ceiling.

    python benchmarks/emulator_throughput.py [--batch 500] [--seconds 3] [--runs 3]
        [--concurrency 1 4 16] [--endpoint all|file_batch|domain_batch|ip_batch]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import aiohttp
import orjson

from enricher.api.protocol import build_request
from enricher.ioc import ENDPOINT_OF, IocType

ENDPOINTS = ("file_batch", "domain_batch", "ip_batch")


class KeySource:
    """Unique, valid keys for each endpoint, from one counter shared by all of them."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def key(self, endpoint: str) -> dict[str, str]:
        n = next(self._n)
        if endpoint == "file_batch":
            digest = hashlib.sha256(n.to_bytes(8, "little")).hexdigest()
            # md5, sha1 and sha256 in turn, so all three validators are exercised.
            length = (32, 40, 64)[n % 3]
            return {("md5", "sha1", "sha256")[n % 3]: digest[:length]}
        if endpoint == "domain_batch":
            return {"domain": f"host{n}.example{n % 97}.com"}
        if n % 4:
            return {
                "ipAddress": f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                "addressType": "Ipv4",
            }
        return {
            "ipAddress": f"2001:db8::{n >> 16 & 0xFFFF:x}:{n & 0xFFFF:x}",
            "addressType": "Ipv6",
        }

    def bodies(self, endpoints: tuple[str, ...], batch: int, count: int) -> list[tuple[str, bytes]]:
        out = []
        for i in range(count):
            endpoint = endpoints[i % len(endpoints)]
            data = [{"requestKey": self.key(endpoint)} for _ in range(batch)]
            out.append((endpoint, orjson.dumps({"requestData": data})))
        return out


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "enricher", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(proc.pid, {cpus[0]})
        if len(cpus) > 1:
            os.sched_setaffinity(0, set(cpus[1:]))
    return proc, line.rsplit(" ", 1)[1].strip()


def entries(body: bytes) -> int:
    """How many answer entries a response body holds, counted without parsing it."""
    return body.count(b'"requestKey"')


async def one_round(
    session: aiohttp.ClientSession,
    base_url: str,
    bodies: list[tuple[str, bytes]],
    concurrency: int,
    seconds: float | None,
    *,
    warmup: bool = False,
) -> dict[str, float]:
    """Post `bodies` from `concurrency` workers until the deadline (None: until every body
    is sent); count the answer entries. Any status but 200 stops the benchmark."""
    pool: Iterator[tuple[str, bytes]] = iter(bodies)
    answered = requests = 0
    ran_out = False
    headers = {"Content-Type": "application/json"}
    deadline = time.perf_counter() + seconds if seconds is not None else float("inf")

    async def worker() -> None:
        nonlocal answered, requests, ran_out
        while time.perf_counter() < deadline:
            try:
                endpoint, body = next(pool)
            except StopIteration:
                ran_out = True
                return
            async with session.post(f"{base_url}/{endpoint}", data=body, headers=headers) as r:
                answer = await r.read()
                if r.status != 200:
                    raise SystemExit(f"unexpected HTTP {r.status}")
            requests += 1
            answered += entries(answer)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if ran_out and seconds is not None and not warmup:
        raise SystemExit("ran out of pre-built bodies: raise --pool-factor")
    return {
        "keys_per_s": answered / elapsed,
        "requests_per_s": requests / elapsed,
        "answered": answered,
        "requests": requests,
        "seconds": elapsed,
    }


def bodies_for(iocs: Iterable[tuple[IocType, str]], batch: int) -> list[tuple[str, bytes]]:
    """Request bodies of `batch` keys for these IOCs, each endpoint's in turn."""
    by_endpoint: dict[str, list[tuple[IocType, str]]] = {}
    for ioc_type, value in iocs:
        by_endpoint.setdefault(ENDPOINT_OF[ioc_type].value, []).append((ioc_type, value))
    out = []
    for endpoint, keys in by_endpoint.items():
        for i in range(0, len(keys), batch):
            out.append((endpoint, build_request(keys[i : i + batch], allow_sha256=True)))
    return out


async def transport_ceiling(
    base_url: str, bodies: list[tuple[str, bytes]], concurrency: int
) -> dict[str, float]:
    """The transport ceiling: `concurrency` keep-alive connections post pre-built bodies
    (made before the clock starts) once each and count the answers; nothing else."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # open the connections and warm both ends with a few bodies before timing
        await one_round(session, base_url, bodies[: 2 * concurrency], concurrency, None)
        return await one_round(session, base_url, bodies, concurrency, None)


async def bench(args: argparse.Namespace, base_url: str) -> list[dict[str, Any]]:
    endpoints = ENDPOINTS if args.endpoint == "all" else (args.endpoint,)
    keys = KeySource()
    # Enough bodies for a round at a generous ceiling of keys/s; built before the clock starts.
    per_round = int(args.pool_factor * args.seconds / args.batch) + 8
    results = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = keys.bodies(endpoints, args.batch, 30)
        await one_round(session, base_url, warm, 4, 10.0, warmup=True)
        for concurrency in args.concurrency:
            rounds = []
            for _ in range(args.runs):
                bodies = keys.bodies(endpoints, args.batch, per_round)
                rounds.append(await one_round(session, base_url, bodies, concurrency, args.seconds))
            results.append(
                {
                    "concurrency": concurrency,
                    "keys_per_s": [round(r["keys_per_s"]) for r in rounds],
                    "median_keys_per_s": round(statistics.median(r["keys_per_s"] for r in rounds)),
                    "median_requests_per_s": round(
                        statistics.median(r["requests_per_s"] for r in rounds), 1
                    ),
                }
            )
        async with session.get(base_url.split("/rest/")[0] + "/emulator/stats") as r:
            stats = await r.json()
    results.append({"server_keys_answered": stats["keys_answered"]})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round")
    parser.add_argument("--runs", type=int, default=3, help="rounds per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--endpoint", choices=("all", *ENDPOINTS), default="all")
    parser.add_argument(
        "--pool-factor",
        type=float,
        default=400_000,
        help="keys/s the pre-built pool of a round must last for (default 400000)",
    )
    args = parser.parse_args()
    proc, base_url = start_emulator()
    try:
        results = asyncio.run(bench(args, base_url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(
        json.dumps(
            {
                "benchmark": "emulator_throughput",
                "batch": args.batch,
                "endpoint": args.endpoint,
                "seconds_per_round": args.seconds,
                "runs": args.runs,
                "results": results[:-1],
                **results[-1],
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
