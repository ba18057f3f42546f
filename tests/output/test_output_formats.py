"""`--output-format`: each format written by a real run against the embedded emulator and
read back by its own ecosystem's reader (the csv module, the _bulk layout, stix2, pymisp);
CSV safe to open in a spreadsheet; `--resume` of the streamable formats after a torn write,
and refused for the bundle formats."""

from __future__ import annotations

import csv
import io
import random
import re
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import stix2
from helpers import emulator_process, enricher, kill_when_written, read_ndjson, start_run
from pymisp import MISPEvent

from enricher.app.job import Job
from enricher.errors import SettingsError
from enricher.output.files import OutputFile
from enricher.output.formats import record_writer
from enricher.output.formats.csv import COLUMNS, cell
from enricher.output.formats.ecs import document_id
from enricher.output.formats.stix import BUNDLE_RECORDS, EXTENSION_ID
from enricher.output.records import Record

N = 240  # unique IOCs of the input: five batches of 50


def make_input(path: Path) -> dict[str, str]:
    """N unique IOCs of every kind (and duplicates, a reject); {ioc: type}."""
    iocs: dict[str, str] = {}
    for i in range(N // 4):
        iocs[f"host{i}.formats.example.com"] = "domain"
        iocs[f"45.1.{i // 250}.{i % 250 + 1}"] = "ipv4"  # global: a private one is withheld
        iocs[f"{i:032x}"] = "md5"
        iocs[f"{i:040x}"] = "sha1"
    lines = [*iocs, *list(iocs)[:20], "not an ioc at all"]
    path.write_text("\n".join(lines) + "\n")
    return iocs


def run(*args: str) -> tuple[int, str]:
    proc = enricher("run", "--emulator", "--no-cache", "-q", "--batch-size", "50", *args)
    return proc.returncode, proc.stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Record]]:
    """The input, and the NDJSON records of a run over it (the emulator answers a key the
    same way in every run)."""
    where = tmp_path_factory.mktemp("reference")
    src = where / "in.txt"
    make_input(src)
    code, err = run(str(src), "-o", str(where / "out.ndjson"))
    assert code == 0, err
    return src, {r["ioc"]: r for r in read_ndjson(where / "out.ndjson")}  # type: ignore[misc]


def written(
    reference: tuple[Path, dict[str, Record]], tmp_path: Path, fmt: str
) -> tuple[Path, dict[str, Record]]:
    """The records file of a run over the reference input in `fmt`, and the reference
    records by IOC."""
    src, records = reference
    out = tmp_path / f"out.{fmt}"
    code, err = run(str(src), "-o", str(out), "--output-format", fmt)
    assert code == 0, err
    return out, records


def test_csv_is_rfc4180_and_matches_the_records(
    reference: tuple[Path, dict[str, Record]], tmp_path: Path
) -> None:
    out, records = written(reference, tmp_path, "csv")
    raw = out.read_bytes()
    assert raw.startswith(b"ioc,type,verdict,classification,score,")
    assert raw.count(b"\r\n") == N + 1 and raw.count(b"\n") == N + 1  # CRLF, a row a line
    rows = list(csv.DictReader(io.StringIO(raw.decode(), newline="")))
    assert [r["ioc"] for r in rows].count(rows[0]["ioc"]) == 1
    assert {r["ioc"] for r in rows} == set(records)
    for row in rows:
        rec = records[row["ioc"]]
        assert row["type"] == rec["type"] and row["verdict"] == rec["verdict"]
        assert row["classification"] == (rec["classification"] or "")
        assert row["link"] == (rec["link"] or "")
        assert row["score"] == ("" if rec["score"] is None else str(rec["score"]))
        assert row["cached"] == "false"


def test_csv_cells_are_safe_in_a_spreadsheet() -> None:
    for text in ('=HYPERLINK("x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert cell(text).startswith("'"), text
    assert cell("ransom") == "ransom" and cell(-1) == -1 and cell(None) == ""
    assert cell("a\r\nb\nc") == "a b c"
    # what an importer that trims spaces or folds fullwidth forms would run
    for text in ("\n=1+1", "\r=1+1", "  =1+1", "\u00a0=1+1", "\uff1d1+1", " @x", "\u3000+1"):
        assert cell(text).startswith("'"), text
    assert cell("\n=1+1") == cell("\r=1+1") == "' =1+1"
    assert cell("\u00a0plain") == "\u00a0plain" and cell("a\tb") == "a\tb"
    # a terminal showing the file (cat, grep) runs no escape sequence; NUL is dropped
    assert cell("\x1b]0;title\x07x\x00y\x9b") == "\\x1b]0;title\\x07xy\\x9b"
    record = {
        "ioc": "evil.example.com", "type": "domain", "verdict": "malicious",
        "classification": '=cmd|" /C calc"!A0', "score": -1, "type_score": 0.5,
        "source": 'a "quoted", multi\nline source', "first_seen": None,
        "link": "@evil", "cp_type": None, "ttl_ms": 5, "cached": True,
    }  # fmt: skip
    line = orjson.dumps(record) + b"\n"
    data = record_writer("csv").encode(line)
    assert data.count(b"\n") == 1 and data.endswith(b"\r\n")
    (row,) = csv.reader(io.StringIO(data.decode(), newline=""))
    assert dict(zip(COLUMNS, row, strict=True)) == {
        "ioc": "evil.example.com", "type": "domain", "verdict": "malicious",
        "classification": '\'=cmd|" /C calc"!A0', "score": "-1", "type_score": "0.5",
        "source": 'a "quoted", multi line source', "first_seen": "", "link": "'@evil",
        "cp_type": "", "ttl_ms": "5", "cached": "true",
    }  # fmt: skip


def test_ecs_is_bulk_pairs_of_indicator_documents(
    reference: tuple[Path, dict[str, Record]], tmp_path: Path
) -> None:
    out, records = written(reference, tmp_path, "ecs")
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2 * N
    ids: set[str] = set()
    seen = Counter()
    for action, doc_line in zip(lines[::2], lines[1::2], strict=True):
        doc = orjson.loads(doc_line)
        ind = doc["threat"]["indicator"]
        # the same _id in every run: a document sent twice is refused, not duplicated
        key = document_id(doc["enricher"]["type"], ind["name"])
        assert orjson.loads(action) == {"create": {"_id": key}}
        ids.add(key)
        assert doc["event"]["kind"] == "enrichment" and doc["event"]["type"] == ["indicator"]
        assert doc["ecs"]["version"] and doc["@timestamp"].endswith("Z")
        rec = records[ind["name"]]
        seen[ind["name"]] += 1
        assert doc["enricher"]["verdict"] == rec["verdict"]
        if rec["type"] == "ipv4":
            assert ind["type"] == "ipv4-addr" and ind["ip"] == rec["ioc"]
        elif rec["type"] == "domain":
            assert ind["type"] == "domain-name" and ind["url"]["domain"] == rec["ioc"]
        else:
            assert ind["type"] == "file" and ind["file"]["hash"][rec["type"]] == rec["ioc"]
        assert ind.get("reference") == rec["link"]
    assert set(seen) == set(records) and max(seen.values()) == 1
    assert len(ids) == N
    # the same in every run and release
    assert document_id("ipv4", "8.8.8.8") == "01bfb46807fbb664bf599b2127d411a0"


def test_stix_bundle_parses_with_stix2(
    reference: tuple[Path, dict[str, Record]], tmp_path: Path
) -> None:
    out, records = written(reference, tmp_path, "stix")
    bundle = stix2.parse(out.read_text(), allow_custom=False)  # strict: no x_ property
    kinds = Counter(o["type"] for o in bundle.objects)
    assert kinds["identity"] == 1 and kinds["indicator"] == N and kinds["relationship"] == N
    assert kinds["extension-definition"] == 1
    assert kinds["file"] + kinds["domain-name"] + kinds["ipv4-addr"] == N
    (identity,) = [o for o in bundle.objects if o["type"] == "identity"]
    by_id = {o["id"]: o for o in bundle.objects}
    for o in bundle.objects:
        if o["type"] == "indicator":
            rec = records[o["name"]]
            assert o["created_by_ref"] == identity["id"]
            answer = o["extensions"][EXTENSION_ID]
            assert answer["verdict"] == rec["verdict"]
            assert answer.get("classification") == rec["classification"]
            assert f"verdict:{rec['verdict']}" in o["labels"]
            assert rec["ioc"] in o["pattern"]
        elif o["type"] == "relationship":
            assert o["relationship_type"] == "based-on"
            ind, obs = by_id[o["source_ref"]], by_id[o["target_ref"]]
            assert ind["name"] in (obs.get("value"), *(obs.get("hashes") or {}).values())
    # the next night's bundle: the same objects (a platform updates them, adds no copy)
    again = tmp_path / "again"
    again.mkdir()
    out2, _ = written(reference, again, "stix")
    objects2 = stix2.parse(out2.read_text(), allow_custom=False).objects
    assert {o["id"] for o in objects2} == set(by_id)
    # a new version of an object keeps its `created` (STIX 2.1, 3.2): only `modified` moves
    for o in objects2:
        if "created" in o:
            assert o["created"] == by_id[o["id"]]["created"]
            assert o["modified"] >= by_id[o["id"]]["modified"]


def test_stix_lines_are_bundles_of_a_bounded_size_each_parsed_by_stix2(
    reference: tuple[Path, dict[str, Record]], tmp_path: Path
) -> None:
    out, records = written(reference, tmp_path, "stix-lines")
    lines = out.read_bytes().splitlines()
    indicators: Counter[str] = Counter()
    bundle_ids = set()
    for line in lines:
        bundle = stix2.parse(line.decode(), allow_custom=False)  # each line a whole bundle
        bundle_ids.add(bundle.id)
        kinds = Counter(o["type"] for o in bundle.objects)
        assert bundle.objects[0]["type"] == "identity"
        assert bundle.objects[1]["type"] == "extension-definition"
        assert 1 <= kinds["indicator"] <= BUNDLE_RECORDS
        assert kinds["indicator"] == kinds["relationship"] == len(bundle.objects) // 3
        indicators.update(o["name"] for o in bundle.objects if o["type"] == "indicator")
    assert set(indicators) == set(records) and max(indicators.values()) == 1
    assert len(bundle_ids) == len(lines)
    got = Counter(record_writer("stix-lines").keys(out))  # what --resume reads back
    assert {ioc for _, ioc in got} == set(records) and max(got.values()) == 1
    assert all(t == records[ioc]["type"] for t, ioc in got)


def test_stix_lines_split_a_large_batch_into_bundles_of_the_size() -> None:
    from enricher.output.formats.base import samples
    from enricher.output.formats.stix import StixLinesWriter

    records = [{**r, "ioc": f"h{i}.example.com", "type": "domain"} for i, r in
               enumerate(samples() * 2)]  # fmt: skip
    data = StixLinesWriter(size=5).encode_records(records)  # type: ignore[arg-type]
    sizes = [len(orjson.loads(line)["objects"]) for line in data.splitlines()]
    assert sizes == [2 + 3 * 5, 2 + 3 * 5, 2 + 3 * 2]


def test_stix_lines_split_by_bytes_too() -> None:
    from enricher.output.formats.base import samples
    from enricher.output.formats.stix import StixLinesWriter

    # a server's strings have no bound: 60 KB links made 30 MB bundles of 1,000 (attack)
    records = [{**samples()[3], "ioc": f"h{i}.example.com", "link": "https://x/" + "a" * 60_000}
               for i in range(40)]  # fmt: skip
    data = StixLinesWriter(max_bytes=1 << 20).encode_records(records)  # type: ignore[arg-type]
    lines = data.splitlines()
    assert all(len(line) <= 1 << 20 for line in lines) and len(lines) == 3
    names = [o["name"] for line in lines for o in orjson.loads(line)["objects"]
             if o["type"] == "indicator"]  # fmt: skip
    assert names == [r["ioc"] for r in records]
    huge = [{**records[0], "link": "https://x/" + "a" * (2 << 20)}]
    assert len(StixLinesWriter(max_bytes=1 << 20).encode_records(huge).splitlines()) == 1  # type: ignore[arg-type]


def test_a_stix_bundle_is_not_resumed_as_stix_lines(
    reference: tuple[Path, dict[str, Record]], tmp_path: Path
) -> None:
    # attack: the bundle's first line starts as a stix-lines one does; resumed as one, every
    # IOC was written again after it and the file was no longer JSON, with exit 0
    from enricher.output.formats.base import first_line

    out, _ = written(reference, tmp_path, "stix")
    before = out.read_bytes()
    assert not record_writer("stix-lines").recognizes(first_line(out))
    src, _ = reference
    code, err = run(str(src), "-o", str(out), "--output-format", "stix-lines", "--resume")
    assert code == 1, err
    assert out.read_bytes() == before


def test_a_file_of_full_size_stix_lines_is_recognized_for_resume(tmp_path: Path) -> None:
    from enricher.output.formats.base import first_line, samples
    from enricher.output.formats.stix import StixLinesWriter

    records = [{**samples()[3], "ioc": f"h{i}.example.com"} for i in range(BUNDLE_RECORDS)]
    path = tmp_path / "out.stix.jsonl"
    writer = StixLinesWriter()
    path.write_bytes(writer.encode_records(records))  # type: ignore[arg-type]
    assert path.stat().st_size > 1 << 20  # longer than the first line read back
    assert writer.recognizes(first_line(path))
    assert not writer.recognizes(first_line(tmp_path / "none"))
    assert not record_writer("ecs").recognizes(first_line(path))


def test_misp_event_loads_with_pymisp(
    reference: tuple[Path, dict[str, Record]], tmp_path: Path
) -> None:
    out, records = written(reference, tmp_path, "misp")
    event = MISPEvent()
    event.load_file(str(out))
    assert event.info.startswith("enricher") and len(event.attributes) == N
    kinds = {"domain": "domain", "ipv4": "ip-dst", "md5": "md5", "sha1": "sha1"}
    for a in event.attributes:
        rec = records[a.value]
        assert a.type == kinds[rec["type"]]
        assert a.to_ids == (rec["verdict"] == "malicious")
        assert f'enricher:verdict="{rec["verdict"]}"' in {t.name for t in a.tags}
    assert len({a.value for a in event.attributes}) == N


def test_misp_machine_tags_hold_a_server_s_text_safely() -> None:
    from enricher.output.formats.base import samples
    from enricher.output.formats.misp import attribute

    hostile = '"><img src=x onerror=alert(1)>"\n\t\x00,' + "x" * 300
    rec = {**samples()[0], "classification": hostile, "verdict": 'mal"icious'}
    tags = [t["name"] for t in attribute(rec)["Tag"]]
    machine_tag = re.compile(r'[a-z-]+:[a-z]+="[^"\x00-\x1f\x7f]*"')
    assert all(machine_tag.fullmatch(t) and len(t) <= 255 for t in tags), tags
    assert tags[0] == 'enricher:verdict="mal\'icious"'
    assert tags[1].startswith("cybereason-gti:classification=\"'><img src=x onerror=alert(1)>'")


@pytest.mark.parametrize("fmt", ["csv", "stix", "misp"])
async def test_a_run_with_no_record_still_writes_a_whole_document(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    f = OutputFile(str(out), mode="new", resumable=True, writer=record_writer(fmt))
    await f.close()
    if fmt == "csv":
        assert out.read_bytes() == (",".join(COLUMNS) + "\r\n").encode()
    elif fmt == "stix":
        objects = stix2.parse(out.read_text()).objects
        assert [o["type"] for o in objects] == ["identity", "extension-definition"]
    else:
        event = MISPEvent()
        event.load_file(str(out))
        assert event.attributes == []


@pytest.mark.parametrize("fmt", ["csv", "ecs"])
def test_resume_after_a_torn_write(
    reference: tuple[Path, dict[str, Record]], tmp_path: Path, fmt: str
) -> None:
    """An earlier run wrote part of the records, its last batch torn as a SIGKILL leaves it;
    --resume over the whole input: each IOC once, the header once."""
    src, records = reference
    out = tmp_path / f"out.{fmt}"
    writer = record_writer(fmt)
    earlier = b"".join(orjson.dumps(r) + b"\n" for r in list(records.values())[:100])
    torn = b"ffff.torn.example.com,dom" if fmt == "csv" else b'{"create":{"_id":"ab"}}\n{"@tim'
    out.write_bytes(writer.begin() + writer.encode(earlier) + torn)
    code, err = run(str(src), "-o", str(out), "--output-format", fmt, "--resume")
    assert code == 0, err
    written = Counter(ioc for _, ioc in writer.keys(out))
    assert set(written) == set(records) and max(written.values()) == 1
    data = out.read_bytes()
    if fmt == "csv":
        assert data.count(b"ioc,type,verdict") == 1 and b"torn" not in data
    else:
        assert data.count(b'{"create":{"_id":"') == N and len(data.splitlines()) == 2 * N
        assert b'"ab"' not in data


def test_resume_is_refused_for_bundle_formats(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("{}")
    proc = enricher("run", "--emulator", "-o", str(out), "--output-format", "stix", "--resume")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "--resume" in proc.stderr and "stix" in proc.stderr
    assert "Traceback" not in proc.stderr and out.read_text() == "{}"
    with pytest.raises(SettingsError, match="cannot be continued"):
        Job(inputs=[], output=str(out), resume=True, output_format="misp")


def test_resume_in_another_format_is_refused(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out"
    src.write_text("evil.example.com\n")
    out.write_bytes(b'{"ioc":"evil.example.com","type":"domain","verdict":"unknown"}\n')
    before = out.read_bytes()
    code, err = run(str(src), "-o", str(out), "--output-format", "csv", "--resume")
    assert code == 1 and "is no csv output" in err and err.count("\n") == 1
    assert out.read_bytes() == before


def test_a_missing_library_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stix2", None)
    monkeypatch.delitem(sys.modules, "enricher.output.formats.stix", raising=False)
    with pytest.raises(SettingsError, match=r"pip install 'enricher\[stix\]'"):
        record_writer("stix")


def test_the_clock_is_injectable() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    line = orjson.dumps(
        {"ioc": "1.2.3.4", "type": "ipv4", "verdict": "unknown", "classification": None,
         "score": None, "type_score": None, "source": None, "ttl_ms": None,
         "first_seen": None, "link": None, "product": None, "cp_type": None,
         "response": {}, "cached": False}
    ) + b"\n"  # fmt: skip
    doc = orjson.loads(record_writer("ecs", now=lambda: at).encode(line).splitlines()[1])
    assert doc["@timestamp"] == "2026-01-02T03:04:05.000Z"
    stix = record_writer("stix", now=lambda: at)
    objects = orjson.loads(stix.begin() + stix.encode(line) + stix.end())["objects"]
    assert objects[2]["valid_from"] == "2026-01-02T03:04:05.000Z"


def test_the_stix_and_misp_writers_are_checked_against_their_libraries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Objects are made by enricher (the libraries build ~135 and ~2,000 a second), equal
    to those stix2 and pymisp make for a sample of each IOC type, which every run checks."""
    from enricher.output.formats import misp, stix

    stix.self_check()
    misp.self_check()
    monkeypatch.setitem(stix._HASH, "sha1", "SHA1")  # a hash name STIX does not spell so
    with pytest.raises(AssertionError, match="STIX"):
        stix.self_check()
    monkeypatch.setitem(misp._TYPE, "ipv4", ("ip", "Network activity"))  # no MISP type
    with pytest.raises(Exception, match="ip is invalid"):
        misp.self_check()


@pytest.mark.parametrize("fmt", ["csv", "ecs", "stix-lines"])
def test_sigkill_then_resume_is_exactly_once(tmp_path: Path, fmt: str) -> None:
    """Killed twice at random moments while writing (a batch torn mid-write included), then
    --resume: each IOC once, and the file whole (one header; ECS in pairs)."""
    src, out = tmp_path / "in.txt", tmp_path / f"out.{fmt}"
    iocs = make_input(src)
    rng = random.Random(7)
    flags = ("--output-format", fmt)
    with emulator_process("--latency-ms", "100", "--jitter-ms", "30") as url:
        for kill in range(2):
            before = out.stat().st_size if out.exists() else 0
            proc = start_run(url, src, out, *flags, *(("--resume",) if kill else ()))
            kill_when_written(proc, out, before, rng.uniform(0.0, 0.3))
        proc = start_run(url, src, out, *flags, "--resume")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    written = Counter(ioc for _, ioc in record_writer(fmt).keys(out))
    assert set(written) == set(iocs) and max(written.values()) == 1
    lines = out.read_bytes().splitlines()
    if fmt == "csv":
        assert len(lines) == N + 1 and lines.count(lines[0]) == 1
    elif fmt == "stix-lines":
        assert all(stix2.parse(line.decode(), allow_custom=False) for line in lines)
    else:
        assert len(lines) == 2 * N and len(set(lines[::2])) == N
        assert all(line.startswith(b'{"create":{"_id":"') for line in lines[::2])


def test_a_bundle_stopped_by_a_signal_is_closed_and_says_to_force(tmp_path: Path) -> None:
    """SIGINT in the middle of a STIX run: the bundle is closed (stix2 parses it, one
    indicator per record written), and the last line says --force, not --resume."""
    src, out = tmp_path / "in.txt", tmp_path / "out.stix.json"
    make_input(src)
    with emulator_process("--latency-ms", "100") as url:
        proc = start_run(url, src, out, "--output-format", "stix")
        deadline = time.monotonic() + 30
        while out.stat().st_size < 2000 if out.exists() else True:
            assert time.monotonic() < deadline, "the run wrote nothing in 30 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    last = err.decode().strip().splitlines()[-1]
    assert "interrupted" in last and "--force" in last and "--resume" not in last
    bundle = stix2.parse(out.read_text(), allow_custom=True)
    kinds = Counter(o["type"] for o in bundle.objects)
    assert 0 < kinds["indicator"] < N and kinds["indicator"] == kinds["relationship"]


def test_csv_with_source_has_the_origin_columns() -> None:
    writer = record_writer("csv", with_source=True)
    assert writer.begin().endswith(b",cached,origin_file,origin_line\r\n")
    record = {
        "ioc": "1.2.3.4", "type": "ipv4", "verdict": "unknown", "classification": None,
        "score": None, "type_score": None, "source": None, "ttl_ms": None, "first_seen": None,
        "link": None, "cp_type": None, "origin": {"file": "=evil.csv", "line": 7},
        "cached": False,
    }  # fmt: skip
    (row,) = csv.reader(io.StringIO(writer.encode(orjson.dumps(record) + b"\n").decode()))
    assert row[-2:] == ["'=evil.csv", "7"]
    assert writer.recognizes(writer.begin().rstrip(b"\r\n"))
    assert not record_writer("csv").recognizes(writer.begin().rstrip(b"\r\n"))
