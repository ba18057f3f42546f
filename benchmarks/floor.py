"""The floor: the least work any correct pipeline must do, as a process of its own.

Read the lines, normalize and dedupe them exactly, tell the endpoint, post batches of 500 with
8 requests in flight, parse the answers, write one NDJSON line per answer entry to stdout. No
retries, no rate limiter, no accounting: any failure ends it (exit 1). Batches leave as the
reading fills them, so reading overlaps the requests as the engine's does.

Its normalizer knows only the forms benchmarks/messy.py writes (see benchmarks/README.md);
`--normalize enricher` uses enricher's own `normalize` instead, to tell what that one costs.

    python benchmarks/floor.py BASE_URL FILE [--normalize minimal|enricher]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import sys
from collections.abc import Callable, Iterator

import aiohttp
import orjson

HASHES = {32: "md5", 40: "sha1", 64: "sha256"}
HEX = re.compile(r"[0-9a-f]+")
OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = re.compile(rf"{OCTET}(?:\.{OCTET}){{3}}")
DOMAIN = re.compile(
    r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
Key = tuple[str, str]  # (type, value)


def minimal(line: str) -> Key | None:
    """(type, value) of one line, or None: plain values first, then the forms of messy.py."""
    s = line.strip().lower()
    if len(s) in HASHES and HEX.fullmatch(s):
        return HASHES[len(s)], s
    if IPV4.fullmatch(s):
        return "ipv4", s
    if DOMAIN.fullmatch(s):
        return "domain", s
    s = s.replace("[.]", ".").split("://", 1)[-1].split("/", 1)[0].rpartition("@")[2]
    if s.startswith("["):
        s = s[1:].partition("]")[0]
    elif s.count(":") == 1:
        s = s.partition(":")[0]
    s = s.rstrip(".").removeprefix("*.")
    if ":" in s:
        try:
            ip = ipaddress.IPv6Address(s)
        except ValueError:
            return None
        mapped = ip.ipv4_mapped
        return ("ipv4", str(mapped)) if mapped else ("ipv6", ip.compressed)
    if IPV4.fullmatch(s):
        return "ipv4", s
    return ("domain", s) if DOMAIN.fullmatch(s) else None


def enricher_normalize(line: str) -> Key | None:
    from enricher.pipeline.normalize import normalize

    kind, value = normalize(line)
    return (kind.value, value) if kind is not None else None


ENDPOINT = {"md5": "file_batch", "sha1": "file_batch", "sha256": "file_batch",
            "domain": "domain_batch", "ipv4": "ip_batch", "ipv6": "ip_batch"}  # fmt: skip


def request_key(kind: str, value: str) -> dict[str, str]:
    if kind in ("ipv4", "ipv6"):
        return {"ipAddress": value, "addressType": kind.capitalize()}
    return {kind: value}


def batches(
    path: str, classify: Callable[[str], Key | None], size: int
) -> Iterator[tuple[str, list[Key]]]:
    seen: set[Key] = set()
    pending: dict[str, list[Key]] = {"file_batch": [], "domain_batch": [], "ip_batch": []}
    with open(path, encoding="utf-8-sig") as f:  # text mode reads CRLF as LF
        for line in f:
            if line[0] == "#" or (key := classify(line)) is None or key in seen:
                continue
            seen.add(key)
            endpoint = ENDPOINT[key[0]]
            pending[endpoint].append(key)
            if len(pending[endpoint]) == size:
                yield endpoint, pending[endpoint]
                pending[endpoint] = []
    yield from ((endpoint, keys) for endpoint, keys in pending.items() if keys)


def record(entry: dict[str, object]) -> bytes:
    echo: dict[str, str | None] = entry["requestKey"]  # type: ignore[assignment]
    kind = next(k for k in ("md5", "sha1", "sha256", "domain", "ipAddress") if echo.get(k))
    ioc = echo[kind]
    kind = str(echo.get("addressType", "")).lower() if kind == "ipAddress" else kind
    return orjson.dumps({"ioc": ioc, "type": kind, "response": entry}) + b"\n"


async def main(base_url: str, path: str, classify: Callable[[str], Key | None]) -> None:
    todo = batches(path, classify, 500)  # one generator, drawn from by every worker in turn
    out = sys.stdout.buffer
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:

        async def worker() -> None:
            for endpoint, keys in todo:
                body = orjson.dumps(
                    {"requestData": [{"requestKey": request_key(*k)} for k in keys]}
                )
                async with session.post(
                    f"{base_url}/{endpoint}",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as r:
                    r.raise_for_status()
                    answer = orjson.loads(await r.read())
                out.write(b"".join(map(record, answer["classificationResponses"])))

        await asyncio.gather(*(worker() for _ in range(8)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_url")
    ap.add_argument("file")
    ap.add_argument("--normalize", choices=("minimal", "enricher"), default="minimal")
    args = ap.parse_args()
    try:  # the engine's own choice: uvloop when it is installed
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    classify = minimal if args.normalize == "minimal" else enricher_normalize
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main(args.base_url, args.file, classify))
