"""Every bad path, value and contradiction on the command line is a usage error: exit 1, one
line that names it (credentials redacted), never a traceback, and nothing read or written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import enricher

PASSWORD = "s3cr3t-pw"


def refused(proc_args: list[str], message: str, tmp_path: Path, env: dict[str, str] | None = None,
            ) -> None:  # fmt: skip
    proc = enricher(*proc_args, timeout=60, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert PASSWORD not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0], errors[0]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("evil.example.com\n")
    return path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--deferred", "{tmp}"], "--deferred {tmp} is a directory"),
        (["-o", "{tmp}", "--resume"], "-o {tmp} is a directory"),
        (["-o", "{fifo}", "--resume"], "cannot be resumed"),
        (["--base-url", f"http://u:{PASSWORD}@127.0.0.1:99999/x"], "api.base_url: not a valid"),
        (["--base-url", f"http://u:{PASSWORD}@"], "api.base_url: has no host"),
        (["--base-url", f"http://u:{PASSWORD}@[::1/x"], "api.base_url: not a valid URL"),
        (["--base-url", f"http://u:p/{PASSWORD}@h:x/"], "api.base_url: not a valid URL"),
        (["--base-url", "ftp://example.com/"], "must start with http:// or https://"),
        (["--resume", "--force", "-o", "{tmp}/o.ndjson"], "--resume and --force contradict"),
        (["--cache", "{tmp}/c.sqlite3", "--no-cache"], "--cache and --no-cache contradict"),
        (["--cache-only", "--no-cache"], "--cache-only and --no-cache contradict"),
        (["--max-age", "nan"], "not a duration: 'nan'"),
        (["--max-age", "inf"], "not a duration: 'inf'"),
        (["--rate", "-1"], "--rate: must be 0 (no limit) or 0.001 to 1000000"),
        (["--rate", "inf"], "--rate: must be 0 (no limit) or 0.001 to 1000000"),
        (["--batch-size", "0"], "--batch-size: must be at least 1"),
        (["--format", "bogus"], "--format: invalid choice"),
        (["--max-rejects", "-5"], "--max-rejects: must be at least 0"),
        (["--no-such-flag"], "unrecognized arguments"),
        # a base URL is a prefix: a query or fragment would take the endpoint's name
        (["--base-url", "http://127.0.0.1:9/rest/x?"], "api.base_url: must not hold a query"),
        (["--base-url", "http://127.0.0.1:9/rest/x#x"], "api.base_url: must not hold a query"),
        (["--base-url", f"http://127.0.0.1:9/x?apikey={PASSWORD}"], "'http://127.0.0.1:9/x?***'"),
        # what aiohttp would refuse only when sending, quoting the whole URL
        (["--base-url", f"http://u:{PASSWORD}\\W@127.0.0.1:9/x"], "api.base_url: not a valid URL"),
        (["--base-url", "http://./x"], "api.base_url: has no valid host"),
        (["--base-url", "http://../x"], "api.base_url: has no valid host"),
        (["--base-url", "http://a b/x"], "api.base_url: has no valid host"),
        (["--cache", "~no-such-user-xyz/c.sqlite3"], "cache: cannot use ~no-such-user-xyz"),
    ],
)
def test_bad_values_and_paths_are_usage_errors(
    tmp_path: Path, src: Path, flags: list[str], message: str
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fill = {"{tmp}": str(tmp_path), "{fifo}": str(fifo)}

    def filled(text: str) -> str:
        for k, v in fill.items():
            text = text.replace(k, v)
        return text

    refused(["run", str(src), *map(filled, flags)], filled(message), tmp_path)
    assert not (tmp_path / "o.ndjson").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENRICHER_LIMITS_RATE": "inf"}, "limits.rate: must be a finite number"),
        ({"ENRICHER_LIMITS_RATE": "nan"}, "limits.rate: must be a finite number"),
        ({"ENRICHER_NETWORK_READ_TIMEOUT": "inf"}, "network.read_timeout: must be a finite"),
        ({"ENRICHER_API_BASE_URL": f"https://u:{PASSWORD}@:0/"}, "api.base_url"),
    ],
)
def test_bad_settings_from_the_environment(
    tmp_path: Path, src: Path, env: dict[str, str], message: str
) -> None:
    refused(["run", "--no-cache", str(src)], message, tmp_path, env=env)


def test_bad_settings_from_a_profile(tmp_path: Path, src: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text("[limits]\nrate = inf\n")
    refused(["run", "--no-cache", "--config", str(profile), str(src)],
            "limits.rate: must be a finite number", tmp_path)  # fmt: skip


def test_usage_errors_exit_1_not_2() -> None:
    # 2 means "finished with failures": a scheduler must not read a typo as that
    proc = enricher("run", "--batch-size", "0", timeout=60)
    assert proc.returncode == 1
    assert "usage: enricher run" in proc.stderr
    proc = enricher("bogus-command", timeout=60)
    assert proc.returncode == 1


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--rate", "1e-9"], {}, "--rate"),
        ([], {"ENRICHER_LIMITS_RATE": "5e-324"}, "limits.rate: must be 0 (unlimited) or"),
        ([], {"ENRICHER_NETWORK_PROXY": f"http://u:{PASSWORD}@[::1"}, "network.proxy"),
        ([], {"HTTPS_PROXY": f"http://u:{PASSWORD}@[::1"}, "the proxy (HTTPS_PROXY"),
        (["--base-url", f"http://u:{PASSWORD}#x@127.0.0.1/x"], {}, "api.base_url"),
        (["--base-url", f"http://u:{PASSWORD}?x@127.0.0.1/x"], {}, "api.base_url"),
        (["--base-url", f"http://u:p w{PASSWORD}@127.0.0.1:99999/x"], {}, "api.base_url"),
    ],
)
def test_bad_values_never_show_a_password(
    tmp_path: Path, src: Path, flags: list[str], env: dict[str, str], message: str
) -> None:
    refused(["run", "--no-cache", str(src), *flags], message, tmp_path, env=env)


def test_a_password_with_a_space_never_reaches_the_manifest(tmp_path: Path, src: Path) -> None:
    manifest = tmp_path / "run.json"
    proc = enricher("run", "--no-cache", str(src), "--base-url",
                    f"http://u:p w{PASSWORD}@127.0.0.1:9/x", "--manifest", str(manifest),
                    "--rate", "0", env={"ENRICHER_RETRY_ATTEMPTS": "1"}, timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert PASSWORD not in manifest.read_text() and PASSWORD not in proc.stderr


@pytest.mark.parametrize("kind", ["fifo", "zero", "binary", "directory"])
def test_a_config_that_is_no_settings_file(tmp_path: Path, src: Path, kind: str) -> None:
    config = tmp_path / "c.toml"
    if kind == "fifo":
        os.mkfifo(config)
    elif kind == "zero":
        config = Path("/dev/zero")
    elif kind == "binary":
        config.write_bytes(b"[limits]\nrate = 1\n# \xff\xfe\n")
    else:
        config.mkdir()
    refused(["run", "--no-cache", "--config", str(config), str(src)], "settings file", tmp_path)
