"""Inputs: paths, directories and globs; the flags; telling formats; streaming (a slow pipe
flows, a big JSON document is never held whole)."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from format_helpers import read
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.errors import InputError, SettingsError
from enricher.inputs import Chunk, InputOptions, add_arguments, check_inputs, input_options
from enricher.inputs.delimited import Dialect
from enricher.inputs.jsonstream import JsonError, json_items
from enricher.inputs.read import in_thread, read_source
from enricher.inputs.sniff import csv_dialect, detect, tsv_dialect

# -- paths, directories, globs --------------------------------------------------------------


def test_directories_are_read_recursively_without_hidden_files(tmp_path: Path) -> None:
    for name in ["b/2.txt", "a/1.txt", "a/.hidden", ".git/config", "top.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    got = check_inputs([str(tmp_path), str(tmp_path / "top.txt"), "-"])
    assert got == [str(tmp_path / p) for p in ["top.txt", "a/1.txt", "b/2.txt"]] + ["-"]


def test_globs_are_expanded_by_us(tmp_path: Path) -> None:
    for name in ["x/a.log", "x/b.log", "x/y/c.log", "x/d.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    assert check_inputs([str(tmp_path / "x" / "*.log")]) == [
        str(tmp_path / "x" / "a.log"),
        str(tmp_path / "x" / "b.log"),
    ]
    assert len(check_inputs([str(tmp_path / "**" / "*.log")])) == 3
    literal = tmp_path / "odd[1].txt"  # an existing name is taken as it is
    literal.write_text("x\n")
    assert check_inputs([str(literal)]) == [str(literal)]


def test_clear_input_errors(tmp_path: Path) -> None:
    assert check_inputs([]) == ["-"]
    with pytest.raises(InputError, match=r"input not found: .*missing\.txt"):
        check_inputs([str(tmp_path / "missing.txt")])
    with pytest.raises(InputError, match=r"no input matches the pattern '.*\*\.csv'"):
        check_inputs([str(tmp_path / "*.csv")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="input is a directory with no files in it"):
        check_inputs([str(tmp_path / "empty")])
    (tmp_path / "link").symlink_to(tmp_path / "gone.txt")
    with pytest.raises(InputError, match="broken link"):
        check_inputs([str(tmp_path / "link")])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_input(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("x\n")
    path.chmod(0)
    with pytest.raises(InputError, match="not readable"):
        check_inputs([str(tmp_path)])


# -- flags ----------------------------------------------------------------------------------


def test_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--format", "csv", "--column", "ip", "--column", "3"])
    assert input_options(args) == InputOptions(format="csv", columns=("ip", "3"))
    args = parser.parse_args(["--format", "auto", "--field", "answers[*].rdata"])
    assert input_options(args).field_paths[0][0] == "answers"
    assert input_options(parser.parse_args([])).format == "lines"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "xml"}, "--format must be one of lines, csv"),
        ({"format": "lines", "columns": ("ip",)}, "--column reads CSV or TSV"),
        ({"format": "csv", "fields": ("a.b",)}, "--field reads JSON"),
        ({"format": "csv", "columns": ("0",)}, "columns are numbered from 1"),
        ({"format": "json", "fields": ("a..b",)}, "empty key"),
        ({"format": "json", "fields": ("a[x]",)}, "not a key with"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        InputOptions(**options)


# -- telling formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sample", "fmt"),
    [
        ("x.csv.gz", "a,b\n1,2\n", "csv"),
        ("x.TSV", "a\tb\n", "tsv"),
        ("x.jsonl", "{}", "ndjson"),
        ("eve.json", '{"a": 1}\n{"a": 2}\n', "ndjson"),
        # NDJSON whose first record is cut or damaged: still one value a line
        ("eve.json", '{"a": "1.2.3.4"\n{"a": 2}\n{"a": 3}\n', "ndjson"),
        ("eve.json", '{"a": "1.2.3.4", \n{"a": 2}\n', "ndjson"),
        # a document over lines, with whole records on some of them, is one document
        (
            "misp.json",
            '{"Event": {\n  "Attribute": [\n    {"v": 1},\n    {"v": 2}\n  ]\n}}\n',
            "json",
        ),
        ("misp.json", '{"Event":\n  {"a": 1}\n}\n', "json"),
        ("misp.json", '{\n  "Event": {}\n}\n', "json"),
        ("", "[\n{}]", "json"),
        ("x.adoc", "evil.com\n", "text"),
        ("", "#separator \\x09\n#fields\tts\n", "tsv"),
        ("x.txt", "# list\nevil.com\n1.2.3.4\n\nd41d8cd98f00b204e9800998ecf8427e\n", "lines"),
        ("x.log", "date;host;ip\n2024;a;1.2.3.4\n2024;b;5.6.7.8\n", "csv"),
        ("x.log", "a\tb\tc\n1\t2\t3\n", "tsv"),
        ("x.log", "Feb 20 10:00:01 dns query: evil.com from 1.2.3.4\nFeb 20 ok\n", "text"),
        ("", "", "lines"),
    ],
)
def test_detect(name: str, sample: str, fmt: str) -> None:
    assert detect(name, sample)[0] == fmt


def test_dialects() -> None:
    assert csv_dialect("a;b;c\n1;2;3\n") == Dialect(delimiter=";")
    assert csv_dialect("only one line with , and ;;") == Dialect(delimiter=";")
    assert tsv_dialect('a\tb\n"x\ty"\t2\n').quoted
    assert not tsv_dialect("a\tb\n").quoted
    assert tsv_dialect("#separator \\x09\n").zeek


# -- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "first", "rest"),
    [
        ("lines", b"first.com\n", b"second.com\n"),
        ("text", b"see first.com\n", b"then second.com\n"),
        ("csv", b"ioc,n\nfirst.com,1\n", b"second.com,2\n"),
        ("ndjson", b'{"ioc": "first.com"}\n', b'{"ioc": "second.com"}\n'),
        ("json", b'[{"ioc": "first.com"},', b'{"ioc": "second.com"}]\n'),
        (
            "lines.gz",
            gzip.compress(b"first.com\n", mtime=0),
            gzip.compress(b"second.com\n", mtime=0),
        ),
    ],
)
async def test_a_slow_pipe_flows(fmt: str, first: bytes, rest: bytes) -> None:
    r, w = os.pipe()
    got: list[str | None] = []

    async def consume() -> None:
        options = InputOptions(format=fmt.split(".")[0])
        async for chunk in in_thread(read_source(f"/dev/fd/{r}", options, max_line=1 << 20)):
            got.extend(chunk.lines)

    task = asyncio.create_task(consume())
    os.write(w, first)
    for _ in range(300):
        await asyncio.sleep(0.01)
        if got:
            break
    assert got == ["first.com"]  # delivered while the writer still holds the pipe open
    os.write(w, rest)
    os.close(w)
    await asyncio.wait_for(task, 5)
    os.close(r)
    assert got == ["first.com", "second.com"]


def test_a_big_json_array_is_streamed() -> None:
    served = 0

    def pieces() -> Iterator[str]:
        nonlocal served
        yield "["
        for i in range(1_000_000):
            piece = json.dumps({"n": i, "ioc": f"host{i}.evil.com"}) + ","
            served += len(piece)
            yield piece

    it = pieces()
    items = json_items(lambda: next(it, ""), max_item=1 << 20)
    got = [x for x in (next(items) for _ in range(2000)) if x is not None]
    assert got[0] == ((0,), {"n": 0, "ioc": "host0.evil.com"}, 1)
    assert served < 100_000  # a few records ahead, not the document
    items.close()


def test_invalid_json_stops_the_file_with_a_reject(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n{"ioc": "good.com"},\n{"ioc": "x.com" "y"},\n{"ioc": "after.com"}\n]\n')
    got = read([path], format="json")
    assert got.iocs == ["good.com"]
    assert got.rejects == [(str(path), 3, "not valid JSON: Expecting ',' delimiter")]
    # the rest of the file was not read: the input is damaged (the run exits 1)
    assert got.damaged == [
        (str(path), "not valid JSON at line 3 (Expecting ',' delimiter): the rest was not read")
    ]
    lines = tmp_path / "bad.ndjson"
    lines.write_text('{"ioc": "good.com"}\nnot json\n{"ioc": "after.com"}\n')
    got = read([lines], format="ndjson")
    assert got.iocs == ["good.com", "after.com"]
    assert got.rejects == [(str(lines), 2, "not valid JSON")]
    assert got.damaged == []


def test_ndjson_called_json_is_read_as_ndjson_whatever_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    path.write_text('{"dest_ip": "1.2.3.4", "x\n{"dest_ip": "5.6.7.8"}\n{"host": "a.evil.com"}\n')
    got = read([path], format="auto")
    assert got.formats == {str(path): "ndjson, auto"}
    assert got.iocs == ["5.6.7.8", "a.evil.com"]  # not one reject for the whole file
    assert got.rejects == [(str(path), 1, "not valid JSON")] and got.damaged == []


def test_a_long_line_of_text_is_cut_between_words(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    words = " ".join(f"<td>host{i}.evil.com</td>" for i in range(2000))
    path.write_text(f"<html>{words}</html>\nlast.evil.com\n")
    got = read([path], format="text", max_line=4096)
    assert got.set == {f"host{i}.evil.com" for i in range(2000)} | {"last.evil.com"}
    assert got.lines_of["host1999.evil.com"] == 1 and got.lines_of["last.evil.com"] == 2
    assert got.lines_read == 2


def test_a_long_line_of_text_with_no_space_is_never_cut_inside_an_ioc(tmp_path: Path) -> None:
    # no space or delimiter in a line longer than a read: it was cut at the read's end,
    # which split `evil841.example.org` into `841.example.org` (attack-dedupe finding 2);
    # now after a byte no name holds (`/`), and a run of name bytes longer than the cap,
    # which is no IOC, is dropped whole, not cut into pieces
    path = tmp_path / "urls.txt"
    hosts = [f"evil{i}.example.org" for i in range(40_000)]
    run = "x" * 540_000 + "-evil.example.org"
    path.write_text("/".join(hosts) + f"\na/{run}/b\nnext.evil.com\n")
    got = read([path], format="text", max_line=4096)
    assert got.set <= {*hosts, "next.evil.com"}
    assert got.lines_of["next.evil.com"] == 3 and got.lines_read == 3


@pytest.mark.parametrize("sep", [":", "%20", ")(", "]["])
def test_a_long_line_of_iocs_joined_by_host_bytes_loses_none(tmp_path: Path, sep: str) -> None:
    # a line longer than a read (256 KiB) joined by bytes a defanged or IPv6 IOC holds (no
    # `/`, `?`, `=`, `&`) was taken for one run of name bytes and dropped: every IOC lost
    path = tmp_path / "joined.txt"
    iocs = [f"{i // 250 + 1}.{i % 250}.7.8" for i in range(12_000)]
    iocs += [f"evil{i}.example.com" for i in range(12_000)]
    path.write_text(sep.join(iocs) + "\nnext.evil.com\n")
    got = read([path], format="text", max_line=4096)
    assert got.set == {*iocs, "next.evil.com"}


async def test_stopping_early_closes_the_input(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("evil.com\n" * 200_000)
    closed: list[bool] = []

    def chunks() -> Iterator[Chunk]:
        try:
            yield from read_source(str(path), InputOptions(format="lines"), max_line=1 << 20)
        finally:
            closed.append(True)

    async for _ in in_thread(chunks()):
        break
    for _ in range(100):
        if closed:
            break
        await asyncio.sleep(0.01)
    assert closed == [True]


# JSON documents of any shape, cut anywhere, stream to the same parts as when read whole.
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


def _parts(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, Any]]:
    """What json_items promises, computed from the whole value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _parts(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*path, i), item
    else:
        yield path, value


@settings(max_examples=300, deadline=None)
@given(st.lists(_VALUES, min_size=1, max_size=3), st.integers(1, 40), st.booleans())
def test_json_stream_matches_a_whole_parse(docs: list[Any], size: int, pretty: bool) -> None:
    text = "\n".join(json.dumps(d, indent=2 if pretty else None) for d in docs)
    pieces = iter([text[i : i + size] for i in range(0, len(text), size)])
    got = [
        (p, v) for p, v, _ in filter(None, json_items(lambda: next(pieces, ""), max_item=1 << 20))
    ]
    assert got == [part for d in docs for part in _parts(d)]


@pytest.mark.parametrize("text", ['{"a": tru}', "[1, 2", '{"a" 1}', "[1 2]", '{"a": [1, }'])
def test_json_stream_errors(text: str) -> None:
    pieces = iter([text, ""])
    with pytest.raises(JsonError):
        list(json_items(lambda: next(pieces, ""), max_item=1 << 20))


def test_memory_does_not_grow_with_the_size_of_a_json_document(tmp_path: Path) -> None:
    import tracemalloc

    async def peak(n: int) -> int:
        path = tmp_path / f"{n}.json"
        with path.open("w") as f:
            f.write(
                "["
                + ",\n".join(json.dumps({"i": i, "ioc": f"h{i % 500}.evil.com"}) for i in range(n))
            )
            f.write("]")
        tracemalloc.start()
        try:
            async for _ in read_inputs_for(path):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, big = asyncio.run(peak(10_000)), asyncio.run(peak(40_000))
    # four times the records, about the same memory (names repeat: the caches are bounded too)
    assert big < small * 1.3 + 1_000_000, (small, big)


def read_inputs_for(path: Path) -> Any:
    from enricher.inputs import read_inputs

    return read_inputs([str(path)], InputOptions(format="json"))


def test_the_reader_keeps_its_interface() -> None:
    import enricher.inputs as reader

    assert set(reader.__all__) >= {
        "Chunk", "InputOptions", "add_arguments", "check_inputs", "input_options", "read_inputs",
    }  # fmt: skip
    assert all(hasattr(reader, name) for name in reader.__all__)
    chunk = reader.Chunk("s", 3, ["a", None], {1: "why"}, line_numbers=[3, 9], lines_read=10)
    assert (chunk.line_of(1), chunk.nbytes) == (9, None)


def test_a_quote_never_closed_costs_one_row(tmp_path: Path) -> None:
    # The quote takes the lines after it into its field until the csv module refuses a field
    # that long (128 KiB): those lines are read again as rows of their own, not lost.
    hosts = [f"h{i}.example.com" for i in range(10_000)]
    path = tmp_path / "open-quote.csv"
    path.write_text("host,ip\n" + '"open,1.1.1.1\n' + "".join(f"{h},10.0.0.1\n" for h in hosts))
    for columns in [(), ("host",)]:
        got = read([path], format="csv", columns=columns)
        assert set(hosts) <= got.set
        assert len(got.rejects) == 1
        assert got.rejects[0][1] == 2
        assert got.rejects[0][2].startswith("unreadable CSV row (field larger than field limit")
        assert got.lines_of["h9999.example.com"] == 10_002


# -- keys that say a value is no IOC: whole words, not substrings --------------------------

_MD5_A = "0cc175b9c0f1b6a831c399e269772661"
_MD5_B = "92eb5ffee6ae2fec3ad71c777531578f"
_SHA1_A = "356a192b7913b04c1fb7a0c4e4ab3f9b2e32c3f1"


def test_json_keys_are_skipped_by_their_words(tmp_path: Path) -> None:
    record = {
        "conversion_url": "http://conv-c2.example.net/x",  # `version` inside a word: scanned
        "reversion_ip": "198.51.100.90",
        "ServerVersionHost": "ver-host.example.org",
        "FileVersion": "10.0.0.1",  # a version
        "tls": {"ja3_hash": _MD5_A, "cert_chain_fps": [_SHA1_A]},  # fingerprints
        "x509": {"fingerprint": _SHA1_A, "subject": "CN=cert-cn.example.com"},
        "head_commit": _SHA1_A,
        "Attribute": [
            {"type": "ja3-fingerprint-md5", "value": _MD5_A},  # MISP: the type says so
            {"type": "md5", "value": _MD5_B},
        ],
    }
    path = tmp_path / "event.ndjson"
    path.write_text(json.dumps(record) + "\n")
    for fmt in ("ndjson", "json"):
        got = read([path], format=fmt)
        assert got.set == {
            "conv-c2.example.net", "198.51.100.90", "ver-host.example.org", "cert-cn.example.com",
            _MD5_B,
        }, fmt  # fmt: skip


def test_csv_columns_are_skipped_by_their_words(tmp_path: Path) -> None:
    path = tmp_path / "ssl.csv"
    path.write_text(
        "conversion_domain,ja3_hash,cert_chain_fps,os_version,dst_ip\n"
        f"conv.example.net,{_MD5_A},{_SHA1_A},10.0.19045.1,198.51.100.91\n"
    )
    assert read([path], format="csv").set == {"conv.example.net", "198.51.100.91"}
    # asked for by name, a column is read whatever its name says
    assert read([path], format="csv", columns=("ja3_hash",)).set == {_MD5_A}


# -- UTF-16 and UTF-32, as Windows tools write them ------------------------------------------

_UTF16_IOCS = ["wide-c2.example.net", "198.51.100.92", _MD5_B]
_UTF16_TEXT = {
    "lines": "\n".join(_UTF16_IOCS) + "\n",
    "text": "Get-Content beacon.log\r\n" + " and ".join(_UTF16_IOCS) + " seen\r\n",
    "csv": "indicator,note\r\n" + "".join(f"{x},seen\r\n" for x in _UTF16_IOCS),
    "ndjson": "".join(json.dumps({"ioc": x}) + "\n" for x in _UTF16_IOCS),
    "json": json.dumps([{"ioc": x} for x in _UTF16_IOCS], indent=2),
}
_ENCODINGS = {
    "utf-16": "utf-16-le",  # Python writes a BOM, little-endian here, as PowerShell 5 does
    "utf-16-le": "utf-16-le",  # no BOM: told by its NULs
    "utf-16-be": "utf-16-be",
    "utf-32": "utf-32-le",
}


@pytest.mark.parametrize("encoding", sorted(_ENCODINGS))
@pytest.mark.parametrize("fmt", sorted(_UTF16_TEXT))
def test_utf16_and_utf32_are_read_in_every_format(tmp_path: Path, fmt: str, encoding: str) -> None:
    data = _UTF16_TEXT[fmt].encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    path = tmp_path / f"export.{'txt' if fmt in ('lines', 'text') else fmt}"
    path.write_bytes(data)
    told = read([path], format=fmt)
    assert told.set == set(_UTF16_IOCS), (fmt, encoding)
    assert told.rejects == []
    assert told.formats[str(path)] == f"{fmt}, {_ENCODINGS[encoding]}"
    if fmt != "lines":  # a .txt file of lines is told apart from text by its content
        assert read([path], format="auto").set == set(_UTF16_IOCS)


def test_utf16_compressed_and_piped_in_pieces(tmp_path: Path) -> None:
    data = _UTF16_TEXT["lines"].encode("utf-16")
    path = tmp_path / "export.txt.gz"
    path.write_bytes(gzip.compress(data))
    got = read([path], format="lines")
    assert got.set == set(_UTF16_IOCS)
    assert got.formats[str(path)] == "lines, gzip, utf-16-le"

    class Trickle:  # one byte a read: the BOM and the NULs arrive apart
        def __init__(self) -> None:
            self.data = data

        def read1(self, size: int = -1, /) -> bytes:
            piece, self.data = self.data[:1], self.data[1:]
            return piece

    from enricher.inputs.encoding import transcoded

    stream, encoding = transcoded(Trickle())
    assert encoding == "utf-16-le"
    out = b"".join(iter(lambda: stream.read1(7), b""))
    assert out.decode("utf-8") == _UTF16_TEXT["lines"]


def test_bytes_that_only_start_like_utf16_stay_as_they_are(tmp_path: Path) -> None:
    # a UTF-16 mark with no NUL after it is no UTF-16 text: read as UTF-8 (and rejected)
    path = tmp_path / "odd.txt"
    path.write_bytes(b"\xff\xfe bad-mark.example.net\nok.example.net\n")
    got = read([path], format="lines")
    assert got.set == {"ok.example.net"}
    assert [r[2] for r in got.rejects] == ["not valid UTF-8 (byte 0)"]
    assert got.formats[str(path)] == "lines"


@pytest.mark.parametrize("head", [b"\x00\x80", b"\x00", b"\x00a\x00", b"a\x00b\x00\xff"])
def test_a_stray_nul_in_a_short_line_is_no_utf16(tmp_path: Path, head: bytes) -> None:
    # UTF-16 without a mark starts with a few ASCII characters, each with its NUL: a file of
    # one short line holding a NUL is a line of bad bytes, read as UTF-8
    from enricher.inputs.encoding import transcoded

    class Once:
        def __init__(self) -> None:
            self.data = head + b"\n"

        def read1(self, size: int = -1, /) -> bytes:
            data, self.data = self.data, b""
            return data

    stream, encoding = transcoded(Once())
    assert encoding is None
    assert stream.read1(1 << 16) == head + b"\n"


def test_nul_lines_are_no_utf16_but_utf16_after_blank_lines_is(tmp_path: Path) -> None:
    # `\0\n` four times is UTF-16 BE of four line ends as much as four lines of a NUL: with no
    # printable character beside a NUL it stays UTF-8 (lines of bad bytes), found by
    # test_lines_longer_than_the_cap_are_rejects_and_the_rest_are_kept; UTF-16 whose first
    # lines are blank is read on until a character shows it
    from enricher.inputs.encoding import transcoded

    class Once:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read1(self, size: int = -1, /) -> bytes:
            data, self.data = self.data[:8], self.data[8:]  # a few bytes a read
            return data

    stream, encoding = transcoded(Once(b"\x00\n" * 4))
    assert encoding is None
    assert stream.read1(1 << 16) + stream.read1(1 << 16) == b"\x00\n" * 4
    text = "\n\n\n\n\nevil.example.com\n"
    for name in ("utf-16-be", "utf-16-le"):
        stream, encoding = transcoded(Once(text.encode(name)))
        assert encoding == name
        path = tmp_path / f"{name}.txt"
        path.write_bytes(text.encode(name))
        assert read([path], format="lines").set == {"evil.example.com"}
