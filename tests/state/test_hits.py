"""The cache's hits, key by key (`state/hits.py`): the C functions (`_hits.c`) give what their
Python twins give, and raise the same exception types; the one test of a line served as it is."""

from __future__ import annotations

import array
import shutil
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import enricher.state
from enricher.config.settings import VERDICTS
from enricher.inputs import native
from enricher.ioc import ENDPOINT_OF, Endpoint, IocType
from enricher.output.records import CACHED_TAIL, FRESH_TAIL
from enricher.state import hits
from enricher.state.hits import python_found, python_group, python_split, servable

C = hits._NATIVE
needs_c = pytest.mark.skipif(C is None, reason="the C module is not built")
FORMATS = {1: "f1", 2: "f2", 7: "f1"}


def line(key: str, tail: bytes = CACHED_TAIL, body: bytes = b'"type":"domain"') -> bytes:
    return b'{"ioc":"%s",%s%s' % (key.encode(), body, tail)


def segments(lines: list[bytes]) -> Any:
    """`lines` as zstandard gives a lookup's records, decompressed (what `found` reads)."""
    frames = [zstandard.ZstdCompressor().compress(x) for x in lines]
    at, pairs = 0, []
    for f in frames:
        pairs += [at, len(f)]
        at += len(f)
    if not frames:
        return []
    whole = zstandard.BufferWithSegments(b"".join(frames), array.array("Q", pairs).tobytes())
    sizes = array.array("Q", [len(x) for x in lines]).tobytes()
    return zstandard.ZstdDecompressor().multi_decompress_to_buffer(whole, sizes)


def outcome(fn: Any, *args: Any) -> Any:
    """What `fn(*args)` gives, or the type of what it raises."""
    try:
        return fn(*args)
    except Exception as exc:
        return type(exc)


def test_the_c_module_is_loaded_when_it_could_be_built() -> None:
    buildable = (shutil.which("cc") or shutil.which("gcc")) and Path(
        sysconfig.get_paths()["include"], "Python.h"
    ).is_file()
    if native.TURNED_OFF:
        assert C is None
    elif buildable:
        assert C is not None, "a compiler is here, but _hits is not built"


@needs_c
def test_a_module_built_from_another_hits_c_is_not_used() -> None:
    stale = types.ModuleType("enricher.state._hits")
    stale.__dict__.update(vars(C))
    stale.SOURCE = "0" * 16
    with (
        patch.dict(sys.modules, {"enricher.state._hits": stale}),
        patch.object(enricher.state, "_hits", stale, create=True),
    ):
        assert native.load("enricher.state._hits", hits.__file__) is None
    assert native.load("enricher.state._hits", hits.__file__) is not None


def test_a_line_is_served_as_it_is_only_in_the_runs_format_and_as_a_hit() -> None:
    assert servable(("benign", "f1", line("a.com")), "f1")
    assert not servable(("benign", "f2", line("a.com")), "f1")  # made under other settings
    assert not servable(("benign", "f1", line("a.com", FRESH_TAIL)), "f1")
    assert not servable(("benign", "f1", line("a.com", b',"source":["x",1]}\n')), "f1")


def test_found_keeps_the_rows_of_their_key_and_drops_the_others() -> None:
    keys = ["a.com", "b.com", "c.com", "d.com"]
    # rows in the index's order, as SQLite gives them: b, c (damaged: d's line), a
    recs = [line("b.com"), line("d.com"), line("a.com", FRESH_TAIL)]
    args = (keys, [1, 2, 0], [0, 2, 3], [1, 2, 7], VERDICTS, FORMATS, "f1")
    got, served = python_found(segments(recs), *args)
    assert got == {
        "b.com": ("malicious", "f1", recs[0]),
        "a.com": ("unknown", "f1", recs[2]),
    }
    assert list(got) == ["b.com", "a.com"] and served is None
    if C is not None:
        again, c_served = C.found(segments(recs), *args, CACHED_TAIL)
        assert again == got and list(again) == list(got) and c_served is None


def test_found_gives_the_lines_in_the_keys_order_when_each_is_served_as_it_is() -> None:
    keys = ["c.com", "a.com", "b.com"]
    recs = [line("a.com"), line("b.com"), line("c.com")]  # the index's order
    args = (keys, [1, 2, 0], [0, 1, 2], [1, 7, 1], VERDICTS, FORMATS, "f1")
    want = ([recs[2], recs[0], recs[1]], ["benign", "malicious", "suspicious"])
    assert python_found(segments(recs), *args)[1] == want
    assert hits.found(segments(recs), *args)[1] == want
    for other in (
        (keys, [1, 2], [0, 1], [1, 7], VERDICTS, FORMATS, "f1"),  # c.com missed
        (keys, [1, 2, 0], [0, 1, 2], [1, 2, 1], VERDICTS, FORMATS, "f1"),  # b.com's format
    ):
        n = len(other[1])
        assert python_found(segments(recs[:n]), *other)[1] is None
        assert hits.found(segments(recs[:n]), *other)[1] is None


@pytest.mark.parametrize(
    ("at", "verdict_ids", "format_ids", "raised"),
    [
        ([0, 1], [0], [1], ValueError),  # the fields differ in number
        ([4], [0], [1], IndexError),  # no such key
        ([-1], [0], [1], IndexError),  # (Python would take the last: no row says -1)
        ([0], [9], [1], IndexError),  # no such verdict
        ([0], [-1], [1], IndexError),
        ([0], [0], [3], KeyError),  # a format written since the cache was opened
        (["0"], [0], [1], TypeError),
        ([0.0], [0], [1], TypeError),
        ([2**70], [0], [1], IndexError),  # (attack-s10w: C raised OverflowError)
        ([0], [-(2**70)], [1], IndexError),
    ],
)
def test_found_raises_as_its_python_does(
    at: list[Any], verdict_ids: list[Any], format_ids: list[Any], raised: type[Exception]
) -> None:
    lines = segments([line("a.com")])
    args = (["a.com"], at, verdict_ids, format_ids, VERDICTS, FORMATS, "f1")
    assert outcome(python_found, lines, *args) is raised
    if C is not None:
        assert outcome(C.found, lines, *args, CACHED_TAIL) is raised


def test_found_of_a_key_that_is_no_text_raises() -> None:
    lines = segments([line("a.com")])
    for keys in ([b"a.com"], ["\ud800"]):  # bytes; a lone surrogate UTF-8 cannot hold
        args = (keys, [0], [0], [1], VERDICTS, FORMATS, "f1")
        expected = outcome(python_found, lines, *args)
        assert isinstance(expected, type) and issubclass(expected, Exception)
        if C is not None:
            assert outcome(C.found, lines, *args, CACHED_TAIL) is expected


keys_st = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters='"'), max_size=12),
    min_size=1,
    max_size=8,
)


@needs_c
@settings(max_examples=300, deadline=None)
@given(keys=keys_st, data=st.data())
def test_found_in_c_is_its_python(keys: list[str], data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 10))
    at = data.draw(st.lists(st.integers(-1, len(keys)), min_size=n, max_size=n))
    verdict_ids = data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    format_ids = data.draw(st.lists(st.sampled_from([1, 2, 7, 8]), min_size=n, max_size=n))
    recs = []
    for i in range(n):
        key = keys[at[i]] if 0 <= at[i] < len(keys) else "x"
        recs.append(
            data.draw(
                st.sampled_from(
                    [
                        line(key),
                        line(key, FRESH_TAIL),
                        line(key + "x"),
                        line(key)[:9],
                        b"",
                        b'{"ioc":"%s"' % key.encode(),
                    ]
                )
            )
            or b" "
        )
    args = (keys, at, verdict_ids, format_ids, VERDICTS, FORMATS, "f1")
    expected = outcome(python_found, segments(recs), *args)
    got = outcome(C.found, segments(recs), *args, CACHED_TAIL)
    assert got == expected
    if isinstance(expected, tuple):
        assert list(got[0]) == list(expected[0])


def key(value: str) -> tuple[IocType, str]:
    return (IocType.DOMAIN, value)


def test_split_serves_the_hits_and_gives_the_misses_in_their_order() -> None:
    found = {v: ("benign", "f1", line(v)) for v in ("a.com", "c.com", "d.com")}
    group = [key("d.com"), key("b.com"), key("a.com"), key("e.com"), key("c.com")]
    want = (
        [line("d.com"), line("a.com"), line("c.com")],
        ["benign"] * 3,
        [key("d.com"), key("a.com"), key("c.com")],
        [key("b.com"), key("e.com")],
    )
    assert python_split(found, group, "f1") == want
    assert hits.split(found, group, "f1") == want


@pytest.mark.parametrize(
    "hit",
    [("benign", "f2", line("a.com")), ("benign", "f1", line("a.com", FRESH_TAIL))],
)
def test_split_leaves_a_group_with_a_line_to_make_anew_to_the_caller(
    hit: tuple[str, str, bytes],
) -> None:
    found = {"a.com": hit, "b.com": ("benign", "f1", line("b.com"))}
    group = [key("b.com"), key("a.com")]
    assert python_split(found, group, "f1") is None
    assert hits.split(found, group, "f1") is None


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    found=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.tuples(
            st.sampled_from(VERDICTS),
            st.sampled_from(["f1", "f2"]),
            st.sampled_from([CACHED_TAIL, FRESH_TAIL, b"", b"}\n", b"x" + CACHED_TAIL]),
        ),
    ),
    values=st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=8),
)
def test_split_in_c_is_its_python(
    found: dict[str, tuple[str, str, bytes]], values: list[str]
) -> None:
    group = [key(v) for v in values]
    assert C.split(found, group, "f1", CACHED_TAIL) == python_split(found, group, "f1")


@needs_c
def test_split_of_the_caches_found_is_done_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    # the cache's lookup gives a `Found` (a dict with `served`): it reads as a dict, so the
    # group of a partly hit lookup is split in C too, not only a memory or Redis store's
    found = hits.Found()
    found.update({v: ("benign", "f1", line(v)) for v in ("a.com", "c.com")})
    group = [key("c.com"), key("b.com"), key("a.com")]
    want = python_split(found, group, "f1")
    asked: list[object] = []

    def spy(*args: object) -> object:
        asked.append(type(args[0]))
        return C.split(*args)

    monkeypatch.setattr(hits, "_NATIVE", type("N", (), {"split": staticmethod(spy)}))
    assert hits.split(found, group, "f1") == want
    assert asked == [hits.Found]


@needs_c
def test_split_in_c_raises_on_what_no_store_gives() -> None:
    for found, group in (
        ({"a": ("v", "f1")}, [key("a")]),  # a hit of two fields
        ({"a": ("v", "f1", "text")}, [key("a")]),  # a line as text
        ({"a": ("v", "f1", CACHED_TAIL)}, ["a"]),  # a key that is no pair
    ):
        with pytest.raises(TypeError):
            C.split(found, group, "f1", CACHED_TAIL)


def test_group_gives_the_keys_by_endpoint_in_their_order() -> None:
    keys = [
        (IocType.DOMAIN, "a.com"),
        (IocType.MD5, "0" * 32),
        (IocType.IPV4, "1.2.3.4"),
        (IocType.DOMAIN, "b.com"),
        (IocType.SHA1, "1" * 40),
    ]
    groups = {
        Endpoint.DOMAIN: [keys[0], keys[3]],
        Endpoint.FILE: [keys[1], keys[4]],
        Endpoint.IP: [keys[2]],
    }
    values = {ep: [v for _, v in group] for ep, group in groups.items()}
    for made in (python_group(keys, ENDPOINT_OF), hits.group(keys, ENDPOINT_OF)):
        assert made == (groups, values)
        assert list(made[0]) == [Endpoint.DOMAIN, Endpoint.FILE, Endpoint.IP]
    assert hits.group([], ENDPOINT_OF) == ({}, {})


@needs_c
@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.tuples(st.sampled_from([*IocType, "nope"]), st.text(max_size=3)), max_size=12)
)
def test_group_in_c_is_its_python(keys: list[tuple[Any, str]]) -> None:
    assert outcome(C.group, keys, ENDPOINT_OF) == outcome(python_group, keys, ENDPOINT_OF)


def frame(line: bytes, **kw: Any) -> bytes:
    return zstandard.ZstdCompressor(**kw).compress(line)


def test_frames_gives_the_segments_and_the_sizes_claimed() -> None:
    recs = [frame(b"a" * 10), frame(b"b" * 300), frame(b"c" * 70_000)]
    records = b"".join(recs)
    sizes = [len(f) for f in recs]
    want = (
        array.array(
            "Q", [0, sizes[0], sizes[0], sizes[1], sizes[0] + sizes[1], sizes[2]]
        ).tobytes(),
        array.array("Q", [10, 300, 70_000]).tobytes(),
    )
    assert hits.python_frames(records, sizes, 1 << 26) == want
    assert hits.frames(records, sizes, 1 << 26) == want
    for bad in (
        (records, [*sizes[:2], sizes[2] - 1], 1 << 26),  # sizes short of the records
        (records + b"x", sizes, 1 << 26),
        (records, sizes, 69_999),  # a frame claims more than allowed
        (frame(b"x", write_content_size=False), [len(frame(b"x", write_content_size=False))], 9),
        (b"", [-1], 9),
        (records, [2**64, *sizes[1:]], 1 << 26),  # (attack-s10w: C raised OverflowError)
        (records, [-(2**70), *sizes[1:]], 1 << 26),
    ):
        assert outcome(hits.python_frames, *bad) is ValueError
        assert outcome(hits.frames, *bad) is ValueError


@needs_c
@settings(max_examples=500, deadline=None)
@given(
    heads=st.lists(
        st.tuples(st.integers(0, 255), st.binary(min_size=0, max_size=12), st.booleans()),
        max_size=4,
    )
)
def test_frames_in_c_reads_headers_as_zstd_does(heads: list[tuple[int, bytes, bool]]) -> None:
    recs = [
        (b"\x28\xb5\x2f\xfd" if magic else b"\x28\xb5\x2f\xfc") + bytes([d]) + rest
        for d, rest, magic in heads
    ]
    args = (b"".join(recs), [len(r) for r in recs], 1 << 26)
    assert outcome(C.frames, *args) == outcome(hits.python_frames, *args)
