"""The benchmark suite still runs: its smallest scenario on a tiny input, in a few seconds.

Benchmarks are not tests; this only checks that `python -m benchmarks` is not broken (the
figures are not looked at)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


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
    md = (tmp_path / "latest.md").read_text()
    assert "engine / ceiling" in md
    assert "- bytecode: enricher/ and benchmarks/ compiled before measuring" in md


def test_the_suite_measures_the_engine_with_its_bytecode_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As an installed wheel has it, whatever PYTHONDONTWRITEBYTECODE says (bytecode.py)."""
    monkeypatch.syspath_prepend(str(ROOT))
    import importlib.util

    from benchmarks.bytecode import compile_sources

    pyc = Path(importlib.util.cache_from_source(str(ROOT / "enricher" / "ioc.py")))
    pyc.unlink(missing_ok=True)
    assert compile_sources().startswith("bytecode: enricher/ and benchmarks/ compiled")
    assert pyc.exists()


def test_the_suite_runs_its_floor_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import run

    tiny = run.Sizes(2_000, (2_000,), 200, 20, 1, 1, 200, 0.01, 1, floor_runs=1)
    monkeypatch.setattr(run, "QUICK", tiny)
    code = run.main(["--quick", "--only", "floor", "--results", str(tmp_path)])
    doc = orjson.loads((tmp_path / "latest.json").read_bytes())
    floor = doc["scenarios"]["floor"]
    assert floor["status"] == "ok", floor
    assert code == 0
    # every contender wrote one record per unique IOC (the scenario checks it on each run)
    assert floor["tidy"]["unique"] == floor["messy"]["unique"] == 1_000
    assert set(floor["messy"]["runs"]) == {"engine", "floor", run.FLOOR_NORMALIZE, run.WITH_CACHE}
    assert all(r["cpu_us_per_unique"] > 0 for r in floor["tidy"]["runs"]["engine"])
    assert "tidy: **engine / floor**" in (tmp_path / "latest.md").read_text()


def test_the_floor_reads_the_messy_input_as_enricher_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The floor's own normalizer is fair: on every line of the messy workload it gives what
    enricher's `normalize` gives (the same IOC, or nothing for a line that is none)."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import floor, messy
    from enricher.pipeline.normalize import normalize

    src = tmp_path / "messy.txt"
    unique = messy.write_messy(src, 20_000)
    found = set()
    for line in src.read_text(encoding="utf-8-sig").splitlines():
        if line.lstrip().startswith("#"):
            continue
        ours = floor.minimal(line)
        assert ours == floor.enricher_normalize(line), (line, ours, normalize(line))
        if ours is not None:
            found.add(ours)
    assert found == messy.expected(unique)


def test_the_extraction_corpus_truth_is_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import extract_peers

    docs = extract_peers.load()
    assert extract_peers.TRUTH.read_text(encoding="utf-8") == extract_peers.truth_json(docs), (
        "run: python -m benchmarks extract-peers --write-truth"
    )
    assert not any("⟦" in d.text or "⟧" in d.text for d in docs)


def test_the_extraction_benchmark_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import extract_peers

    results = extract_peers.measure(0.02, 0.01, ["enricher"])
    ours = results["extractors"]["enricher"]
    assert set(ours["recall"]) == set(extract_peers.KINDS)
    assert ours["speed"]["reports"]["mb"] > 0.02
    # the fresh copies hold as many IOCs as the labelled documents, none of them the same
    docs = extract_peers.load()
    copy = extract_peers.copies(docs, 0.001, seed=3)[: len(docs)]
    for doc, fresh in zip(docs, copy, strict=True):
        labelled = set().union(*doc.truth.values())
        found = set(extract_peers.extract(fresh.text))
        assert not labelled & found - doc.ignored, doc.name


def test_the_intake_script_takes_every_unique_ioc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`instructions.py --intake`'s process (`intake.py`) ingests the messy input: one new key
    per unique IOC, over all lines and over the first few only."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import intake, messy

    path = tmp_path / "messy.txt"
    unique = messy.write_messy(path, 2_000)
    monkeypatch.setattr("sys.argv", ["intake.py", str(path)])
    assert intake.main() == 0
    monkeypatch.setattr("sys.argv", ["intake.py", str(path), "--first", "8"])
    assert intake.main() == 0
    whole, first = map(int, capsys.readouterr().out.split())
    assert whole == unique
    assert 0 < first <= 8
