"""The public suffix tables, built fast, are the ones publicsuffixlist's own parser builds."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from publicsuffixlist import PSLFILE, PublicSuffixList, encode_idn

from enricher.inputs import suffixes


def _own_parse() -> tuple[PublicSuffixList, frozenset[str], frozenset[str]]:
    """The package's parser, every rule encoded, and the top labels read as it reads rules."""
    psl = PublicSuffixList(accept_unknown=False, only_icann=True)
    alone: set[str] = set()
    deeper: set[str] = set()
    icann = False
    with open(PSLFILE, encoding="utf-8") as f:
        for line in f:
            if "===BEGIN ICANN DOMAINS===" in line or "===END ICANN DOMAINS===" in line:
                icann = "BEGIN" in line
            rule = line.split(" ")[0].strip().lower()
            if icann and rule and not rule.startswith("//"):
                (deeper if "." in rule else alone).add(encode_idn(rule.rpartition(".")[2]))
    return psl, frozenset(alone - deeper), frozenset(deeper)


def _fresh_tables() -> tuple[PublicSuffixList, tuple[frozenset[str], frozenset[str]]]:
    for cached in (suffixes._icann_rules, suffixes._list, suffixes.top_labels):
        cached.cache_clear()
    try:
        return suffixes._list(), suffixes.top_labels()
    finally:
        for cached in (suffixes._icann_rules, suffixes._list, suffixes.top_labels):
            cached.cache_clear()


@pytest.mark.parametrize("memo", ["shipped", "none"])
def test_tables_are_the_packages_own(memo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the memo of A-labels, or without one (a newer list's labels are encoded)."""
    if memo == "none":
        monkeypatch.setattr(suffixes, "ALABELS_FILE", Path("/nonexistent/psl-alabels.json"))
    psl, (alone, deeper) = _fresh_tables()
    own, own_alone, own_deeper = _own_parse()
    assert psl._publicsuffix == own._publicsuffix
    assert psl._maxlabel == own._maxlabel
    assert (alone, deeper) == (own_alone, own_deeper)
    for name in ("evil.co.uk", "xn--ehqz56n.jp", "a.xn--ehqz56n.jp", "三重.jp", "x.kawasaki.jp"):
        assert psl.privatesuffix(name) == own.privatesuffix(name)


def test_memo_holds_what_the_codec_makes() -> None:
    known = orjson.loads(suffixes.ALABELS_FILE.read_bytes())
    assert len(known) > 300  # the list's IDN rules and top-level labels
    assert all(encode_idn(text) == a_label for text, a_label in known.items())


def test_a_comment_quoting_a_section_marker_ends_no_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package takes a marker only as a whole line; the fast build took any comment that
    held one, and lost the rest of the ICANN section (7,364 rules)."""
    lines = Path(PSLFILE).read_text(encoding="utf-8").split("\n")
    at = lines.index("// ===BEGIN ICANN DOMAINS===") + 50
    lines.insert(at, "// (the section ends at ===END ICANN DOMAINS=== below)")
    edited = tmp_path / "public_suffix_list.dat"
    edited.write_text("\n".join(lines), encoding="utf-8")
    monkeypatch.setattr(suffixes, "PSLFILE", str(edited))
    psl, _ = _fresh_tables()
    own = PublicSuffixList(edited.read_bytes(), accept_unknown=False, only_icann=True)
    assert psl._publicsuffix == own._publicsuffix
