"""Hyperscan as the names pass's candidate finder: measured, and dropped (issue 13).

    pip install hyperscan   # not in any extra: this script is the record of a direction tried
    python benchmarks/extract_hyperscan.py [--mb 2] [--runs 5]

One Hyperscan database finds where a word can end in a name or an address: a dot and a
top-level label of the Public Suffix List or an alternative root (a trie of them, caseless),
or a dot and digits, each followed by a character that ends a word. The names pattern is then
tried only on the words holding one of those ends, instead of on each word `_dotted_names`
gives: fewer words are judged in Python, the same IOCs come out (checked here on every
document). Printed, per MB of the extract-peers speed corpus: the database's compile time,
Hyperscan's matches, the words the names pass walks either way, and `extract`'s CPU time
either way (interleaved, best of `--runs`, from empty tables).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import hyperscan  # type: ignore[import-not-found]

from benchmarks.extract_peers import copies, load
from enricher.inputs import extract as extract_module
from enricher.inputs.suffixes import ALTERNATIVE_ROOTS, top_labels


def trie(words: list[str]) -> str:
    """An alternation of `words` as a trie (a flat one of 1,450 labels takes 20 s to compile,
    and SOM_LEFTMOST on either is refused as too large)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for c in word:
            node = node.setdefault(c, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [re.escape(c) + emit(sub) for c, sub in sorted(node.items()) if c]
        if not alts:
            return ""
        if len(alts) == 1 and "" not in node:
            return alts[0]
        return "(?:" + "|".join(alts) + ")" + ("?" if "" in node else "")

    return emit(root)


def database() -> tuple[Any, float]:
    alone, deeper = top_labels()
    labels = sorted(alone | deeper | ALTERNATIVE_ROOTS)
    patterns = [rf"\.(?:{trie(labels)})[^0-9a-z]", r"\.[0-9]+[^0-9a-z]"]
    db = hyperscan.Database()
    started = time.process_time()
    db.compile(
        expressions=[p.encode() for p in patterns],
        ids=[0, 1],
        elements=2,
        flags=[hyperscan.HS_FLAG_CASELESS] * 2,
    )
    return db, time.process_time() - started


def hyperscan_names(db: Any) -> tuple[Callable[[str], list[re.Match[str]]], list[int]]:
    """A `_dotted_names` whose words are those holding an end Hyperscan found; and the count
    of Hyperscan's matches."""
    scratch = hyperscan.Scratch(db)
    matches = [0]
    names = extract_module._NAMES_ASCII.match
    hint = extract_module._NAME_HINT.search
    classes = extract_module._NAME_CLASSES

    def dotted_names(text: str) -> list[re.Match[str]]:
        raw = text.encode("ascii", "replace")
        mask = raw.translate(classes)
        ends: list[int] = []

        def on_match(_id: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            ends.append(end)

        db.scan(raw + b"\n", match_event_handler=on_match, scratch=scratch)
        matches[0] += len(ends)
        out = []
        past = 0
        last_lead = -2
        for end in ends:
            lead = mask.rfind(b" ", 0, end - 1)
            if lead == last_lead or lead < past:
                continue
            last_lead = lead
            found = names(text, lead)
            at = hint(mask, lead)
            if found is None or at is None:
                continue
            past = found.end()
            if past > at.start() and (at.start() != lead + 1 or "." in found[1]):
                out.append(found)
        return out

    return dotted_names, matches


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    db, compile_s = database()
    with_hs, matches = hyperscan_names(db)
    finders = {"dotted_names": extract_module._dotted_names, "hyperscan": with_hs}
    big = copies(load(), args.mb)
    report: dict[str, Any] = {"compile_s": round(compile_s, 2)}
    for label, is_report in (("reports", True), ("logs", False)):
        texts = [d.text for d in big if d.report is is_report]
        mb = sum(len(t.encode()) for t in texts) / 1e6
        results = {}
        for name, finder in finders.items():
            extract_module._dotted_names = finder  # type: ignore[assignment]
            extract_module._forget()
            results[name] = [extract_module.extract_lines(t, 1) for t in texts]
        if results["hyperscan"] != results["dotted_names"]:
            raise SystemExit(f"{label}: not the same IOCs")
        matches[0] = 0
        words = {name: sum(len(f(t)) for t in texts) / mb for name, f in finders.items()}
        hyperscan_matches = matches[0] / mb
        best = dict.fromkeys(finders, float("inf"))
        for _ in range(args.runs):
            for name, finder in finders.items():
                extract_module._dotted_names = finder  # type: ignore[assignment]
                extract_module._forget()
                started = time.process_time()
                for text in texts:
                    extract_module.extract(text)
                best[name] = min(best[name], time.process_time() - started)
        report[label] = {
            "hyperscan_matches_per_mb": round(hyperscan_matches),
            "words_per_mb": {k: round(v) for k, v in words.items()},
            "ms_per_mb": {k: round(v / mb * 1000, 1) for k, v in best.items()},
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
