"""Output records (schema v1): one NDJSON line per unique IOC, and failure lines.

A record is a plain dict so that orjson writes it at full speed. The fields, their types and
their meaning are the README's "Output format"; change them only with a new schema version.
The TypedDicts are `@final`, so that a test for a key (`"error" in item`) tells a type
checker which kind of item it holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any, Literal, NotRequired, TypedDict, cast, final

import msgspec
import orjson

from ..api.protocol import Entry, beyond_double
from ..inputs.native import load
from ..ioc import IocType

__all__ = [
    "CACHED_TAIL",
    "FRESH_TAIL",
    "SCHEMA_VERSION",
    "Deferred",
    "Failure",
    "IocTypeName",
    "Record",
    "RecordFields",
    "Reject",
    "Skipped",
    "Unbounded",
    "Verdict",
    "deferred",
    "failure",
    "first_seen_iso",
    "python_record_line",
    "read_record",
    "record_format",
    "record_line",
    "response_bytes",
    "skipped",
]

SCHEMA_VERSION = 1


#: the `type` of an IOC in records, failures and deferred items (`IocType`'s values)
IocTypeName = Literal["md5", "sha1", "sha256", "domain", "ipv4", "ipv6"]
#: what the verdict table makes of a classification
Verdict = Literal["malicious", "suspicious", "benign", "unknown"]


class RecordFields(TypedDict):
    """A record's flat fields: all but the nested `product` and the verbatim `response`
    (what the output formats write, read without decoding those)."""

    ioc: str
    type: IocTypeName
    verdict: Verdict
    classification: str | None
    score: int | float | None
    type_score: int | float | None
    source: str | None
    ttl_ms: int | None
    first_seen: str | None
    link: str | None
    cp_type: str | None
    origin: NotRequired[dict[str, Any]]
    cached: bool


@final
class Record(RecordFields):
    """An answered IOC (schema v1)."""

    product: dict[str, Any] | None
    response: dict[str, Any]


@final
class Failure(TypedDict):
    """An IOC that could not be enriched: `error` starts with a kind (`http_503`, ...)."""

    ioc: str
    type: IocTypeName
    error: str
    attempts: int


@final
class Deferred(TypedDict):
    """An IOC not asked (budget or quota spent, the run stopped): for a later run."""

    ioc: str
    type: IocTypeName
    reason: str


@final
class Reject(TypedDict):
    """An input line (or item) that is no IOC: where it was, what it held (cut at 200
    characters; None when it could not be read) and why."""

    source: str
    line: int
    input: str | None
    reason: str


@final
class Skipped(TypedDict):
    """An IOC the privacy rule withheld: never sent. `skipped` says why (`private address`)."""

    ioc: str
    type: str
    skipped: str
    origin: NotRequired[dict[str, Any]]


def first_seen_iso(epoch_ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC (`2016-12-14T12:38:41.821Z`), None when absent or
    out of range (years 1 to 9999)."""
    if epoch_ms is None:
        return None
    day, ms = divmod(epoch_ms, 86_400_000)
    prefix = _DAYS.get(day) or _day(day)
    if prefix is None:
        return None
    # ms of the day fit a machine word: `//` and `%` on them take fast paths that divmod's
    # call and tuple do not (about 500 instructions a time fewer)
    clock = _MINUTES[ms // 60_000] + _SECONDS[ms // 1000 % 60] + _MILLIS[ms % 1000]
    return (prefix + clock).decode()[1:-1]


def _day(day: int) -> bytes | None:
    """`"YYYY-MM-DDT` for a day since the epoch (None out of range), remembered."""
    try:
        prefix = b'"' + (_EPOCH + timedelta(days=day)).isoformat().encode() + b"T"
    except OverflowError:
        return None
    if len(_DAYS) >= 50_000:
        _DAYS.clear()
    _DAYS[day] = prefix
    return prefix


_EPOCH = date(1970, 1, 1)
# A time is written as four pieces of bytes, each looked up (this runs once per record):
#: `"YYYY-MM-DDT` by days since the epoch, as met (dates repeat across IOCs; bounded)
_DAYS: dict[int, bytes] = {}
#: `HH:MM:` for each minute of a day, `SS` for each second of a minute and `.mmmZ"` for each
#: millisecond (made at once: a table of each second of a day, made as met, cost 1.5% of a
#: run's CPU in making)
_MINUTES = [b"%02d:%02d:" % divmod(minute, 60) for minute in range(1440)]
_SECONDS = [b"%02d" % second for second in range(60)]
_MILLIS = [b'.%03dZ"' % ms for ms in range(1000)]
_dumps = orjson.dumps
_TYPE = {t: b',"type":"' + t.value.encode() + b'"' for t in IocType}
#: a record line, its pieces in place (one C call joins them): with a first-seen time (as
#: four pieces) and without one
_DATED = (b'{"ioc":%b%b%b,"ttl_ms":%b,"first_seen":%b%b%b%b,"link":%b,"product":%b'
          b',"cp_type":%b,"response":%b%b')  # fmt: skip
_UNDATED = (b'{"ioc":%b%b%b,"ttl_ms":%b,"first_seen":null,"link":%b,"product":%b'
            b',"cp_type":%b,"response":%b%b')  # fmt: skip
#: the same with the ttl's digits written by the format (`%d`: one call fewer than orjson's)
_DATED_TTL = _DATED.replace(b'"ttl_ms":%b', b'"ttl_ms":%d', 1)
_UNDATED_TTL = _UNDATED.replace(b'"ttl_ms":%b', b'"ttl_ms":%d', 1)
_ORIGIN = b',"origin":'
_NULL = b"null"
#: how every record line ends (`cached` is always its last field)
FRESH_TAIL = b',"cached":false}\n'
CACHED_TAIL = b',"cached":true}\n'
_TAIL = (FRESH_TAIL, CACHED_TAIL)
_LARGEST = 2**63
#: the fields from `verdict` to `source` as written, by their values: answers hold few
#: distinct classifications. Floats are never looked up (1.0 == 1 and -0.0 == 0.0 would
#: find another's bytes); bounded
_VERDICT_FIELDS: dict[tuple[str, str | None, float | None, float | None, str | None], bytes] = {}
_NO_CLASSIFICATION = (
    b',"verdict":"unknown","classification":null,"score":null,"type_score":null,"source":null'
)
#: `cp_type` as written, by its value (a few kinds of source); bounded
_CP_TYPES: dict[str | None, bytes] = {None: _NULL}
_REMEMBERED = 4096
#: the longest either table keeps: a server's long text (a `source`, a `cpType`), another in
#: each entry, is written and not kept (4,096 of 60 kB each held 950 MiB)
_SHORT = 512


def python_record_line(
    ioc_type: IocType,
    ioc: str,
    entry: Entry,
    raw: bytes,
    verdicts: Mapping[str, str],
    ttl_factor: int = 1,
    cached: bool = False,
    origin: tuple[str, int] | None = None,
) -> tuple[bytes, str, int | None]:
    """The NDJSON line (schema v1) for one answered IOC, its verdict and its ttl in ms.

    `entry` is the answer's validated fields and `raw` its verbatim JSON (one line), written
    as the record's `response` as it is. `ttl_factor` turns the API's ttl unit into ms;
    `origin` (file, line) is where the IOC was first seen (`--with-source`). This runs once
    per IOC: the line's pieces of bytes are put in place by one call, those that repeat
    across IOCs (the classification, the type, the time of day) written once and looked up.
    """
    agg = entry.aggregatedResult
    mal = agg.maliciousClassification if agg is not None else None
    if mal is not None:
        ctype = mal.type
        verdict = "unknown" if ctype is None else verdicts.get(ctype, "unknown")
        score, type_score, source = mal.classificationScore, mal.typeScore, mal.source
        if type(score) is float or type(type_score) is float:
            fields = _verdict_fields(verdict, ctype, score, type_score, source)
        else:
            seen = (verdict, ctype, score, type_score, source)
            known = _VERDICT_FIELDS.get(seen)
            if known is None:
                known = _verdict_fields(*seen)
                if len(known) <= _SHORT:
                    if len(_VERDICT_FIELDS) >= _REMEMBERED:
                        _VERDICT_FIELDS.clear()
                    _VERDICT_FIELDS[seen] = known
            fields = known
    else:
        verdict = "unknown"
        fields = _NO_CLASSIFICATION
    ttl = entry.ttl
    if ttl is not None:
        ttl *= ttl_factor
        if not -_LARGEST <= ttl < _LARGEST:
            ttl = None
    ioc_json = _dumps(ioc)
    type_json = _TYPE[ioc_type]
    ttl_json: bytes | int
    if ttl is None:
        ttl_json, dated, undated = _NULL, _DATED, _UNDATED
    else:
        ttl_json, dated, undated = ttl, _DATED_TTL, _UNDATED_TTL
    cp_type = entry.cpType
    cp = _CP_TYPES.get(cp_type)
    if cp is None:
        cp = _dumps(cp_type)
        if len(cp) <= _SHORT:
            if len(_CP_TYPES) >= _REMEMBERED:
                _CP_TYPES.clear()
                _CP_TYPES[None] = _NULL
            _CP_TYPES[cp_type] = cp
    tail = _TAIL[cached]
    if origin is not None:
        tail = _ORIGIN + _dumps({"file": origin[0], "line": origin[1]}) + tail
    if agg is None:
        line = undated % (ioc_json, type_json, fields, ttl_json, _NULL, _NULL, cp, raw, tail)
        return line, verdict, ttl
    link = agg.link
    link_json = _NULL if link is None else _dumps(link)
    product = bytes(agg.productClassification) if agg.productClassification else _NULL
    if product[:1] != b"{":
        product = _NULL
    first = agg.firstSeen
    if first is not None:
        day, ms = divmod(first, 86_400_000)
        prefix = _DAYS.get(day) or _day(day)
        if prefix is not None:
            # as in `first_seen_iso`
            line = dated % (
                ioc_json, type_json, fields, ttl_json, prefix, _MINUTES[ms // 60_000],
                _SECONDS[ms // 1000 % 60], _MILLIS[ms % 1000], link_json, product, cp, raw, tail,
            )  # fmt: skip
            return line, verdict, ttl
    line = undated % (ioc_json, type_json, fields, ttl_json, link_json, product, cp, raw, tail)
    return line, verdict, ttl


def _native() -> Any:
    """The C module of record lines (`_records.c`, `native.load`), set up; else None."""
    records = load("enricher.output._records", __file__)
    if records is not None:
        records.setup(_TYPE, FRESH_TAIL, CACHED_TAIL, python_record_line)
    return records


_NATIVE = _native()
#: the C line of one answer, `_records.line` (None where the module is not there): it makes
#: the lines of the common answers and leaves the rest (float scores, texts JSON escapes, a
#: date beyond year 9999, an origin) to `python_record_line`, the reference
C_LINE = None if _NATIVE is None else _NATIVE.line
#: `python_record_line`, called in C where the module is built (without a Python call a
#: line): the same line, byte for byte
record_line = python_record_line
if _NATIVE is not None:
    record_line = _NATIVE.record_line
#: `resolve.settle`'s loop over the keys an answer answers, with `record_line`, in C
#: (`_records.answer_lines`); None where the module is not there
C_ANSWER_LINES: (
    Callable[
        [list[Any], Mapping[str, Any], Mapping[str, str], int, list[Any], list[bytes], list[Any]],
        list[Any] | None,
    ]
    | None
) = None if _NATIVE is None else _NATIVE.answer_lines
#: the same over a plain body's answers not made yet (`ParsedResponse.plain`), straight
#: from its bytes (`_records.table_lines`); None where the module is not there
C_TABLE_LINES: (
    Callable[
        [bytes, bytes, list[Any], Mapping[str, str], int, list[Any], list[bytes], list[Any]],
        list[Any] | None,
    ]
    | None
) = None if _NATIVE is None else _NATIVE.table_lines


def _verdict_fields(
    verdict: str,
    ctype: str | None,
    score: int | float | None,
    type_score: int | float | None,
    source: str | None,
) -> bytes:
    """The fields `verdict` to `source` of a record, as written (each after a comma)."""
    doc = {"verdict": verdict, "classification": ctype, "score": score,
           "type_score": type_score, "source": source}  # fmt: skip
    return b"," + _dumps(doc)[1:-1]


class _Written(msgspec.Struct):
    response: msgspec.Raw


_read_written = msgspec.json.Decoder(_Written).decode


@final
class Unbounded(float):
    """A number of a server's answer beyond a double (`1e400`): infinity to arithmetic, and
    `text`, the number as the server wrote it, for an encoder that writes it again."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> Unbounded:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __reduce__(self) -> tuple[type[Unbounded], tuple[str]]:
        return Unbounded, (self.text,)


def _number(text: str) -> float:
    number = float(text)
    # a number past a double's range keeps its text
    return Unbounded(text) if beyond_double(number) else number


_read_any = msgspec.json.Decoder(float_hook=_number).decode  # 1e400 reads as inf


def response_bytes(line: bytes) -> bytes:
    """The `response` of a record line, as the bytes it holds (ValueError if none)."""
    return bytes(_read_written(line).response)


def read_record(line: bytes) -> Record:
    """A record line read back as a dict. A `response` is written byte for byte as the server
    sent it, and JSON sets no limit on numbers: this reads a number beyond a double (which
    orjson refuses) as infinity, an `Unbounded` that keeps its text."""
    return cast(Record, _read_any(line))


def record_format(verdicts: Mapping[str, str], ttl_unit: str, with_source: bool = False) -> str:
    """What a record line depends on besides the answer: two runs with the same format write
    the same line for the same answer (so a cached line can be written again as it is)."""
    doc = orjson.dumps([SCHEMA_VERSION, ttl_unit, sorted(verdicts.items()), with_source])
    return hashlib.blake2b(doc, digest_size=8).hexdigest()


def failure(ioc_type: IocType, ioc: str, error: str, attempts: int) -> Failure:
    return {"ioc": ioc, "type": ioc_type.value, "error": error, "attempts": attempts}


def deferred(ioc_type: IocType, ioc: str, reason: str) -> Deferred:
    return {"ioc": ioc, "type": ioc_type.value, "reason": reason}


def skipped(
    ioc_type: IocType, ioc: str, reason: str, where: tuple[str, int] | None = None
) -> Skipped:
    item: Skipped = {"ioc": ioc, "type": ioc_type.value, "skipped": reason}
    if where is not None:  # where it was first seen (`--with-source`), as in a record
        item["origin"] = {"file": where[0], "line": where[1]}
    return item
