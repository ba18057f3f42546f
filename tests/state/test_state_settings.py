"""`[state]`: what `state.url` takes and refuses, a password kept out of every repr, message
and manifest, `ENRICHER_STATE_*` read from the environment, `--cache` against `--state`, and
`enricher lookup --state redis://…` served from the shared answers."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from engine_helpers import settings_for

from enricher.app.cli import main
from enricher.app.lookup import Lookup, run_lookup
from enricher.config.settings import load_settings
from enricher.emulator import Emulator
from enricher.errors import SettingsError
from enricher.output.manifest import build_manifest
from enricher.pipeline.stats import RunStats

SECRET = "pw-7f3a-never-shown"


@pytest.mark.parametrize(
    "url", ["mysql://h/0", "redis:/nohost", "redis://", "sqlite://", "/var/lib/state.db"]
)
def test_a_state_url_of_no_known_kind_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match=r"^state\.url: "):
        load_settings(environ={"ENRICHER_STATE_URL": url})


def test_the_url_from_the_environment_and_its_password_kept_out_of_sight(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:{SECRET}@cache.internal:6380/2"
    env = {"ENRICHER_STATE_URL": url, "ENRICHER_STATE_PASSWORD": "x"}
    with caplog.at_level(logging.WARNING, logger="enricher"):
        settings = load_settings(environ=env)
    assert settings.state.url == url and settings.state.shared
    assert "ENRICHER_STATE_PASSWORD" not in caplog.text  # a variable enricher reads
    assert SECRET not in repr(settings)
    manifest = build_manifest(
        settings=settings, stats=RunStats(), inputs={}, outputs={},
        started_at=time.time(), exit_code=0,
    )  # fmt: skip
    assert SECRET not in str(manifest)
    assert manifest["settings"]["state"]["url"].endswith("cache.internal:6380/2")


def test_a_sqlite_url_names_the_state_file(tmp_path: Path) -> None:
    settings = load_settings(environ={"ENRICHER_STATE_URL": f"sqlite://{tmp_path}/s.db"})
    assert settings.state.sqlite_path == f"{tmp_path}/s.db" and not settings.state.shared


def test_the_password_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n")
    settings = load_settings(environ={"ENRICHER_STATE_PASSWORD_FILE": str(tmp_path / "pw")})
    password = settings.state.password()
    assert password is not None and password.reveal() == SECRET and SECRET not in str(password)


def test_cache_and_state_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--emulator", "--cache", "x.db", "--state", "redis://h:1/0", "in.txt"])
    assert code == 1
    assert "--cache and --state" in capsys.readouterr().err


async def test_lookup_over_redis_is_served_from_the_shared_answers(
    redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Emulator() as emu:
        settings = settings_for(emu, state={"url": redis_url, "prefix": prefix})
        lookup = Lookup(iocs=["evil.example.com", "1.2.3.4"], as_json=True)
        assert await run_lookup(lookup, settings) == 0
        asked = emu.stats()["total_requests"]
        assert await run_lookup(lookup, settings) == 0
        assert emu.stats()["total_requests"] == asked > 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all('"cached":true' in line for line in lines[2:])


async def test_deferred_lists_and_forgets_a_spent_quota_over_redis(
    redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from enricher.api.identity import identity_of
    from enricher.state.deferred import list_shared_deferred
    from enricher.state.open import open_state

    settings = load_settings(environ={}, overrides={"state": {"url": redis_url, "prefix": prefix}})
    state = await open_state(settings, identity_of(settings))
    assert state.budget is not None and state.deferred is not None
    await state.budget.set_quota_until(time.time() + 3600)
    await state.deferred.replace("nightly", [("domain", "a.example.com", "budget spent")])
    await state.aclose()
    assert await list_shared_deferred(settings) == 0
    assert await list_shared_deferred(settings, clear_quota=True) == 0
    assert await list_shared_deferred(settings) == 0
    out, err = capsys.readouterr()
    assert "job nightly" in out and "waiting   1 (domain 1)" in out
    said = err.splitlines()
    assert said[0].startswith("enricher: quota spent until") and "forgotten" in said[1]
    assert "quota" not in " ".join(said[2:])
