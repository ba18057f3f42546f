"""Properties over generated input: nothing raises, nothing valid is lost, values are canonical.

tests/pipeline/test_normalize.py holds the properties of `normalize` on its own (any text, the fast
path against the rules, hashes, addresses, LDH domains, defanged forms, URLs) and
tests/inputs/test_formats_extract.py those of the extractor on short text. This file adds:

- `refang` and the extractor on any text at all (lone surrogates, control characters, NUL,
  long text), and the byte-level readers of every format on any bytes, compressed or not;
- internationalized domains under a real public suffix, and IPv6 in all its written forms;
- valid IOCs, in any of their forms (case, defanged, inside URLs or e-mail addresses), in
  noise: the extractor finds each with its canonical value;
- the line reader: a line that is an IOC gives that IOC, on the line it was on.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import ipaddress
import json
import lzma
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import idna
import pytest
import zstandard
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from enricher.errors import InputError
from enricher.inputs import FORMATS, Chunk, InputOptions
from enricher.inputs import extract as extract_module
from enricher.inputs.blocks import line_chunks
from enricher.inputs.decompress import Readable, compression_of
from enricher.inputs.delimited import read_delimited
from enricher.inputs.extract import extract, extract_lines
from enricher.inputs.jsonfmt import read_json, read_ndjson
from enricher.inputs.read import read_source
from enricher.inputs.sniff import csv_dialect
from enricher.inputs.suffixes import has_public_suffix, is_program_name, looks_like_file_name
from enricher.inputs.text import read_text
from enricher.ioc import IocType
from enricher.pipeline.normalize import (
    MAX_LENGTH,
    _normalize_slow,
    known_canonical,
    normalize,
    refang,
)

CHEAP = settings(max_examples=300, deadline=None)
COSTLY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- any text ---------------------------------------------------------------------------------

any_char = st.characters(exclude_categories=())  # lone surrogates too
awkward_char = st.sampled_from(
    [*"\x00\x01\x1b\x7f\r\n\t\x0b\x0c\x85\u2028\u2029\ufeff\u200d\ufffd", "\ud800", "\udfff"]
)
marker = st.sampled_from(
    [*"[](){}.:/@\\-_%+ x", "[.]", "(dot)", "[:]", "hxxp", "hXXps[:]//", "::", "。", "ü", "\u212a"]
)
any_text = st.lists(st.one_of(any_char, awkward_char, marker), max_size=120).map("".join)
# long text: a random piece repeated, up to about 100,000 characters
long_text = st.tuples(st.text(any_char, min_size=1, max_size=20), st.integers(1, 5000)).map(
    lambda t: t[0] * t[1]
)


def canonical(value: str) -> IocType:
    """The type of `value`, which must be canonical: `normalize(value) == (type, value)`."""
    ioc_type, normal = normalize(value)
    assert ioc_type is not None, (value, normal)
    assert normal == value
    return ioc_type


@CHEAP
@given(st.one_of(any_text, long_text))
@example("hxxp" * 5000)
@example("[" * 10_000 + "." + "]" * 10_000)
def test_refang_never_raises_and_never_lengthens(text: str) -> None:
    fanged = refang(text)
    assert isinstance(fanged, str)
    assert len(fanged) <= len(text)  # every defanging is replaced by something no longer
    if not any(c in text for c in "[({\\xX]"):
        assert fanged is text  # nothing to undo: the text itself


@CHEAP
@given(st.one_of(any_text, long_text), st.integers(1, 10**6))
@example("\ud800.com evil.com", 1)
@example("a\x00b.com 1.2.3.4\x00", 1)
def test_extract_never_raises_and_gives_canonical_values(text: str, first: int) -> None:
    values, lines = extract_lines(text, first)
    assert len(values) == len(lines)
    last = first + text.count("\n")
    assert all(first <= n <= last for n in lines)
    for value in values:
        canonical(value)
        value.encode("utf-8")  # writable: no lone surrogate gets out


@CHEAP
@given(any_text)
def test_the_extractors_table_never_changes_what_normalize_says(text: str) -> None:
    # The extractor puts what it finds in the table of canonical values that normalize looks
    # up first: those answers must be the ones the rules give.
    words = [*text.split(), text]
    table = known_canonical()
    for value in extract(text):
        assert table.get(value) in (None, canonical(value))
    for word in words:
        if len(word) <= MAX_LENGTH:
            assert normalize(word) == _normalize_slow(word.strip())


# -- valid IOCs, generated -------------------------------------------------------------------


@dataclass(frozen=True)
class Ioc:
    """A valid IOC: its canonical value, and the text it is written as."""

    type: IocType
    value: str
    text: str


def flip_case(data: st.DataObject, text: str) -> str:
    """`text` with some letters in upper case (only those whose case round-trips)."""
    flips = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(
        c.upper() if f and len(c.upper()) == 1 and c.upper().lower() == c else c
        for c, f in zip(text, flips, strict=True)
    )


@st.composite
def hashes(draw: st.DrawFn) -> Ioc:
    ioc_type, size = draw(
        st.sampled_from([(IocType.MD5, 16), (IocType.SHA1, 20), (IocType.SHA256, 32)])
    )
    value = draw(st.binary(min_size=size, max_size=size)).hex()
    assume(not value.isdigit())  # a run of digits is a number, for the extractor
    return Ioc(ioc_type, value, flip_case(draw(st.data()), value))


@st.composite
def ipv4s(draw: st.DrawFn) -> Ioc:
    value = str(draw(st.ip_addresses(v=4)))
    return Ioc(IocType.IPV4, value, value)


@st.composite
def ipv6s(draw: st.DrawFn) -> Ioc:
    address = draw(st.ip_addresses(v=6))
    assert isinstance(address, ipaddress.IPv6Address)
    forms = [address.compressed, address.exploded]
    if address.ipv4_mapped is not None:
        forms.append(f"::ffff:{address.ipv4_mapped}")
    text = draw(st.sampled_from(forms))
    if draw(st.booleans()):
        text = text.upper()
    if address.ipv4_mapped is not None:  # `::ffff:1.2.3.4` is the IPv4 address 1.2.3.4
        return Ioc(IocType.IPV4, str(address.ipv4_mapped), text)
    return Ioc(IocType.IPV6, address.compressed, text)


# Real public suffixes, ASCII and internationalized, none of them a file extension
SUFFIXES = ["com", "net", "org", "info", "ru", "de", "io", "xyz", "co.uk", "com.au", "co.jp",
            "рф", "xn--p1ai", "中国", "онлайн", "ελ"]  # fmt: skip
ascii_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
# letters of a few scripts (no hyphen: `ab--` labels are reserved in IDNA 2008)
unicode_label = st.text("abcdefghijklmnopqrstuvwxyzäöüéèñçåøжщяλ", min_size=1, max_size=12)


def a_label(label: str) -> str:
    return label if label.isascii() else idna.alabel(label).decode("ascii")


@st.composite
def domains(draw: st.DrawFn) -> Ioc:
    labels = draw(st.lists(st.one_of(ascii_label, unicode_label), min_size=1, max_size=3))
    suffix = draw(st.sampled_from(SUFFIXES))
    text = ".".join([*labels, suffix])
    value = ".".join(a_label(label) for label in text.split("."))
    assume(len(value) <= 253 and has_public_suffix(value))
    return Ioc(IocType.DOMAIN, value, flip_case(draw(st.data()), text))


valid_iocs = st.one_of(hashes(), ipv4s(), ipv6s(), domains())

DOTS = [".", "[.]", "(.)", "{.}", "[dot]", "(dot)", "[DOT]"]
SCHEMES = ["http://", "https://", "hxxp://", "hXXps://", "hxxps[:]//", "hxxp[://]", "fxp://"]


@st.composite
def written(draw: st.DrawFn, iocs: st.SearchStrategy[Ioc] = valid_iocs) -> Ioc:
    """A valid IOC written as people and tools write it: defanged, in a URL, an e-mail
    address or `host:port`."""
    ioc = draw(iocs)
    text = ioc.text
    # an IPv6 form (an IPv4-mapped one is an IPv4 IOC written as IPv6)
    v6 = ioc.type in (IocType.IPV4, IocType.IPV6) and ":" in text
    if ioc.type in (IocType.DOMAIN, IocType.IPV4) and not v6:
        head, *rest = text.split(".")
        text = head + "".join(draw(st.sampled_from(DOTS)) + part for part in rest)
    elif v6 and "::" in text and draw(st.booleans()):
        text = text.replace("::", "[:]:", 1)
    if ioc.type is IocType.MD5 or ioc.type is IocType.SHA1 or ioc.type is IocType.SHA256:
        return Ioc(ioc.type, ioc.value, text)
    how = draw(st.sampled_from(["bare", "url", "port", "email"]))
    host = f"[{text}]" if v6 and how != "bare" else text
    port = draw(st.sampled_from([":80", ":8443", ":65535"]))
    if how == "url":
        path = draw(st.sampled_from(["", "/", "/a/b.php?x=1&y=2#f", "/update.zip"]))
        text = draw(st.sampled_from(SCHEMES)) + host + draw(st.sampled_from(["", port])) + path
    elif how == "port":
        text = host + port
    elif how == "email" and ioc.type is IocType.DOMAIN:
        text = "first.last" + draw(st.sampled_from(["@", "[@]", "[at]"])) + host
    return Ioc(ioc.type, ioc.value, text)


@CHEAP
@given(valid_iocs)
@example(Ioc(IocType.DOMAIN, "xn--e1afmkfd.xn--p1ai", "ПРИМЕР.рф"))
def test_generated_iocs_normalize_to_their_canonical_value(ioc: Ioc) -> None:
    assert normalize(ioc.text) == (ioc.type, ioc.value)
    assert canonical(ioc.value) is ioc.type  # normalizing twice changes nothing


@CHEAP
@given(written())
def test_written_forms_normalize_to_the_canonical_value(ioc: Ioc) -> None:
    assert normalize(ioc.text) == (ioc.type, ioc.value), ioc.text


# -- valid IOCs in noise -----------------------------------------------------------------------

# Words, and characters that end a word; none of them glues onto an IOC next to it.
noise_word = st.text("abcdefghijklmnopqrstuvwxyzABCDEFXYZ'!?éж", min_size=1, max_size=10)
before = st.sampled_from([" ", "\t", "\n", " (", " <", ' "', " '", ", ", "\n> ", " | ", " [", " ="])
after = st.sampled_from(
    [" ", "\t", "\n", ") ", "> ", '" ', "' ", ", ", "; ", ". ", "] ", " |", ": ", ".\n", ":\t"]
)
SAYS_NO_IOC = ("ersion", "imphash", "ja3", "ja4", "hassh", "serial", "btih", "print", "commit",
               "guid", "uuid")  # fmt: skip


def found_in_noise(
    data: st.DataObject, iocs: list[Ioc], *, noise: st.SearchStrategy[str] = noise_word
) -> tuple[str, list[tuple[str, int]], list[int]]:
    """Text with the IOCs in noise, what the extractor finds in it (value, line), and the
    line each IOC was put on."""
    text = ""
    lines = []
    for ioc in iocs:
        text += " ".join(data.draw(st.lists(noise, max_size=4))) + data.draw(before)
        lines.append(text.count("\n") + 1)
        text += ioc.text + data.draw(after)
    text += " ".join(data.draw(st.lists(noise, max_size=3)))
    # noise that says the next value is a version or a fingerprint
    assume(not any(word in text.lower() for word in SAYS_NO_IOC))
    return text, list(zip(*extract_lines(text, 1), strict=True)), lines


def is_bare_file_name(ioc: Ioc) -> bool:
    """`update.zip`, `run.py`, `System.IO`: a file or program name, unless defanged or the host
    of a URL or address."""
    return ioc.type is IocType.DOMAIN and (
        (looks_like_file_name(ioc.value, ioc.text) and ioc.text.isascii())
        or is_program_name(ioc.text, ioc.value)
    )


# IPv6 look-alikes, written plain: one group and `::` (AsciiDoc's `2::`, the end of
# `2015-05-26::`), a time and `::` (`12:45::`), single letters (`A::B`: code; the generated
# text is never in mixed case, as `Face::Bad` is), and eight groups of two digits (an EUI-64)
NOT_IPV6_IN_TEXT = re.compile(
    r"[0-9a-f]{1,4}::|(?:[0-9]{1,2}:)+:|(?:[a-f]?:)*:[a-f]?(?::[a-f]?)*"
    r"|[0-9a-f]{2}(?::[0-9a-f]{2}){7}"
)


def in_text(ioc: Ioc) -> bool:
    """Whether free text can be expected to show `ioc`: `::` alone (the unspecified address)
    is punctuation there, as in `std::vector`, and an IPv6 look-alike written plain and
    unbracketed is a term, a time, code or an EUI-64 (bracketed or defanged, `[2::]`,
    `2[:]:`, it is an address)."""
    if ioc.value == "::":
        return False
    if ioc.type is not IocType.IPV6 or "[" in ioc.text:
        return True
    return NOT_IPV6_IN_TEXT.fullmatch(ioc.text.lower()) is None


@COSTLY
@given(st.lists(valid_iocs, min_size=1, max_size=5), st.data())
def test_iocs_in_noise_are_found_with_their_canonical_value(
    iocs: list[Ioc], data: st.DataObject
) -> None:
    text, found, _ = found_in_noise(data, iocs)
    for ioc in iocs:
        if in_text(ioc) and not is_bare_file_name(ioc):
            assert ioc.value in dict(found), (ioc, text, found)
    for value, _ in found:
        canonical(value)


@COSTLY
@given(st.lists(written(), min_size=1, max_size=5), st.data())
def test_written_iocs_in_noise_are_found_with_their_canonical_value(
    iocs: list[Ioc], data: st.DataObject
) -> None:
    text, found, lines = found_in_noise(data, iocs)
    for ioc, line in zip(iocs, lines, strict=True):
        if in_text(ioc) and not is_bare_file_name(ioc):
            assert (ioc.value, line) in found, (ioc, line, text, found)


# Wrappers of report formats: AsciiDoc passthroughs and monospace, Markdown and RST literals,
# HTML cells, table cells, quoted strings, and percent-escaped separators around a value
WRAPPERS = ["+{}+", "++{}++", "`{}`", "``{}``", "pass:[{}]", "<td>{}</td>", "<code>{}</code>",
            "| {} |", '"{}"', "'{}'", "%22{}%22", "%3A{}%2C", "_{}_", "-{}-"]  # fmt: skip


@COSTLY
@given(st.lists(st.tuples(written(), st.sampled_from(WRAPPERS)), min_size=1, max_size=5),
       st.data())  # fmt: skip
def test_wrapped_iocs_in_noise_are_found(
    wrapped: list[tuple[Ioc, str]], data: st.DataObject
) -> None:
    iocs = [Ioc(ioc.type, ioc.value, how.format(ioc.text)) for ioc, how in wrapped]
    # one boundary rule for every kind: what wraps a value is not part of it
    text, found, lines = found_in_noise(data, iocs)
    for (ioc, _), line in zip(wrapped, lines, strict=True):
        if in_text(ioc) and not is_bare_file_name(ioc):
            assert (ioc.value, line) in found, (ioc, line, text, found)


# -- the line reader ---------------------------------------------------------------------------


def read_file(data: bytes, fmt: str, *, max_line: int = 1 << 20, **options: object) -> list[Chunk]:
    """The chunks `read_source` gives for a file holding `data`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input")
        with open(path, "wb") as f:
            f.write(data)
        opts = InputOptions(format=fmt, **options)  # type: ignore[arg-type]
        return list(read_source(path, opts, max_line=max_line))


def candidates(chunks: list[Chunk]) -> Iterator[tuple[int, str | None, str | None]]:
    """(line, text, why not) for every candidate, in order."""
    for chunk in chunks:
        for i, text in enumerate(chunk.lines):
            yield chunk.line_of(i), text, chunk.errors.get(i) if text is None else None


junk_line = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" "))
line_end = st.sampled_from([b"\n", b"\r\n"])


@COSTLY
@given(
    st.lists(st.one_of(written(), junk_line), min_size=1, max_size=30),
    line_end,
    st.booleans(),
    st.booleans(),
)
def test_a_line_that_is_an_ioc_gives_that_ioc_on_its_line(
    lines: list[Ioc | bytes], end: bytes, bom: bool, last_ended: bool
) -> None:
    raw = [x.text.encode() if isinstance(x, Ioc) else x for x in lines]
    last_ended = last_ended or not raw[-1]  # an empty last line without an end is no line
    data = (b"\xef\xbb\xbf" if bom else b"") + end.join(raw) + (end if last_ended else b"")
    assume(compression_of(data) is None)  # junk that starts with a magic number: see below
    got = list(candidates(read_file(data, "lines")))
    assert [n for n, _, _ in got] == list(range(1, len(lines) + 1))  # every line, in order
    for (_, text, why), line in zip(got, lines, strict=True):
        if isinstance(line, Ioc):
            assert text is not None
            assert normalize(text.strip()) == (line.type, line.value)
        else:
            assert (text is None) == (why is not None)  # unreadable, and says why


# -- any bytes, every format -------------------------------------------------------------------

COMPRESS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}
MAGIC = [b"\x1f\x8b", b"\x1f\x8b\x08\x00", b"BZh9", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"]
PIECES = [b"\n", b"\r\n", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\xc3", b"\xe2\x82", b'"', b",",
          b"\t", b"{", b"}", b"[", b"]", b'{"a": "evil.com"}', b"#fields\tx", b"#separator \\x09",
          b"evil[.]com", b"1.2.3.4", b"d41d8cd98f00b204e9800998ecf8427e",
          b"2001:db8::1"]  # fmt: skip
bytes_pieces = st.one_of(st.binary(max_size=40), st.sampled_from(PIECES))
any_bytes = st.lists(bytes_pieces, max_size=40).map(b"".join)


@st.composite
def files(draw: st.DrawFn) -> bytes:
    """Bytes as a file may hold them: plain, compressed, compressed and cut short, or a
    compression's magic number followed by anything."""
    data = draw(any_bytes)
    how = draw(st.sampled_from(["plain", "compressed", "cut", "magic"]))
    if how == "compressed":
        data = COMPRESS[draw(st.sampled_from(sorted(COMPRESS)))](data)
    elif how == "cut":
        packed = COMPRESS[draw(st.sampled_from(sorted(COMPRESS)))](data)
        data = packed[: draw(st.integers(0, max(0, len(packed) - 1)))]
    elif how == "magic":
        data = draw(st.sampled_from(MAGIC)) + data
    return data


@COSTLY
@given(files(), st.sampled_from(FORMATS), st.sampled_from([8, 64, 1 << 20]))
@example(b"\x1f\x8b", "lines", 1 << 20)
@example(b"\x1f\x8b\x08" + bytes(12), "lines", 1 << 20)  # zlib.error, once let through
@example(b"\x28\xb5\x2f\xfd", "json", 1 << 20)
@example(b"a" * 20 + b"\nevil.com\n", "lines", 8)
@example(b'"a\x00b",evil.com\n', "csv", 1 << 20)
@example(b"#separator \\x09\n#fields\tx\n1.2.3.4\n", "auto", 1 << 20)
def test_every_reader_takes_any_bytes(data: bytes, fmt: str, max_line: int) -> None:
    chunks = read_file(data, fmt, max_line=max_line)
    for chunk in chunks:
        if chunk.line_numbers is not None:
            assert len(chunk.line_numbers) == len(chunk.lines)
        assert set(chunk.errors) <= {i for i, text in enumerate(chunk.lines) if text is None}
    for _, text, why in candidates(chunks):
        if text is None:
            assert why  # a reject says why
        else:
            text.encode("utf-8")  # no lone surrogate: it can be written to the rejects file
            normalize(text)
        if fmt == "text" and text is not None:
            canonical(text)  # free text gives only IOCs, already normalized


@COSTLY
@given(st.lists(junk_line, max_size=20), st.sampled_from([8, 16, 64]), line_end)
@example([b"a" * 9], 8, b"\n")
@example([b"a" * 9, b"b"], 8, b"\n")
@example([b"\xef\xbb\xbf"], 8, b"\n")
def test_lines_longer_than_the_cap_are_rejects_and_the_rest_are_kept(
    lines: list[bytes], max_line: int, end: bytes
) -> None:
    data = b"".join(line + end for line in lines)
    assume(compression_of(data) is None)
    got = list(candidates(read_file(data, "lines", max_line=max_line)))
    assert [n for n, _, _ in got] == list(range(1, len(lines) + 1))
    if lines:
        lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")  # a BOM at the start is dropped
    for (_, text, why), line in zip(got, lines, strict=True):
        line += end[:-1]  # the \r of a CRLF stays on the line: the engine strips it
        if len(line) > max_line:
            assert (text, why) == (None, f"line longer than {max_line} bytes"), line
        else:
            try:
                assert text == line.decode("utf-8")
            except UnicodeDecodeError:
                assert text is None and why is not None and "UTF-8" in why


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
@COSTLY
@given(data=any_bytes)
def test_a_column_that_is_not_there_is_an_error_or_nothing(fmt: str, data: bytes) -> None:
    try:
        read_file(data, fmt, columns=("no such column",))
    except InputError as exc:
        assert "no column named 'no such column'" in str(exc)


def test_the_tables_stay_bounded() -> None:
    # a flood of distinct names empties both caches rather than growing them
    text = " ".join(f"host{i}.evil.com 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
                    for i in range(70_000))  # fmt: skip
    assert len(extract(text)) == 140_000
    assert len(known_canonical()) <= extract_module.KNOWN_MAX
    assert len(extract_module._NAMES) <= extract_module._NAMES_MAX


def test_the_tables_keep_no_long_token() -> None:
    # Dotted tokens longer than any name (a minified page, a hostile line) are judged but
    # not remembered, so the tables' size in bytes is bounded too, not only their count.
    from enricher.inputs import suffixes

    before = suffixes.registrable.cache_info().currsize
    for i, top in enumerate(["uk", "com", "zip"] * 20):
        line = "a." * 20_000 + f"x{i}.{top} short{i}.evil.co.uk"
        assert extract(line) == [f"short{i}.evil.co.uk"]
    assert max(map(len, extract_module._NAMES), default=0) <= 253 + 65
    assert max(map(len, known_canonical()), default=0) <= 253
    assert suffixes.registrable.cache_info().currsize - before <= 60  # the short names only


# -- structured formats: every chosen value arrives, on its line ------------------------------

note = st.text(st.sampled_from([*"abc XYZ,;\t\"'\n\r|", "é", "ж", "—"]), max_size=15)


@COSTLY
@given(st.lists(st.tuples(written(), note), min_size=1, max_size=12), st.sampled_from(",;\t|"))
def test_each_csv_row_gives_its_chosen_cell_on_its_line(
    rows: list[tuple[Ioc, str]], delimiter: str
) -> None:
    out = io.StringIO()
    # CRLF, as the csv module writes by default: with "\n" it would leave a bare "\r" in a
    # cell unquoted, which no reader can tell from a line end
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["note", "ioc"])
    lines = []
    for ioc, text in rows:
        lines.append(out.getvalue().count("\n") + 1)
        writer.writerow([text, ioc.text])
    fmt = "tsv" if delimiter == "\t" else "csv"
    got = list(candidates(read_file(out.getvalue().encode(), fmt, columns=("ioc",))))
    want = [(line, ioc.type, ioc.value) for line, (ioc, _) in zip(lines, rows, strict=True)]
    assert [(n, *normalize(text)) for n, text, _ in got if text is not None] == want, got
    assert all(text is not None for _, text, _ in got)  # nothing rejected


@COSTLY
@given(st.lists(st.tuples(written(), note), min_size=1, max_size=12), st.booleans())
def test_each_json_record_gives_its_chosen_field(
    records: list[tuple[Ioc, str]], pretty: bool
) -> None:
    docs = [{"note": text, "event": {"ioc": ioc.text}} for ioc, text in records]
    want = [(ioc.type, ioc.value) for ioc, _ in records]
    as_lines = "\n".join(json.dumps(d, ensure_ascii=False) for d in docs).encode()
    got = list(candidates(read_file(as_lines, "ndjson", fields=("event.ioc",))))
    assert [n for n, _, _ in got] == list(range(1, len(records) + 1))
    assert [normalize(text) for _, text, _ in got if text is not None] == want
    document = json.dumps(docs, indent=2 if pretty else None, ensure_ascii=pretty).encode()
    got = list(candidates(read_file(document, "json", fields=("event.ioc",))))
    assert [normalize(text) for _, text, _ in got if text is not None] == want
    if pretty:  # each record on the line where it starts, after the `[` line
        sizes = [json.dumps(d, indent=2).count("\n") + 1 for d in docs]
        assert [n for n, _, _ in got] == [2 + sum(sizes[:i]) for i in range(len(docs))]


# -- streaming: a file that arrives in pieces reads as when it arrives whole ------------------


class Pieces:
    """A stream that gives `data` in pieces of the sizes drawn, as a slow pipe does."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data = data
        self.sizes = iter(sizes)

    def read1(self, size: int = -1, /) -> bytes:
        n = next(self.sizes, 1 << 20)
        piece, self.data = self.data[:n], self.data[n:]
        return piece


def read_stream(f: Readable, fmt: str, sample: str) -> list[tuple[int, str | None, str | None]]:
    if fmt == "lines":
        chunks = line_chunks(f, "s", 1 << 20)
    elif fmt == "text":
        chunks = read_text(f, "s", max_line=1 << 20)
    elif fmt == "ndjson":
        chunks = read_ndjson(f, "s", fields=(), max_line=1 << 20)
    elif fmt == "json":
        chunks = read_json(f, "s", fields=())
    else:
        chunks = read_delimited(f, "s", dialect=csv_dialect(sample), columns=(), max_line=1 << 20)
    return [(n, text, why) for n, text, why in candidates(list(chunks))]


SPLITTERS = ["\n", "\r\n", ",", '"', "{", "}", "[", "]", ":", "é", "\U0001f600"]
stream_text = st.lists(
    st.one_of(written().map(lambda ioc: ioc.text), noise_word, before, after,
              st.sampled_from(SPLITTERS)),
    max_size=40,
).map("".join)  # fmt: skip


@COSTLY
@given(
    stream_text,
    st.lists(st.integers(1, 40), max_size=200),
    st.sampled_from(FORMATS[:-1]),
    st.sampled_from(["", "\ufeff"]),
)
@example("d41d8cd98f00b204e9800998ecf8427e\n", [1, 1, 1], "lines", "\ufeff")
def test_a_file_in_pieces_reads_as_the_whole(
    text: str, sizes: list[int], fmt: str, bom: str
) -> None:
    data = (bom + text).encode()
    whole = read_stream(Pieces(data, [len(data) + 1]), fmt, text)
    # the same candidates, each on the same line; not always in the same order, since a scan
    # gives one kind after another in each block (names, hashes, IPv6 addresses)
    assert sorted(read_stream(Pieces(data, sizes), fmt, text), key=str) == sorted(whole, key=str)
