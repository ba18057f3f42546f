"""The GTI classification wire protocol: request bodies out, validated answers in.

Everything that knows the JSON shape of the three batch endpoints lives here; the rest of
enricher sees `(IocType, value)` pairs going out and a `ParsedResponse` coming back (each
answered key's validated `Entry` and its verbatim bytes). Answers are keyed by `requestKey`,
never by position: the server may answer in any order, echo hashes and domains in another
case, leave keys out, or add entries (`pipeline.resolve.settle` pairs them with the keys
asked).
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Collection, Container, Iterable
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson

from ..errors import ErrorBody, MalformedBody, SettingsError
from ..inputs.native import load
from ..ioc import ENDPOINT_OF, Endpoint, IocType

__all__ = [
    "ANSWER_WORDS",
    "CLASSIFICATION_TYPES",
    "Answer",
    "Entry",
    "ParsedResponse",
    "Plain",
    "answer_from_entry",
    "beyond_double",
    "blank_escapes",
    "build_request",
    "entry_of",
    "match_key",
    "parse_response",
    "read_entry",
    "request_key",
]

#: The 14 documented values of `maliciousClassification.type`. Others pass through unchanged.
CLASSIFICATION_TYPES: tuple[str, ...] = (
    "ransomware",
    "maltool",
    "hacktool",
    "unwanted",
    "malware",
    "sinkholed",
    "suspicious",
    "whitelist",
    "indifferent",
    "unresolved",
    "unknown",
    "no_type_found",
    "blacklist",
    "av_detected",
)

#: the words every answer is made of (its field names and classification types): a secret
#: that is part of one could not be told apart from an answer (`redaction.check_secret`)
ANSWER_WORDS: tuple[str, ...] = (
    *CLASSIFICATION_TYPES,
    "classificationResponses", "requestKey", "requestData", "md5", "sha1", "sha256",
    "domain", "ipAddress", "addressType", "Ipv4", "Ipv6", "ttl", "aggregatedResult",
    "maliciousClassification", "type", "classificationScore", "typeScore", "source",
    "firstSeen", "link", "productClassification", "cpType", "cpId", "true", "false", "null",
)  # fmt: skip

_HASH_FIELDS = ("md5", "sha1", "sha256")
_ADDRESS_TYPE = {IocType.IPV4: "Ipv4", IocType.IPV6: "Ipv6"}


def request_key(ioc_type: IocType, value: str, *, allow_sha256: bool = False) -> dict[str, str]:
    """The `requestKey` object for one normalized IOC.

    sha256 is not documented for `file_batch`; it is sent only when `allow_sha256` is set.
    """
    if ioc_type is IocType.DOMAIN:
        return {"domain": value}
    if ioc_type is IocType.IPV4 or ioc_type is IocType.IPV6:
        return {"ipAddress": value, "addressType": _ADDRESS_TYPE[ioc_type]}
    if ioc_type is IocType.SHA256 and not allow_sha256:
        raise SettingsError(
            "sha256 keys are not documented for file_batch; set api.send_sha256 = true to send them"
        )
    return {ioc_type.value: value}


def build_request(keys: Iterable[tuple[IocType, str]], *, allow_sha256: bool = False) -> bytes:
    """The JSON body of one batch request: `{"requestData": [{"requestKey": {...}}, ...]}`.

    All keys must belong to one endpoint. The body is a pure function of the keys, so sending
    it twice (a retry after a dropped connection) asks the same question twice.
    """
    keys = list(keys)
    if _C_BODY is not None:
        # in C for keys JSON writes as they are: the body, and the types to check
        made = _C_BODY(keys, _PIECES)
        if made is not None:
            _check_types(made[1], allow_sha256)
            return made[0]
    _check_types({ioc_type for ioc_type, _ in keys}, allow_sha256)
    if _PLAIN("".join([value for _, value in keys])) is None:
        # not only the characters normalize() makes: let orjson escape what needs it
        data = [{"requestKey": request_key(t, v, allow_sha256=True)} for t, v in keys]
        return orjson.dumps({"requestData": data})
    # the same JSON orjson writes, formatted without a dict per key
    template = _TEMPLATE
    items = ",".join([template[t] % v for t, v in keys])
    return ('{"requestData":[' + items + "]}").encode()


def _check_types(types: Collection[IocType], allow_sha256: bool) -> None:
    """ValueError for a batch that mixes endpoints; SettingsError for sha256 not allowed."""
    endpoints = {ENDPOINT_OF[t] for t in types}
    if len(endpoints) > 1:
        raise ValueError(f"a batch mixes {' and '.join(sorted(endpoints))} keys")
    if IocType.SHA256 in types and not allow_sha256:
        request_key(IocType.SHA256, "", allow_sha256=False)  # raises the error that says why


#: the characters of normalized hashes, domains and IPs: none that JSON must escape
_PLAIN = re.compile(r"[0-9a-zA-Z.:_-]*").fullmatch
#: one `requestData` item per IOC type, with `%s` where the value goes
_TEMPLATE: dict[IocType, str] = {
    t: orjson.dumps({"requestKey": request_key(t, "%s", allow_sha256=True)}).decode()
    for t in IocType
}
#: each type's item as the bytes before the value and after it, for `_C_BODY`
_PIECES: dict[IocType, tuple[bytes, bytes]] = {
    t: tuple(item.encode() for item in _TEMPLATE[t].split("%s"))  # type: ignore[misc]
    for t in IocType
}


def match_key(endpoint: Endpoint, key: Any) -> str | None:
    """The normalized IOC a `requestKey` object (sent or echoed) stands for, or None.

    Hashes and domains compare case-insensitively (domains without a trailing dot); IPv6 in
    its compressed form. The file echo carries every hash field, the unasked ones null.
    """
    if not isinstance(key, dict):
        return None
    if endpoint is Endpoint.FILE:
        for name in _HASH_FIELDS:
            v = key.get(name)
            if isinstance(v, str) and v:
                return v.lower()
        return None
    if endpoint is Endpoint.DOMAIN:
        v = key.get("domain")
        return v.lower().rstrip(".") if isinstance(v, str) and v else None
    v = key.get("ipAddress")
    if not isinstance(v, str) or not v:
        return None
    if ":" in v:
        try:
            address = ipaddress.IPv6Address(v)
        except ValueError:
            return v.lower()
        # an IPv4-mapped address is the IPv4 address (as normalize asks it): an answer that
        # echoes both forms for one key gave that key two entries
        mapped = address.ipv4_mapped
        return address.compressed if mapped is None else str(mapped)
    return v


class Answer(NamedTuple):
    """One validated `classificationResponses` entry. Absent or mistyped fields are None."""

    key: str
    classification: str | None
    score: int | float | None
    type_score: int | float | None
    source: str | None
    ttl: int | None
    first_seen: int | None
    link: str | None
    product: dict[str, Any] | None
    cp_type: str | None
    cp_id: int | None
    entry: dict[str, Any]  # the verbatim entry


#: the integers orjson reads as integers (and writes); it reads any other as a float, where
#: `_read_beyond`'s msgspec keeps it whole: a score of 10**400 then stopped the run in
#: `record_line` (orjson: "Integer exceeds 64-bit range")
_ORJSON_INTS = range(-(2**63), 2**64)


def _num(v: Any) -> int | float | None:
    if type(v) is int and v not in _ORJSON_INTS:
        try:  # as orjson reads it: a float, or none beyond a double
            return float(v)
        except OverflowError:
            return None
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    if type(v) is int and v not in _ORJSON_INTS:
        return None  # orjson reads a float: not an integer field's value
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def answer_from_entry(key: str, entry: dict[str, Any]) -> Answer:
    """The validated Answer for one entry already matched to `key` (e.g. from the cache)."""
    agg = entry.get("aggregatedResult")
    if not isinstance(agg, dict):
        agg = {}
    mal = agg.get("maliciousClassification")
    if not isinstance(mal, dict):
        mal = {}
    product = agg.get("productClassification")
    return Answer(
        key,
        _str(mal.get("type")),
        _num(mal.get("classificationScore")),
        _num(mal.get("typeScore")),
        _str(mal.get("source")),
        _int(entry.get("ttl")),
        _int(agg.get("firstSeen")),
        _str(agg.get("link")),
        product if isinstance(product, dict) else None,
        _str(entry.get("cpType")),
        _int(entry.get("cpId")),
        entry,
    )


# -- reading answers ---------------------------------------------------------------------
#
# An answer body is read in two passes of msgspec, both in C: the first splits
# `classificationResponses` into the verbatim bytes of each entry without building anything,
# the second reads from each entry only the fields a record needs, validating their types.
# The record then carries the entry's own bytes as its `response` (line breaks between tokens
# made spaces), never decoded into dicts and encoded again: that is most of the work per IOC
# saved. An entry whose fields this reading does not take as they are (a mistyped field, a
# number beyond a double in a field a record reads) is read with orjson and
# `answer_from_entry`, the reference, so both ways give the same fields; its bytes are still
# written as they came. A body msgspec cannot split (not UTF-8, not the documented shape) is
# read the reference way whole. An entry nested deeper than MAX_DEPTH levels is malformed:
# every JSON reader can read the record back. A number beyond a double in a field no record
# reads is written as the server sent it (JSON sets no limit; orjson refuses to read it,
# `records.read_record` reads it as infinity).

#: the deepest an answer entry may nest: its record reads back with orjson (1024 levels) and
#: with msgspec (its limit is what is left of the interpreter's stack) from any caller
MAX_DEPTH = 500


def beyond_double(number: float) -> bool:
    """True for what `float` makes of a JSON number past a double's range (an infinity): a
    finite float less itself is 0.0, an infinity's is NaN."""
    return number - number != 0.0


_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_F64 = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


# gc=False: what JSON decodes to holds no reference cycle, so the collector need not track
# these (hundreds of thousands a minute)


class _Classification(msgspec.Struct, gc=False):
    type: str | None = None
    classificationScore: _I64 | _F64 | None = None
    typeScore: _I64 | _F64 | None = None
    source: str | None = None


class _Aggregate(msgspec.Struct, gc=False):
    maliciousClassification: _Classification | None = None
    firstSeen: _I64 | None = None
    link: str | None = None
    #: kept as the bytes it came in (written as they are); used when they are an object
    productClassification: msgspec.Raw = msgspec.Raw()


class _Echo(msgspec.Struct, gc=False):
    md5: Any = None
    sha1: Any = None
    sha256: Any = None
    domain: Any = None
    ipAddress: Any = None


class Entry(msgspec.Struct, gc=False):
    """The fields of one `classificationResponses` entry that a record reads, validated."""

    requestKey: _Echo | None = None
    ttl: _I64 | None = None
    aggregatedResult: _Aggregate | None = None
    cpType: str | None = None
    cpId: _I64 | None = None


class _Body(msgspec.Struct):
    classificationResponses: list[msgspec.Raw]


class _Entries(msgspec.Struct):
    classificationResponses: list[Entry]


_read_body = msgspec.json.Decoder(_Body).decode
#: every entry of a body read in one call, as `_read_entry` reads each: all or nothing
_read_entries = msgspec.json.Decoder(_Entries).decode
_read_entry = msgspec.json.Decoder(Entry).decode
#: an entry orjson refuses for a number beyond a double (`"ttl": 1e400`): such a number reads
#: as None, as a field's value the fields' checks refuse; its bytes are kept as they came
_read_beyond = msgspec.json.Decoder(
    float_hook=lambda text: None if beyond_double(n := float(text)) else n
).decode
_NO_PRODUCT = msgspec.Raw()
#: the records' C module's `entries` (`_records.c`): a body's entries split as `_split`
#: splits them, for a body msgspec has read whole; None where the module is not there
_C_NATIVE = load(
    "enricher.output._records", str(Path(__file__).parents[1] / "output" / "records.py")
)
_C_ENTRIES: Callable[[bytes], list[bytes] | None] | None = (
    None if _C_NATIVE is None else _C_NATIVE.entries
)
#: its `read_body`: a plain body's entries, each `Entry` as `_read_entries` reads it, and their
#: bytes as `_C_ENTRIES` splits them, in one walk; None for a body it leaves to msgspec
_C_READ: Callable[[bytes], tuple[list[Entry], list[bytes]] | None] | None = None
if _C_NATIVE is not None:
    _C_NATIVE.entry_types(Entry, _Echo, _Aggregate, _Classification, msgspec.Raw)
    _C_READ = _C_NATIVE.read_body
#: its `match`: parse_response's loop over a plain body (every entry a key asked, once)
_C_MATCH: (
    Callable[
        [list[Entry], list[bytes], Container[str], tuple[str, ...], int],
        dict[str, tuple[Entry, bytes]] | None,
    ]
    | None
) = None if _C_NATIVE is None else _C_NATIVE.match
_SETS = (set, frozenset)
#: its `plain_table`: where the fields of a plain body's entries are, each a key asked once
#: (what `_C_READ` and `_C_MATCH` take), without an object an entry, for `ParsedResponse.plain`
_C_TABLE: (
    Callable[[bytes, Container[str], tuple[str, ...], int], tuple[bytes, int] | bool | None] | None
) = None if _C_NATIVE is None else _C_NATIVE.plain_table
#: its `request_body`: build_request's body for keys JSON writes as they are
_C_BODY: (
    Callable[
        [list[tuple[IocType, str]], dict[IocType, tuple[bytes, bytes]]],
        tuple[bytes, tuple[IocType, ...]] | None,
    ]
    | None
) = None if _C_NATIVE is None else _C_NATIVE.request_body


def _fields_of(doc: dict[str, Any]) -> Entry:
    """An entry's fields read the reference way (`answer_from_entry`), as the fast way reads
    them."""
    a = answer_from_entry("", doc)
    try:
        product = _NO_PRODUCT if a.product is None else msgspec.Raw(orjson.dumps(a.product))
    except orjson.JSONEncodeError:
        raise MalformedBody("an answer's productClassification cannot be written") from None
    mal = _Classification(a.classification, a.score, a.type_score, a.source)
    agg = _Aggregate(mal, a.first_seen, a.link, product)
    return Entry(None, a.ttl, agg, a.cp_type, a.cp_id)


def entry_of(doc: dict[str, Any]) -> tuple[Entry, bytes]:
    """An entry given as a dict: its fields and its JSON bytes (written by orjson)."""
    try:
        raw = orjson.dumps(doc)
    except orjson.JSONEncodeError:
        # orjson reads 1024 levels of nesting but writes 254
        raise MalformedBody("an answer entry is nested too deep to be written") from None
    _check_depth(raw)
    return _fields_of(doc), raw


def _check_depth(raw: bytes) -> None:
    """MalformedBody if the entry nests deeper than MAX_DEPTH (free for an entry too short to
    hold that many brackets, cheap for one without that many)."""
    if len(raw) <= 2 * MAX_DEPTH or raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    depth = 0
    for token in _NESTING.finditer(blank_escapes(raw)):
        mark = token.group()
        if mark in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise MalformedBody(f"an answer entry is nested deeper than {MAX_DEPTH} levels")
        elif mark in (b"]", b"}"):
            depth -= 1


#: strings (skipped whole: brackets in them do not nest) and brackets, in `blank_escapes`
_NESTING = re.compile(rb'"[^"]*"?|[\[\]{}]')


def blank_escapes(raw: bytes) -> bytes:
    """JSON bytes with each escaped quote and backslash (`\\"`, `\\\\`) made `__`, the same
    length: every quote left opens or closes a string, so a scan finds strings with a
    character class, never stepping escape by escape (nor starting again inside one)."""
    return raw.replace(b"\\\\", b"__").replace(b'\\"', b"__")


def read_entry(raw: bytes) -> tuple[Entry, bytes]:
    """One entry's fields from its JSON bytes (an answer's, or a cached record's
    `response`), and the bytes a record holds: line breaks between tokens become spaces (a
    JSON string cannot hold a raw one). MalformedBody if it is not an entry orjson reads, or
    nests deeper than MAX_DEPTH."""
    _, entry, raw = _read(raw, b"\n" in raw or b"\r" in raw)
    if entry is None:
        raise MalformedBody("an answer entry is not an object")
    return entry, raw


def _read(raw: bytes, multiline: bool) -> tuple[Any, Entry | None, bytes]:
    """`read_entry`, with the entry as orjson reads it when it was read the reference way
    (else None); no fields (None) for an entry that is not an object. `multiline`: the
    bytes may hold line breaks."""
    if multiline:
        raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
    _check_depth(raw)
    try:
        return None, _read_entry(raw), raw
    except (ValueError, RecursionError):  # msgspec.ValidationError is a ValueError
        pass
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in exc.msg:  # one such number failed its whole batch, each retry
            raise MalformedBody(f"an answer entry is not JSON orjson reads: {exc.msg}") from None
        doc = _read_beyond(raw)
    if type(doc) is not dict:
        return doc, None, raw
    return doc, _fields_of(doc), raw


class Plain(NamedTuple):
    """A plain body read in C (`_records.plain_table`) whose answers are not made yet: where
    each entry's fields are in it (`table`), and how many `entries` (each a key asked, once)."""

    endpoint: Endpoint
    body: bytes
    table: bytes
    entries: int
    asked: Container[str]


class ParsedResponse:
    """A well-formed answer body: for each key it answers, the entry's validated fields and
    its verbatim JSON bytes (one line); and what could not be used.

    A plain body (every entry read the fast way, each a key asked, once) is kept as `plain`
    until `answers` is asked for: `resolve.settle` makes its record lines from it in C
    without an `Entry` an answer (`_records.table_lines`), and anything else reading
    `answers` gets what they would have been."""

    __slots__ = ("_answers", "_plain", "conflicts", "duplicates", "echoed", "unusable")

    def __init__(
        self,
        answers: dict[str, tuple[Entry, bytes]] | None = None,
        duplicates: int = 0,
        unusable: int = 0,
        conflicts: set[str] | None = None,
        echoed: set[str] | None = None,
        *,
        plain: Plain | None = None,
    ) -> None:
        # (the fields, in order, as the dataclass it was took them)
        self._answers: dict[str, tuple[Entry, bytes]] = {} if answers is None else answers
        self._plain = plain
        self.duplicates = duplicates  # further entries for a key already answered
        self.unusable = unusable  # entries that are not objects or have no recognizable requestKey
        #: keys answered by two entries that say different things: neither is an answer (they
        #: are not in `answers`), the key is to be asked again
        self.conflicts: set[str] = set() if conflicts is None else conflicts
        #: keys whose entry holds one of our secrets where it cannot be taken out (its
        #: requestKey, a field name, its classification): no answer (`redaction`)
        self.echoed: set[str] = set() if echoed is None else echoed

    @property
    def answers(self) -> dict[str, tuple[Entry, bytes]]:
        """Each key answered: its entry's fields and bytes (made now for a plain body)."""
        plain = self._plain
        if plain is not None:
            # made before `plain` is let go: another thread asking meanwhile makes them too,
            # and never finds `plain` gone and the answers not there yet (an empty dict)
            made = parse_response(plain.endpoint, plain.body, plain.asked, lazy=False)
            self._answers = made.answers
            # (none for a plain body: its entries are each a key asked, once)
            self.duplicates, self.unusable = made.duplicates, made.unusable
            self.conflicts, self.echoed = made.conflicts, made.echoed
            self._plain = None
            return made.answers
        return self._answers

    @property
    def plain(self) -> Plain | None:
        """The plain body whose `answers` are not made yet, or None."""
        return self._plain

    def extra(self, answered: int) -> int:
        """Entries of no use, given how many asked keys they answered: answers to keys
        nobody asked for, duplicates and unusable entries."""
        plain = self._plain
        count = len(self._answers) if plain is None else plain.entries
        return count - answered + self.duplicates + self.unusable

    def _fields(self) -> tuple[Any, ...]:
        return self.answers, self.duplicates, self.unusable, self.conflicts, self.echoed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedResponse):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ParsedResponse(answers={self.answers!r}, duplicates={self.duplicates},"
            f" unusable={self.unusable}, conflicts={self.conflicts!r}, echoed={self.echoed!r})"
        )


#: the `requestKey` fields that carry the IOC, in the order `match_key` reads them
_ECHO_FIELDS = {
    Endpoint.FILE: _HASH_FIELDS,
    Endpoint.DOMAIN: ("domain",),
    Endpoint.IP: ("ipAddress",),
}


def _error_text(doc: Any) -> str:
    if isinstance(doc, dict):
        for name in ("message", "error", "errorMessage", "status", "reason"):
            v = doc.get(name)
            if isinstance(v, str) and v:
                return v  # cut by the sender, once our secrets are out of it
        return "keys: " + ", ".join(sorted(str(k) for k in doc)[:8])
    return type(doc).__name__


def parse_response(
    endpoint: Endpoint, body: bytes, asked: Container[str] = (), *, lazy: bool = True
) -> ParsedResponse:
    """Parse and validate one HTTP-200 body; `asked`, the normalized keys the request asked
    for, only makes matching faster. `lazy`: a plain body's answers are made when asked for
    (`ParsedResponse.plain`).

    Raises `MalformedBody` for a truncated, non-JSON or wrongly shaped body and `ErrorBody`
    for a JSON object without a `classificationResponses` list (an error said with 200).
    """
    if type(body) is not bytes:
        # the C readers (read_body, entries) take exact bytes: a bytes subclass (what a
        # transport of one's own may answer), a bytearray or a memoryview reads as its bytes
        body = bytes(body)
    multiline = b"\n" in body or b"\r" in body
    # mostly every entry reads the fast way: then all of them in one call, without a call
    # per entry (an entry nested deep is still refused), and their bytes split in C; else
    # each one its own way
    entries: list[Entry] | None = None
    raws: list[bytes] | None = None
    walk = not multiline
    if lazy and walk and _C_TABLE is not None and type(asked) in _SETS:
        # a plain body, each entry a key asked once (what read_body and match below take):
        # read in C in one walk, nothing made an entry; its answers made when asked for
        made = _C_TABLE(body, asked, _ECHO_FIELDS[endpoint], 2 * MAX_DEPTH)
        if isinstance(made, tuple):
            return ParsedResponse(plain=Plain(endpoint, body, made[0], made[1], asked))
        # False: a backslash or a byte past ASCII, which read_body does not take either (a
        # string holding one is not plain, and JSON has none outside strings): not walked
        # again up to it
        walk = made is None
    read = None if not walk or _C_READ is None else _C_READ(body)
    utf8: bool | None = None  # not yet known
    if read is not None:
        # a plain body (the most of them) read in C in one walk, as the lines below read it
        entries, raws = read
    elif not multiline and (utf8 := _utf8(body)):
        entries = _entries(body)
        if entries is not None and _C_ENTRIES is not None:
            raws = _C_ENTRIES(body)  # a body msgspec read whole: valid JSON of this shape
            if raws is not None and len(raws) != len(entries):
                raws = None  # (never seen: the reference decides)
    if raws is None:
        split = _split(body, utf8)
        if split is None:
            # a lone surrogate escape (`"\ud800"`) in one entry: msgspec and orjson refuse
            # the whole body, every key of the batch failed, after every try; that entry
            # alone now
            split = _split_around_surrogates(body)
            if split is None:
                return _parse_with_orjson(endpoint, body)
        raws = split
    depth = 2 * MAX_DEPTH  # entries no longer than this cannot nest too deep
    if entries is not None and _C_MATCH is not None and type(asked) in _SETS:
        # in C where every entry echoes a key asked, once (the loop below, without a step
        # a key), else that loop
        found = _C_MATCH(entries, raws, asked, _ECHO_FIELDS[endpoint], depth)
        if found is not None:
            return ParsedResponse(found)
    parsed = ParsedResponse()
    answers = parsed.answers
    # the field that echoes the key: a hash's is the first of md5, sha1, sha256 that is set
    hashes = endpoint is Endpoint.FILE
    echo_of = attrgetter(_ECHO_FIELDS[endpoint][0])
    read_one = _read
    duplicates = unusable = 0
    refused: MalformedBody | None = None
    doc: Any
    entry: Entry | None
    for entry, raw in zip(repeat(None) if entries is None else entries, raws, strict=False):
        try:
            if entry is not None:  # read the fast way, with the others
                doc = None
                if len(raw) > depth:
                    _check_depth(raw)
            else:
                doc, entry, raw = read_one(raw, multiline)
        except MalformedBody as exc:
            # an entry no record can be made of (nested too deep, not JSON orjson reads) is
            # unusable, its key asked again: one of them failed every key of its batch
            refused = refused or exc
            unusable += 1
            continue
        key: str | None = None
        if entry is None:
            pass  # not an object
        elif doc is not None:  # read the reference way
            key = match_key(endpoint, doc.get("requestKey"))
        else:
            echo = entry.requestKey
            if echo is not None:
                # the server mostly echoes a key just as it was asked: look that up first,
                # and make the canonical form (lower case, no trailing dot, compressed IPv6)
                # only when not
                v = (echo.md5 or echo.sha1 or echo.sha256) if hashes else echo_of(echo)
                if type(v) is str and v in asked:
                    key = v
                else:
                    key = match_key(endpoint, msgspec.structs.asdict(echo))
        if key is None:
            unusable += 1
        elif key in answers:
            duplicates += 1
            if _conflict(answers[key][1], raw):
                parsed.conflicts.add(key)
        else:
            answers[key] = (entry, raw)  # type: ignore[assignment]
    if refused is not None and not answers:
        raise refused  # no entry read: the body is what failed (it may be a blip)
    parsed.duplicates = duplicates
    parsed.unusable = unusable
    for key in parsed.conflicts:
        del answers[key]
    return parsed


def _conflict(first: bytes, other: bytes) -> bool:
    """Whether two entries for one key say different things (a whitelist, then malware):
    anything but the echo of the key (which may come in another case) differs. Only met on
    duplicate entries, so it may take its time."""
    if first == other:
        return False
    try:
        a, b = orjson.loads(first), orjson.loads(other)
    except orjson.JSONDecodeError:  # a number orjson does not read: the bytes decide
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        a.pop("requestKey", None)
        b.pop("requestKey", None)
    return bool(a != b)


def _entries(body: bytes) -> list[Entry] | None:
    """The fields of every entry of a body `_split` took, or None if one of them does not
    read the fast way."""
    try:
        return _read_entries(body).classificationResponses
    except (ValueError, RecursionError):
        return None


def _utf8(body: bytes) -> bool:
    """Whether `body` is UTF-8: msgspec does not check the UTF-8 of what it skips; orjson
    (the reference) does."""
    if body.isascii():
        return True
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _split(body: bytes, utf8: bool | None = None) -> list[bytes] | None:
    """The verbatim bytes of each entry, or None for a body the fast way does not take;
    `utf8`: whether the body is UTF-8, when known (`_utf8`)."""
    if not (_utf8(body) if utf8 is None else utf8):
        return None
    try:
        return [bytes(raw) for raw in _read_body(body).classificationResponses]
    except (ValueError, RecursionError):
        return None


#: a `\u` escape of a UTF-16 surrogate, in bytes `blank_escapes` made (each backslash left
#: starts an escape)
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _split_around_surrogates(body: bytes) -> list[bytes] | None:
    """`_split` of a body holding surrogate escapes, each entry's bytes as they came: the
    escapes are blanked (the same length) to find where each entry is, or None if that does
    not make the body one `_split` takes. An entry with a lone surrogate is then refused
    alone, when it is read."""
    blanked = blank_escapes(body)
    if not _SURROGATE.search(blanked):
        return None
    blanked = _SURROGATE.sub(rb"\\u003f", blanked)  # "?", escaped
    raws = _split(blanked)
    if raws is None:
        return None
    found: list[bytes] = []
    at = 0
    for piece in raws:
        # entries come in order, with only a comma and blanks between them
        at = blanked.index(piece, at)
        found.append(body[at : at + len(piece)])
        at += len(piece)
    return found


def _parse_with_orjson(endpoint: Endpoint, body: bytes) -> ParsedResponse:
    """The reference reading of a body: orjson, then `answer_from_entry` for each entry."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not JSON ({len(body)} bytes): {exc.msg}") from None
    if not isinstance(doc, dict):
        raise MalformedBody(f"body is a JSON {type(doc).__name__}, not an object")
    responses = doc.get("classificationResponses")
    if responses is None:
        raise ErrorBody(f"HTTP 200 without classificationResponses ({_error_text(doc)})")
    if not isinstance(responses, list):
        raise MalformedBody("classificationResponses is not a list")
    parsed = ParsedResponse()
    answers = parsed.answers
    for item in responses:
        key = match_key(endpoint, item.get("requestKey")) if type(item) is dict else None
        if key is None:
            parsed.unusable += 1
        elif key in answers:
            parsed.duplicates += 1
            if _conflict(answers[key][1], entry_of(item)[1]):
                parsed.conflicts.add(key)
        else:
            answers[key] = entry_of(item)
    for key in parsed.conflicts:
        del answers[key]
    return parsed
