"""Issue 15's bar through the command line, short (benchmarks/shared_state.py; `python -m
benchmarks --only shared` runs it longer): three `enricher run` jobs, disjoint inputs,
`--state redis://… --rate 20` each, against a server allowing 20 requests/s in all: 429s at
most 1% of requests, at least 90% of the 20/s used, every job exactly-once; a fourth job over
every input with the same state sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.serial
async def test_three_jobs_share_the_rate_the_answers_and_each_is_exactly_once(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import shared_state

    # 120 requests: 6 s at 20/s
    report = await shared_state.measure(redis_url, rate=20, seconds=6, jobs=3, folder=tmp_path)
    assert report["exit_codes"] == [0, 0, 0] and all(report["exactly_once"]), report
    assert report["requests"] >= 120
    assert report["share_429"] <= 0.01, report
    assert report["used_share"] >= 0.9, report
    assert report["fourth_exactly_once"] and report["fourth_requests"] == 0, report
