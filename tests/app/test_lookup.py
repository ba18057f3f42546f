"""`enricher lookup`: the run's normalization, cache and limiter for a few IOCs, as a table
or JSON lines, against an emulator in a process of its own (its counters say what was sent)
and the embedded one."""

from __future__ import annotations

import math
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from helpers import PlainEmulator, emulator_stats, enricher, into_closed_pipe

from enricher.app.lookup import _print, format_table
from enricher.output.records import read_record

ARGS = [
    "evil[.]example[.]com",
    "hxxps://EVIL.example.com/login",  # the same domain: asked once, shown once
    "92F44E405DB16AC55D97E3BFE3B132FA",
    "1.2.3[.]4",
    "not-an-ioc",
]


def test_lookup_prints_a_table_in_the_order_given(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    with plain_emulator() as url:
        proc = enricher("lookup", "--base-url", url, "--rate", "0", *ARGS)
        sent = emulator_stats(url)
        assert sent["keys_asked"] == 3 and sent["total_requests"] == 3  # one per endpoint
        again = enricher("lookup", "--base-url", url, "--rate", "0", *ARGS[:4])
        assert emulator_stats(url)["total_requests"] == 3  # all from the cache
    assert proc.returncode == 1  # an argument is no IOC: the others are answered
    assert proc.stderr == "enricher: error: 1 of the arguments is no IOC\n"
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["IOC", "TYPE", "VERDICT", "CLASSIFICATION", "SCORE", "LINK"]
    rows = [line.split()[:3] for line in lines[1:]]
    assert rows == [
        ["evil.example.com", "domain", rows[0][2]],
        ["92f44e405db16ac55d97e3bfe3b132fa", "md5", rows[1][2]],
        ["1.2.3.4", "ipv4", rows[2][2]],
        ["not-an-ioc", "-", "not"],
    ]
    assert all(r[2] in ("malicious", "suspicious", "benign", "unknown") for r in rows[:3])
    assert len({line.index("TYPE") for line in lines[:1]}) == 1
    assert lines[1].index("domain") == lines[0].index("TYPE")  # aligned
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(cached)") == 3


def test_lookup_json_is_the_run_s_records(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    src.write_text("\n".join(ARGS[:4]) + "\n")
    run = enricher("run", "--emulator", "--no-cache", "-q", str(src), "-o", str(out))
    assert run.returncode == 0, run.stderr
    records = {r["ioc"]: r for r in map(orjson.loads, out.read_bytes().splitlines())}
    # a name the run judges no IOC (no public suffix: a file's) is said as one too: it gave
    # no line at all, and exit 0 when it was the only argument
    args = [*ARGS, "invoice.pdf"]
    proc = enricher("lookup", "--emulator", "--no-cache", "--json", *args)
    assert proc.returncode == 1
    assert proc.stderr == "enricher: error: 2 of the arguments are no IOC\n"
    items = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [i.pop("input") for i in items] == args  # one line per argument, in order
    assert items[1].pop("duplicate_of") == ARGS[0]  # the same domain: asked once, said so
    assert not any("duplicate_of" in i for i in items)
    assert items[:4] == [records[i["ioc"]] for i in items[:4]]
    assert [i.get("ioc") for i in items] == [
        "evil.example.com", "evil.example.com", "92f44e405db16ac55d97e3bfe3b132fa", "1.2.3.4",
        None, None,
    ]  # fmt: skip
    assert items[4] == {"error": "not an IOC: single-label name (no dot)"}
    assert items[5] == {"error": "not an IOC: domain without a public suffix (a file name?)"}


def test_lookup_with_a_spent_budget_asks_nothing_and_exits_2(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[limits]\ndaily_budget = 1\nrate = 0\n")
    with plain_emulator() as url:
        first = enricher("lookup", "--config", str(config), "--base-url", url, "1.2.3.4")
        second = enricher("lookup", "--config", str(config), "--base-url", url, "evil.example.com")
        assert emulator_stats(url)["total_requests"] == 1
    assert first.returncode == 0, first.stderr
    assert second.returncode == 2
    assert "not asked" in second.stdout and "budget" in second.stdout


def test_the_table_is_coloured_only_when_asked() -> None:
    item = {
        "ioc": "evil.example.com", "type": "domain", "verdict": "malicious",
        "classification": "ransom", "score": 0.9, "link": None, "cached": False,
    }  # fmt: skip
    assert "\x1b[" not in format_table([item])
    assert "\x1b[31;1mmalicious" in format_table([item], colour=True)
    failed = {"ioc": "1.2.3.4", "type": "ipv4", "error": "http_503: gave up", "attempts": 4}
    assert format_table([failed]).splitlines()[1].split()[:4] == [
        "1.2.3.4", "ipv4", "failed", "http_503:"
    ]  # fmt: skip


def test_lookup_never_sends_an_internal_address_or_name(plain_emulator: PlainEmulator) -> None:
    internal = ["10.0.0.1", "::1", "printer.corp", "http://fs.corp/x", "admin@dc.corp.local"]
    with plain_emulator() as url:
        proc = enricher("lookup", "--base-url", url, "--rate", "0", "--no-cache", *internal)
        json = enricher("lookup", "--base-url", url, "--no-cache", "--json", "10.0.0.1")
        assert emulator_stats(url)["total_requests"] == 0
        sent = enricher(
            "lookup", "--base-url", url, "--no-cache", "--send-internal", "--json", "10.0.0.1"
        )
        assert emulator_stats(url)["keys_asked"] == 1
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[1:]
    assert len(rows) == len(internal)
    assert all("skipped (internal)" in row and "skipped (internal):" not in row for row in rows)
    assert "private address" in rows[0] and "internal name (.corp)" in rows[2]
    assert orjson.loads(json.stdout)["skipped"] == "private address"
    assert "verdict" in orjson.loads(sent.stdout) and "send_internal is on" in sent.stderr


def test_the_table_shows_what_a_server_sent_inert() -> None:
    hostile = {
        "ioc": "8.8.8.8", "type": "ipv4", "verdict": "unknown",
        "classification": "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\r=1+1\n\u202eab",
        "score": 5, "link": "http://ok.example/a\x9b31m\nfake row", "cached": False,
    }  # fmt: skip
    table = format_table([hostile], colour=True)
    lines = table.splitlines()
    assert len(lines) == 2
    assert not any(ch in table for ch in "\x1b\x07\r\x9b\u202e")  # unknown: no colour
    assert "\\x1b]8;;http://evil.example\\x07click" in lines[1]
    assert lines[1].endswith("http://ok.example/a\\x9b31m\\x0afake row")


def test_json_lines_are_inert_on_a_terminal_and_say_the_same(
    capfd: pytest.CaptureFixture[str],
) -> None:
    hostile = {
        "ioc": "8.8.8.8", "classification": "\x1b]0;title\x07\x9b2J\u202eab\u2066\x7f",
        "link": "http://ok.example/\x85x",
    }  # fmt: skip
    _print([hostile], as_json=True)
    out = capfd.readouterr().out
    # C0 is escaped by any JSON encoder; C1 (CSI \x9b, NEL \x85), DEL and bidi are not
    assert not any(ch in out for ch in "\x1b\x07\x9b\x85\x7f\u202e\u2066")
    assert orjson.loads(out) == hostile
    assert out.count("\n") == 1


def test_json_lines_hold_a_response_s_integer_beyond_64_bits(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # a number in a field no record reads is written as the server sent it; orjson will not
    # write an integer beyond 64 bits: `lookup --json` ended in a traceback (attack16)
    big = 123456789012345678901234567890
    item = {"ioc": "evil.com", "response": {"requestKey": {"domain": "evil.com"}, "x": [big]}}
    _print([item], as_json=True)
    out = capfd.readouterr().out
    assert out.count("\n") == 1 and msgspec.json.decode(out) == item


def test_json_lines_hold_a_response_s_number_beyond_a_double(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # a record keeps the server's `1e400` as sent and reads it as infinity: `lookup --json`
    # wrote it as `null` (a number became no number); an integer beyond 64 bits beside it
    # takes msgspec's path, which must write it as sent too
    line = record_line_with(b'"score":1e400,"x":[-1E+400,2.5]')
    item = read_record(line)
    assert item["response"]["score"] == math.inf
    for extra in ({}, {"big": 123456789012345678901234567890}):
        _print([{**item, **extra}], as_json=True)
        out = capfd.readouterr().out
        assert out.count("\n") == 1
        assert '"score":1e400,"x":[-1E+400,2.5]' in out
        assert msgspec.json.Decoder(float_hook=str).decode(out)["response"]["score"] == "1e400"
    assert pickle.loads(pickle.dumps(item)) == item
    assert pickle.loads(pickle.dumps(item))["response"]["score"].text == "1e400"


def record_line_with(fields: bytes) -> bytes:
    return (
        b'{"ioc":"evil.com","type":"domain","verdict":"unknown","response":'
        b'{"requestKey":{"domain":"evil.com"},' + fields + b"}}"
    )


CLOSED = (
    "enricher: error: standard output was closed by its reader before the run ended; "
    "run it again with a reader that takes every line, or with -o FILE\n"
)


def test_lookup_into_a_closed_pipe_exits_3() -> None:
    for flags in ([], ["--json"]):
        proc = into_closed_pipe("lookup", "--emulator", "--no-cache", *flags, "8.8.8.8")
        assert (proc.returncode, proc.stderr) == (3, CLOSED)


def test_a_failure_is_not_hidden_by_an_argument_that_is_no_ioc() -> None:
    dead = "http://127.0.0.1:1/rest/classification_v1/"  # nothing listens on port 1
    proc = enricher(
        "lookup", "--base-url", dead, "--no-cache", "--rate", "0", "--json", "8.8.4.4", "bad!!",
        env={"ENRICHER_RETRY_ATTEMPTS": "1"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "1 of the IOCs was not answered" in proc.stderr
    assert "1 of the arguments is no IOC" in proc.stderr


async def test_a_fatal_error_mid_way_prints_what_was_answered_then_exits_3(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # a shared state (Redis) lost mid-way, or credentials refused: the answers already in
    # are printed, not dropped with the rest, and the error is said in one line
    from enricher.app import lookup as lookup_module
    from enricher.config.settings import load_settings
    from enricher.errors import FatalError
    from enricher.pipeline.run import Enricher

    class Losing(Enricher):
        async def _items(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
            async for item in super()._items(*args, **kwargs):
                yield item
                raise FatalError("state: lost Redis at redis://127.0.0.1:1/0 (gone)")

    monkeypatch.setattr(lookup_module, "Enricher", Losing)
    settings = load_settings(environ={}, overrides={"limits": {"rate": 0}})
    asked = lookup_module.Lookup(iocs=["8.8.8.8", "evil.example.com"], emulator=True,
                                 use_cache=False)  # fmt: skip
    assert await lookup_module.run_lookup(asked, settings) == 3
    out, err = capfd.readouterr()
    assert out.splitlines()[0].split()[:2] == ["IOC", "TYPE"] and len(out.splitlines()) == 2
    assert err == "enricher: error: state: lost Redis at redis://127.0.0.1:1/0 (gone)\n"
