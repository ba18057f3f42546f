"""The extractor's shortcuts answer as the general rules they stand for do."""

from __future__ import annotations

import re
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.inputs import extract as extract_module
from enricher.inputs.extract import (
    _NAMES_ASCII,
    _dotted_names,
    _is_plain_name,
    _py_dotted_names,
    extract_lines,
)
from enricher.pipeline.normalize import is_plain_domain

# what a name the names pattern found is made of, in lower case
_NAME_CHARS = "ab9z0_-%+."


@settings(max_examples=500, deadline=None)
@given(
    st.text(_NAME_CHARS, min_size=1, max_size=12).flatmap(
        lambda short: st.sampled_from([short, short + "x" * 60 + short, "y" * 250 + short])
    )
)
def test_the_plain_name_test_is_the_domain_pattern(name: str) -> None:
    # the caller turns away a name without a dot, or ending in one (no top-level label), first
    if "." in name and not name.endswith("."):
        top = name.rpartition(".")[2]
        assert _is_plain_name(name, top) == is_plain_domain(name), name


def test_the_plain_name_test_on_names_of_each_rule() -> None:
    for name, want in [
        ("evil.com", True),
        ("_dmarc.evil.ru", True),
        ("a-b.c-d", True),
        ("-a.com", False),
        ("a-.com", False),
        ("a.-com", False),
        ("a.com-", False),
        ("a.c_m", False),
        ("a.123", False),
        ("1.2.3.4x", True),
        ("a..com", False),
        ("%s.com", False),
        ("a+b.com", False),
        ("x" * 63 + ".com", True),
        ("x" * 64 + ".com", False),
        ("a." * 125 + "com", True),
        ("a." * 126 + "com", False),
    ]:
        assert _is_plain_name(name, name.rpartition(".")[2]) is want, name
        assert is_plain_domain(name) is want, name


# a dot before a letter or `_%+-`, or three dots between digits: what every match that gives
# a name or an address holds (the `d` and `w` of _NAME_CLASSES, in the text)
_HINT = re.compile(r"\.(?:[A-Za-z_%+-]|[0-9]+\.[0-9]+\.[0-9])")


def _every_dotted_name(text: str) -> tuple[list[str], list[int]]:
    found = [m for m in _NAMES_ASCII.finditer(text) if "." in m[1]]
    return [m[1] for m in found], [m.start(1) for m in found]


@settings(max_examples=500, deadline=None)
@given(st.text(" \n.@a1_%+-©/:", max_size=30))
def test_the_dotted_names_are_the_names_patterns_matches_with_a_hint(text: str) -> None:
    text = "\n" + text
    want: tuple[list[str], list[int]] = ([], [])
    for m in _NAMES_ASCII.finditer(text):
        hint = _HINT.search(text, m.start())
        if "." in m[1] and hint is not None and hint.start() < m.end():
            want[0].append(m[1])
            want[1].append(m.start(1))
    assert _py_dotted_names(text) == want
    assert _dotted_names(text) == want  # the C module's, when built


def test_the_dotted_names_after_a_match_that_ends_before_a_dot() -> None:
    text = "\n a.b.@.c a@b 1@1@.1 .a@b .c.d x.y"
    assert _py_dotted_names(text)[0] == _dotted_names(text)[0] == ["a.b", "c.d", "x.y"]


def test_the_dotted_names_leave_out_numbers_that_are_no_address() -> None:
    text = "\n v8.1 3.7.1 12:01.114 07.115Z 1.2.3.4 1.2.3.4.443 a.1.com 1.2..3.4 .1.2.3 _1.x"
    # the names pattern matches every word here; all but the first four, and the `1.2` of
    # `1.2..3.4`, are left out (the `.` before `1.2.3` counts: the pattern takes it as a lead)
    assert len(_NAMES_ASCII.findall(text)) == 10
    want = ["1.2.3.4", "1.2.3.4.443", "a.1.com", "1.2.3", "_1.x"]
    assert _py_dotted_names(text)[0] == _dotted_names(text)[0] == want


# words and separators that make names, addresses, numbers and e-mail addresses
_PIECES = st.sampled_from(
    ["evil", "com", "net", "zip", "x", "1", "22", "255", "0", "1.2.3.4", "10.0.0.1", "8.8",
     "evil.com", "a.b.net", ".", ".", ".", "@", "_", "-", "+", "%", " ", "\n", "/", "//",
     "http:", "$", "[.]", "(", "==", "version ", "Chrome/"])  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_the_names_left_out_give_nothing(text: str) -> None:
    # what the extractor gives when every dotted match is judged, as it did before the hint
    with patch.object(extract_module, "_dotted_names", _every_dotted_name):
        extract_module._forget()
        want = extract_lines(text, 1)
    extract_module._forget()
    assert extract_lines(text, 1) == want


# lines of a report holding file-like names, some of them also a name written plain
_LINE_PIECES = st.sampled_from(
    ["report.pdf", "Report.PDF", "evil.com", "setup.exe", "a.b.zip", ".", " ", "_", "-", "+",
     "%", "@", "/", "`", "é", "ü.de", "©", "x", "1", "1.2.3.4", "[.]", "__", "++"])  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_LINE_PIECES, max_size=25).map("".join))
def test_a_name_is_written_plain_as_every_dotted_word_says(line: str) -> None:
    # the dotted words with a hint (_dotted_words) say what every word of the names pattern
    # says: whether a name (here, each that any word of the line trims to) is written plain
    every = extract_module._NAMES_UNICODE.findall("\n" + line)
    names = {"report.pdf", "evil.com", "setup.exe", "a.b.zip", "ü.de"}
    for word in every:
        trimmed = extract_module._trim(word)
        if trimmed is not None:
            names.add(trimmed[1].lower())
    words = extract_module._dotted_words(line)
    for name in names:
        if name.isascii() and re.search(r"\.[a-z]", name):  # as every name judged holds
            want = extract_module._written_plain(name, every)
            assert extract_module._written_plain(name, words) == want, name


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("ab\n.é", max_size=6), min_size=1, max_size=12), st.data())
def test_the_lines_of_the_original_are_those_a_split_gives(
    lines: list[str], data: st.DataObject
) -> None:
    text = "\n".join(lines)
    scan = extract_module._Scan(text, 5)
    want = scan.original.split("\n")
    asked = data.draw(st.lists(st.integers(0, len(want) - 1), max_size=20))
    for index in asked:  # in any order: the passes each ask from the first line again
        assert scan.original_line(index + 5) == want[index]


# what stands alone (or not) for defanged_on: runs of its characters, dots inside and after,
# and what ends a run
_ALONE_PIECES = st.sampled_from(
    ["1", "a", "Z", "g", ":", "::", ".", "..", " ", "-", "é", "\n", "[", "1::", "12:45::", "2::.",
     "a" * 70, "1." * 40]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_ALONE_PIECES, max_size=20).map("".join), st.data())
def test_what_stands_alone_is_counted_as_the_pattern_finds_it(
    line: str, data: st.DataObject
) -> None:
    counts = extract_module._alone_counts(line)
    runs = re.findall(r"[0-9A-Za-z:.]+", line)
    written = data.draw(
        st.sampled_from([r[:k] for r in runs for k in range(1, min(len(r), 64) + 1)] or ["1::"])
    )
    alone = re.compile(rf"(?<![0-9A-Za-z:.]){re.escape(written)}(?![0-9A-Za-z:])")
    assert counts[written] == len(alone.findall(line))


def test_a_defanged_line_of_many_ipv6_candidates_is_read_once() -> None:
    # each candidate that does not look like IPv6 asks whether it was defanged on its line:
    # the line is read for that once, not once a candidate (20,000 of them took minutes)
    line = "evil[.]com " + " ".join(f"12:{i % 60}::" for i in range(20_000))
    with patch.object(
        extract_module._Scan, "original_line", autospec=True,
        side_effect=extract_module._Scan.original_line,
    ) as original_line:  # fmt: skip
        assert extract_lines(line, 1) == (["evil.com"], [1])
    assert original_line.call_count == 1
