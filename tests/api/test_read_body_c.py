"""The C reading of a whole answer body (`_records.read_body`, parse_response's fast way) gives
what msgspec gives (`_entries`, the reference, and `_records.entries`' split), field for field
and byte for byte, or None: it never takes a body msgspec refuses, and parse_response reads
the same with it and without it."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.api import protocol
from enricher.api.protocol import _entries, parse_response
from enricher.errors import ErrorBody, MalformedBody
from enricher.ioc import Endpoint

READ = protocol._C_READ
needs_c = pytest.mark.skipif(READ is None, reason="the C module is not built")


def reference(body: bytes) -> tuple[list[Any], list[bytes]] | None:
    """What parse_response's fast way made of `body` before read_body: msgspec's fields and
    the C split's bytes (None where msgspec refuses the body)."""
    try:
        body.decode()
    except UnicodeDecodeError:
        return None
    entries = _entries(body)
    if entries is None:
        return None
    assert protocol._C_ENTRIES is not None
    raws = protocol._C_ENTRIES(body)
    assert raws is not None
    return entries, raws


def check(body: bytes) -> tuple[list[Any], list[bytes]] | None:
    """read_body's result, asserted to be None or the reference's."""
    assert READ is not None
    got = READ(body)
    if got is not None:
        assert got == reference(body), body
        assert [type(raw) for raw in got[1]] == [bytes] * len(got[1])
    return got


def entry(domain: str, **more: Any) -> dict[str, Any]:
    return {
        "requestKey": {"domain": domain},
        "ttl": 3600,
        "aggregatedResult": {
            "maliciousClassification": {"type": "malware", "classificationScore": 3,
                                        "typeScore": -1, "source": "S"},
            "productClassification": {"type": "OFFICE", "tags": ["a", {"b": [1, 2.5e3]}]},
            "link": "http://x.example/a?b=1",
            "firstSeen": 1695647220978,
        },
        "allowFurtherClassification": True,
        "cpId": 1,
        "cpType": "TOKEN",
        **more,
    }  # fmt: skip


def file_entry(md5: str) -> dict[str, Any]:
    return {**entry(""), "requestKey": {"sha1": None, "md5": md5, "sha256": None}}


#: values for a field a record reads: those read_body takes (plain texts, integers of up to 18
#: digits, null) and those it leaves to msgspec (floats, big integers, escapes, non-ASCII,
#: another type)
_plain_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7F,
                                             blacklist_characters='"\\'), max_size=8)  # fmt: skip
_field_values = st.one_of(
    st.none(), _plain_text, st.integers(-(10**18) + 1, 10**18 - 1),
    st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(), st.text(max_size=4), st.sampled_from(['a"b', "a\\b", "\u00e9", "\x00", "\x7f"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(_plain_text, st.integers(), max_size=2),
)  # fmt: skip
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), _plain_text,
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)  # fmt: skip
#: where a field goes: (path of objects, its name)
_PLACES = [
    ((), "ttl"), ((), "cpType"), ((), "cpId"), ((), "requestKey"), ((), "aggregatedResult"),
    (("requestKey",), "domain"), (("requestKey",), "md5"), (("requestKey",), "addressType"),
    (("aggregatedResult",), "firstSeen"), (("aggregatedResult",), "link"),
    (("aggregatedResult",), "productClassification"),
    (("aggregatedResult",), "maliciousClassification"),
    (("aggregatedResult", "maliciousClassification"), "type"),
    (("aggregatedResult", "maliciousClassification"), "classificationScore"),
    (("aggregatedResult", "maliciousClassification"), "typeScore"),
    (("aggregatedResult", "maliciousClassification"), "source"),
    (("aggregatedResult", "maliciousClassification"), "other"),
]  # fmt: skip


def _dumps(doc: Any, gap: str) -> str:
    """JSON text with `gap` (JSON whitespace) around every token."""
    if isinstance(doc, dict):
        items = [f"{gap}{json.dumps(k)}{gap}:{gap}{_dumps(v, gap)}{gap}" for k, v in doc.items()]
        return "{" + ",".join(items) + gap + "}"
    if isinstance(doc, list):
        return "[" + ",".join(f"{gap}{_dumps(v, gap)}{gap}" for v in doc) + gap + "]"
    return json.dumps(doc, ensure_ascii=bool(len(gap) % 2))


_TEXTS = {"cpType", "domain", "md5", "link", "type", "source"}
_WHOLES = {"ttl", "cpId", "firstSeen", "classificationScore", "typeScore"}
_OBJECTS = {"requestKey", "aggregatedResult", "maliciousClassification"}
_NAMES = _TEXTS | _WHOLES | _OBJECTS | {"productClassification"}


def _plain(name: str, value: Any) -> bool:
    """Whether read_body takes `value` for the field `name` (the test's own account)."""
    if value is None or name not in _NAMES - {"productClassification"}:
        return True
    if name in _TEXTS:
        return type(value) is str and value.isascii() and value.isprintable()
    if name in _WHOLES:
        return type(value) is int and abs(value) < 10**18
    return type(value) is dict and not set(value) & _NAMES


@needs_c
@settings(max_examples=400, deadline=None)
@given(
    changes=st.lists(
        st.lists(st.tuples(st.sampled_from(_PLACES), _field_values), max_size=3), max_size=4
    ),
    extras=st.dictionaries(st.sampled_from(["a", "note", "cpid"]), _values, max_size=2),
    around=st.dictionaries(st.sampled_from(["requestData", "status"]), _values, max_size=2),
    gap=st.sampled_from(["", " ", "\t", "  \t "]),
)
def test_read_body_is_msgspec_s(
    changes: list[list[tuple[tuple[tuple[str, ...], str], Any]]],
    extras: dict[str, Any],
    around: dict[str, Any],
    gap: str,
) -> None:
    responses = []
    for i, entry_changes in enumerate(changes):
        doc = {**entry(f"d{i}.com"), **extras}
        for (path, name), value in entry_changes:
            at: Any = doc
            for step in path:
                at = at.get(step) if isinstance(at, dict) else None
            if isinstance(at, dict):
                at[name] = value
        responses.append(doc)
    body = _dumps({**around, "classificationResponses": responses}, gap).encode()
    got = check(body)
    plain = all(
        _plain(name, value) for entry_changes in changes for (_, name), value in entry_changes
    ) and b"\\" not in body and body.isascii()  # fmt: skip
    if plain:
        assert got is not None, body


@needs_c
def test_read_body_takes_plain_answers() -> None:
    for body in (
        orjson.dumps({"classificationResponses": [entry("a.com"), file_entry("a" * 32)]}),
        orjson.dumps({"classificationResponses": []}),
        orjson.dumps({"classificationResponses": [{}], "status": [1, {"x": None}]}),
        b' { "x" : [ ] , "classificationResponses" : [ { "ttl" : -0 , "cpId" : null } ] } ',
        orjson.dumps({"classificationResponses": [entry("a.com", ttl=-(10**18) + 1, cpId=0)]}),
        b'{"classificationResponses":[{"requestKey":null,"aggregatedResult":'
        b'{"maliciousClassification":null,"productClassification":null}}]}',
        # numbers beyond a double, long and odd, where no field a record reads them
        b'{"classificationResponses":[{"x":1e400,"y":-1E-400,"z":123456789012345678901234567890'
        b',"w":[-0.0,1.5E+3,0,-0]}],"v":1e999}',
        b'{"classificationResponses":[{"aggregatedResult":{"productClassification":1e999}}]}',
    ):
        got = check(body)
        assert got is not None, body
    got = check(orjson.dumps({"classificationResponses": [{"aggregatedResult": {}}]}))
    assert got is not None
    # the defaults msgspec gives an absent field: None, and an empty Raw for the product
    (read,) = got[0]
    assert read.aggregatedResult.productClassification == protocol.msgspec.Raw()
    assert read.ttl is None and read.aggregatedResult.maliciousClassification is None


@needs_c
def test_read_body_leaves_what_it_does_not_take_as_it_is() -> None:
    good = orjson.dumps({"classificationResponses": [entry("a.com"), entry("b.com")]})
    assert check(good) is not None
    left = [
        b"", b"[]", b"{}", b"null", b'{"classificationResponses":{}}',
        b'{"classificationResponses":null}', b'{"classificationResponses":[1]}',
        b'{"classificationResponses":[[]]}', b'{"classificationResponses":[null]}',
        good[:-1] + b',"classificationResponses":[]}',  # given twice
        good + b"x", good + b"{}", good.replace(b"[", b"[,", 1), good.replace(b"}]", b"},]"),
        good.replace(b'"ttl":3600', b'"ttl":3600,"ttl":1'),  # a field given twice
        good.replace(b'"domain":"a.com"', b'"domain":"a.com","domain":"b.com"'),
        good.replace(b"3600", b"3600.0"), good.replace(b"3600", b"36e2"),
        good.replace(b"3600", b"1234567890123456789"), good.replace(b"3600", b'"3600"'),
        good.replace(b"3600", b"true"), good.replace(b"3600", b"03600"),
        good.replace(b"3600", b"-"), good.replace(b"3600", b"+3600"),
        good.replace(b'"classificationScore":3', b'"classificationScore":3.5'),
        good.replace(b'"TOKEN"', b'"TO\\u004bEN"'), good.replace(b'"TOKEN"', b'"TO\\"KEN"'),
        good.replace(b'"TOKEN"', b'"TO\xc3\xa9KEN"'), good.replace(b'"TOKEN"', b'"TO\x01KEN"'),
        good.replace(b'"TOKEN"', b'"TO\xffKEN"'), good.replace(b'"TOKEN"', b"7"),
        good.replace(b'"OFFICE"', b'"\\ud800"'), good.replace(b'"OFFICE"', b"nul"),
        good.replace(b'"OFFICE"', b"1.e5"), good.replace(b'"OFFICE"', b"1e"),
        good.replace(b'"OFFICE"', b"[1,]"), good.replace(b'"OFFICE"', b"{\"a\"}"),
        good.replace(b'"OFFICE"', b"NaN"), good.replace(b'"OFFICE"', b"Infinity"),
        good.replace(b'{"domain":"a.com"}', b'"a.com"'),
        good.replace(b'{"domain":"a.com"}', b'{"domain":5}'),
        good.replace(b'"maliciousClassification":{', b'"maliciousClassification":[{', 1),
        good.replace(b'"classificationResponses"', b'"classification\\u0052esponses"'),
        b'{"classificationResponses":[{"a":1}}', b'{"classificationResponses":[{"a":"1}]}',
    ]  # fmt: skip
    for body in left:
        assert READ is not None
        assert READ(body) is None, body
    # nested deeper than the C follows: left to msgspec (which reads it)
    deep = orjson.dumps({"classificationResponses": [entry("a.com", note=[[[[]]]])]})
    deep = deep.replace(b"[[[[]]]]", b"[" * 70 + b"]" * 70)
    assert READ(deep) is None and reference(deep) is not None
    assert READ(deep.replace(b"[" * 70, b"[" * 60).replace(b"]" * 70, b"]" * 60)) is not None
    with pytest.raises(TypeError):
        READ("not bytes")  # type: ignore[arg-type]


@needs_c
def test_read_body_is_safe_on_any_cut_and_any_byte() -> None:
    good = orjson.dumps({"classificationResponses": [entry("a.com"), file_entry("b" * 32)]})
    for n in range(len(good)):
        assert check(good[:n]) is None  # never read past its end
    # each byte made each of the bytes JSON's grammar turns on (and some it refuses)
    for at in range(len(good)):
        for byte in b'"\\{}[],:0-.eE+ n\x00\x7f\xff':
            check(good[:at] + bytes([byte]) + good[at + 1 :])


@needs_c
@settings(max_examples=300, deadline=None)
@given(at=st.integers(0, 10**6), cut=st.binary(max_size=3), more=st.binary(max_size=3))
def test_read_body_is_msgspec_s_on_damaged_bodies(at: int, cut: bytes, more: bytes) -> None:
    good = orjson.dumps({"classificationResponses": [entry("a.com"), file_entry("c" * 32)]})
    at %= len(good)
    check(good[:at] + more + good[at + len(cut) :])


@needs_c
def test_the_string_scan_is_right_at_every_offset() -> None:
    # 16 bytes at a time: a quote, a backslash, a control or non-ASCII byte at each place of
    # a block is found as byte by byte
    for pad in range(40):
        for text in (b"", b"\\\\", b"\x1f", b"\x80", b"\x7f", b"\\u005c"):
            value = b'"' + b"x" * pad + text + b'"'
            body = b'{"classificationResponses":[{"cpType":' + value + b',"n":' + value + b"}]}"
            got = check(body)
            assert (got is None) == (text not in (b"", b"\x7f")), (pad, text)


def _outcome(body: bytes, asked: set[str]) -> Any:
    try:
        return parse_response(Endpoint.DOMAIN, body, asked)
    except (MalformedBody, ErrorBody) as exc:
        return repr(exc)


def test_parse_response_reads_the_same_without_read_body() -> None:
    entries = [entry("a.com"), entry("b.com", cpType="X"), entry("a.com"), "not an object"]
    bodies = [
        orjson.dumps({"classificationResponses": [entry("a.com"), entry("b.com")]}),
        orjson.dumps({"classificationResponses": entries}),
        orjson.dumps({"classificationResponses": [entry("A.com."), entry("b.com")]}),
        orjson.dumps({"classificationResponses": [entry("c.com", ttl="mistyped")]}),
        orjson.dumps({"classificationResponses": [entry("a.com", ttl=2**63)]}),
        orjson.dumps({"classificationResponses": [entry("a.com", note="\ud7ff")]}),
        orjson.dumps({"classificationResponses": [entry("a.com"), entry("zz.com")]}),
        orjson.dumps({"classificationResponses": [entry("a.com", note=[[[[]]]])]}).replace(
            b"[[[[]]]]", b"[" * 600 + b"]" * 600
        ),
        orjson.dumps({"classificationResponses": [entry("a.com", long="x" * 2000)]}),
        orjson.dumps({"error": "quota"}),
        b'{"classificationResponses":[{"requestKey":{"domain":"a.com"},"x":"\\ud800"},'
        + orjson.dumps(entry("b.com"))
        + b"]}",
        b'{"classificationResponses":[{"requestKey":{"domain":"a.com"}}],'
        b'"classificationResponses":[]}',
        b'{"classificationResponses":[{"a":1}',
        json.dumps({"classificationResponses": entries[:2]}, indent=1).encode(),
    ]
    for body in bodies:
        asked = {"a.com", "b.com", "c.com"}
        fast = _outcome(body, asked)
        with patch.object(protocol, "_C_READ", None):
            slow = _outcome(body, asked)
        assert fast == slow, body


@needs_c
def test_read_body_makes_a_classification_met_again_once() -> None:
    # the classification, source and cpType texts met before are the same str (their hash
    # computed once for the verdicts' lookup); others (links, keys) are made each time
    body = orjson.dumps({"classificationResponses": [entry("a.com"), entry("b.com")]})
    got = check(body)
    assert got is not None
    (one, two) = got[0]
    assert one.aggregatedResult.maliciousClassification.type == "malware"
    assert one.aggregatedResult.maliciousClassification.type is (
        two.aggregatedResult.maliciousClassification.type
    )
    assert one.cpType is two.cpType
    assert one.aggregatedResult.link is not two.aggregatedResult.link
    # far more texts than the table holds, and long ones: each read as it is
    words = [f"w{i}" for i in range(300)] + ["x" * 31, "x" * 32, "x" * 33, ""]
    many = [entry(f"d{i}.com", cpType=word) for i, word in enumerate(words * 2)]
    got = check(orjson.dumps({"classificationResponses": many}))
    assert got is not None and [e.cpType for e in got[0]] == words * 2


class _Bytes(bytes):
    """What a transport of one's own may answer: `bytes`, as `Sender._post` checks it."""


def test_parse_response_reads_a_bytes_subclass_as_its_bytes() -> None:
    # the C functions (read_body, entries) take exact bytes only: a body of a bytes subclass,
    # a bytearray or a memoryview reads as its bytes do, never a TypeError
    for body in (
        orjson.dumps({"classificationResponses": [entry("a.com"), entry("b.com")]}),
        orjson.dumps({"classificationResponses": [entry("a.com", note="\u00e9")]}),
        b'{"classificationResponses":[{"requestKey":{"domain":"a.com"},"x":"\\ud800"}]}',
        orjson.dumps({"error": "quota"}),
    ):
        want = _outcome(body, {"a.com", "b.com"})
        for other in (_Bytes(body), bytearray(body), memoryview(body)):
            assert _outcome(other, {"a.com", "b.com"}) == want, type(other)  # type: ignore[arg-type]
