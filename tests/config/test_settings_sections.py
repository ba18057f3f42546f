"""The settings sections the API side is given: batch sizes by endpoint (one value for
`--batch-size`, a key each in TOML), and the limiter's AIMD knobs in [limits]."""

from __future__ import annotations

from pathlib import Path

import pytest

from enricher.config.settings import ApiSettings, LimitSettings, load_settings
from enricher.errors import SettingsError
from enricher.ioc import Endpoint


def test_each_endpoint_has_its_own_batch_size_from_its_toml_key(tmp_path: Path) -> None:
    profile = tmp_path / "sizes.toml"
    profile.write_text("[api]\nfile_batch_size = 3\ndomain_batch_size = 4\nip_batch_size = 5\n")
    api = load_settings(profile, environ={}).api
    assert api.batch_sizes() == {Endpoint.FILE: 3, Endpoint.DOMAIN: 4, Endpoint.IP: 5}
    assert [api.batch_size(ep) for ep in Endpoint] == [3, 4, 5]


def test_one_batch_size_sets_every_endpoint() -> None:
    settings = load_settings(environ={}, overrides={"api": ApiSettings.one_batch_size(9)})
    assert set(settings.api.batch_sizes().values()) == {9}
    assert ApiSettings(**ApiSettings.one_batch_size(2)).batch_sizes()[Endpoint.IP] == 2


def test_a_batch_size_out_of_range_is_named() -> None:
    with pytest.raises(SettingsError, match=r"^api\.domain_batch_size: must be between"):
        ApiSettings(domain_batch_size=0)


def test_the_aimd_knobs_are_limits_settings_with_todays_defaults() -> None:
    limits = load_settings(environ={}).limits
    assert (limits.rate_window, limits.rate_cooldown, limits.rate_recovery) == (10.0, 2.0, 0.05)
    env = {"ENRICHER_LIMITS_RATE_COOLDOWN": "5", "ENRICHER_LIMITS_RATE_RECOVERY": "0.2"}
    limits = load_settings(environ=env).limits
    assert limits.rate_cooldown == 5.0 and limits.rate_recovery == 0.2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate_window", -1.0),
        ("rate_cooldown", -0.5),
        ("rate_recovery", 0.0),
        ("rate_recovery", 1.5),
    ],
)
def test_an_aimd_knob_out_of_range_is_named(field: str, value: float) -> None:
    with pytest.raises(SettingsError, match=rf"^limits\.{field}: must be"):
        LimitSettings(**{field: value})
