"""A process of its own for the shared-state tests: `python redis_worker.py WHAT JSON-ARGS`
prints one JSON line of what it measured.

- `acquire`: waits until `start` (epoch seconds), takes `n` turns from a `RedisLimiter` at
  `rate`, and prints when each turn was taken (`time.time()`: the clock redis-server's
  `TIME` reads too, on this machine) and the turn the server gave (µs of its clock).
- `429`: reports `n` 429s to the shared limiter, and prints the rate it then saw.
- `send`: waits until `start`, then sends `n` batch requests of 5 domains to the API at
  `base` (the emulator), each after a turn of a `RedisLimiter` at `rate` less `headroom`, and
  prints the statuses and when the first and last answers came.
- `reserve`: waits until `start`, then reserves `n` requests of a daily budget `daily`
  (`tries` in flight at once), and prints how many were granted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from enricher.api.identity import ApiIdentity
from enricher.state.redis.budget import RedisBudget
from enricher.state.redis.connection import SharedState
from enricher.state.redis.limiter import RedisLimiter

API = ApiIdentity("https://gti.example/rest/classification_v1")


async def _until(start: float) -> None:
    await asyncio.sleep(max(0.0, start - time.time()))


async def main(what: str, args: dict[str, Any]) -> dict[str, Any]:
    state = await SharedState.connect(args["url"], prefix=args["prefix"])
    namespace = await state.admit(API)
    try:
        if what == "acquire":
            limiter = RedisLimiter(state, namespace, args["rate"])
            times: list[float] = []
            turns: list[int] = []
            await _until(args["start"])
            for _ in range(args["n"]):
                await limiter.acquire()
                times.append(time.time())
                turns.append(limiter.last_turn)
            await limiter.aclose()
            return {"times": times, "turns": turns}
        if what == "429":
            limiter = RedisLimiter(state, namespace, args["rate"])
            for _ in range(args["n"]):
                limiter.rate_limited()
                await limiter.aclose()
            return {"rate": limiter.rate, "changes": [c.reason for c in limiter.changes]}
        if what == "send":
            return await _send(state, namespace, args)
        if what == "reserve":
            budget = RedisBudget(state, namespace)
            await _until(args["start"])
            granted = 0
            for _ in range(0, args["n"], args["tries"]):
                got = await asyncio.gather(
                    *(budget.reserve(args["daily"]) for _ in range(args["tries"]))
                )
                granted += sum(got)
            await budget.aclose()
            return {"granted": granted}
        raise SystemExit(f"unknown: {what}")
    finally:
        await state.aclose()


async def _send(state: SharedState, namespace: str, args: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    from enricher.api.protocol import build_request
    from enricher.ioc import IocType

    limiter = RedisLimiter(state, namespace, args["rate"], headroom=args["headroom"])
    statuses: list[int] = []
    async with aiohttp.ClientSession() as session:
        await _until(args["start"])
        began = time.time()
        for i in range(args["n"]):
            keys = [(IocType.DOMAIN, f"d{i}-{j}-{args['who']}.example.com") for j in range(5)]
            await limiter.acquire()
            async with session.post(
                args["base"] + "/domain_batch",
                data=build_request(keys),
                headers={"Content-Type": "application/json"},
            ) as resp:
                await resp.read()
                statuses.append(resp.status)
            if resp.status == 429:
                limiter.rate_limited()
            else:
                limiter.succeeded()
        await limiter.aclose()
    changes = [(c.at, round(c.rate, 2), c.reason) for c in limiter.changes]
    return {"statuses": statuses, "began": began, "ended": time.time(), "changes": changes}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))))
