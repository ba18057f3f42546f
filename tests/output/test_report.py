"""`enricher report`: the page of a run, what it counts, that it escapes what servers sent,
fetches nothing and runs nothing; and, where Debian's chromium is installed, that a real
browser renders it with no console message and a screenshot that is not blank."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from helpers import enricher, into_closed_pipe

from enricher.errors import SettingsError
from enricher.output.report import read_figures, render, write_report
from enricher.output.report.figures import find_manifest
from enricher.pipeline.stats import Timeline


def record(ioc: str, kind: str, verdict: str, classification: str | None, **more: object) -> bytes:
    doc = {
        "ioc": ioc, "type": kind, "verdict": verdict, "classification": classification,
        "score": more.get("score"), "type_score": None, "source": more.get("source"),
        "ttl_ms": None, "first_seen": None, "link": more.get("link"), "product": None,
        "cp_type": None, "response": {"x": 1}, "cached": bool(more.get("cached")),
    }  # fmt: skip
    return orjson.dumps(doc) + b"\n"


def make_run(where: Path) -> Path:
    out = where / "enriched.ndjson"
    out.write_bytes(
        record("evil.example.com", "domain", "malicious", "ransomware", score=99,
               source="<b>Vendor</b>", link="https://gti.example/evil")
        + record("1.2.3.4", "ipv4", "suspicious", "unwanted", link="javascript:alert(1)")
        + record("5.6.7.8", "ipv4", "benign", "whitelist", cached=True)
        + record("9f" * 16, "md5", "unknown", None)
        + record("x.example.com", "domain", "malicious", "<script>alert(2)</script>")
        + b"not a record\n"
    )  # fmt: skip
    (where / "enriched.ndjson.failed.ndjson").write_bytes(
        b'{"ioc":"a.example.com","type":"domain","error":"http_503: gave up","attempts":4}\n'
        b'{"ioc":"b.example.com","type":"domain","error":"http_503: gave up","attempts":4}\n'
        b'{"ioc":"c.example.com","type":"domain","error":"missing: left out","attempts":3}\n'
    )
    manifest = {
        "outputs": {"records": "enriched.ndjson"},
        "counts": {"unique": 8, "ok": 5, "failed": 3, "unsupported": 0, "deferred": 0},
        "requests": {"total": 12, "by_endpoint_and_status": {"ip_batch": {"200": 9, "429": 3}}},
        "retries": 3, "rate_limited_429": 3, "elapsed_s": 2.5, "iocs_per_s": 3.2,
        "settings": {"limits": {"rate": 10}},
        "rate_changes": [{"at": 1.0, "rate": 5.0, "reason": "429s"}],
        "latency_ms": {"p50": 1.5, "p95": 3.0, "p99": 4.0}, "exit_code": 2,
        "timeline": [[0.0, 0], [1.0, 3], [2.5, 8]],
    }  # fmt: skip
    (where / "run-2026-12-01.json").write_bytes(orjson.dumps(manifest))
    (where / "other.json").write_bytes(b'{"outputs": {"records": "another.ndjson"}}')
    return out


def test_the_figures_of_a_run(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    assert find_manifest(str(out)) == str(tmp_path / "run-2026-12-01.json")
    fig = read_figures(str(out))
    assert fig.records == 5 and fig.unreadable == 1 and fig.cached == 1
    assert fig.verdicts == {"malicious": 2, "suspicious": 1, "benign": 1, "unknown": 1}
    assert fig.classifications["(none)"] == 1 and fig.types == {"domain": 2, "ipv4": 2, "md5": 1}
    assert [f.ioc for f in fig.flagged] == ["evil.example.com", "x.example.com", "1.2.3.4"]
    assert fig.failures == {"http_503": 2, "missing": 1}
    assert fig.manifest is not None and fig.manifest["retries"] == 3


def test_a_manifest_too_big_to_read_is_named_not_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = make_run(tmp_path)
    manifest = tmp_path / "run-2026-12-01.json"
    doc = {"record_schema": 1, **orjson.loads(manifest.read_bytes())}
    manifest.write_bytes(orjson.dumps({**doc, "timeline": [[0.0, 0]] * 600_000}))  # ~5 MiB
    (tmp_path / "bundle.json").write_bytes(b'{"type":"bundle"' + b" " * (5 << 20) + b"}")
    with caplog.at_level("WARNING", logger="enricher"):
        assert find_manifest(str(out)) is None
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        f"warning: {manifest} looks like a manifest but is larger than 4 MiB: not read (give "
        "it with --manifest to use it)"
    ]  # the bundle is no manifest: nothing said of it


def test_a_manifest_figure_of_another_type_is_left_out(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    manifest = tmp_path / "run-2026-12-01.json"
    good = orjson.loads(manifest.read_bytes())
    for name in good:
        for wrong in ("x", None, [1], {"at": "x"}, 1.5):
            if name == "outputs" and wrong is None:
                continue  # then the manifest names no records file: not this run's
            manifest.write_bytes(orjson.dumps({**good, name: wrong}))
            page = render(read_figures(str(out), manifest=str(manifest)))
            assert "evil.example.com" in page, (name, wrong)
    manifest.write_bytes(orjson.dumps(dict.fromkeys(good)))
    proc = enricher("report", str(out), "-o", "-", "--manifest", str(manifest))
    assert proc.returncode == 0 and proc.stdout.startswith("<!DOCTYPE html>")
    warned = [line for line in proc.stderr.splitlines() if "unreadable figures" in line]
    assert len(warned) == 1 and "unreadable figures (outputs, settings," in warned[0]


def test_the_page_escapes_what_servers_send_and_fetches_nothing(tmp_path: Path) -> None:
    page = render(read_figures(str(make_run(tmp_path))))
    assert "<script" not in page.lower() and "&lt;script&gt;alert(2)" in page
    assert "&lt;b&gt;Vendor&lt;/b&gt;" in page
    assert 'href="javascript' not in page and "javascript:alert(1)" in page  # text, no link
    assert '<a href="https://gti.example/evil" rel="noopener noreferrer">' in page
    assert "default-src 'none'" in page
    # nothing that would be fetched: no src, no stylesheet link, no url() or @import
    assert not re.search(r"\ssrc=|<link|url\(|@import", page, re.IGNORECASE)
    for figure in ("429s</td><td>3", "requests</td><td>12", "Request rate over the run"):
        assert figure in page
    assert "Speed over the run" in page and ">3.3</text>" in page  # 3/s, then 5 in 1.5 s
    assert page.count("<svg") == 5  # verdicts, classifications, failures, rate, speed


def test_a_long_server_string_is_cut_on_the_page(tmp_path: Path) -> None:
    out = tmp_path / "long.ndjson"
    long = "A" * 100_000
    out.write_bytes(
        record("evil.example.com", "domain", "malicious", long + "\0", source="B" * 100_000,
               link="https://gti.example/" + "c" * 100_000)
    )  # fmt: skip
    page = render(read_figures(str(out)))
    assert len(page) < 40_000 and "\0" not in page
    assert "A" * 500 + "…" in page and "A" * 501 not in page and "B" * 500 + "…" in page
    assert 'href="https://gti.example/c' not in page  # cut: text, not a link to follow


def test_a_timeline_keeps_an_even_sample_of_any_run() -> None:
    timeline = Timeline(size=64, interval=1.0)
    for i in range(100_000):  # 10,000 s, a point every 0.1 s offered
        timeline.add(i / 10, i)
    points = timeline.points
    assert len(points) < 64 and points[0] == (0.0, 0)
    gaps = {round(b[0] - a[0], 1) for a, b in itertools.pairwise(points)}
    assert gaps == {256.0} and points[-1][0] > 9_700  # even, and up to the end


def test_report_command(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    proc = enricher("report", str(out))
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "enriched.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "evil.example.com" in page
    assert proc.stderr == (
        f"enricher: warning: 1 line of {out} is no record and was skipped\n"
        f"enricher: report written to {tmp_path / 'enriched.html'}\n"
    )
    csv = tmp_path / "out.csv"
    csv.write_text("ioc,type,verdict\nevil.example.com,domain,malicious\n")
    bad = enricher("report", str(csv), "-o", str(tmp_path / "r.html"))
    assert bad.returncode == 1 and "holds no NDJSON record" in bad.stderr
    assert bad.stderr.count("\n") == 1 and not (tmp_path / "r.html").exists()
    missing = enricher("report", str(tmp_path / "nothing.ndjson"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_a_run_named_in_bytes_that_are_not_utf8_has_its_page(tmp_path: Path) -> None:
    # a records file whose name is not UTF-8 (surrogates in the str): the page names it
    # escaped; encoding it ended `enricher report` in a traceback (attack16)
    out = tmp_path / os.fsdecode(b"run\xfd.ndjson")
    make_run(tmp_path).rename(out)
    assert write_report(str(out), str(tmp_path / "page.html")) == str(tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert "evil.example.com" in page and "run\\udcfd.ndjson" in page


def test_report_never_replaces_a_file_of_the_run_nor_one_that_exists(tmp_path: Path) -> None:
    out = make_run(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    manifest = tmp_path / "run-2026-12-01.json"
    for target in (out, tmp_path / "enriched.ndjson.failed.ndjson", manifest,
                   tmp_path / "enriched.ndjson.skipped.ndjson"):  # fmt: skip
        proc = enricher("report", str(out), "-o", str(target), "--force")
        assert proc.returncode == 1, (target, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "writing it would destroy it" in proc.stderr
    html = tmp_path / "enriched.html"  # the records file's own name, when it is the page's
    html.write_bytes(out.read_bytes())
    proc = enricher("report", str(html))
    assert proc.returncode == 1 and "the records file read" in proc.stderr
    html.unlink()
    kept = tmp_path / "kept.html"
    kept.write_text("keep")
    proc = enricher("report", str(out), "-o", str(kept))
    assert proc.returncode == 1 and proc.stderr == (
        f"enricher: error: {kept} exists: add --force to replace it\n"
    )
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p != kept} == before
    assert kept.read_text() == "keep"
    forced = enricher("report", str(out), "-o", str(kept), "--force")
    assert forced.returncode == 0 and kept.read_text().startswith("<!DOCTYPE html>")


def test_report_into_a_closed_pipe_exits_3(tmp_path: Path) -> None:
    proc = into_closed_pipe("report", str(make_run(tmp_path)), "-o", "-")
    assert proc.returncode == 3
    assert proc.stderr.endswith(
        "\nenricher: error: standard output was closed by its reader before the run ended; "
        "run it again with a reader that takes every line, or with -o FILE\n"
    )
    assert proc.stderr.count("\n") == 2  # after the warning of the line that is no record


def test_a_file_of_no_record_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "x.ndjson"
    out.write_text("garbage\n")
    with pytest.raises(SettingsError, match="no NDJSON record"):
        read_figures(str(out))


# -- a real browser -------------------------------------------------------------------------


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
browser = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not found on PATH (.ci/run installs Debian's chromium with apt-get)",
)


def chromium(tmp_path: Path, page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium on a local page; its console messages are logged on stderr."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
         "--v=0", *flags, page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def console(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@browser
def test_a_browser_renders_the_page(tmp_path: Path) -> None:
    from PIL import Image

    src, out = tmp_path / "in.txt", tmp_path / "enriched.ndjson"
    src.write_text("\n".join(f"host{i}.report.example.com" for i in range(300)) + "\n")
    run = enricher("run", "--emulator", "--no-cache", "-q", str(src), "-o", str(out),
                   "--manifest", str(tmp_path / "run.json"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    timeline = orjson.loads((tmp_path / "run.json").read_bytes())["timeline"]
    assert timeline[-1][1] == 300 and timeline == sorted(timeline)
    assert enricher("report", str(out), "-o", str(tmp_path / "r.html")).returncode == 0
    page = tmp_path / "r.html"
    # the check can fail: a page that fetches and runs something is caught
    bad = tmp_path / "bad.html"
    bad.write_text(page.read_text().replace("</main>", '<img src="http://127.0.0.1:9/x.png">'))
    assert console(chromium(tmp_path, bad, "--dump-dom"))

    shot = tmp_path / "shot.png"
    proc = chromium(tmp_path, page, "--window-size=1280,1000", f"--screenshot={shot}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console(proc) == []
    dom = chromium(tmp_path, page, "--dump-dom")
    assert console(dom) == []
    assert "enricher report" in dom.stdout and dom.stdout.count("<svg") >= 2
    assert dom.stdout.count('class="badge"') >= 1  # the malicious and suspicious table
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1000)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 20  # not blank: text, bars, the header
    assert image.getpixel((5, 5)) == (0x1D, 0x24, 0x30)  # the header rendered with its style
