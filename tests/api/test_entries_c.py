"""The C request body (`_records.request_body`) is build_request's Python's. The C split
of an answer body into its entries' bytes (`_records.entries`, what
`parse_response` uses after msgspec has read the body) gives what msgspec's `_split` (the
reference) gives, byte for byte, or None; and it is safe on any input."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.api import protocol
from enricher.api.protocol import _entries, _split, build_request, parse_response, request_key
from enricher.errors import MalformedBody, SettingsError
from enricher.ioc import Endpoint, IocType

ENTRIES = protocol._C_ENTRIES
needs_c = pytest.mark.skipif(ENTRIES is None, reason="the C module is not built")


def reference(body: bytes) -> list[bytes] | None:
    split = _split(body)
    return None if split is None else [bytes(item) for item in split]


def entry(domain: str, **more: Any) -> dict[str, Any]:
    return {
        "requestKey": {"domain": domain},
        "ttl": 3600,
        "aggregatedResult": {
            "maliciousClassification": {"type": "malware", "classificationScore": 3,
                                        "typeScore": -1, "source": "S"},
            "productClassification": {"type": "OFFICE", "tags": ["a", {"b": [1, 2]}]},
            "link": "http://x.example/a?b=1",
            "firstSeen": 1695647220978,
        },
        **more,
    }  # fmt: skip


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False,
    allow_infinity=False), st.text(max_size=6),
    st.sampled_from(['"', "\\", '\\"', "}", "]", "{[", "\x00", "\u00e9", "\ud7ff", "\\\\"]),
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


def _dumps(doc: Any, gap: str) -> str:
    """JSON text with `gap` (JSON whitespace) around every token, as a server might write."""
    if isinstance(doc, dict):
        items = [
            f"{gap}{json.dumps(k, ensure_ascii=False)}{gap}:{gap}{_dumps(v, gap)}{gap}"
            for k, v in doc.items()
        ]
        return "{" + ",".join(items) + gap + "}"
    if isinstance(doc, list):
        return "[" + ",".join(f"{gap}{_dumps(v, gap)}{gap}" for v in doc) + gap + "]"
    return json.dumps(doc, ensure_ascii=False)


@needs_c
@settings(max_examples=200, deadline=None)
@given(
    extras=st.lists(st.dictionaries(st.text(max_size=5), _values, max_size=3), max_size=4),
    before=st.dictionaries(
        st.sampled_from(["a", "requestData", "z\u00e9", 'q"']), _values, max_size=2
    ),
    after=st.dictionaries(st.sampled_from(["b", "status"]), _values, max_size=2),
    gap=st.sampled_from(["", " ", "\t", "  \t ", "\r\n", "\n"]),
)
def test_the_c_split_is_msgspec_s(
    extras: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any], gap: str
) -> None:
    responses = [{**entry(f"d{i}.com"), **more} for i, more in enumerate(extras)]
    doc = {**before, "classificationResponses": responses, **after}
    body = _dumps(doc, gap).encode()
    assert ENTRIES is not None
    got = ENTRIES(body)
    if any("\\" in json.dumps(key, ensure_ascii=False) for key in doc):
        assert got in (None, reference(body))  # a key with an escape: left to msgspec
    else:
        assert got == reference(body)
    if gap in ("", " ", "\t", "  \t "):  # (a body with line breaks is read entry by entry)
        assert _entries(body) is not None


@needs_c
def test_what_the_c_split_does_not_take_is_none() -> None:
    assert ENTRIES is not None
    good = orjson.dumps({"classificationResponses": [entry("a.com"), entry("b.com")]})
    assert ENTRIES(good) == reference(good)
    for body in [
        b"",
        b"[]",
        b"{}",
        b'{"classificationResponses":{}}',
        b'{"classificationResponses":null}',
        # a key written with an escape, or given twice: msgspec decides what it reads
        good.replace(b'"classificationResponses"', b'"classification\\u0052esponses"'),
        good[:-1] + b',"classificationResponses":[]}',
        good + b"x",  # something after the body
        good.replace(b"[", b"[,", 1),
        b'{"classificationResponses":[{"a":1}}',
        b'{"classificationResponses":[{"a":"1}]}',
        b'{"classificationResponses":[1 2]}',
        b'{"x" 1,"classificationResponses":[]}',
    ]:
        assert ENTRIES(body) is None, body
    with pytest.raises(TypeError):
        ENTRIES("not bytes")  # type: ignore[arg-type]


@needs_c
def test_the_c_split_is_safe_on_any_input() -> None:
    assert ENTRIES is not None
    good = orjson.dumps({"classificationResponses": [entry("a.com"), entry('b"\\.com')]})
    # every cut of a body is refused (never read past its end)
    for n in range(len(good)):
        assert ENTRIES(good[:n]) is None
    # NUL bytes, bytes that are not UTF-8, brackets in strings, escapes at the very end
    # (JSON that is not valid: the C follows it, parse_response never takes it from there)
    odd = good.replace(b"OFFICE", b"OF\x00F\xff\xfe}]\\\\")
    assert reference(odd) is None
    split = ENTRIES(odd)
    assert split is not None and b",".join(split) in odd and len(split) == 2
    try:
        fast: Any = parse_response(Endpoint.DOMAIN, odd, {"a.com"})
    except MalformedBody:
        fast = MalformedBody
    with patch.object(protocol, "_C_ENTRIES", None):
        try:
            slow: Any = parse_response(Endpoint.DOMAIN, odd, {"a.com"})
        except MalformedBody:
            slow = MalformedBody
    assert fast == slow == MalformedBody
    for tail in (b'"\\', b'"\\\\', b"\\", b'{"a":"\\"'):
        assert ENTRIES(b'{"classificationResponses":[' + tail) is None
    # nesting far deeper than any stack: a count, not a recursion
    deep = b'{"classificationResponses":[' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"]}"
    assert ENTRIES(deep) == [b"[" * 1_000_000 + b"]" * 1_000_000]
    assert ENTRIES(deep[:-3] + b"]}") is None
    # a large answer
    many = orjson.dumps({"classificationResponses": [entry(f"d{i}.com") for i in range(5000)]})
    assert ENTRIES(many) == reference(many)


def test_parse_response_reads_the_same_without_the_c_split() -> None:
    entries = [entry("a.com"), entry("b.com", cpType="X"), entry("a.com"), "not an object"]
    bodies = [
        orjson.dumps({"classificationResponses": entries}),
        orjson.dumps({"classificationResponses": entries[:2]}),
        orjson.dumps({"classificationResponses": [entry("c.com", ttl="mistyped")]}),
        b'{"classificationResponses":[{"requestKey":{"domain":"a.com"}}],'
        b'"classificationResponses":[]}',
        json.dumps({"classificationResponses": entries[:2]}, indent=1).encode(),
    ]
    for body in bodies:
        fast = parse_response(Endpoint.DOMAIN, body, {"a.com", "b.com", "c.com"})
        with patch.object(protocol, "_C_ENTRIES", None):
            slow = parse_response(Endpoint.DOMAIN, body, {"a.com", "b.com", "c.com"})
        assert fast == slow
        for key, (_, raw) in fast.answers.items():
            assert type(raw) is bytes and raw in body.replace(b"\n", b" "), key
    with pytest.raises(MalformedBody):
        parse_response(Endpoint.DOMAIN, b'{"classificationResponses":[{"a":1}', set())


_key_values = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF.:-_", max_size=70),
    st.text(max_size=6),  # quotes, backslashes, controls, non-ASCII: the Python's
    st.sampled_from(["a.com", "::1", "1.2.3.4", "x\u00e9.com", 'a"b', "a\\b", "\x00"]),
)


@given(
    keys=st.lists(st.tuples(st.sampled_from(list(IocType)), _key_values), max_size=8),
    allow=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_the_c_request_body_is_the_python_s(keys: list[tuple[IocType, str]], allow: bool) -> None:
    out = []
    for c in (protocol._C_BODY, None):
        with patch.object(protocol, "_C_BODY", c):
            try:
                out.append(build_request(keys, allow_sha256=allow))
            except (ValueError, SettingsError) as exc:
                out.append(repr(exc))
    assert out[0] == out[1]
    if isinstance(out[0], bytes):
        assert out[0] == orjson.dumps(
            {"requestData": [{"requestKey": request_key(t, v, allow_sha256=True)} for t, v in keys]}
        )


@pytest.mark.skipif(protocol._C_BODY is None, reason="the C module is not built")
def test_the_c_request_body_leaves_what_is_not_plain() -> None:
    body = protocol._C_BODY
    assert body is not None
    pieces = protocol._PIECES
    md5 = (IocType.MD5, "a" * 32)
    assert body([md5, md5], pieces) == (build_request([md5, md5]), (IocType.MD5,))
    assert body([], pieces) == (b'{"requestData":[]}', ())
    for keys in (
        [md5, ("md5",)],
        [md5, (IocType.MD5, 5)],
        [("other", "a")],
        [(IocType.MD5, "a b")],
    ):
        assert body(keys, pieces) is None  # type: ignore[arg-type]
    assert body([md5], {IocType.MD5: ("not", "bytes")}) is None  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        body((md5,), pieces)  # type: ignore[arg-type]
    # a generator of keys, as the Python takes it
    assert build_request(k for k in [md5]) == build_request([md5])


@needs_c
def test_the_c_split_follows_escapes_and_brackets_at_every_offset() -> None:
    # the split reads 16 bytes at a time where it can: an escape, a quote or a bracket at
    # each place of a block, and across two blocks, is followed as byte by byte
    assert ENTRIES is not None
    for pad in range(40):
        for text in ('\\"', "\\\\", '\\\\\\"', "}]{[", '"', "\\u005c", "\\\\}"):
            inner = "x" * pad + text
            doc = {"classificationResponses": [entry("a.com", note=inner, deep=[[{"k": inner}]])]}
            body = json.dumps(doc, separators=(",", ":")).encode()
            assert ENTRIES(body) == reference(body), (pad, text)
            spaced = json.dumps(doc).encode()
            assert ENTRIES(spaced) == reference(spaced), (pad, text)
