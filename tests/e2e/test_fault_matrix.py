"""The fault matrix: every fault the emulator can inject, alone at 30%, all of them at once,
and hostile mixes drawn by hypothesis. After each run every unique valid IOC has come out
exactly once (unique = ok + failed + unsupported + deferred), each record is the emulator's
own answer for its key, and each failure gave up only once its retries were spent.

The knobs come from `enricher.emulator.config`, so a fault added there is in the matrix
without touching this file (and `test_every_fault_knob_is_in_the_matrix` sees to it that a
new `*_rate` field is listed there).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from enricher.config.settings import Settings, load_settings
from enricher.emulator import FAULT_NAMES, Emulator, EmulatorConfig
from enricher.emulator.config import CONTENT_FAULTS, WHOLE_RESPONSE_FAULTS

pytest.register_assert_rewrite("nothing_lost")  # its asserts explain themselves, as ours do
from nothing_lost import Run, check_run, enrich_all, mixed_iocs  # noqa: E402

FAULT_KNOBS = (*WHOLE_RESPONSE_FAULTS, *CONTENT_FAULTS)
RATE = 0.30
ATTEMPTS = 8  # a batch fails only if all 8 attempts draw a fault: 0.3**8, about 1 in 15,000
UNIQUE = 2400  # IOCs per case (+50% duplicate lines), of all six types
BATCH = 25  # keys a request, so a case makes 100+ requests


def settings_for(
    emu: Emulator,
    *,
    batch: int = BATCH,
    concurrency: int = 8,
    attempts: int = ATTEMPTS,
    missing_attempts: int = 3,
) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "api": {
                "base_url": emu.base_url,
                "send_sha256": True,
                "file_batch_size": batch,
                "domain_batch_size": batch,
                "ip_batch_size": batch,
            },
            "limits": {"rate": 0, "concurrency": concurrency},
            "retry": {
                "attempts": attempts,
                "missing_attempts": missing_attempts,
                "backoff_base": 0.005,
                "backoff_max": 0.02,
            },
            # a hung request costs its read timeout: keep it short, yet far above the
            # emulator's answer time (milliseconds, at most 60 ms of drawn latency here)
            "network": {"connect_timeout": 1.0, "read_timeout": 0.15, "total_timeout": 1.0},
            "pipeline": {"batch_deadline": 0.02},
        },
    )


async def run_case(
    config: EmulatorConfig, lines: list[str], **kw: Any
) -> tuple[Run, Settings, dict[str, Any]]:
    async with Emulator(config) as emu:
        s = settings_for(emu, **kw)
        run = await enrich_all(s, lines)
        server = emu.stats()
    return run, s, server


def fault_name(knob: str) -> str:
    return knob.removesuffix("_rate")


def test_every_fault_knob_is_in_the_matrix() -> None:
    rates = {f.name for f in dataclasses.fields(EmulatorConfig) if f.name.endswith("_rate")}
    assert rates == set(FAULT_KNOBS)
    assert {fault_name(k) for k in FAULT_KNOBS} <= set(FAULT_NAMES)


@pytest.mark.parametrize("knob", FAULT_KNOBS)
async def test_one_fault_alone(knob: str) -> None:
    lines, expected = mixed_iocs(UNIQUE, seed=FAULT_KNOBS.index(knob))
    config = EmulatorConfig(seed=100 + FAULT_KNOBS.index(knob), **{knob: RATE})
    run, s, server = await run_case(config, lines)
    check_run(run, expected, s)
    # the fault happened, and the engine had to deal with it
    assert server["faults"][fault_name(knob)] > 0, server["faults"]
    if knob in WHOLE_RESPONSE_FAULTS:
        assert run.stats.retries > 0
    elif knob == "missing_key_rate":
        assert run.stats.requeued > 0
    elif knob in ("duplicate_rate", "extra_rate"):
        assert run.stats.extra_entries > 0


async def test_all_faults_at_once() -> None:
    """30% of requests replaced whole, spread evenly over the five ways (6% each, as they
    cannot combine); each content fault at 30% on top; some latency and jitter."""
    whole = RATE / len(WHOLE_RESPONSE_FAULTS)
    config = EmulatorConfig(
        seed=7,
        latency_ms=2,
        jitter_ms=2,
        **dict.fromkeys(WHOLE_RESPONSE_FAULTS, whole),
        **dict.fromkeys(CONTENT_FAULTS, RATE),
    )
    lines, expected = mixed_iocs(UNIQUE, seed=77)
    run, s, server = await run_case(config, lines)
    check_run(run, expected, s)
    assert all(server["faults"][fault_name(k)] > 0 for k in FAULT_KNOBS), server["faults"]
    assert run.stats.retries > 0 and run.stats.requeued > 0 and run.stats.extra_entries > 0


async def test_failures_only_where_retries_are_spent() -> None:
    """With 2 attempts against 60% faults, many batches fail: each failure must say it was
    tried exactly as often as configured, and the rest still come out right."""
    config = EmulatorConfig(
        seed=3,
        **dict.fromkeys(WHOLE_RESPONSE_FAULTS, 0.6 / len(WHOLE_RESPONSE_FAULTS)),
        **dict.fromkeys(CONTENT_FAULTS, RATE),
    )
    lines, expected = mixed_iocs(1200, seed=5)
    run, s, _ = await run_case(config, lines, attempts=2, missing_attempts=1)
    check_run(run, expected, s)
    kinds = {f["error"].split(":", 1)[0] for f in run.failures}
    assert {"missing", "transport"} <= kinds, kinds
    assert len(run.records) > len(expected) / 3


async def test_refused_keys_fail_alone_amid_faults() -> None:
    """A 400 is not retried: the refused keys fail after one attempt each, the others in
    their batches are answered although every other fault is going on."""
    lines, expected = mixed_iocs(600, seed=9)
    refused = sorted(expected)[::97]
    config = EmulatorConfig(
        seed=4,
        refuse_keys=frozenset(v for _, v in refused),
        **dict.fromkeys(WHOLE_RESPONSE_FAULTS, 0.05),
        **dict.fromkeys(CONTENT_FAULTS, 0.2),
    )
    run, s, _ = await run_case(config, lines)
    check_run(run, expected, s)
    bad = {(f["type"], f["ioc"]): f for f in run.failures if f["error"].startswith("http_400")}
    assert set(bad) == set(refused)
    assert all(f["attempts"] == 1 for f in bad.values())
    assert run.stats.bisections > 0


# -- hostile mixes nobody tuned for ---------------------------------------------------------

rates = st.floats(min_value=0.0, max_value=0.5, allow_nan=False)


@st.composite
def hostile(draw: st.DrawFn) -> dict[str, Any]:
    # whole-response faults: drawn weights scaled to a drawn total, so they sum to <= 0.5
    weights = [draw(st.floats(0.0, 1.0)) for _ in WHOLE_RESPONSE_FAULTS]
    total = draw(st.floats(0.0, 0.5))
    scale = total / sum(weights) if sum(weights) > 0 else 0.0
    emulator: dict[str, Any] = {
        knob: w * scale for knob, w in zip(WHOLE_RESPONSE_FAULTS, weights, strict=True)
    }
    emulator.update({knob: draw(rates) for knob in CONTENT_FAULTS})
    emulator["latency_ms"] = draw(st.floats(0.0, 30.0))
    emulator["jitter_ms"] = draw(st.floats(0.0, 30.0))
    emulator["seed"] = draw(st.integers(0, 2**32 - 1))
    emulator["max_batch"] = draw(st.none() | st.integers(5, 40))
    return {
        "emulator": emulator,
        "batch": draw(st.integers(10, 64)),
        "concurrency": draw(st.integers(4, 16)),
        "attempts": draw(st.integers(3, 10)),
        "missing_attempts": draw(st.integers(1, 4)),
        "ioc_seed": draw(st.integers(0, 2**32 - 1)),
        "refuse": draw(st.integers(0, 3)),
    }


@settings(
    max_examples=8,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=hostile())
def test_a_hostile_mix_loses_nothing(case: dict[str, Any]) -> None:
    lines, expected = mixed_iocs(600, seed=case["ioc_seed"])
    refused = sorted(expected)[: case["refuse"]]
    config = EmulatorConfig(refuse_keys=frozenset(v for _, v in refused), **case["emulator"])
    note(repr(config))
    run, s, _ = asyncio.run(
        run_case(
            config,
            lines,
            batch=case["batch"],
            concurrency=case["concurrency"],
            attempts=case["attempts"],
            missing_attempts=case["missing_attempts"],
        )
    )
    check_run(run, expected, s)
    bad = {(f["type"], f["ioc"]) for f in run.failures if f["error"].startswith("http_400")}
    assert bad == set(refused)
