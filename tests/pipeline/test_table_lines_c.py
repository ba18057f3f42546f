"""A plain answer body straight to its record lines (`_records.plain_table`, then
`_records.table_lines` in `resolve.settle`) gives what the entries read first give: the same
keys answered, lines byte for byte, verdicts and ttls, requeued and failed keys, as the C
path without the table (`read_body`, `match`, `answer_lines`) and as the Python alone
(msgspec and `python_record_line`, the reference)."""

from __future__ import annotations

import copy
import json
import tracemalloc
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from types import MappingProxyType
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.api import protocol
from enricher.api.protocol import ParsedResponse, parse_response
from enricher.emulator.answers import entry as emulator_entry
from enricher.ioc import Endpoint, IocType
from enricher.output import records
from enricher.output.records import python_record_line, record_line
from enricher.pipeline.batcher import Key
from enricher.pipeline.resolve import Tries, settle

TABLE = protocol._C_TABLE
LINES = records.C_TABLE_LINES
needs_c = pytest.mark.skipif(TABLE is None or LINES is None, reason="the C module is not built")

VERDICTS = {"malware": "malicious", "whitelist": "benign", "ransomware": "malicious"}
FILES: list[Key] = [(IocType.MD5, f"{i:032x}") for i in range(3)] + [
    (IocType.SHA1, f"{i:040x}") for i in range(3, 5)
]
DOMAINS: list[Key] = [(IocType.DOMAIN, f"d{i}.example.com") for i in range(5)]
ADDRESSES: list[Key] = [(IocType.IPV4, f"10.0.0.{i}") for i in range(5)]
SETS = {Endpoint.FILE: FILES, Endpoint.DOMAIN: DOMAINS, Endpoint.IP: ADDRESSES}


def outcome(
    endpoint: Endpoint,
    keys: list[Key],
    body: bytes,
    way: str,
    verdicts: Mapping[str, str] = VERDICTS,
    ttl_factor: int = 1,
) -> Any:
    """What settle makes of `body` for `keys`: by the table ("table"), by the C path
    without it ("c"), or by the Python alone ("python")."""
    with ExitStack() as stack:
        off = {"table": [], "c": ["_C_TABLE"],
               "python": ["_C_TABLE", "_C_READ", "_C_MATCH", "_C_ENTRIES"]}[way]  # fmt: skip
        for name in off:
            stack.enter_context(patch.object(protocol, name, None))
        try:
            parsed = parse_response(endpoint, body, {v for _, v in keys})
        except Exception as exc:  # the same error each way
            return repr(exc)
        tries = Tries(missing={keys[0][1]: 1}, conflicts={keys[-1][1]: 1})
        done = settle(
            keys, parsed, tries, missing_attempts=2, conflict_attempts=3, verdicts=verdicts,
            ttl_factor=ttl_factor, make_line=python_record_line if way == "python" else record_line,
        )  # fmt: skip
        return (done.keys, done.lines, done.answered, done.requeue, done.failed, done.extra,
                tries.missing, tries.conflicts)  # fmt: skip


def same(endpoint: Endpoint, keys: list[Key], body: bytes, **how: Any) -> Any:
    got = outcome(endpoint, keys, body, "table", **how)
    assert got == outcome(endpoint, keys, body, "c", **how), body
    assert got == outcome(endpoint, keys, body, "python", **how), body
    return got


def entries(endpoint: Endpoint, keys: list[Key]) -> list[dict[str, Any]]:
    return [copy.deepcopy(emulator_entry(endpoint, value)) for _, value in keys]


def body_of(docs: list[Any], gap: str = "", **around: Any) -> bytes:
    return _dumps({**around, "classificationResponses": docs}, gap).encode()


def _dumps(doc: Any, gap: str) -> str:
    """JSON text with `gap` (JSON whitespace) around every token."""
    if isinstance(doc, dict):
        items = [f"{gap}{_dumps(k, gap)}{gap}:{gap}{_dumps(v, gap)}{gap}" for k, v in doc.items()]
        return "{" + ",".join(items) + gap + "}"
    if isinstance(doc, list):
        return "[" + ",".join(f"{gap}{_dumps(v, gap)}{gap}" for v in doc) + gap + "]"
    return json.dumps(doc, ensure_ascii=False)  # (a DEL and UTF-8 as they are)


@needs_c
def test_emulator_answers_take_the_table_and_give_the_same() -> None:
    for endpoint, keys in SETS.items():
        body = body_of(entries(endpoint, keys))
        parsed = parse_response(endpoint, body, {v for _, v in keys})
        assert parsed.plain is not None and parsed.plain.entries == len(keys)
        got = same(endpoint, keys, body)
        assert got[0] == keys and len(got[1]) == len(keys)
        for factor in (1000, 2**62):
            same(endpoint, keys, body, ttl_factor=factor)
        same(endpoint, keys, body, verdicts=MappingProxyType(VERDICTS))
        same(endpoint, keys, body, verdicts=_Verdicts(VERDICTS))
        # keys left out, in another order, and none at all
        same(endpoint, keys, body_of(entries(endpoint, keys[1:3])))
        same(endpoint, keys, body_of(entries(endpoint, keys[::-1])))
        same(endpoint, keys, body_of([]))


class _Verdicts(Mapping[str, str]):
    """A mapping of verdicts that is not a dict (its `get` called)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def __getitem__(self, key: str) -> str:
        return self.table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


@needs_c
def test_what_the_table_does_not_take_is_read_the_other_ways() -> None:
    keys = DOMAINS
    docs = entries(Endpoint.DOMAIN, keys)
    twice = body_of([*docs, docs[0]])
    stranger = body_of([*docs, emulator_entry(Endpoint.DOMAIN, "other.example.com")])
    upper = body_of([*docs[1:], {**docs[0], "requestKey": {"domain": keys[0][1].upper()}}])
    no_class = copy.deepcopy(docs)
    del no_class[2]["aggregatedResult"]["maliciousClassification"]
    late = copy.deepcopy(docs)
    late[-1]["aggregatedResult"]["firstSeen"] = 10**17  # beyond year 9999
    escaped = copy.deepcopy(docs)
    escaped[-1]["aggregatedResult"]["link"] = "http://a/\u00e9"
    deleted = copy.deepcopy(docs)
    deleted[-1]["cpType"] = "A\x7fB"
    floats = copy.deepcopy(docs)
    floats[1]["aggregatedResult"]["maliciousClassification"]["classificationScore"] = 2.5
    for body in (twice, stranger, upper, body_of(no_class), body_of(late), body_of(escaped),
                 body_of(deleted), body_of(floats)):  # fmt: skip
        parsed = parse_response(Endpoint.DOMAIN, body, {v for _, v in keys})
        answers = parsed.answers  # made whatever the way
        assert answers is parsed.answers
        same(Endpoint.DOMAIN, keys, body)


#: values for a field a record reads: those the table takes and those it leaves
_plain_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7F,
                                             blacklist_characters='"\\'), max_size=8)  # fmt: skip
_field_values = st.one_of(
    st.none(), _plain_text, st.integers(-(10**18) + 1, 10**18 - 1),
    st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(), st.text(max_size=4), st.sampled_from(['a"b', "a\\b", "\u00e9", "\x00", "\x7f"]),
    st.sampled_from(["malware", "whitelist", "unknown", "x"]),
    st.integers(-(10**14), 4 * 10**14),  # a first-seen time, near and far
    st.lists(st.integers(), max_size=2), st.dictionaries(_plain_text, st.integers(), max_size=2),
)  # fmt: skip
#: where a field goes: (path of objects, its name)
_PLACES = [
    ((), "ttl"), ((), "cpType"), ((), "cpId"), ((), "requestKey"), ((), "aggregatedResult"),
    ((), "other"), (("requestKey",), "domain"), (("requestKey",), "md5"),
    (("requestKey",), "sha1"), (("requestKey",), "ipAddress"),
    (("aggregatedResult",), "firstSeen"), (("aggregatedResult",), "link"),
    (("aggregatedResult",), "productClassification"),
    (("aggregatedResult",), "maliciousClassification"),
    (("aggregatedResult", "maliciousClassification"), "type"),
    (("aggregatedResult", "maliciousClassification"), "classificationScore"),
    (("aggregatedResult", "maliciousClassification"), "typeScore"),
    (("aggregatedResult", "maliciousClassification"), "source"),
]  # fmt: skip


@needs_c
@settings(max_examples=500, deadline=None)
@given(
    endpoint=st.sampled_from(list(SETS)),
    picks=st.lists(st.integers(0, 4), unique=True, max_size=5),
    odd=st.sampled_from([None, None, None, "stray", "twice"]),
    changes=st.lists(
        st.lists(st.tuples(st.sampled_from(_PLACES), _field_values), max_size=2), max_size=10
    ),
    gap=st.sampled_from(["", " ", "\t", " \r\n "]),
    factor=st.sampled_from([1, 1000]),
    proxy=st.booleans(),
)
def test_the_table_gives_what_the_entries_give(
    endpoint: Endpoint,
    picks: list[int],
    odd: str | None,
    changes: list[list[tuple[tuple[tuple[str, ...], str], Any]]],
    gap: str,
    factor: int,
    proxy: bool,
) -> None:
    keys = SETS[endpoint]
    values = [keys[pick][1] for pick in picks]
    if odd == "stray":  # an entry for a key not asked
        values.append("f" * 32 if endpoint is Endpoint.FILE else "stray.example.com")
    elif odd == "twice" and values:
        values.append(values[0])
    docs = []
    for i, value in enumerate(values):
        doc = copy.deepcopy(emulator_entry(endpoint, value))
        # (every other entry as the emulator wrote it)
        for (path, name), new in changes[i] if i < len(changes) and i % 2 else ():
            at: Any = doc
            for step in path:
                at = at.get(step) if isinstance(at, dict) else None
            if isinstance(at, dict):
                at[name] = new
        docs.append(doc)
    verdicts: Mapping[str, str] = MappingProxyType(VERDICTS) if proxy else VERDICTS
    same(endpoint, keys, body_of(docs, gap), verdicts=verdicts, ttl_factor=factor)


_maybe_text = st.one_of(st.none(), _plain_text, st.sampled_from(["malware", "whitelist"]))
_maybe_whole = st.one_of(st.none(), st.integers(-(10**18) + 1, 10**18 - 1),
                         st.integers(-1000, 1000))  # fmt: skip
_absent = object()


def _field(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value, or the field left out."""
    return st.one_of(st.just(_absent), values)


@needs_c
@settings(max_examples=500, deadline=None)
@given(
    endpoint=st.sampled_from(list(SETS)),
    fields=st.lists(
        st.fixed_dictionaries({
            "ttl": _field(_maybe_whole), "cpType": _field(_maybe_text),
            "cpId": _field(_maybe_whole), "firstSeen": _field(st.one_of(
                _maybe_whole, st.integers(-(10**17), 10**17), st.integers(0, 4 * 10**12))),
            "link": _field(_maybe_text),
            "productClassification": _field(st.one_of(
                st.none(), st.booleans(), st.integers(), _plain_text,
                st.dictionaries(_plain_text, st.integers(), max_size=2),
                st.lists(st.integers(), max_size=2))),
            "type": _field(_maybe_text), "classificationScore": _field(_maybe_whole),
            "typeScore": _field(_maybe_whole), "source": _field(_maybe_text),
        }),
        min_size=1, max_size=5,
    ),
    factor=st.sampled_from([1, 1000, 2**40]),
)  # fmt: skip
def test_the_table_lines_of_any_plain_fields(
    endpoint: Endpoint, fields: list[dict[str, Any]], factor: int
) -> None:
    keys = SETS[endpoint]
    docs = entries(endpoint, keys[: len(fields)])
    for doc, given_fields in zip(docs, fields, strict=False):
        agg = doc["aggregatedResult"]
        mal = agg["maliciousClassification"]
        for name, value in given_fields.items():
            at = doc if name in ("ttl", "cpType", "cpId") else agg
            if name in ("type", "classificationScore", "typeScore", "source"):
                at = mal
            at.pop(name, None)
            if value is not _absent:
                at[name] = value
    body = body_of(docs)
    parsed = parse_response(endpoint, body, {v for _, v in keys})
    assert parsed.plain is not None  # every one the table's
    same(endpoint, keys, body, ttl_factor=factor)


@needs_c
def test_the_table_is_safe_on_any_cut_and_any_byte() -> None:
    keys = DOMAINS[:2]
    good = body_of(entries(Endpoint.DOMAIN, keys))
    asked = {v for _, v in keys}
    assert TABLE is not None
    for n in range(len(good)):
        assert TABLE(good[:n], asked, ("domain",), 1000) is None  # never read past its end
    for at in range(0, len(good), 3):
        for byte in b'"\\{}[],:0-.eE+ n\x00\x7f\xff':
            body = good[:at] + bytes([byte]) + good[at + 1 :]
            made = TABLE(body, asked, ("domain",), 1000)
            if made is False:  # read_body does not take it either
                assert protocol._C_READ is not None and protocol._C_READ(body) is None
            same(Endpoint.DOMAIN, keys, body)


@needs_c
def test_table_lines_refuses_a_table_not_of_that_body() -> None:
    keys = DOMAINS
    body = body_of(entries(Endpoint.DOMAIN, keys))
    assert TABLE is not None and LINES is not None
    made = TABLE(body, {v for _, v in keys}, ("domain",), 1000)
    assert isinstance(made, tuple)
    table = made[0]

    def lines(body: bytes, table: bytes) -> Any:
        return LINES(body, table, list(keys), VERDICTS, 1, [], [], [])

    assert lines(body, table) == []  # every key answered
    for bad in (b"", table[:-1], table + b"\0", b"\xff" * len(table), table[:16] + b"\0" * 200):
        with pytest.raises(ValueError):
            lines(body, bad)
    with pytest.raises(ValueError):
        lines(body[:100], table)  # its entries past the end of this body
    with pytest.raises(TypeError):
        LINES(body, table, tuple(keys), VERDICTS, 1, [], [], [])  # type: ignore[arg-type]
    assert LINES(body, table, [("x",)], VERDICTS, 1, [], [], []) is None
    done: list[Any] = []
    assert LINES(body, table, list(keys), VERDICTS, 2**64, done, [], []) is None and not done


@needs_c
def test_a_body_whose_answers_are_asked_for_is_settled_from_them() -> None:
    # (the secrets' scrub asks for them): settle then reads them, as before the table
    keys = DOMAINS
    body = body_of(entries(Endpoint.DOMAIN, keys))
    parsed = parse_response(Endpoint.DOMAIN, body, {v for _, v in keys})
    del parsed.answers[keys[1][1]]
    assert parsed.plain is None
    done = settle(keys, parsed, Tries(), missing_attempts=2, conflict_attempts=3,
                  verdicts=VERDICTS)  # fmt: skip
    assert done.keys == [k for k in keys if k != keys[1]] and done.requeue == [keys[1]]
    eager = parse_response(Endpoint.DOMAIN, body, {v for _, v in keys}, lazy=False)
    assert eager.plain is None
    assert eager == parse_response(Endpoint.DOMAIN, body, {v for _, v in keys})


@needs_c
def test_a_body_with_an_escape_or_past_ascii_is_not_walked_again() -> None:
    keys = DOMAINS
    asked = {v for _, v in keys}
    docs = entries(Endpoint.DOMAIN, keys)
    walked: list[bytes] = []
    read = protocol._C_READ
    assert read is not None

    def spy(body: bytes) -> Any:
        walked.append(body)
        return read(body)

    assert TABLE is not None
    for last in ('a "quoted" link', "caf\u00e9"):
        docs[-1]["aggregatedResult"]["link"] = last
        body = orjson.dumps({"classificationResponses": docs})
        assert TABLE(body, asked, ("domain",), 1000) is False
        with patch.object(protocol, "_C_READ", spy):
            parsed = parse_response(Endpoint.DOMAIN, body, asked)
        assert not walked and list(parsed.answers) == [v for _, v in keys]
        same(Endpoint.DOMAIN, keys, body)
    docs[-1]["aggregatedResult"]["link"] = "plain"
    with patch.object(protocol, "_C_READ", spy):
        body = orjson.dumps({"classificationResponses": docs})
        answers = parse_response(Endpoint.DOMAIN, body, asked).answers
    assert len(walked) == 1 and len(answers) == len(keys)  # (read_body made the answers)


@needs_c
def test_a_body_of_more_entries_than_keys_asked_is_refused_without_a_table() -> None:
    # (a hostile or broken server's: 20,000 entries for 2 keys) refused once more entries
    # than keys asked are met, not after every one is read into the table (240 bytes each)
    keys = DOMAINS[:2]
    one = orjson.dumps(emulator_entry(Endpoint.DOMAIN, keys[0][1]))
    body = b'{"classificationResponses":[' + b",".join([one] * 20_000) + b"]}"
    assert TABLE is not None
    tracemalloc.start()
    try:
        assert TABLE(body, {v for _, v in keys}, ("domain",), 1000) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000, peak
    same(Endpoint.DOMAIN, keys, body[:20_000].rpartition(b",")[0] + b"]}")


def test_a_parsed_response_is_made_of_its_fields_as_before() -> None:
    # (a dataclass before the table: its fields, in order or by name, still make one)
    entry = parse_response(Endpoint.DOMAIN, body_of(entries(Endpoint.DOMAIN, DOMAINS[:1])),
                           {DOMAINS[0][1]}, lazy=False).answers  # fmt: skip
    made = ParsedResponse(entry, 1, 2, {"a.example.com"}, {"b.example.com"})
    named = ParsedResponse(answers=entry, duplicates=1, unusable=2,
                           conflicts={"a.example.com"}, echoed={"b.example.com"})  # fmt: skip
    assert made == named and made.plain is None
    assert (made.answers, made.duplicates, made.unusable, made.conflicts, made.echoed) == (
        entry, 1, 2, {"a.example.com"}, {"b.example.com"})  # fmt: skip
    assert ParsedResponse() == ParsedResponse({}, 0, 0, set(), set())
    assert ParsedResponse().conflicts is not ParsedResponse().conflicts


@needs_c
def test_answers_asked_for_while_they_are_being_made_are_not_none() -> None:
    # (another thread asking while the first makes them): it makes them too, never sees an
    # empty dict
    keys = DOMAINS
    body = body_of(entries(Endpoint.DOMAIN, keys))
    parsed = parse_response(Endpoint.DOMAIN, body, {v for _, v in keys})
    assert parsed.plain is not None
    made = protocol.parse_response
    seen: list[int] = []
    asking: list[bool] = []

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not asking:
            asking.append(True)
            seen.append(len(parsed.answers))
        return made(*args, **kwargs)

    with patch.object(protocol, "parse_response", meanwhile):
        assert len(parsed.answers) == len(keys)
    assert seen == [len(keys)] and parsed.plain is None
