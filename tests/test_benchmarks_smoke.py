"""The benchmark suite still runs: its smallest scenario on a tiny input, in a few seconds.

Benchmarks are not tests; this only checks that `python -m benchmarks` is not broken (the
figures are not looked at)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_suite_runs_its_ceiling_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import run

    monkeypatch.setattr(run, "QUICK", run.Sizes(2_000, (2_000,), 200, 20, 1, 1, 200, 0.01, 1))
    code = run.main(["--quick", "--only", "ceiling", "--results", str(tmp_path)])
    doc = orjson.loads((tmp_path / "latest.json").read_bytes())
    assert doc["scenarios"]["ceiling"]["status"] == "ok", doc["scenarios"]["ceiling"]
    assert code == 0
    assert doc["scenarios"]["ceiling"]["engine"]["unique"] == 1_000
    assert "engine / ceiling" in (tmp_path / "latest.md").read_text()
