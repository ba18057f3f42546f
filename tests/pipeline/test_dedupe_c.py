"""The deduper's C tables (`_dedupe.c`) give what its Python tables give, on any sequence of
adds, and pickle the same blobs (a deduper pickled by one loads in the other); the C module
is there whenever it could be built."""

from __future__ import annotations

import pickle
import shutil
import sys
import sysconfig
import types
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.inputs import native
from enricher.ioc import IocType
from enricher.pipeline import dedupe
from enricher.pipeline.dedupe import Deduper, PyDeduper

needs_c = pytest.mark.skipif(
    dedupe.C_TABLES is None, reason="the C module is not built (or ENRICHER_NO_C)"
)
END = b"\xfe"


def test_the_c_module_is_loaded_when_it_could_be_built() -> None:
    buildable = (shutil.which("cc") or shutil.which("gcc")) and Path(
        sysconfig.get_paths()["include"], "Python.h"
    ).is_file()
    if native.TURNED_OFF:
        assert dedupe.C_TABLES is None
    elif buildable:
        assert dedupe.C_TABLES is not None, "a compiler is here, but _dedupe is not built"
        assert type(Deduper()._tables[IocType.MD5]).__module__ == "enricher.pipeline._dedupe"


@needs_c
def test_a_module_built_from_another_source_or_turned_off_is_not_used() -> None:
    from enricher.pipeline import _dedupe

    stale = types.ModuleType("enricher.pipeline._dedupe")
    stale.__dict__.update(vars(_dedupe))
    stale.SOURCE = "0" * 16  # type: ignore[attr-defined]
    with (
        patch.dict(sys.modules, {"enricher.pipeline._dedupe": stale}),
        patch("enricher.pipeline._dedupe", stale),
    ):
        assert dedupe._c_tables() is None
    with patch.object(native, "TURNED_OFF", True):
        assert dedupe._c_tables() is None
    assert dedupe._c_tables() is not None


def records(t: IocType, blob: bytes) -> list[bytes]:
    w = dedupe._WIDTH[t]
    if w:
        assert len(blob) % w == 0
        return [blob[j : j + w] for j in range(0, len(blob), w)]
    assert not blob or blob.endswith(END)
    return [r + END for r in blob.split(END)[:-1]]


def record_sets(d: Deduper) -> dict[IocType, set[bytes]]:
    _, (blobs,) = d.__reduce__()
    out = {IocType(t): records(IocType(t), b) for t, b in blobs.items()}
    for rs in out.values():
        assert len(rs) == len(set(rs))  # each record once
    return {t: set(rs) for t, rs in out.items()}


_HEX = "0123456789abcdefABCDEF"
# edge values of each type, valid and not: what `pack` packs, refuses, or packs oddly
_EDGES: dict[IocType, list[object]] = {
    IocType.MD5: ["", "a" * 31, "a" * 33, "A" * 32, "ab " * 16, " " + "a" * 32, "g" * 32,
                  "ab" * 8, "\u00e9" * 32, "a" * 31 + "\x00", "ab\tcd" + "0" * 28, b"a" * 32],
    IocType.SHA1: ["f" * 40, "F" * 40, "f" * 39, "0" * 40 + "\n"],
    IocType.SHA256: ["0" * 64, "0" * 63 + "x", "  " + "1" * 64],
    IocType.IPV4: ["1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.772", "1.2.3",
                   "010.1.1.1", "1.2.3.4 x", "0x7f.1", "1..2.3", "", "1.2.3.4\x00",
                   "\u0661.2.3.4", "1.2.3.04", "4294967295", "1.2.3.4."],
    IocType.IPV6: ["::", "::1", "2001:db8::1", "2001:DB8::1", "::ffff:1.2.3.4", "1::2::3",
                   "fe80::1%eth0", "", "1.2.3.4", "0:0:0:0:0:0:0:0", "::1\x00", "x" * 70,
                   "1:2:3:4:5:6:7:8:9"],
    IocType.DOMAIN: ["", "a.com", "A.com", "\u00e9.fr", "\ud800.com", "x" * 300, "a\x00b",
                     "ba.com", "com", 3],
}  # fmt: skip


def _values(t: IocType) -> st.SearchStrategy[object]:
    w = dedupe._WIDTH[t]
    if t is IocType.IPV4:
        made = st.tuples(*[st.integers(0, 255)] * 4).map(lambda q: ".".join(map(str, q)))
    elif t is IocType.IPV6:
        made = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
            lambda g: ":".join(f"{x:x}" for x in g)
        )
    elif t is IocType.DOMAIN:
        made = st.text(max_size=12)
    else:
        made = st.text(_HEX, min_size=2 * w, max_size=2 * w)
    return st.one_of(made, st.sampled_from(_EDGES[t]), st.text(max_size=6))


_OPS = st.one_of(*[st.tuples(st.just(t), _values(t)) for t in IocType])


def _outcome(call: object, *args: object) -> object:
    try:
        return call(*args)  # type: ignore[operator]
    except Exception as e:  # the exception's type is the answer compared
        return type(e)


@needs_c
@settings(max_examples=100, deadline=None)
@given(st.lists(_OPS, max_size=60), st.data())
def test_c_and_python_tables_answer_alike(
    ops: list[tuple[IocType, object]], data: st.DataObject
) -> None:
    c, py = Deduper(), PyDeduper()
    # repeats: some of the values again, in another order
    ops = ops + data.draw(st.permutations(ops))[: len(ops) // 2]
    for t, v in ops:
        assert _outcome(c.adders[t], v) == _outcome(py.adders[t], v), (t, v)
        assert _outcome(c.__contains__, (t, v)) == _outcome(py.__contains__, (t, v)), (t, v)
    assert len(c) == len(py)
    assert record_sets(c) == record_sets(py)
    # a pickle from either loads in the other, and holds the same records
    with patch.object(dedupe, "Deduper", PyDeduper):
        from_c = pickle.loads(pickle.dumps(c))
    from_py = pickle.loads(pickle.dumps(py))
    assert type(from_c) is PyDeduper and type(from_py._tables[IocType.MD5]) is not dedupe._Fixed
    assert record_sets(from_c) == record_sets(from_py) == record_sets(c)
    for t, v in ops:
        assert _outcome(from_c.__contains__, (t, v)) == _outcome(c.__contains__, (t, v))


@needs_c
def test_a_c_table_grows_from_empty_keeping_every_key_in_bounded_memory() -> None:
    d = Deduper()
    n = 200_000
    sha256 = d._tables[IocType.SHA256]
    keys = [f"{i * 0x9E3779B97F4A7C15 % (1 << 256):064x}" for i in range(n)]
    names = [f"h{i}.example.com" for i in range(n // 4)]
    for i, k in enumerate(keys):
        assert d.adders[IocType.SHA256](k)
        if i % 9_973 == 0 and i:  # at every fill, the widest records: at most 80 bytes each
            assert sha256.__sizeof__() / (i + 1) <= 80
    assert all(d.add(IocType.DOMAIN, name) for name in names)
    assert len(d) == n + len(names)
    assert not any(d.adders[IocType.SHA256](k) for k in keys)
    assert not any(d.adders[IocType.DOMAIN](name) for name in names)
    assert all((IocType.SHA256, k) in d for k in keys[::97])
    assert (IocType.SHA256, "f" * 64) not in d and (IocType.DOMAIN, "h.example.com") not in d
    copy = pickle.loads(pickle.dumps(d))
    assert len(copy) == len(d) and not copy.add(IocType.DOMAIN, names[-1])
    with pytest.raises(ValueError, match="whole"):
        sha256.load(b"x" * 33)


@pytest.mark.parametrize("tables", [PyDeduper, Deduper])
def test_a_damaged_blob_loads_alike_in_either_table(tables: type[Deduper]) -> None:
    d = tables()
    md5 = d._tables[IocType.MD5]
    names = d._tables[IocType.DOMAIN]
    record = bytes.fromhex("ab" * 16)
    # a pickle spliced into itself: each record once, as `add` would count it
    md5.load(record * 2)
    names.load(b"a.com" + END + b"a.com" + END)
    assert len(md5) == len(names) == 1 and not d.add(IocType.MD5, "ab" * 16)
    # a pickle cut inside a record: a clear error, no part of a record held
    with pytest.raises(ValueError, match="whole"):
        md5.load(record + record[:5])
