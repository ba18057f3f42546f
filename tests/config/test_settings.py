from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from enricher.api.protocol import CLASSIFICATION_TYPES
from enricher.config.settings import Secret, Settings, config_path, load_settings, redact_url
from enricher.errors import SettingsError
from enricher.ioc import Endpoint

CONFIGS = Path(__file__).parents[2] / "configs"


def test_defaults_are_for_the_real_api() -> None:
    s = load_settings(environ={})
    assert s.api.base_url == "https://sage.cybereason.com/rest/classification_v1"
    assert s.api.url(Endpoint.IP).endswith("/classification_v1/ip_batch")
    assert s.api.send_sha256 is False
    assert s.network.verify_tls is True
    assert s.auth.mode == "none"


@pytest.mark.parametrize("name", ["default.toml", "emulator.toml", "example.toml"])
def test_shipped_profiles_load(name: str) -> None:
    load_settings(CONFIGS / name, environ={})


def test_verdict_table_covers_the_documented_types() -> None:
    verdicts = Settings().verdicts
    assert set(CLASSIFICATION_TYPES) <= set(verdicts)
    assert set(verdicts.values()) == {"malicious", "suspicious", "benign", "unknown"}


def test_example_profile_names_every_setting() -> None:
    text = (CONFIGS / "example.toml").read_text()
    for section in dataclasses.fields(Settings):
        assert f"[{section.name}]" in text
        if section.name == "verdicts":
            continue
        for f in dataclasses.fields(getattr(Settings(), section.name)):
            assert re.search(rf"^# {f.name} = ", text, re.M), f"{section.name}.{f.name}"


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("[limits]\nrate = 5\nconcurrency = 3\n[api]\nfile_batch_size = 100\n")
    env = {"ENRICHER_LIMITS_RATE": "7.5", "ENRICHER_API_SEND_SHA256": "true"}
    s = load_settings(cfg, environ=env, overrides={"limits": {"concurrency": 4}})
    assert s.limits.rate == 7.5
    assert s.limits.concurrency == 4
    assert s.api.send_sha256 is True
    assert s.api.batch_size(Endpoint.FILE) == 100


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[limits]\nrate = -1\n", "limits.rate"),
        ("[limits]\nconcurrency = 0\n", "limits.concurrency"),
        ("[limits]\nconcurrency = 2.5\n", "limits.concurrency: must be int"),
        ("[limits]\nburst = 3\n", "unknown setting limits.burst"),
        ("[nope]\na = 1\n", r"unknown settings section \[nope\]"),
        ("[api]\nbase_url = 'ftp://x'\n", "api.base_url"),
        ("[api]\nttl_unit = 'hours'\n", "api.ttl_unit"),
        ("[auth]\nmode = 'session'\n", "auth.login_url"),
        ("[verdicts]\nmalware = 'evil'\n", "verdicts.malware"),
        ("rate = 3\n", "must be a \\[section\\]"),
        ("[limits\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(SettingsError, match=message):
        load_settings(cfg, environ={})


def test_bad_environment_value() -> None:
    with pytest.raises(SettingsError, match=r"limits\.rate: must be a number"):
        load_settings(environ={"ENRICHER_LIMITS_RATE": "fast"})


def test_missing_file() -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings("/nonexistent/enricher.toml", environ={})


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.limits.rate = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.verdicts["malware"] = "benign"  # type: ignore[index]


def test_secrets_come_from_environment_or_file_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENRICHER_USERNAME", "analyst")
    monkeypatch.setenv("ENRICHER_PASSWORD", "hunter2-secret")
    auth = load_settings(
        overrides={"auth": {"mode": "session", "login_url": "https://t.example/login.html"}},
        environ={},
    ).auth
    user, password = auth.credentials()
    assert user == "analyst" and password.reveal() == "hunter2-secret"
    assert "hunter2" not in repr(password) + str(password) + repr(auth)
    secret_file = tmp_path / "header"
    secret_file.write_text("Bearer tok-12345\n")
    auth2 = dataclasses.replace(auth, mode="header", header_value_file=str(secret_file))
    assert auth2.header_value().reveal() == "Bearer tok-12345"
    monkeypatch.delenv("ENRICHER_PASSWORD")
    with pytest.raises(SettingsError, match="ENRICHER_PASSWORD"):
        auth.credentials()
    assert isinstance(password, Secret)


def test_config_path_finds_the_profiles() -> None:
    assert config_path("emulator.toml").is_file()


def test_public_names() -> None:
    import enricher

    assert set(enricher.__all__) == {
        "PROFILES", "SCHEMA_VERSION", "AuthRefused", "Deferred", "Endpoint", "Enriched",
        "Enricher", "EnricherError", "Failure", "FatalError", "InputError", "IocType", "Item",
        "Outcome", "Record", "Reject", "RequestError", "RunStats", "Settings", "SettingsError",
        "Skipped", "UsageError", "__version__", "enrich_sync", "load_settings", "normalize",
        "refang",
    }  # fmt: skip
    for name in enricher.__all__:
        assert hasattr(enricher, name)


def test_a_url_never_shows_its_credentials_or_its_query() -> None:
    """Every URL a message or the manifest shows: user info and query (an API key may ride
    in either) replaced."""
    text = "see https://u:pw@h.example/x?apikey=K1&b=2 and http://h.example/y?t=K2#frag"
    shown = redact_url(text)
    assert shown == "see https://***@h.example/x?*** and http://h.example/y?***#frag"


def test_example_profile_shows_the_defaults() -> None:
    """Every `# name = value` in configs/example.toml, uncommented, is the default: the
    verdict table's rows included."""
    text = (CONFIGS / "example.toml").read_text()
    doc = tomllib.loads(re.sub(r"^# ([a-z_0-9]+ = )", r"\1", text, flags=re.M))
    defaults = Settings()
    assert doc["verdicts"] == dict(defaults.verdicts)
    for section, values in doc.items():
        if section == "verdicts":
            continue
        for name, value in values.items():
            default = getattr(getattr(defaults, section), name)
            if isinstance(default, tuple):  # a TOML list is a tuple once read
                default = list(default)
            if default is not None:  # an example where there is no default (a CA bundle)
                assert value == default, f"{section}.{name}"


def test_misspelled_variables_are_warned_with_the_nearest_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "ENRICHER_LIMITS_RAET": "3",
        "ENRICHER_PASWORD": "x",
        "ENRICHER_SOMETHING_ELSE": "1",
        "ENRICHER_PASSWORD": "fine",
        "ENRICHER_EMULATOR_TOKEN": "fine",
        "ENRICHER_VERDICTS_SINKHOLED": "malicious",
        "ENRICHER_VERDICTS_SINKHOLD": "benign",
    }
    with caplog.at_level("WARNING", logger="enricher"):
        s = load_settings(environ=env)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "warning: ENRICHER_VERDICTS_SINKHOLD: 'sinkhold' is not in the verdict table (did you"
        " mean ENRICHER_VERDICTS_SINKHOLED?); added as a new type",
        "warning: ENRICHER_LIMITS_RAET is not a variable enricher reads (did you mean"
        " ENRICHER_LIMITS_RATE?); it is ignored",
        "warning: ENRICHER_PASWORD is not a variable enricher reads (did you mean"
        " ENRICHER_PASSWORD?); it is ignored",
        "warning: ENRICHER_SOMETHING_ELSE is not a variable enricher reads; it is ignored",
    ]
    assert s.verdicts["sinkholed"] == "malicious" and s.verdicts["sinkhold"] == "benign"
    with pytest.raises(SettingsError, match=r"verdicts\.malware: must be one of"):
        load_settings(environ={"ENRICHER_VERDICTS_MALWARE": "bad"})
