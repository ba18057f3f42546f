"""The C record line (`_records.c`) writes what `record_line`'s Python writes, byte for byte,
or leaves the entry to it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import enricher.output
from enricher.api.protocol import CLASSIFICATION_TYPES, read_entry
from enricher.inputs import native
from enricher.ioc import IocType
from enricher.output import records
from enricher.output.records import FRESH_TAIL, python_record_line, record_line

VERDICTS = {"malware": "malicious", "whitelist": "benign", "unknown": "unknown"}


def test_the_c_module_is_loaded_when_it_could_be_built() -> None:
    buildable = (shutil.which("cc") or shutil.which("gcc")) and Path(
        sysconfig.get_paths()["include"], "Python.h"
    ).is_file()
    if native.TURNED_OFF:
        assert records.C_LINE is None
    elif buildable:
        assert records.C_LINE is not None, "a compiler is here, but _records is not built"


def test_a_module_built_from_another_records_c_is_not_used() -> None:
    # built before `git pull` brought a changed _records.c: the Python makes every line
    if records._NATIVE is None:
        pytest.skip("the C module is not built")
    stale = types.ModuleType("enricher.output._records")
    stale.__dict__.update(vars(records._NATIVE))
    stale.SOURCE = "0" * 16
    with (
        patch.dict(sys.modules, {"enricher.output._records": stale}),
        patch.object(enricher.output, "_records", stale, create=True),
    ):
        assert records._native() is None
    assert records._native() is not None


def test_a_plain_answer_is_written_in_c_as_in_python() -> None:
    if records.C_LINE is None:
        pytest.skip("the C module is not built")
    doc = {
        "requestKey": {"md5": "0" * 32},
        "ttl": 380839791,
        "aggregatedResult": {
            "maliciousClassification": {"type": "malware", "classificationScore": 3,
                                        "typeScore": -1, "source": "Example"},
            "productClassification": {"type": "OFFICE", "signed": True},
            "link": "http://www.cybereason.com/a?b=1",
            "firstSeen": -1,  # 1969-12-31T23:59:59.999Z: the day before the epoch
        },
        "cpType": "TOKEN",
    }  # fmt: skip
    entry, raw = read_entry(orjson.dumps(doc))
    for factor in (1, 1000):
        want = python_record_line(IocType.MD5, "0" * 32, entry, raw, VERDICTS, factor)
        made = records.C_LINE(
            b',"type":"md5"', "0" * 32, entry, raw, VERDICTS, factor, FRESH_TAIL
        )  # fmt: skip
        assert made == want
        assert record_line(IocType.MD5, "0" * 32, entry, raw, VERDICTS, factor) == want
    # what C leaves (an origin, keywords) is made by the Python, with the same arguments
    where = ("in.txt", 3)
    assert record_line(IocType.MD5, "0" * 32, entry, raw, VERDICTS, 1, True, where) == (
        python_record_line(IocType.MD5, "0" * 32, entry, raw, VERDICTS, 1, True, where)
    )
    assert record_line(IocType.MD5, "0" * 32, entry, raw, verdicts=VERDICTS, cached=True) == (
        python_record_line(IocType.MD5, "0" * 32, entry, raw, VERDICTS, 1, True)
    )
    assert b'"first_seen":"1969-12-31T23:59:59.999Z"' in want[0]
    assert want[1:] == ("malicious", 380839791000)


_texts = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["VIRUS_TOTAL", "a\\b"]))
_numbers = st.one_of(
    st.none(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False), st.just(1.0)
)
#: first-seen times about the ends of the dates a record writes (years 1 and 9999) and now
_first_seen = st.one_of(
    st.none(),
    st.integers(-62_135_596_800_000 - 86_400_000, -62_135_596_800_000 + 86_400_000),
    st.integers(253_402_300_799_000 - 86_400_000, 253_402_300_799_999 + 86_400_000),
    st.integers(-(2**63), 2**64 - 1),
    st.integers(0, 2_000_000_000_000),
)
_entries = st.fixed_dictionaries(
    {"requestKey": st.just({"domain": "a.com"})},
    optional={
        "ttl": _numbers,
        "cpType": _texts,
        "aggregatedResult": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "maliciousClassification": st.one_of(
                        st.none(),
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "type": st.one_of(st.sampled_from(CLASSIFICATION_TYPES), _texts),
                                "classificationScore": _numbers,
                                "typeScore": _numbers,
                                "source": _texts,
                            },
                        ),
                    ),
                    "firstSeen": _first_seen,
                    "link": _texts,
                    "productClassification": st.one_of(
                        st.none(), st.just({}), st.just({"a": [1, 2.5]}), st.just([1]), _texts
                    ),
                },
            ),
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(
    doc=_entries,
    ioc=st.one_of(st.text(max_size=8), st.just("a.com")),
    factor=st.sampled_from([1, 1000]),
    cached=st.booleans(),
)
def test_any_answer_is_written_as_python_writes_it(
    doc: dict[str, Any], ioc: str, factor: int, cached: bool
) -> None:
    entry, raw = read_entry(orjson.dumps(doc))
    want = python_record_line(IocType.DOMAIN, ioc, entry, raw, VERDICTS, factor, cached)
    assert record_line(IocType.DOMAIN, ioc, entry, raw, VERDICTS, factor, cached) == want
    assert record_line(IocType.DOMAIN, ioc, entry, raw, VERDICTS, factor, cached, None) == want


def test_a_field_is_read_as_getattr_reads_it_after_its_type_changes() -> None:
    # the C line reads a struct's fields from their slots (the offsets remembered by type):
    # a type changed since (its version tag) is read as getattr reads it
    if records.C_LINE is None:
        pytest.skip("the C module is not built")
    from enricher.api import protocol

    class Classification(protocol._Classification, gc=False):
        pass

    entry, raw = read_entry(orjson.dumps({"aggregatedResult": {}}))
    assert entry.aggregatedResult is not None
    entry.aggregatedResult.maliciousClassification = Classification("malware", 3, 1, "Old")

    def source_of() -> Any:
        made = records.C_LINE(b',"type":"md5"', "0" * 32, entry, raw, VERDICTS, 1, FRESH_TAIL)
        return orjson.loads(made[0])["source"]

    assert source_of() == "Old"
    assert source_of() == "Old"  # (read from the slot)
    Classification.source = property(lambda self: "New")  # type: ignore[assignment,method-assign]
    assert source_of() == "New"


def test_a_member_of_another_type_set_on_a_struct_is_refused_as_getattr_refuses_it() -> None:
    # a member descriptor of an unrelated type, set on a struct's type: getattr refuses the
    # struct's objects (TypeError); the C read it from its remembered offset, past the
    # object's end (a segfault on the second read). In a process of its own.
    if records.C_LINE is None:
        pytest.skip("the C module is not built")
    code = """if True:
        import msgspec, orjson
        from enricher.api import protocol
        from enricher.api.protocol import read_entry
        from enricher.output import records

        class Big(msgspec.Struct):
            a: object = None; b: object = None; c: object = None; d: object = None
            e: object = None; f: object = None; g: object = None; h: object = None

        class Classification(protocol._Classification, gc=False):
            pass

        Classification.source = Big.__dict__["h"]
        entry, raw = read_entry(orjson.dumps({"aggregatedResult": {}}))
        entry.aggregatedResult.maliciousClassification = Classification("malware", 3, 1, "x")
        for _ in range(3):
            try:
                records.C_LINE(b',"type":"md5"', "0" * 32, entry, raw, {}, 1, b"}")
            except TypeError:
                print("refused")
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.split() == ["refused"] * 3, done


class _OddGet(dict[str, str]):
    """A dict whose `get` is its own: asked as record_line's Python asks it."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return "suspicious" if key == "malware" else super().get(key, default)


def test_the_verdicts_behind_a_read_only_proxy_are_read_as_its_get_reads_them() -> None:
    # the settings hold the verdicts as a MappingProxyType: over a dict, C looks the
    # classification up in the dict itself; over anything else, it asks the proxy's `get`
    doc = {"aggregatedResult": {"maliciousClassification": {"type": "malware"}}}
    entry, raw = read_entry(orjson.dumps(doc))
    for verdicts, verdict in (
        (types.MappingProxyType(dict(VERDICTS)), "malicious"),
        (types.MappingProxyType({}), "unknown"),
        (types.MappingProxyType(_OddGet(VERDICTS)), "suspicious"),
        (_OddGet(VERDICTS), "suspicious"),
    ):
        want = python_record_line(IocType.DOMAIN, "a.com", entry, raw, verdicts)
        assert want[1] == verdict
        assert record_line(IocType.DOMAIN, "a.com", entry, raw, verdicts) == want


def test_a_text_is_found_plain_or_not_at_every_offset() -> None:
    # C reads a text 16 characters at a time (the last 16 again where they overlap): a
    # character JSON escapes at each place, in texts of each length, is found as one by one
    for length in range(1, 50):
        for at in range(length):
            for odd in ('"', "\\", "\x00", "\x1f", "\x7f", "\u00e9"):
                text = "x" * at + odd + "x" * (length - at - 1)
                doc = {"aggregatedResult": {"maliciousClassification": {"source": text}},
                       "cpType": "y" * length}  # fmt: skip
                entry, raw = read_entry(orjson.dumps(doc))
                want = python_record_line(IocType.DOMAIN, text, entry, raw, VERDICTS)
                assert record_line(IocType.DOMAIN, text, entry, raw, VERDICTS) == want
        plain = "x" * length
        doc = {"aggregatedResult": {"maliciousClassification": {"source": plain}}}
        entry, raw = read_entry(orjson.dumps(doc))
        want = python_record_line(IocType.DOMAIN, plain, entry, raw, VERDICTS)
        assert record_line(IocType.DOMAIN, plain, entry, raw, VERDICTS) == want
