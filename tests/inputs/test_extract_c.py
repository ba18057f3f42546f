"""The text extractor's candidate finders in C (`_scan.c`) give what its Python gives, on any
text, and the C module is there whenever it could be built (so that CI, which installs with a
compiler, cannot test the Python path twice)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import tracemalloc
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import enricher.inputs
from benchmarks import extract_peers
from enricher import __version__
from enricher.app.cli import build_parser
from enricher.config.settings import load_settings
from enricher.inputs import blocks as blocks_module
from enricher.inputs import extract as extract_module
from enricher.inputs import native, suffixes
from enricher.pipeline import normalize as normalize_module
from enricher.pipeline.normalize import _TRIGGER

ROOT = Path(__file__).parent.parent.parent
FORMATS = ROOT / "tests" / "data" / "formats"
_C = extract_module.C_SCAN
needs_c = pytest.mark.skipif(not _C, reason="the C module is not built (or ENRICHER_NO_C)")


def test_the_c_module_is_loaded_when_it_could_be_built() -> None:
    buildable = (shutil.which("cc") or shutil.which("gcc")) and Path(
        sysconfig.get_paths()["include"], "Python.h"
    ).is_file()
    if native.TURNED_OFF:
        assert not _C
    elif buildable:
        assert _C, "a compiler and Python.h are here, but enricher.inputs._scan is not built"


@needs_c
def test_a_module_built_from_an_older_source_is_not_used() -> None:
    # one without plain_name, as a checkout built before it was added and not built again
    older = types.ModuleType("enricher.inputs._scan")
    older.dotted_names = native.dotted_names  # type: ignore[attr-defined]
    try:
        with (
            patch.dict(sys.modules, {"enricher.inputs._scan": older}),
            patch.object(enricher.inputs, "_scan", older, create=True),
        ):
            importlib.reload(native)
            assert native.dotted_names is native.triggers is native.plain_name is None
    finally:
        importlib.reload(native)
    assert native.plain_name is not None


@needs_c
def test_a_module_built_from_another_source_is_not_used() -> None:
    # all four functions, but built before `git pull` brought a changed _scan.c
    source = Path(native.__file__).with_name("_scan.c").read_bytes()
    built = enricher.inputs._scan.SOURCE
    assert built == native.hashlib.sha256(source).hexdigest()[:16], "built from another _scan.c"
    stale = types.ModuleType("enricher.inputs._scan")
    stale.__dict__.update(vars(enricher.inputs._scan))
    stale.SOURCE = "0" * 16  # type: ignore[attr-defined]
    try:
        with (
            patch.dict(sys.modules, {"enricher.inputs._scan": stale}),
            patch.object(enricher.inputs, "_scan", stale),
        ):
            importlib.reload(native)
            assert native.dotted_names is native.hex_runs is native.plain_name is None
    finally:
        importlib.reload(native)
    assert native.plain_name is not None


def _hatch_build() -> types.ModuleType:
    """hatch_build.py, imported without hatchling (only the build's own environment has it)."""
    hook = types.ModuleType("hatchling.builders.hooks.plugin.interface")
    hook.BuildHookInterface = object  # type: ignore[attr-defined]
    spec = importlib.util.spec_from_file_location("hatch_build", ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with patch.dict(sys.modules, {"hatchling.builders.hooks.plugin.interface": hook}):
        spec.loader.exec_module(module)
    return module


def test_the_install_compiles_with_the_compiler_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hatch_build = _hatch_build()
    monkeypatch.delenv("LDSHARED", raising=False)
    monkeypatch.setenv("CC", "my-cc -m64")
    assert hatch_build.linker()[:3] == ["my-cc", "-m64", "-shared"]
    monkeypatch.setenv("LDSHARED", "my-ld -shared")
    assert hatch_build.linker() == ["my-ld", "-shared"]
    # `CC=false`: no compiler, so no module, one line, and the install goes on
    monkeypatch.delenv("LDSHARED")
    monkeypatch.setenv("CC", "false")
    source = Path(native.__file__).with_name("_scan.c")
    assert not hatch_build.compile_module(source, tmp_path / "_scan.so")
    err = capsys.readouterr().err
    why = "false exited with status 1"  # not the whole command
    assert err == f"enricher: C module not built ({why}): pure-Python text extraction\n"


def test_a_wheel_s_module_is_built_outside_the_source_tree(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    source = root / "enricher" / "inputs" / "_scan.c"
    source.parent.mkdir(parents=True)
    source.write_bytes(Path(native.__file__).with_name("_scan.c").read_bytes())
    hook = _hatch_build().CModulesBuildHook()
    hook.root, hook.target_name = str(root), "wheel"
    build_data: dict[str, Any] = {"force_include": {}}
    hook.initialize("standard", build_data)
    assert sorted(root.rglob("*")) == [source.parent.parent, source.parent, source]
    if build_data["force_include"]:  # a compiler and Python.h are here
        [(built, packed)] = build_data["force_include"].items()
        assert Path(built).is_file() and packed.startswith("enricher/inputs/_scan")
        hook.finalize("standard", build_data, "")
        assert not Path(built).exists()


def test_a_wheel_builds_the_deduper_s_module_with_its_own_digest(tmp_path: Path) -> None:
    # a tree holding only _dedupe.c: the hook builds what is there, each module told its own
    # source's digest (`DEDUPE_SOURCE`), which dedupe.py checks as native.py checks _scan's
    source = tmp_path / "enricher" / "pipeline" / "_dedupe.c"
    source.parent.mkdir(parents=True)
    source.write_bytes((ROOT / "enricher" / "pipeline" / "_dedupe.c").read_bytes())
    hook = _hatch_build().CModulesBuildHook()
    hook.root, hook.target_name = str(tmp_path), "wheel"
    build_data: dict[str, Any] = {"force_include": {}}
    hook.initialize("standard", build_data)
    if not build_data["force_include"]:
        pytest.skip("no compiler or Python.h here")
    [(built, packed)] = build_data["force_include"].items()
    assert packed.startswith("enricher/pipeline/_dedupe")
    spec = importlib.util.spec_from_file_location("_dedupe", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert native.hashlib.sha256(source.read_bytes()).hexdigest()[:16] == module.SOURCE
    hook.finalize("standard", build_data, "")


def test_the_version_says_which_text_extraction_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    finders = "C" if native.dotted_names is not None else "pure-Python"
    assert capsys.readouterr().out == f"enricher {__version__} ({finders} text extraction)\n"


@needs_c
@pytest.mark.parametrize(("value", "c"), [("1", False), ("yes", False), ("0", True), ("off", True)])
def test_enricher_no_c_is_read_as_a_bool(value: str, c: bool) -> None:
    try:
        with patch.dict(os.environ, {"ENRICHER_NO_C": value}):
            importlib.reload(native)
            assert (native.dotted_names is not None) is c
    finally:
        importlib.reload(native)
    assert native.dotted_names is not None


def test_enricher_no_c_is_a_variable_enricher_reads(caplog: pytest.LogCaptureFixture) -> None:
    load_settings(environ={"ENRICHER_NO_C": "1"})
    assert "ENRICHER_NO_C" not in caplog.text


def _both(text: str) -> tuple[Any, Any]:
    """`extract_lines(text)` with the C finders (and refang's triggers), then with the Python
    ones."""
    extract_module._forget()
    c = extract_module.extract_lines(text, 1)
    extract_module._forget()
    with (
        patch.object(extract_module, "_dotted_names", extract_module._py_dotted_names),
        patch.object(extract_module, "_hex_spans", extract_module._py_hex_spans),
        patch.object(extract_module, "_ipv6_spans", extract_module._py_ipv6_spans),
        patch.object(extract_module, "_skip_lines", extract_module._py_skip_lines),
        patch.object(normalize_module, "_triggers", normalize_module._python_triggers),
        patch.object(normalize_module, "_refang_windows", normalize_module._py_refang_windows),
        patch.object(extract_module, "_is_plain_name", extract_module._py_is_plain_name),
        patch.object(extract_module, "_names_walk", None),
        patch.object(extract_module, "_hashes_walk", None),
        patch.object(extract_module, "_new_name", extract_module._py_new_name),
        patch.object(extract_module, "_not_ascii", extract_module._py_not_ascii),
    ):
        python = extract_module.extract_lines(text, 1)
    return c, python


def _same_finds(text: str) -> None:
    """The C finders and the Python ones find the same in `text` (as the extractor reads it,
    after a newline)."""
    text = "\n" + text
    assert extract_module._dotted_names(text) == extract_module._py_dotted_names(text)
    assert extract_module._hex_spans(text) == extract_module._py_hex_spans(text)
    assert native.triggers is not None
    assert native.triggers(text) == [m.start() for m in _TRIGGER.finditer(text)]
    _same_refang(text)
    assert native.ipv6_runs is not None
    assert native.ipv6_runs(text) == extract_module._py_ipv6_spans(text)
    assert native.not_ascii is not None
    assert native.not_ascii(text) == extract_module._py_not_ascii(text)


def _same_refang(text: str) -> None:
    """refang's windows in C give what the Python gives, and `text` itself when it is the
    Python's answer (the extractor tells defanged text by it)."""
    assert native.refang_windows is not None
    c = native.refang_windows(text)
    python = normalize_module._py_refang_windows(text)
    assert c == python
    assert (c is text) is (python is text)


def _texts() -> list[str]:
    """The corpora and the golden files."""
    texts = [d.text for d in extract_peers.copies(extract_peers.load(), 0.3)]
    texts += [p.read_text("utf-8", "replace") for p in sorted(FORMATS.iterdir()) if p.is_file()]
    return texts


@needs_c
def test_the_same_on_the_corpora_and_the_golden_files() -> None:
    for text in _texts():
        _same_finds(text)
        c, python = _both(text)
        assert c == python


@needs_c
def test_the_names_loop_in_c_gives_the_same_from_tables_already_filled() -> None:
    # the second time, every token is judged already: the C loop answers most of them itself
    texts = _texts()
    extract_module._forget()
    with (
        patch.object(extract_module, "_names_walk", None),
        patch.object(extract_module, "_hashes_walk", None),
    ):
        python = [extract_module.extract_lines(text, 3) for text in texts]
    extract_module._forget()
    assert [extract_module.extract_lines(text, 3) for text in texts] == python
    assert [extract_module.extract_lines(text, 3) for text in texts] == python


# what the names loop in C answers, or hands to Python, around a name or address it knows
_AROUND = [
    "evil.com", "evil.com(", "evil.com {", "evil.com.*", "x/evil.com", "$evil.com", "_evil.com_",
    "1.2.3.4", "1.2.3.4/8", "v=1.2.3.4", "version 1.2.3.4", "VERSION 1.2.3.4", "Version 1.2.3.4",
    "ErSiOn 1.2.3.4", "1.2.3.4.443 > x", "evil[.]exe", "a.exe", "a.exe evil[.]exe",
    "a" * 40 + ".evil.com", "a" * 32 + ".evil.com", "::ffff:1.2.3.4", "%s.evil.com", "é.evil.com",
]  # fmt: skip


@needs_c
@pytest.mark.parametrize("defanged", ["", "x[.]org\n"])
def test_the_names_loop_in_c_gives_the_same_around_known_tokens(defanged: str) -> None:
    # each written twice, the second time known: on one line, on lines of their own
    text = defanged + " ".join(_AROUND * 2) + "\n" + "\n".join(_AROUND * 2)
    c, python = _both(text)
    assert c == python
    assert python[0].count("1.2.3.4") > 4 and "evil.com" in python[0]


_MD5 = "d41d8cd98f00b204e9800998ecf8427E"
# what the hash loop in C answers, or hands to Python, around a run of hex digits
_AROUND_HASHES = [
    _MD5, _MD5 + "0", "1" * 32, "sha1 " + "A" * 40, "hash: " + _MD5, "HASH=" + _MD5,
    "JA3 " + _MD5, "ja " + _MD5, "uid " + _MD5, "x/commit/" + "a" * 40, "İ " + _MD5,
    "é" * 50 + " " + _MD5, _MD5 + ".evil.com", "x." + _MD5, "a" * 45 + "." + _MD5 + ".evil.com",
]  # fmt: skip


@needs_c
@pytest.mark.parametrize("names", ["", "a" * 40 + ".evil.com\n"])
def test_the_hash_loop_in_c_gives_the_same_around_runs(names: str) -> None:
    text = names + " ".join(_AROUND_HASHES) + "\n" + "\n".join(_AROUND_HASHES)
    c, python = _both(text)
    assert c == python
    assert python[0].count(_MD5.lower()) > 4


@needs_c
def test_the_hash_loop_in_c_takes_only_its_arguments() -> None:
    assert native.hashes_walk is not None
    text = "\n" + _MD5
    assert native.hashes_walk(text, [1, 33], 0, 1, 0, False, [], []) == (2, 2, 1)
    with pytest.raises(TypeError):
        native.hashes_walk(text, [1, 33], 0, 1, 0, False, [], [], None, None)
    with pytest.raises(TypeError):
        native.hashes_walk(text, (1, 33), 0, 1, 0, False, [], [])
    with pytest.raises(TypeError):
        native.hashes_walk(text, ["1", 33], 0, 1, 0, False, [], [])
    # not spans hex_runs gives: handed back
    assert native.hashes_walk(text, [0, 40], 0, 1, 0, False, [], []) == (0, 1, 0)


@needs_c
def test_the_names_loop_in_c_takes_only_its_arguments() -> None:
    assert native.names_walk is not None
    args: list[Any] = ["\nevil.com", ["evil.com"], [1], 0, 1, 0, {}, set(), {}, None, 9]
    args += [[], [], [], None, False, 0, "domain"]
    assert native.names_walk(*args) == (0, 1, 0)  # not judged yet, the memo full: Python's
    with pytest.raises(TypeError):
        native.names_walk(*args[:-1])
    for i, wrong in [(0, b"x"), (1, ("evil.com",)), (6, []), (7, {}), (14, ())]:
        with pytest.raises(TypeError):
            native.names_walk(*args[:i], wrong, *args[i + 1 :])
    args[6] = {"evil.com": "evil.com"}
    args[2] = ["1"]
    with pytest.raises(TypeError):
        native.names_walk(*args)
    args[2] = [1]
    assert native.names_walk(*args) == (1, 2, 1)
    assert args[11:13] == [["evil.com"], [2]]


@needs_c
def test_the_loops_in_c_take_no_place_past_the_range_of_an_index() -> None:
    # a start near sys.maxsize once overflowed past the text's end check (and emitted the
    # token), an index there read past the end of the spans' list
    assert native.names_walk is not None and native.hashes_walk is not None
    known = {"evil.com": "evil.com"}
    values: list[str] = []
    args: list[Any] = ["\nevil.com", ["evil.com"], [sys.maxsize], 0, 1, 0, known, set(), {}]
    args += [None, 9, values, [], [], None, False, 9, "domain"]
    assert native.names_walk(*args) == (0, 1, 0) and values == []
    args[2] = [1]
    text = "\n" + _MD5
    # the index, the line, the place of the line: a negative index is 0
    for at, far in [(3, sys.maxsize), (4, sys.maxsize), (4, -sys.maxsize), (5, -sys.maxsize)]:
        with pytest.raises(OverflowError):
            native.names_walk(*args[:at], far, *args[at + 1 :])
        walk = [text, [1, 33], 0, 1, 0, False, [], []]
        walk[at - 1] = far
        with pytest.raises(OverflowError):
            native.hashes_walk(*walk)
    assert native.hashes_walk(text, [1, 33], -sys.maxsize, 1, 0, False, [], []) == (2, 2, 1)


@needs_c
@pytest.mark.parametrize("first", [2**61, 2**63 + 5, -(2**62)])
def test_a_text_starting_at_a_far_line_is_read_as_in_python(first: int) -> None:
    # the C loops' lines are a Py_ssize_t: a far first line raised OverflowError there
    text = "evil.com 1.2.3.4\n" + _MD5
    values, lines = extract_module.extract_lines(text, first)
    assert values == _both(text)[1][0] and lines == [first, first, first + 1]


# the pieces of names, addresses, hashes and their surroundings, and hostile characters: NUL,
# lone surrogates, non-ASCII letters and digits, long runs
_PIECES = st.sampled_from(
    ["evil", "com", "x", "1", "255", "1.2.3.4", "a.b.net", ".", "..", "@", "@@", "_", "-", "+",
     "%", " ", "\n", "/", "\\", ":", "::", "[.]", "$", "(", "*", "\x00", "\ud800", "\udfff",
     "é", "٣", "²", "\u200b", "a" * 32, "F" * 40, "0" * 64, "1" * 64, "ab" * 33, "g", "Z",
     "hxxp", "hXXps", "fxp", "(dot)", "[ DOT ]", "[at]", "{ @ }", ".]", "<.>", "\\.", "[://]",
     "exe", "version ", "ERSION", "=", " {", ".*", "a.exe", "evil.com"]
)  # fmt: skip


@needs_c
@settings(max_examples=150, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join) | st.text(max_size=60))
def test_the_same_on_generated_text(text: str) -> None:
    _same_finds(text)
    c, python = _both(text)
    assert c == python


# what a defanging is made of, and what is next to one: each alternative of `_DEFANG`, cut
# short, at the end of a window (12 characters of filler), in each width of text
_DEFANG_PIECES = st.sampled_from(
    [*" [](){}<>.\\hHfFxXpPsSdDoOtTaA@:/_0a-\n\x00é\u0100\U0001f600", "dot", "DoT", "at",
     "hxxp", "HXXPS", "fxp", "fXp", "[.]", "(dot)", " [ . ] ", "[:]", "[[.]]", "[.", ".]",
     "<.>", "\\.", "[://]", "[:/]", "{/}", " ( at ) ", "[@]", "x" * 13, " " * 12, "é" * 9]
)  # fmt: skip


@needs_c
@settings(max_examples=1000, deadline=None)
@given(st.lists(_DEFANG_PIECES, max_size=50).map("".join) | st.text(max_size=60))
def test_refang_s_windows_in_c_give_what_the_python_gives(text: str) -> None:
    _same_refang(text)
    assert normalize_module.refang(text) == normalize_module._py_refang_windows(
        normalize_module._LONE_DOT.sub(".", normalize_module._SPELLED_DOT.sub(".", text))
    )


@needs_c
@pytest.mark.parametrize(
    "text",
    ["hxxp://a", "ahxxp://a", "_hxxp://a", "é-hXXpS[:]//a", "fxp(:)//", "x [ . ] y", "[[.]]",
     "a[:/]b", "a[://]b", "a{/}b", "a[.b", "a.]b", "a<.>b", "a\\.b", "u ( at ) e", "u[@]e",
     "\U0001f600hxxps[:]//x[.]y", "\x00[.]\x00", "x" * 11 + "[.", "[.]" * 1000, ""],
)  # fmt: skip
def test_refang_s_windows_in_c_by_example(text: str) -> None:
    _same_refang(text)


# what IPv6 candidates are made of: groups, `::`, keys glued by a colon, dotted quads, runs
# longer than the 45 characters an address takes, in each width of text
_V6_PIECES = st.sampled_from(
    [*"0123456789abcdefABCDEFgz:._-[] \n/\x00é\u0100\U0001f600", "::", "2001:db8::1", "src:",
     "IPv6:", "ip6:", "1:2:3:4:5:6:7:8", "fe80::", "a" * 17, "key-name_x1:", "12:45::",
     ":" * 5, "ffff:" * 8, "1.2.3.4", "0" * 50, ":" * 50, "a:" * 30, "1:" * 25 + ":"]
)  # fmt: skip


@needs_c
@settings(max_examples=1000, deadline=None)
@given(st.lists(_V6_PIECES, max_size=30).map("".join) | st.text(max_size=60))
def test_the_ipv6_candidates_in_c_are_the_python_ones(text: str) -> None:
    assert native.ipv6_runs is not None
    assert native.ipv6_runs(text) == extract_module._py_ipv6_spans(text)
    c, python = _both(text)
    assert c == python


@needs_c
@pytest.mark.parametrize(
    "text",
    ["x[.]y", "x[.][.]y", "([.])", "\\[.]", "a[.] b", "a[.]]b", "hxxp[.]", "a [.] b", "a.[.]b",
     "[[.]", "[.]:", "é[.]é", "[.]" * 30, ("evil[.]com " * 5).strip(), "evil<[.]>com",
     "<[.]>", "[.]12:45::p\n\t [at] ", "(dot)][.]\x85Af} [at] evil.com"],
)  # fmt: skip
def test_refang_with_the_windows_in_c_is_the_python_s_after_the_lone_dot(text: str) -> None:
    # the lone `[.]` is taken first for the C windows too: without it `<[.]>` would be left
    # `<.>`, and windows placed elsewhere may end elsewhere (` [at] `'s trailing space)
    python = normalize_module._py_refang_windows(normalize_module._LONE_DOT.sub(".", text))
    assert normalize_module.refang(text) == python
    with patch.object(normalize_module, "_refang_windows", normalize_module._py_refang_windows):
        assert normalize_module.refang(text) == python


@needs_c
@pytest.mark.parametrize("defanged", ["(.)", "x[:]", "é{.}", "\U0001f600<.>"])
def test_refang_s_windows_in_c_hold_no_more_than_the_text_and_the_result(defanged: str) -> None:
    # a match a character or two long, a million times: no record kept of each
    text = defanged * 1_000_000
    assert native.refang_windows is not None
    tracemalloc.start()
    try:
        fanged = native.refang_windows(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    width = 1 if text.isascii() or max(text) < "\u0100" else 2 if max(text) < "\U00010000" else 4
    assert peak <= 2 * len(text) * width + 4096
    assert fanged == normalize_module._py_refang_windows(defanged * 1000) * 1000


@needs_c
@settings(max_examples=500, deadline=None)
@given(
    st.text("ab\n\ré😀", max_size=30),
    st.integers(-40, 40),
    st.integers(0, 8),
)
def test_skip_lines_in_c_is_the_python(text: str, at: int, count: int) -> None:
    assert native.skip_lines is not None
    try:
        python: int | type[ValueError] = extract_module._py_skip_lines(text, at, count)
    except ValueError:
        python = ValueError
    try:
        c: int | type[ValueError] = native.skip_lines(text, at, count)
    except ValueError:
        c = ValueError
    assert c == python


@needs_c
@settings(max_examples=500, deadline=None)
@given(st.text("ab\n\ré\x7f\x80ÿ😀€", max_size=40))
def test_split_lines_in_c_is_the_python(text: str) -> None:
    """The lines of a block: the same strs, each in its own compact form (an ASCII line of a
    text that is not is ASCII: `isascii` and equality agree with the Python's)."""
    assert native.split_lines is not None
    c, python = native.split_lines(text), blocks_module._py_split_lines(text)
    assert c == python
    assert [line.isascii() for line in c] == [line.isascii() for line in python]


@needs_c
def test_a_line_is_found_past_the_last_asked_for_in_c() -> None:
    text = "\n".join(f"line {i} é" if i % 3 else f"line {i}" for i in range(10_000))
    assert native.skip_lines is not None
    assert native.skip_lines(text, 0, 9_999) == text.rindex("\n") + 1
    assert native.skip_lines(text, text.index("\n") + 1, 1) == len("line 0\nline 1 é\n")
    with pytest.raises(ValueError):
        native.skip_lines(text, 0, 10_000)
    with pytest.raises(TypeError):
        native.skip_lines(b"a\nb", 0, 1)  # type: ignore[arg-type]


@needs_c
@pytest.mark.parametrize(
    "piece",
    ["a.", "1.", "0123456789abcdef", "a" * 100 + "..b", "\ud800.", "[x", "\ud800[", "1::",
     "a:", "(.)"],
)  # fmt: skip
def test_a_50_mb_line_is_read(piece: str) -> None:
    text = "\n" + piece * (50_000_000 // len(piece))
    tokens, starts = extract_module._dotted_names(text)
    assert len(tokens) == len(starts) <= len(text)
    spans = extract_module._hex_spans(text)
    assert len(spans) % 2 == 0 and all(0 <= s <= len(text) for s in spans)
    assert native.triggers is not None
    assert len(native.triggers(text)) <= len(text)
    assert native.refang_windows is not None
    assert len(native.refang_windows(text)) <= len(text)
    assert native.ipv6_runs is not None
    assert len(native.ipv6_runs(text)) <= len(text)


@needs_c
@pytest.mark.parametrize(
    "finder",
    [
        "dotted_names",
        "hex_runs",
        "triggers",
        "refang_windows",
        "ipv6_runs",
        "plain_name",
        "not_ascii",
    ],
)
def test_the_c_finders_take_only_text(finder: str) -> None:
    function: Callable[[object], object] = getattr(native, finder)
    with pytest.raises(TypeError):
        function(b"evil.com")


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    st.text("ab9z0_-%+.²٣é", min_size=1, max_size=12).flatmap(
        lambda short: st.sampled_from([short, short + "x" * 60 + short, "y" * 250 + short])
    )
)
def test_the_plain_name_test_in_c_is_the_python_one(name: str) -> None:
    top = name.rpartition(".")[2]
    assert native.plain_name is not None
    assert native.plain_name(name, top) is extract_module._py_is_plain_name(name, top), name


def test_the_instruction_count_builds_the_suffix_tables_before_it_counts(tmp_path: Path) -> None:
    # a once-a-process cost (the public suffix list's table, ~20 ms) is not one of each MB
    path = tmp_path / "texts.json"
    path.write_text('["evil.co.uk"]', encoding="utf-8")
    suffixes._list.cache_clear()
    extract_peers._cachegrind_child("read", path)  # what is subtracted from the count
    assert suffixes.tables_built()


def _taught() -> None:
    """The C judge holds suffixes.py's tables (the first name judged hands them over)."""
    extract_module._forget()
    extract_module.extract("new-name.evil.co.uk")
    assert extract_module._judge_c is not None


# names at the edges of the rules a new name is judged by: public suffixes of one label and
# of more, wildcard and exception rules, special-use suffixes, file-like and host-first
# suffixes, program, code and package names, hash-named files, e-mail hosts, case
_NAMES = [
    "evil.com", "EVIL.COM", "Evil.com", "co.uk", "evil.co.uk", "a.b.evil.co.uk", "uk", "ck",
    "a.ck", "b.a.ck", "www.ck", "x.www.ck", "kobe.jp", "city.kobe.jp", "x.city.kobe.jp",
    "a.b.kobe.jp", "x.bit", "wpad.corp.local", "1.in-addr.arpa", "abc.onion", "evil.local",
    "invoice.pdf", "setup.exe", "name.zip", "x.py", "main.rs", "evil.rs", "Evil.rs", "a.pl",
    "evil_x.pl", "fotos.pl", "crack.keygen.zip", "cdn.payload.zip", "www.x.zip",
    "poweriso.7.3.incl.serial-f4cg.zip", "transfer.sh", "temp.sh", "Microsoft.NET", "asp.net",
    "System.IO", "Secure-PayPal.Com", "Login.Evil-Bank.Net", "EVIL.NET", "com.evil.app",
    "net.evil", "self.name", "user.id", "location.host", "user.email", "Microsoft.Office",
    "d41d8cd98f00b204e9800998ecf8427e.zip", "d41d8cd98f00b204e9800998ecf8427e.com",
    "d41d8cd98f00b204e9800998ecf8427e.evil.com", "a" * 40 + ".com", "1" * 32 + ".zip",
    "a@evil.com", "a.b@Evil.Zip", "@evil.com", "x@y@evil.co.uk", "evil.com.", ".evil.com",
    "evil..com", "evil-.com", "-evil.com", "evil.c-", "evil.c_m", "evil.123", "a%.com",
    "a+b.com", "xn--80ak6aa92e.com", "XN--80AK6AA92E.COM", "bücher.de", "a.xn--p1ai",
    "a" * 63 + ".com", "a" * 64 + ".com", ("a" * 60 + ".") * 4 + "com", ("a" * 61 + ".") * 4
    + "com", "e.g", "i.e", "v1.2", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.evil.com",
]  # fmt: skip


@needs_c
def test_the_judge_in_c_gives_what_the_python_gives() -> None:
    _taught()
    assert native.judge_name is not None
    for name in _NAMES:
        c = native.judge_name(name)
        if c is NotImplemented:
            assert not name.isascii() or "xn--" in name.lower(), name
            continue
        assert c == extract_module._py_new_name(name), name


_NAME_PIECES = st.sampled_from(
    ["evil", "EVIL", "Evil", "co", "uk", "ck", "www", "kobe", "jp", "city", "com", "NET", "zip",
     "rs", "pl", "sh", "app", "transfer", "self", "user", "id", "com", "io", "System", "cdn",
     "local", "onion", "arpa", "bit", "7", "123", "a" * 32, "f" * 40, "xn--p1ai", "_", "-",
     "%", "+", "@", ".", ".", ".", "..", "é", "\x00", "a" * 63]
)  # fmt: skip


@needs_c
@settings(max_examples=400, deadline=None)
@given(st.lists(_NAME_PIECES, min_size=1, max_size=12).map("".join) | st.text(max_size=30))
def test_the_judge_in_c_gives_what_the_python_gives_on_generated_names(name: str) -> None:
    _taught()
    assert native.judge_name is not None
    c = native.judge_name(name)
    if c is not NotImplemented:
        assert c == extract_module._py_new_name(name)


@needs_c
def test_the_names_loop_in_c_judges_a_new_name() -> None:
    # a name the memo does not hold yet is judged in C, and both tables filled as _name does
    _taught()
    assert native.names_walk is not None
    memo: dict[str, str | None] = {}
    known: dict[str, object] = {}
    values: list[str] = []
    tokens = ["evil.co.uk", "invoice.pdf", "Setup.zip", "a@b.zip"]
    text = "\n" + " ".join(tokens)
    starts = [text.index(t) for t in tokens]
    never: set[str] = set()
    args: list[Any] = [text, tokens, starts, 0, 1, 0, memo, never, known, None, 9, values]
    args += [[], [], None, False, 9, "domain"]
    assert native.names_walk(*args) == (4, 2, starts[3])
    assert values == ["evil.co.uk", "b.zip"]
    assert memo == {"evil.co.uk": "evil.co.uk", "invoice.pdf": None, "Setup.zip": "!setup.zip",
                    "a@b.zip": "b.zip"}  # fmt: skip
    assert known == {"evil.co.uk": "domain", "setup.zip": "domain", "b.zip": "domain"}
    assert never == {"invoice.pdf"}  # as _remember_if_nothing keeps it


@needs_c
def test_the_judge_in_c_leaves_to_python_what_it_cannot_judge() -> None:
    _taught()
    assert native.judge_name is not None and native.judge_tables is not None
    for name in ["bücher.de", "xn--bcher-kva.de", "a.XN--P1AI", "ü@evil.com"]:
        assert native.judge_name(name) is NotImplemented
    with pytest.raises(TypeError):
        native.judge_name(b"evil.com")
    with pytest.raises(TypeError):
        native.judge_tables(*suffixes.judge_tables()[:-1])
    with pytest.raises(TypeError):
        native.judge_tables(*suffixes.judge_tables()[:-1], [b"com"])
    # refused tables leave it judging nothing, until it is given them again
    assert native.judge_name("evil.com") is NotImplemented
    native.judge_tables(*suffixes.judge_tables())
    assert native.judge_name("evil.com") == "evil.com"


@needs_c
def test_a_rule_the_list_file_holds_undecodable_is_left_out_as_the_python_leaves_it() -> None:
    # suffixes.py reads the list's file with surrogateescape: a rule with a byte that is not
    # UTF-8 made the C refuse all the tables (UnicodeEncodeError from every extraction, as
    # each new name tried to hand them over again), where the Python never matches that rule
    _taught()
    assert native.judge_name is not None and native.judge_tables is not None
    alone, deeper, rules, *rest = suffixes.judge_tables()
    try:
        native.judge_tables(alone, deeper, (*rules, "caf\udce9.uk", "x.y.z.w.v.u.\udcff"), *rest)
        assert native.judge_name("evil.com") == "evil.com"
        assert native.judge_name("a.caf.uk") == extract_module._py_new_name("a.caf.uk")
        assert native.judge_name("evil.co.uk") == "evil.co.uk"
    finally:
        native.judge_tables(*suffixes.judge_tables())


# texts of names at a suffix boundary, IDN, upper case, wildcards and templates, e-mail
_JUDGED_TEXTS = [
    " ".join(_NAMES),
    "\n".join(_NAMES),
    "*.evil.co.uk *.ck *.www.ck !www.ck server-{1,30}[.]evil[.]top %s.evil.kobe.jp",
    "http://fotos.pl/x hxxp://a[.]ps/y http://x.bit/r mail a@Evil.CO.UK or b@x.zip",
    "EVIL.COM Evil.Co.Uk evil[.]zip Setup.zip setup.zip x/setup.zip //setup.zip",
    "bücher.de xn--bcher-kva.de BÜCHER.DE a.рф a.XN--P1AI",
]


@needs_c
@pytest.mark.parametrize("text", _JUDGED_TEXTS)
def test_the_same_with_names_judged_in_c(text: str) -> None:
    _taught()
    c, python = _both(text)
    assert c == python


# what is before and after a dotted quad that the names loop in C now decides itself (a
# product's version, a key's, a pinned package's, a range, a version: `_Scan.is_address`)
_QUAD_CONTEXTS = [
    "Chrome/{}", "HIER_DIRECT/{}", "DIRECT/{}", "CARP/{}", "PINNED/{}", "PINNEDX/{}", "A_B/{}",
    "_A/{}", "A__B/{}", "A_/{}", "a.b/{}", "x-y/{}", "9x/{}", "ver=" "{}", "xver={}", "&v={}",
    "v={}", "Ver={}", "VER={}", "é v={}", "évér={}", "evil-pkg=={}", "ip.addr=={}", "RemoteIP=={}",
    "Destination=={}", "{}/24", "{}/0", "{}/32", "{}/1234", "{}/8x", "{}/", "version: \"{}",
    "Version = '{}", "VERSION'{}", "version\"\"{}", "version\"\"\"{}", "ErSiOn {}", "ersion {}",
    "vérsion {}", "version\x1c{}", "version\u00a0{}", "FileVersion: {}", "version:{}/8",
    "Chrome/{}/16", "x" * 30 + "version {}", "version" + " " * 20 + "{}",
]  # fmt: skip


@needs_c
@pytest.mark.parametrize(
    "quad", ["10.0.0.0", "66.249.64.0", "1.2.3.4", "0.0.0.0", "255.255.255.255"]
)
def test_the_names_loop_in_c_judges_a_quad_as_the_python(quad: str) -> None:
    text = "\n".join(c.format(quad) for c in _QUAD_CONTEXTS)
    text += "\n" + " ".join(c.format(quad) for c in _QUAD_CONTEXTS)
    c, python = _both(text)
    assert c == python
    assert quad in python[0]


@needs_c
def test_the_names_loop_in_c_decides_quads_and_lists_after_a_slash_itself() -> None:
    # a quad after a product's `/`, a key's `=` or `version`, or before a range's `/`, and a
    # name after another and a `/` (`evil1.com/evil2.com`), were each handed to Python
    _taught()
    assert native.names_walk is not None
    tokens = ["1.2.3.4", "10.0.0.0", "1.2.3.5", "1.2.3.6", "evil1.com", "evil2.com"]
    text = "\nChrome/1.2.3.4 10.0.0.0/8 version 1.2.3.5 ip.addr==1.2.3.6 evil1.com/evil2.com"
    starts = [text.index(t) for t in tokens]
    values: list[str] = []
    args: list[Any] = [text, tokens, starts, 0, 1, 0, {}, set(), {}, None, 99, values]
    args += [[], [], None, False, 99, "domain"]
    assert native.names_walk(*args)[0] == len(tokens)
    assert values == ["1.2.3.6", "evil1.com", "evil2.com"]


def test_the_names_loop_in_c_is_not_called_for_a_token_it_would_hand_back() -> None:
    # a token after a `$` is Python's: a text of them paid a call for each
    calls = []

    def walk(*args: Any) -> tuple[int, int, int]:
        calls.append(args[3])
        return args[3], args[4], args[5]

    with patch.object(extract_module, "_names_walk", walk):
        assert extract_module.extract("_a.evil.com_ $b.evil.com -c.evil.com d.evil.com") == [
            "a.evil.com", "evil.com", "c.evil.com", "d.evil.com",
        ]  # fmt: skip
    assert calls == [0, 2, 3]


@needs_c
@pytest.mark.parametrize("width", ["é", "€", "😀"])
def test_the_characters_outside_ascii_are_found_in_c_at_every_width(width: str) -> None:
    assert native.not_ascii is not None
    text = "a\x7f\x80ÿ" + width + "\ud800\u200b²" * 3 + width
    assert native.not_ascii(text) == "".join(sorted(set(text) - set(map(chr, range(128)))))


@needs_c
def test_a_short_line_with_an_emoji_costs_no_bitmap_of_every_code_point() -> None:
    # a line of the IOC-list format that is not an IOC is extracted alone: a 139 KB bitmap
    # read back bit by bit up to its highest character cost 0.14 ms a line with an emoji,
    # 1 ms with a character of the last plane (10-60x the whole Python extraction)
    assert native.not_ascii is not None
    not_ascii = native.not_ascii

    def with_peak(text: str) -> tuple[str, int]:
        tracemalloc.start()
        try:
            return not_ascii(text), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    astral = "a\U0010fffd \U0001f6a8\U0001f6a8é\U0001f600 \U00010000\U0001f6a8"
    found, peak = with_peak(astral)
    assert found == "é\U00010000\U0001f600\U0001f6a8\U0010fffd"
    assert peak < 4096
    # nor one entry a character past the plane: a text of emoji keeps each emoji once
    found, peak = with_peak("\U0001f600\U0001f601 " * 50_000)
    assert found == "\U0001f600\U0001f601"
    assert peak < 4096


@needs_c
def test_the_hash_loop_in_c_gives_runs_python_judges_after_when_asked() -> None:
    # with a list for them, the runs after a key word or beside a dot are given, and kept there
    # for Python to take back: a text of keyed hashes costs one call, not one a run
    assert native.hashes_walk is not None
    text = "\nhash " + _MD5 + " " + "x" * 40 + " " + _MD5 + " sha1 " + "A" * 40
    spans = native.hex_runs(text) if native.hex_runs else []
    values: list[str] = []
    pending: list[tuple[int, int]] = []
    done = native.hashes_walk(text, spans, 0, 1, 0, False, values, [], pending)
    assert done[0] == len(spans) == 6
    assert values == [_MD5.lower(), _MD5.lower(), "a" * 40]
    assert pending == [(0, 0)]
    with pytest.raises(TypeError):
        native.hashes_walk(text, spans, 0, 1, 0, False, values, [], ())
    calls = []
    walk = native.hashes_walk

    def counted(*args: Any) -> tuple[int, int, int]:
        calls.append(args[2])
        return walk(*args)

    keyed = " ".join(f"hash: {_MD5} ja3 {_MD5} imphash={'b' * 32}" for _ in range(50))
    with patch.object(extract_module, "_hashes_walk", counted):
        c = extract_module.extract_lines(keyed, 1)
    assert calls == [0]
    assert c == _both(keyed)[1] and c[0] == [_MD5.lower()] * 50


# tokens the names loop in C now trims itself (`_trim`): wrappers, placeholders, closings
_TRIMS = [
    "_x.com:80_", ".. _evil.com: <url>", "_evil.com: x", "%TEMP%.evil.com", "%s.evil.com",
    "\\w+.evil.com", "++5.6.7.8++", "+1.2.3[.]4+", "_1.2.3.4_", "-evil.com", "evil.com-",
    "a%b@evil.com", "a+b@evil.co.uk", "_%_", "+a+b.c", "%%.x", "_a.b_c", "%a.evil.com" + "x" * 70
    + "%", "_a.evil.com x_", "_a.evil.com_x", "_a.evil.com_ _b.evil.com_", "%08x.evil.top",
    "-_a.evil.com_-", "_dmarc.evil.ru", "_sip._tls.evil.com", "+evil.com", "evil.com+",
    "__a.zip__", "_Setup.zip_", "x[.]org _Setup.zip_", "_a.b.%c", "%a%b%.x.com", "_1.2.3.4.443_",
]  # fmt: skip


@needs_c
@pytest.mark.parametrize("sep", [" ", "\n"])
def test_the_names_loop_in_c_trims_as_the_python(sep: str) -> None:
    _taught()
    c, python = _both(sep.join(_TRIMS) + sep + sep.join(_TRIMS))
    assert c == python
    assert "evil.ru" not in python[0] and "_dmarc.evil.ru" in python[0]


@needs_c
def test_the_names_loop_in_c_trims_a_token_itself() -> None:
    # a token with `_%+-` at an end or a placeholder label was handed to Python
    _taught()
    assert native.names_walk is not None
    tokens = ["_a.evil.com_", "%s.evil.co.uk", "++5.6.7.8++", "-b.evil.com"]
    text = "\n" + " ".join(tokens)
    starts = [text.index(t) for t in tokens]
    values: list[str] = []
    long_names: list[tuple[int, int]] = []
    args: list[Any] = [text, tokens, starts, 0, 1, 0, {}, set(), {}, None, 99, values]
    args += [[], long_names, None, False, 99, "domain"]
    assert native.names_walk(*args) == (4, 2, starts[3] + 1)
    assert values == ["a.evil.com", "evil.co.uk", "5.6.7.8", "b.evil.com"]
