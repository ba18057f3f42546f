"""`enricher emulator`: flags, errors, and real processes answering alike."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from enricher.app.cli import build_parser, main
from enricher.emulator import EmulatorConfig, RetryAfter
from enricher.emulator.cli import config_from_args
from enricher.ioc import Endpoint


def config_of(*flags: str) -> EmulatorConfig:
    return config_from_args(build_parser().parse_args(["emulator", *flags]))


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["emulator", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--port", "--rate-limit", "--retry-after", "--hang-rate", "--login", "--seed"):
        assert flag in out


def test_defaults_are_a_perfect_server() -> None:
    args = build_parser().parse_args(["emulator"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    assert config_from_args(args) == EmulatorConfig()


def test_every_knob_has_a_flag(tmp_path: Path) -> None:
    refuse = tmp_path / "refuse.txt"
    refuse.write_text("Evil.example\n\n" + "A" * 32 + "\n")
    config = config_of(
        "--seed=9",
        "--latency-ms=20",
        "--jitter-ms=5",
        "--rate-limit=30",
        "--retry-after=http-date",
        "--max-batch=100",
        "--no-sha256",
        "--server-error-rate=0.1",
        "--drop-rate=0.1",
        "--hang-rate=0.1",
        "--malformed-json-rate=0.1",
        "--error-body-rate=0.1",
        "--missing-key-rate=0.2",
        "--duplicate-rate=0.3",
        "--extra-rate=0.4",
        "--shuffle-rate=0.5",
        "--upper-echo-rate=0.6",
        "--refuse-key=1.2.3.4",
        f"--refuse-keys-file={refuse}",
        "--api-token=tok",
        "--token-header=X-Key",
        "--login=alice:pa:ss",
    )
    assert config == EmulatorConfig(
        seed=9,
        latency_ms=20,
        jitter_ms=5,
        rate_limit=30,
        retry_after=RetryAfter.HTTP_DATE,
        max_batch=100,
        accept_sha256=False,
        server_error_rate=0.1,
        drop_rate=0.1,
        hang_rate=0.1,
        malformed_json_rate=0.1,
        error_body_rate=0.1,
        missing_key_rate=0.2,
        duplicate_rate=0.3,
        extra_rate=0.4,
        shuffle_rate=0.5,
        upper_echo_rate=0.6,
        refuse_keys=frozenset({"1.2.3.4", "evil.example", "a" * 32}),
        api_token="tok",
        token_header="X-Key",
        login_credentials=("alice", "pa:ss"),
    )


def test_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENRICHER_EMULATOR_TOKEN", "env-token")
    monkeypatch.setenv("ENRICHER_EMULATOR_LOGIN", "bob:pw")
    config = config_of()
    assert config.api_token == "env-token" and config.login_credentials == ("bob", "pw")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--drop-rate", "2"], "argument --drop-rate: must be a probability between 0 and 1"),
        (["--hang-rate", "x"], "argument --hang-rate: not a number"),
        (["--rate-limit", "0"], "argument --rate-limit: must be >= 1"),
        (["--max-batch", "1.5"], "argument --max-batch: not an integer"),
        (["--latency-ms", "-1"], "argument --latency-ms: must be a number of milliseconds"),
        (["--port", "70000"], "argument --port: must be 0..65535"),
        (["--retry-after", "never"], "argument --retry-after: invalid choice"),
        (["--login", "nopassword"], "argument --login: must be USER:PASSWORD"),
    ],
)
def test_bad_flags_are_argparse_errors(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["emulator", *flags])
    assert exit_info.value.code == 1  # a usage error, as for `enricher run`
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_flags_that_do_not_fit_together(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--drop-rate", "0.6", "--hang-rate", "0.6"]) == 1
    err = capsys.readouterr().err
    assert "must sum to <= 1" in err and "Traceback" not in err


def test_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["emulator", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


# -- real processes -------------------------------------------------------------------------


async def start_process() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "enricher",
        "emulator",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    assert line.startswith("GTI emulator listening on http://127.0.0.1:"), line
    base_url = line.rsplit(" ", 1)[1].strip()
    assert base_url.endswith("/rest/classification_v1")
    return proc, base_url


def keys_for(endpoint: Endpoint, n: int) -> list[dict[str, str]]:
    if endpoint is Endpoint.FILE:
        return [{"md5": f"{i * 2654435761:032x}"} for i in range(n)]
    if endpoint is Endpoint.DOMAIN:
        return [{"domain": f"site{i}.example.net"} for i in range(n)]
    return [
        {"ipAddress": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "addressType": "Ipv4"}
        for i in range(n)
    ]


async def answers(session: aiohttp.ClientSession, base_url: str) -> list[bytes]:
    out = []
    for endpoint in Endpoint:
        keys = keys_for(endpoint, 3334)
        for i in range(0, len(keys), 1000):
            body = orjson.dumps({"requestData": [{"requestKey": k} for k in keys[i : i + 1000]]})
            async with session.post(f"{base_url}/{endpoint.value}", data=body) as r:
                assert r.status == 200
                out.append(await r.read())
    return out


@pytest.mark.slow
async def test_two_processes_answer_10000_keys_alike_and_stop_cleanly() -> None:
    first, url_a = await start_process()
    second, url_b = await start_process()
    try:
        assert url_a != url_b
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            a, b = await asyncio.gather(answers(session, url_a), answers(session, url_b))
        assert sum(len(orjson.loads(x)["classificationResponses"]) for x in a) == 10_002
        assert a == b
    finally:
        for proc, sig in ((first, signal.SIGINT), (second, signal.SIGTERM)):
            if proc.returncode is None:
                proc.send_signal(sig)
    for proc in (first, second):
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0
        assert b"Traceback" not in err, err.decode()
