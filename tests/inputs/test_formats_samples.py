"""Realistic exports (tests/data/formats): each IOC found, file names not taken for domains,
the chosen columns and fields read, and every format and compression giving the same IOCs."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import sys
from pathlib import Path

import pytest
import zstandard
from format_helpers import DATA, expected, read, samples

from enricher.errors import InputError

FORMAT_OF = {
    "export.csv": "csv, auto",
    "export.tsv": "tsv, auto",
    "hashes.txt": "lines, auto",
    "misp-event.json": "json, auto",
    "records.ndjson": "ndjson, auto",
    "report.adoc": "text, auto",
    "report.html": "text, auto",
    "report.md": "text, auto",
    "report.rst": "text, auto",
    "suricata-eve.json": "ndjson, auto",
    "sysmon-event.txt": "text, auto",
    "sysmon.ndjson": "ndjson, auto",
    "triage-utf16.txt": "text, utf-16-le, auto",
    "zeek-conn.log": "tsv (Zeek), auto",
    "zeek-dns.log": "tsv (Zeek), auto",
}


def test_every_sample_is_covered() -> None:
    assert samples() == sorted(FORMAT_OF)


@pytest.mark.parametrize("name", sorted(FORMAT_OF))
def test_sample_gives_exactly_its_iocs(name: str) -> None:
    got = read([DATA / name], format="auto")
    assert got.formats == {str(DATA / name): FORMAT_OF[name]}
    want = expected(name)
    assert got.set - want == set(), "found what is no IOC of the sample"
    assert want - got.set == set(), "missed IOCs of the sample"
    assert got.rejects == []


@pytest.mark.parametrize(
    "name", ["report.adoc", "report.md", "report.html", "report.rst", "sysmon-event.txt"]
)
def test_file_names_are_not_domains(name: str) -> None:
    text = (DATA / name).read_text()
    got = read([DATA / name], format="text").set
    for file_name in ["invoice.pdf", "setup.exe", "readme.md", "settings.ini", "package.json",
                      "index.js", "install.sh", "update.py", "kit.zip", "logo.png", "app.js",
                      "favicon.ico", "stage2.ps1", "explorer.exe"]:  # fmt: skip
        if file_name in text:
            assert file_name not in got


def test_each_ioc_is_found_where_it_first_appears() -> None:
    got = read([DATA / "report.adoc"], format="text")
    lines = (DATA / "report.adoc").read_text().split("\n")
    for ioc, n in got.lines_of.items():
        assert ioc.split(".")[0] in lines[n - 1].lower().replace("[.]", ".").replace("(.)", ".")


# -- the columns and fields a user points at ------------------------------------------------


def test_csv_column_by_name_and_by_index() -> None:
    by_name = read([DATA / "export.csv"], format="csv", columns=("indicator",))
    by_index = read([DATA / "export.csv"], format="csv", columns=("1",))
    assert by_name.set == by_index.set == expected("export.csv")
    # the last row's `invoice.pdf` is no domain: a reject that says why
    assert by_name.rejects == [
        (str(DATA / "export.csv"), 9, "domain without a public suffix (a file name?)")
    ]
    assert by_name.lines_of["cdn2-msftupdate.net"] == 8


def test_csv_column_that_is_not_in_the_header() -> None:
    with pytest.raises(InputError, match=r"no column named 'sha265'.*'indicator', 'type'"):
        read([DATA / "export.csv"], format="csv", columns=("sha265",))


def test_tsv_and_zeek_columns() -> None:
    got = read([DATA / "export.tsv"], format="tsv", columns=("destination", "SHA1"))
    assert got.set == {
        "update-check-service.com", "185.220.101.47", "files-cdn.ru", "cdn-msftupdate.net",
        "826420e65ec10f9c0cdf82faa8ced6390832f5e6", "4059242722d8c08858268222de1a4e43cb19927d",
    }  # fmt: skip
    assert got.rejects == []  # `-` is no value, not a reject
    zeek = read([DATA / "zeek-dns.log"], format="auto", columns=("query", "answers"))
    assert zeek.set == {
        "update-check-service.com", "185.220.101.47", "45.146.164.110", "cdn-msftupdate.net",
        "2a0b:4140:d2e1::15", "tor-exit-47.relay-ops.net",
    }  # fmt: skip
    # a reverse lookup and an internal name are never sent, in a chosen column either
    assert [(r[1], r[2]) for r in zeek.rejects] == [
        (11, "special-use or internal name (.onion, .local, .arpa, ...)"),  # in-addr.arpa
        (12, "special-use or internal name (.onion, .local, .arpa, ...)"),  # wpad.corp.local
    ]


def test_ndjson_fields() -> None:
    got = read(
        [DATA / "records.ndjson"],
        format="ndjson",
        fields=("process.hash.md5", "dns.answers[*].rdata", "destination.domain"),
    )
    assert got.set == {
        "8b1fdfac8fe38356708b4bb683ff7cca", "7353f60b1739074eb17c5f4dddefe239",
        "185.220.101.47", "45.146.164.110", "update-check-service.com",
    }  # fmt: skip
    assert got.rejects == []
    suricata = read(
        [DATA / "suricata-eve.json"],
        format="auto",
        fields=("tls.sni", "dns.answers.rdata", "fileinfo.sha256", "tls.ja3.hash"),
    )
    assert suricata.set == {
        "update-check-service.com", "45.146.164.110",
        "c73d405d9cc8d18407763568b9759cc28ead6701d4c6b4646c79c413b3f87fad",
        "e7d705a3286e19ea42f587b344ee6865",  # asked for by name, so passed on
    }  # fmt: skip


def test_sysmon_hashes_field_gives_each_file_hash() -> None:
    got = read([DATA / "sysmon.ndjson"], format="ndjson", fields=("winlog.event_data.Hashes",))
    assert got.iocs == [
        "826420e65ec10f9c0cdf82faa8ced6390832f5e6",
        "8b1fdfac8fe38356708b4bb683ff7cca",
        "e4fd277eda17a946afd024f2d1478243e70df236282cbeeb36e764d492f74247",
    ]  # and not the IMPHASH


def test_misp_attribute_values() -> None:
    paths = ("Event.Attribute[*].value", "Event.Object[*].Attribute[*].value")
    got = read([DATA / "misp-event.json"], format="json", fields=paths)
    assert got.set == expected("misp-event.json")
    assert sorted(r[2] for r in got.rejects) == [
        "domain without a public suffix (a file name?)",  # invoice.pdf
        "domain without a public suffix (a file name?)",  # setup.exe
        "hex string of unsupported length (md5, sha1, sha256 have 32, 40, 64)",  # 274432
        "invalid character in domain",  # a sentence
    ]


def test_flattened_keys_and_a_selected_object(tmp_path: Path) -> None:
    path = tmp_path / "flat.ndjson"
    path.write_text(
        json.dumps({"source.ip": "10.1.1.1", "dns": {"q": "a.evil.com", "n": 3}}) + "\n"
    )
    assert read([path], format="ndjson", fields=("source.ip",)).iocs == ["10.1.1.1"]
    assert read([path], format="ndjson", fields=("dns",)).iocs == ["a.evil.com"]


# -- every format and compression gives the IOCs of the same content as plain lines ---------

IOCS = [
    "update-check-service.com", "cdn-msftupdate.net", "files-cdn.ru", "185.220.101.47",
    "45.146.164.110", "2a0b:4140:d2e1::15", "8b1fdfac8fe38356708b4bb683ff7cca",
    "826420e65ec10f9c0cdf82faa8ced6390832f5e6", "xn--e1afmkfd.xn--p1ai",
    "e4fd277eda17a946afd024f2d1478243e70df236282cbeeb36e764d492f74247",
]  # fmt: skip


def _as(fmt: str) -> bytes:
    """The IOCs written the way an export in `fmt` would hold them."""
    if fmt == "lines":
        return ("\n".join(IOCS) + "\n").encode()
    if fmt == "csv":
        rows = ["id,indicator,comment"] + [
            f'{i},"{v}","seen twice, once by sensor ""{i}"""' for i, v in enumerate(IOCS)
        ]
        return ("\r\n".join(rows) + "\r\n").encode()
    if fmt == "tsv":
        rows = ["id\tindicator\tcomment"] + [f"{i}\t{v}\tseen\t-" for i, v in enumerate(IOCS)]
        return ("\n".join(rows) + "\n").encode()
    records = [{"n": i, "ioc": {"value": v, "tags": ["x", "y"]}} for i, v in enumerate(IOCS)]
    if fmt == "ndjson":
        return "".join(json.dumps(r) + "\n" for r in records).encode()
    if fmt == "json":
        return json.dumps({"meta": {"count": len(records)}, "results": records}, indent=2).encode()
    defanged = [v.replace(".", "[.]") if "." in v and len(v) < 30 else v for v in IOCS]
    return (
        "# Report\n\nThe loader (see `invoice.pdf`) talks to "
        + ", ".join(defanged[:5])
        + ".\n\n| ioc | note |\n|---|---|\n"
        + "".join(f"| {v} | seen |\n" for v in defanged[5:])
    ).encode()


_COMPRESS = {
    "": lambda b: b,
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".zst": lambda b: zstandard.ZstdCompressor().compress(b),
}
_EXT = {"lines": ".txt", "csv": ".csv", "tsv": ".tsv", "ndjson": ".ndjson", "json": ".json"}


@pytest.mark.parametrize("compression", sorted(_COMPRESS))
@pytest.mark.parametrize("fmt", ["lines", "csv", "tsv", "ndjson", "json", "text"])
def test_same_iocs_in_every_format_and_compression(
    tmp_path: Path, fmt: str, compression: str
) -> None:
    data = _COMPRESS[compression](_as(fmt))
    by_name = tmp_path / f"export{_EXT.get(fmt, '.md')}{compression}"
    by_name.write_bytes(data)
    by_magic = tmp_path / "export.dat"  # no extension: the magic bytes tell the compression
    by_magic.write_bytes(data)
    auto = read([by_name], format="auto")
    told = read([by_magic], format=fmt)
    assert auto.set == told.set == set(IOCS)
    kind = {"": None, ".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}[compression]
    assert auto.formats[str(by_name)] == ", ".join(x for x in (fmt, kind, "auto") if x)
    assert told.formats[str(by_magic)] == ", ".join(x for x in (fmt, kind) if x)


@pytest.mark.parametrize("compression", sorted(_COMPRESS))
def test_compressed_stdin(monkeypatch: pytest.MonkeyPatch, compression: str) -> None:
    data = _COMPRESS[compression](_as("csv"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    got = read(["-"], format="auto")
    assert got.set == set(IOCS)
    assert got.formats["<stdin>"].startswith("csv")


def test_concatenated_streams_and_a_truncated_one(tmp_path: Path) -> None:
    half = len(IOCS) // 2
    first = ("\n".join(IOCS[:half]) + "\n").encode()
    second = ("\n".join(IOCS[half:]) + "\n").encode()
    for name, data in {
        "multi.gz": gzip.compress(first) + gzip.compress(second),
        "multi.bz2": bz2.compress(first) + bz2.compress(second),
        "multi.xz": lzma.compress(first) + lzma.compress(second),
        "multi.zst": zstandard.ZstdCompressor().compress(first)
        + zstandard.ZstdCompressor().compress(second),
    }.items():
        (tmp_path / name).write_bytes(data)
        assert read([tmp_path / name], format="lines").set == set(IOCS), name
    # cut short, anywhere: what came before the cut stands, then a reject says so (zstandard's
    # own stream reader ended quietly at a cut frame, losing all of that frame)
    for kind, compress in [("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress),
                           ("zstd", zstandard.ZstdCompressor().compress)]:  # fmt: skip
        whole = compress(first) + compress(first + second * 2000)
        for cut in (len(whole) // 2, len(whole) - 1):
            (tmp_path / "cut").write_bytes(whole[:cut])
            got = read([tmp_path / "cut"], format="lines")
            assert set(IOCS[:half]) <= got.set
            assert len(got.rejects) == 1, (kind, cut)
            assert got.rejects[0][2].startswith(f"{kind} data is corrupt or truncated")


def test_a_zstd_bomb_is_read_a_bounded_piece_at_a_time() -> None:
    from enricher.inputs.decompress import decompressed

    bomb = zstandard.ZstdCompressor().compress(bytes(200 << 20))  # 200 MiB in a few KiB
    stream, kind = decompressed(io.BufferedReader(io.BytesIO(bomb)))
    sizes = list(iter(lambda: len(stream.read1(1 << 18)), 0))
    assert kind == "zstd" and sum(sizes) == 200 << 20
    assert max(sizes) <= 33 << 20


def test_directories_and_globs_read_every_file(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.csv.gz").write_bytes(gzip.compress(_as("csv")))
    (tmp_path / "a" / "b" / "two.ndjson").write_bytes(_as("ndjson"))
    (tmp_path / "a" / "b" / "three.md").write_bytes(_as("text"))
    from enricher.inputs import check_inputs

    files = check_inputs([str(tmp_path / "a")])
    got = read(files, format="auto")
    assert got.set == set(IOCS)
    assert list(got.formats.values()) == ["csv, gzip, auto", "text, auto", "ndjson, auto"]
    assert check_inputs([str(tmp_path / "**" / "*.ndjson")]) == [str(tmp_path / "a/b/two.ndjson")]


# -- one value in every mode -------------------------------------------------------------------

# (value, what it gives given alone, what it gives found in text): the same, but for file and
# program names, which only a value given alone (a line, a chosen cell or field) vouches for
_ONE_VALUE = [
    ("203.0.113.5/443", {"203.0.113.5"}, {"203.0.113.5"}),  # a port, not a prefix
    ("198.51.100.7/32", {"198.51.100.7"}, {"198.51.100.7"}),  # one host
    ("10.20.30.40/22", {"10.20.30.40"}, {"10.20.30.40"}),  # an interface's address
    ("10.20.0.0/16", set(), set()),  # a range
    ("*.wild.example.net", {"wild.example.net"}, {"wild.example.net"}),
    ("ev\u200bil-zw.example.com", {"evil-zw.example.com"}, {"evil-zw.example.com"}),
    ("2606:4700::6815:3a[:]443", {"2606:4700::6815:3a"}, {"2606:4700::6815:3a"}),
    ("fe80::1%eth0", {"fe80::1"}, {"fe80::1"}),
    ("port.example.com:99999", {"port.example.com"}, {"port.example.com"}),
    ("_dmarc.mail.example.org", {"_dmarc.mail.example.org"}, {"_dmarc.mail.example.org"}),
    ("hxxp://203.0.113[.]10:8080/x", {"203.0.113.10"}, {"203.0.113.10"}),
    ("invoice.pdf", set(), set()),  # no public suffix
    ("leak4kx.onion", set(), set()),  # special-use
    ("wpad.corp.local", set(), set()),  # internal
    ("update.zip", {"update.zip"}, set()),  # a file's name, unless given alone
    ("Microsoft.NET", {"microsoft.net"}, set()),  # a program's name, unless given alone
]


@pytest.mark.parametrize(("value", "alone", "in_text"), _ONE_VALUE)
def test_one_value_in_every_mode(
    tmp_path: Path, value: str, alone: set[str], in_text: set[str]
) -> None:
    lines = tmp_path / "v.txt"
    lines.write_text(value + "\n")
    text = tmp_path / "v.md"
    text.write_text(f"Observed {value} during triage.\n")
    table = tmp_path / "v.csv"
    with table.open("w", newline="") as f:
        csv.writer(f).writerows([["indicator", "note"], [value, "seen"]])
    records = tmp_path / "v.json"
    records.write_text(json.dumps([{"indicator": value, "note": "seen"}]))
    given_alone = {
        "lines": read([lines], format="lines"),
        "csv --column": read([table], format="csv", columns=("indicator",)),
        "json --field": read([records], format="json", fields=("[*].indicator",)),
    }
    found_in_text = {
        "text": read([text], format="text"),
        "csv": read([table], format="csv"),
        "json": read([records], format="json"),
    }
    for how, got in given_alone.items():
        assert got.set == alone, how
        assert bool(got.rejects) is not bool(alone), how  # nothing taken: a reject says why
    for how, got in found_in_text.items():
        assert got.set == in_text, how
        assert got.rejects == [], how
