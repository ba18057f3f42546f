"""What "nothing is lost" means, for the fault matrix and the nginx tests: IOCs in, what
must come out, and the check that it did."""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from enricher.api.ratelimit import RateLimiter
from enricher.config.settings import Settings
from enricher.emulator import entry_for
from enricher.errors import HTTPStatusError, RequestError
from enricher.ioc import ENDPOINT_OF, IocType
from enricher.pipeline.run import Enricher
from enricher.pipeline.stats import RunStats

__all__ = ["Run", "check_run", "enrich_all", "expected_record", "mixed_iocs", "retryable_kind"]

_HASH_LENGTH = {"md5": 32, "sha1": 40, "sha256": 64}
_CASELESS = {*_HASH_LENGTH, "domain"}  # requestKey fields compared without case


#: first octets of IPv4 addresses that are all global
_GLOBAL_FIRST = [n for n in range(1, 224) if n not in (10, 100, 127, 169, 172, 192, 198, 203)]


def mixed_iocs(n: int, seed: int) -> tuple[list[str], set[tuple[str, str]]]:
    """Input lines holding `n` unique valid IOCs of all six types, with duplicates.

    Half as many lines again repeat an IOC, as it is or spelled otherwise (hashes and domains
    in upper case, a domain with its trailing dot, defanged, IPv6 written out in full), and a
    few lines are no IOC at all. Returns the shuffled lines and the expected unique
    `(type, normalized IOC)` pairs, worked out here, not by enricher's normalizer.
    """
    rng = random.Random(seed)
    unique: list[tuple[str, str]] = []
    spellings: list[str] = []
    for i in range(n):
        bits = rng.getrandbits(256)
        kind = ("md5", "sha1", "sha256", "domain", "ipv4", "ipv6")[i % 6]
        if kind in _HASH_LENGTH:
            value = f"{bits:064x}"[: _HASH_LENGTH[kind]]
            spellings.append(value.upper())
        elif kind == "domain":
            value = f"h{i}-{bits & 0xFFFFFF:06x}.example{i % 89}.com"
            spellings += [value.upper() + ".", value.replace(".", "[.]")]
        elif kind == "ipv4":
            # a global address (never withheld as internal: see enricher.pipeline.privacy)
            first, second = _GLOBAL_FIRST[(bits & 0xFF) % len(_GLOBAL_FIRST)], (bits >> 8) & 0xFF
            value = f"{first}.{second}.{i >> 8 & 255}.{i & 255}"
            head, _, last = value.rpartition(".")
            spellings.append(f"{head}[.]{last}")
        else:
            host = (bits >> 176) << 16 | (i & 0xFFFF)  # 80 random bits, then the index
            value = ipaddress.IPv6Address(0x2A0B4140 << 96 | host).compressed
            spellings.append(ipaddress.IPv6Address(value).exploded)
        unique.append((kind, value))
        spellings.append(value)
    lines = [value for _, value in unique]
    lines += rng.choices(spellings, k=n // 2)
    lines += ["not an ioc", "999.1.1.1", "", "# a comment"]
    rng.shuffle(lines)
    return lines, set(unique)


def _iso_ms(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def expected_record(ioc_type: str, ioc: str, verdicts: Mapping[str, str]) -> dict[str, Any]:
    """The record a run must write for this IOC: the emulator's deterministic answer for
    the key, in the README's record schema (ttl in ms, not from the cache)."""
    response = entry_for(ENDPOINT_OF[IocType(ioc_type)], ioc)
    agg = response["aggregatedResult"]
    mal = agg["maliciousClassification"]
    return {
        "ioc": ioc,
        "type": ioc_type,
        "verdict": verdicts.get(mal["type"], "unknown"),
        "classification": mal["type"],
        "score": mal["classificationScore"],
        "type_score": mal["typeScore"],
        "source": mal.get("source"),
        "ttl_ms": response["ttl"],
        "first_seen": _iso_ms(agg.get("firstSeen")),
        "link": agg["link"],
        "product": agg.get("productClassification"),
        "cp_type": response["cpType"],
        "response": response,
        "cached": False,
    }


def retryable_kind(kind: str) -> bool:
    """Whether a failure's error kind (`http_503`, `transport`, ...) is one the sender
    retries, as `enricher.errors` defines it."""
    if kind.startswith("http_"):
        return HTTPStatusError(int(kind.removeprefix("http_"))).retryable
    todo: list[type[RequestError]] = [RequestError]
    while todo:
        cls = todo.pop()
        if cls.kind == kind:
            return cls.retryable
        todo += cls.__subclasses__()
    raise AssertionError(f"no RequestError has the kind {kind!r}")


@dataclass
class Run:
    records: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    deferred: list[dict[str, Any]]
    stats: RunStats
    limiter: RateLimiter | None = None


async def enrich_all(settings: Settings, lines: list[str]) -> Run:
    """One library run over `lines`, everything it yielded sorted by kind."""
    run = Run([], [], [], RunStats())
    async with Enricher(settings, stats=run.stats) as e:
        async for item in e.enrich(lines):
            if "reason" in item:
                run.deferred.append(dict(item))
            elif "error" in item:
                run.failures.append(dict(item))
            else:
                run.records.append(dict(item))
    run.limiter = e.limiter
    return run


def check_run(run: Run, expected: set[tuple[str, str]], settings: Settings) -> None:
    """Nothing lost, nothing twice, nothing wrong: every expected IOC comes out exactly once;
    unique = ok + failed + unsupported + deferred; each record is the emulator's answer for
    its key; each failure gave up only when its retries were spent, or could not be retried."""
    stats = run.stats
    out = Counter((r["type"], r["ioc"]) for r in run.records + run.failures + run.deferred)
    twice = [key for key, n in out.items() if n > 1]
    assert not twice, f"{len(twice)} IOCs came out more than once, e.g. {twice[:3]}"
    lost, invented = expected - set(out), set(out) - expected
    assert not lost and not invented, f"lost {sorted(lost)[:3]}, invented {sorted(invented)[:3]}"
    assert stats.unique == len(expected)
    assert stats.ok == len(run.records)
    assert stats.failed + stats.unsupported == len(run.failures)
    assert stats.deferred == len(run.deferred)
    assert stats.invariant_holds, stats.as_dict()
    for record in run.records:
        got = dict(record)
        echo = record["response"]["requestKey"]
        # an upper-cased echo (a fault) is matched case-insensitively; the rest is verbatim
        got["response"] = {
            **record["response"],
            "requestKey": {
                k: v.lower() if k in _CASELESS and isinstance(v, str) else v
                for k, v in echo.items()
            },
        }
        assert got == expected_record(record["type"], record["ioc"], settings.verdicts)
    retry = settings.retry
    for fail in run.failures:
        kind = fail["error"].split(":", 1)[0]
        if kind == "unsupported":
            assert fail["attempts"] == 0, fail
        elif kind == "missing":
            # asked, then asked again `missing_attempts` times
            assert fail["attempts"] == retry.missing_attempts + 1, fail
        elif retryable_kind(kind):
            assert fail["attempts"] == retry.attempts, fail
        else:
            assert 1 <= fail["attempts"] <= retry.attempts, fail
