"""Text extraction against the public Python IOC extractors, on a labelled corpus.

    python -m benchmarks extract-peers [--quick] [--mb 10] [--peer-seconds 4]
    python -m benchmarks extract-peers --instructions [--mb 1]

The corpus (benchmarks/corpus/) is the project's own: threat reports in AsciiDoc, Markdown,
HTML, reStructuredText and YARA, and proxy, DNS, Sysmon and EDR logs, written with their IOCs
(plain, defanged, wrapped, in URLs and e-mail addresses) among distractors (file names,
versions, CIDR ranges, AV names, Windows paths, dates, fingerprints). Each IOC is marked in
the file as `⟦written⟧` (its value is what `normalize` makes of the text), `⟦written ⇒ value⟧`,
or `⟦written ⇒?⟧` for a name that counts neither way (an internal or reverse-lookup name);
the markers are taken out before any extractor sees the text. `truth.json` beside the files
is the labels, written from the markers (`--write-truth`; a test checks it is up to date).

For every extractor that is installed (enricher's `extract`, and the peers of the `bench`
extra: iocextract, iocsearcher, ioc-finder, msticpy), one document at a time:

- recall per kind: of the labelled IOCs of a document, the share found (the values each one
  gives are put through enricher's `normalize`, so that a peer's URL counts as its host, an
  e-mail address as its domain, and defanged output counts once refanged); `defanged domain`
  and `defanged IPv4` are the labelled values the text holds only defanged or wrapped;
- precision per kind: of the unique values found in a document, the share that is labelled;
- speed: MB/s on a bigger corpus made from the same files, each copy with fresh IOCs of the
  same forms (so that no extractor answers a repeat from memory): reports and logs apart,
  per second of CPU time. enricher reads all of it (the best of 3 runs); a peer reads
  documents in turn until `--peer-seconds` have passed, so that the slowest does not take an
  hour.

`--instructions` counts instead, with valgrind's cachegrind, the instructions enricher's
`extract` executes per MB of that corpus (reports and logs apart, from empty tables: each
count minus that of the same process reading the same texts without extracting): a figure
the machine's load does not move, to compare two commits with (run it in each checkout).
Both measure enricher with its C finders when they are built (`enricher/inputs/_scan.c`),
and its pure-Python path under `ENRICHER_NO_C=1`; the table says which.

The peers may not fetch anything at run time: tldextract (used by msticpy) is pointed at the
Public Suffix List snapshot it ships.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enricher.inputs.extract import C_SCAN, extract
from enricher.ioc import IocType
from enricher.pipeline.normalize import normalize

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
TRUTH = CORPUS / "truth.json"
REPORTS = (".adoc", ".md", ".html", ".rst", ".yar")
KINDS = ["md5", "sha1", "sha256", "domain", "defanged domain", "ipv4", "defanged ipv4", "ipv6"]
TARGETS = {"domain_precision": 0.98, "speed_ratio": 10.0, "report_mb_per_s": 20.0}

_MARK = re.compile(r"⟦(.*?)(?:\s*⇒\s*(\?|[^⟧]*))?⟧")


@dataclass
class Doc:
    """One document: its text without markers, and its labels."""

    name: str
    text: str
    truth: dict[str, set[str]]  # kind (an IocType value) -> values
    ignored: set[str]
    marks: list[tuple[int, int, str, str]] = field(default_factory=list)  # span, written, value

    @property
    def report(self) -> bool:
        return self.name.endswith(REPORTS)

    def sub_kind(self, value: str, kind: str) -> str | None:
        """`defanged domain` / `defanged IPv4` when the text holds `value` only defanged."""
        if kind in ("domain", "ipv4") and value not in self.text.lower():
            return f"defanged {kind}"
        return None


def _value(written: str) -> str:
    ioc_type, value = normalize(written.replace("\\/", "/"))
    if ioc_type is None:
        raise ValueError(f"marked text {written!r} is no IOC ({value}): give its value")
    return value


def parse(name: str, source: str) -> Doc:
    """A document from its marked source."""
    parts: list[str] = []
    truth: dict[str, set[str]] = {}
    ignored: set[str] = set()
    marks = []
    done = at = 0
    for m in _MARK.finditer(source):
        parts.append(source[done : m.start()])
        at += m.start() - done
        written, value = m[1], m[2]
        parts.append(written)
        if value == "?":
            ignored.add(normalize(written)[1])
        else:
            value = value or _value(written)
            ioc_type, normal = normalize(value)
            if ioc_type is None or normal != value:
                raise ValueError(f"{name}: {value!r} is not a canonical IOC")
            truth.setdefault(ioc_type.value, set()).add(value)
            marks.append((at, at + len(written), written, value))
        at += len(written)
        done = m.end()
    parts.append(source[done:])
    return Doc(name, "".join(parts), truth, ignored, marks)


def load() -> list[Doc]:
    return [
        parse(path.name, path.read_text(encoding="utf-8"))
        for path in sorted(CORPUS.iterdir())
        if path.is_file() and path.name != TRUTH.name
    ]


def truth_json(docs: list[Doc]) -> str:
    doc = {
        d.name: {
            **{kind: sorted(values) for kind, values in sorted(d.truth.items())},
            "ignored": sorted(d.ignored),
        }
        for d in docs
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


# --- a bigger corpus, for speed: every document again, with fresh IOCs of the same forms -----


def _hex_like(rng: random.Random, text: str) -> str:
    fresh = rng.randbytes(len(text)).hex()[: len(text)]
    return fresh.upper() if text.isupper() else fresh


def mutate(written: str, value: str, rng: random.Random) -> str:
    """`written` with the IOC it holds replaced by a fresh one written the same way."""
    ioc_type, _ = normalize(value)
    if ioc_type in (IocType.MD5, IocType.SHA1, IocType.SHA256):
        return re.sub(value, lambda m: _hex_like(rng, m[0]), written, flags=re.IGNORECASE)
    if ioc_type is IocType.IPV4:
        octets = iter([rng.randrange(11, 223), *(rng.randrange(256) for _ in range(3))])
        count = [0]

        def octet(m: re.Match[str]) -> str:
            count[0] += 1
            return str(next(octets)) if count[0] <= 4 else m[0]

        return re.sub(r"[0-9]+", octet, written)
    if ioc_type is IocType.IPV6:
        last = value.rsplit(":", 1)[1]
        head = value[: len(value) - len(last)]
        fresh = f"{head}{rng.randrange(1, 0xFFFF):x}"
        return re.sub(re.escape(value), fresh, written, flags=re.IGNORECASE)
    label = value.split(".")[0]
    fresh = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in label)
    fresh = rng.choice("abcdefghijklmnopqrstuvwxyz") + fresh[1:]
    dot = r"(?=\\?\.|\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\))"
    return re.sub(rf"(?<![\w-]){re.escape(label)}{dot}", fresh, written, count=1, flags=re.I)


def copies(docs: list[Doc], mb: float, seed: int = 7) -> list[Doc]:
    """Documents made from `docs` with fresh IOCs, round after round, until about `mb` MB
    of reports and as many of logs."""
    rng = random.Random(seed)
    out: list[Doc] = []
    size = {True: 0, False: 0}
    while min(size.values()) < mb * 1e6:
        for d in docs:
            parts = []
            done = 0
            for start, end, written, value in d.marks:
                parts += [d.text[done:start], mutate(written, value, rng)]
                done = end
            parts.append(d.text[done:])
            text = "".join(parts)
            out.append(Doc(d.name, text, {}, set()))
            size[d.report] += len(text.encode())
    return out


# --- the extractors ----------------------------------------------------------------------------

Extractor = Callable[[str], Iterable[str]]


def _enricher() -> Extractor:
    return extract


def _iocextract() -> Extractor:
    import iocextract

    def run(text: str) -> list[str]:
        return [
            *iocextract.extract_urls(text, refang=True, strip=True),
            *iocextract.extract_ips(text, refang=True),
            *iocextract.extract_emails(text, refang=True),
            *iocextract.extract_hashes(text),
        ]

    return run


def _iocsearcher() -> Extractor:
    from iocsearcher.searcher import Searcher

    searcher = Searcher()
    wanted = {"fqdn", "url", "ip4", "ip6", "email", "md5", "sha1", "sha256"}

    def run(text: str) -> list[str]:
        return [ioc.value for ioc in searcher.search_data(text) if ioc.name in wanted]

    return run


def _ioc_finder() -> Extractor:
    from ioc_finder import find_iocs  # type: ignore[import-untyped]

    keys = ("domains", "urls", "ipv4s", "ipv6s", "email_addresses", "md5s", "sha1s", "sha256s")

    def run(text: str) -> list[str]:
        found = find_iocs(text)
        return [value for key in keys for value in found.get(key, [])]

    return run


def _msticpy() -> Extractor:
    import tldextract

    # offline: the snapshot of the suffix list that tldextract ships, never a download
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # type: ignore[assignment]
    from msticpy.transform.iocextract import IoCExtract  # type: ignore[import-untyped]

    extractor = IoCExtract()
    kinds = {"dns", "url", "ipv4", "ipv6", "email", "md5_hash", "sha1_hash", "sha256_hash"}

    def run(text: str) -> list[str]:
        found = extractor.extract(src=text)
        assert isinstance(found, dict)
        return [value for kind, values in found.items() if kind in kinds for value in values]

    return run


PEERS: dict[str, tuple[str, Callable[[], Extractor]]] = {
    "enricher": ("enricher", _enricher),
    "iocextract": ("iocextract", _iocextract),
    "iocsearcher": ("iocsearcher", _iocsearcher),
    "ioc-finder": ("ioc_finder", _ioc_finder),
    "msticpy": ("msticpy", _msticpy),
}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def found_values(raw: Iterable[str]) -> dict[str, set[str]]:
    """What an extractor gave, as enricher's canonical values by kind."""
    out: dict[str, set[str]] = {}
    for text in raw:
        ioc_type, value = normalize(str(text))
        if ioc_type is not None:
            out.setdefault(ioc_type.value, set()).add(value)
    return out


def score(docs: list[Doc], run: Extractor) -> dict[str, Any]:
    """Recall and precision per kind of one extractor over the labelled documents."""
    hits = dict.fromkeys(KINDS, 0)
    wanted = dict.fromkeys(KINDS, 0)
    found_n = dict.fromkeys(KINDS, 0)
    true_n = dict.fromkeys(KINDS, 0)
    misses: list[str] = []
    false: list[str] = []
    for d in docs:
        found = found_values(run(d.text))
        for kind in {*d.truth, *found}:
            truth = d.truth.get(kind, set())
            got = found.get(kind, set())
            for value in truth:
                for k in (kind, d.sub_kind(value, kind)):
                    if k in wanted:
                        wanted[k] += 1
                        hits[k] += value in got
                if value not in got:
                    misses.append(f"{d.name}: {kind} {value}")
            counted = got - d.ignored
            found_n[kind] += len(counted)
            true_n[kind] += len(counted & truth)
            false += [f"{d.name}: {kind} {v}" for v in sorted(counted - truth)]
    return {
        "recall": {k: hits[k] / wanted[k] for k in KINDS if wanted[k]},
        "precision": {
            k: true_n[k] / found_n[k] if found_n[k] else None
            for k in KINDS
            if not k.startswith("defanged")
        },
        "precision_all": sum(true_n.values()) / sum(found_n.values())
        if any(found_n.values())
        else None,
        "labelled": wanted,
        "misses": misses,
        "false_positives": false,
    }


def _forget_enricher() -> None:
    """Empty enricher's tables of names already seen, so that no timed run of the same
    documents answers from the run before."""
    from enricher.inputs import extract as extract_module

    extract_module._forget()


def speed(docs: list[Doc], run: Extractor, seconds: float | None) -> dict[str, Any]:
    """MB/s of reports and of logs: every document, the best of 3 runs (`seconds` None; each
    from empty tables), or documents in turn until `seconds` have passed. Time is this
    process's CPU time (every extractor here runs on one thread), so that other work on a
    shared machine does not count against whichever extractor it happens to overlap."""
    out: dict[str, Any] = {}
    for label, report in (("reports", True), ("logs", False)):
        texts = [d.text for d in docs if d.report is report]
        if seconds is None:
            best = float("inf")
            for _ in range(3):
                _forget_enricher()
                start = time.process_time()
                for text in texts:
                    run(text)
                best = min(best, time.process_time() - start)
            size = sum(len(t.encode()) for t in texts)
            out[label] = {"mb": size / 1e6, "seconds": best, "mb_per_s": size / 1e6 / best}
            continue
        size = n = 0
        start = time.perf_counter()
        cpu = time.process_time()
        for text in texts:
            run(text)
            size += len(text.encode())
            n += 1
            if time.perf_counter() - start >= seconds:
                break
        took = time.process_time() - cpu
        out[label] = {"mb": size / 1e6, "seconds": took, "mb_per_s": size / 1e6 / took,
                      "documents": n}  # fmt: skip
    return out


_REFS = re.compile(rb"I\s+refs:\s+([0-9,]+)")


def instructions(mb: float) -> dict[str, float]:
    """Instructions per MB that enricher's `extract` executes on `mb` MB of reports and of
    logs of the speed corpus, from empty tables (cachegrind, about 50 times slower)."""
    big = copies(load(), mb)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="enricher-extract-") as tmp:
        for label, report in (("reports", True), ("logs", False)):
            path = Path(tmp) / f"{label}.json"
            texts = [d.text for d in big if d.report is report]
            path.write_text(json.dumps(texts), encoding="utf-8")
            count = {}
            for mode in ("read", "extract"):
                cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
                cmd += ["--cachegrind-out-file=/dev/null", sys.executable, "-m"]
                cmd += ["benchmarks.extract_peers", "--cachegrind-child", mode, str(path)]
                done = subprocess.run(cmd, capture_output=True, check=True)
                found = _REFS.search(done.stderr)
                if found is None:
                    raise RuntimeError("valgrind printed no instruction count")
                count[mode] = int(found[1].replace(b",", b""))
            size = sum(len(t.encode()) for t in texts)
            out[label] = (count["extract"] - count["read"]) / (size / 1e6)
    return out


def _cachegrind_child(mode: str, path: Path) -> None:
    """What `instructions` counts: the texts read, the suffix tables built, and (`extract`)
    each text extracted from empty tables."""
    from enricher.inputs.suffixes import build_tables

    texts = json.loads(path.read_text(encoding="utf-8"))
    extract("evil.com 1.2.3.4")
    # the public suffix list's own table too (a name like `evil.co.uk` builds it, once a
    # process): a cost of start-up, as `Enricher` pays it, not of each MB
    build_tables()
    _forget_enricher()
    if mode == "extract":
        for text in texts:
            extract(text)


def measure(mb: float, peer_seconds: float, peers: Iterable[str] | None = None) -> dict[str, Any]:
    docs = load()
    big = copies(docs, mb)
    results: dict[str, Any] = {
        "corpus": {
            "documents": len(docs),
            "bytes": sum(len(d.text.encode()) for d in docs),
            "labelled": {
                k: sum(len(d.truth.get(k, ())) for d in docs)
                for k in ("md5", "sha1", "sha256", "domain", "ipv4", "ipv6")
            },
            "speed_corpus_mb": {
                "reports": sum(len(d.text.encode()) for d in big if d.report) / 1e6,
                "logs": sum(len(d.text.encode()) for d in big if not d.report) / 1e6,
            },
        },
        "extractors": {},
    }
    for name in peers or PEERS:
        dist, make = PEERS[name]
        try:
            run = make()
        except ImportError as exc:
            results["extractors"][name] = {"installed": False, "reason": str(exc)}
            continue
        entry: dict[str, Any] = {"installed": True, "version": _version(dist)}
        if name == "enricher":  # its C finders (ENRICHER_NO_C=1: its pure-Python path)
            entry["version"] += " (C)" if C_SCAN else " (pure Python)"
        entry.update(score(docs, run))
        entry["speed"] = speed(big, run, None if name == "enricher" else peer_seconds)
        results["extractors"][name] = entry
    return results


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each target, met or not, with the figures it compares."""
    ours = results["extractors"]["enricher"]
    peers = {n: e for n, e in results["extractors"].items() if n != "enricher" and e["installed"]}
    recall = {}
    for kind in KINDS:
        best = max((e["recall"].get(kind, 0.0) for e in peers.values()), default=0.0)
        recall[kind] = {"enricher": ours["recall"].get(kind), "best_peer": best,
                        "met": ours["recall"].get(kind, 0.0) >= best}  # fmt: skip
    precision = ours["precision"]["domain"]
    out: dict[str, Any] = {
        "recall_per_kind": recall,
        "domain_precision": {
            "enricher": precision,
            "target": TARGETS["domain_precision"],
            "met": precision >= TARGETS["domain_precision"],
        },
    }
    for label in ("reports", "logs"):
        fastest = max((e["speed"][label]["mb_per_s"] for e in peers.values()), default=0.0)
        mine = ours["speed"][label]["mb_per_s"]
        out[f"speed_{label}"] = {
            "enricher_mb_per_s": mine,
            "fastest_peer_mb_per_s": fastest,
            "ratio": mine / fastest if fastest else None,
            "met": (not fastest or mine >= TARGETS["speed_ratio"] * fastest)
            and (label != "reports" or mine >= TARGETS["report_mb_per_s"]),
        }
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    head = ["extractor", *(f"recall {k}" for k in KINDS), "domain precision",
            "precision (all kinds)", "MB/s reports", "MB/s logs"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in results["extractors"].items():
        if not e["installed"]:
            lines.append(f"| {name} | not installed |" + " |" * (len(head) - 2))
            continue
        cells = [
            f"{name} {e['version']}".strip(),
            *(_pct(e["recall"].get(k)) for k in KINDS),
            _pct(e["precision"]["domain"]),
            _pct(e["precision_all"]),
            f"{e['speed']['reports']['mb_per_s']:.2f}",
            f"{e['speed']['logs']['mb_per_s']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks extract-peers", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--quick", action="store_true", help="1 MB a kind, 1 s a peer")
    ap.add_argument("--mb", type=float, help="MB of reports and of logs (10; --instructions: 1)")
    ap.add_argument("--peer-seconds", type=float, default=4.0, help="time a peer reads for")
    ap.add_argument("--only", nargs="+", choices=list(PEERS), help="these extractors only")
    ap.add_argument("--write-truth", action="store_true", help="write corpus/truth.json, stop")
    ap.add_argument("--json", type=Path, help="write every figure here as JSON")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per MB of enricher's extract (cachegrind; --mb, default 1)",
    )
    ap.add_argument("--cachegrind-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cachegrind_child:
        _cachegrind_child(args.cachegrind_child[0], Path(args.cachegrind_child[1]))
        return 0
    if args.instructions:
        per_mb = instructions(args.mb or 1.0)
        print(
            json.dumps({k: round(v / 1e6, 1) for k, v in per_mb.items()}, indent=1),
            "(million instructions per MB;",
            "C finders)" if C_SCAN else "pure Python)",
        )
        return 0
    if args.write_truth:
        TRUTH.write_text(truth_json(load()), encoding="utf-8")
        print(f"wrote {TRUTH}")
        return 0
    mb, seconds = (1.0, 1.0) if args.quick else (args.mb or 10.0, args.peer_seconds)
    started = time.perf_counter()
    results = measure(mb, seconds, args.only)
    results["verdicts"] = verdicts(results) if "enricher" in results["extractors"] else {}
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(table(results))
    for name, e in results["extractors"].items():
        if e["installed"]:
            print(f"\n{name}: {len(e['misses'])} missed, {len(e['false_positives'])} false")
            for line in e["misses"][:40]:
                print(f"  missed {line}")
            for line in e["false_positives"][:40]:
                print(f"  false  {line}")
    print(json.dumps(results["verdicts"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
