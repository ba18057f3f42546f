"""The limiter's AIMD knobs come from [limits] (`AdaptiveLimiter.from_settings`): a window,
a cooldown and a recovery other than the defaults change when the rate halves and how fast it
climbs back. On a clock of its own: nothing waits."""

from __future__ import annotations

import pytest
from fake_time import FakeTime

from enricher.api.ratelimit import AdaptiveLimiter
from enricher.config.settings import LimitSettings


def test_window_cooldown_and_recovery_are_the_settings() -> None:
    clock = FakeTime(start=0.0)
    limits = LimitSettings(
        rate=100, rate_headroom=0, rate_window=1, rate_cooldown=5, rate_recovery=0.5
    )
    limiter = AdaptiveLimiter.from_settings(limits, clock=clock, sleep=clock.sleep)
    rates = []
    for t in (0.0, 0.5, 1.0, 3.0, 3.5, 6.0, 6.4):
        clock.now = t
        limiter.rate_limited()
        rates.append(limiter.rate)
    # 0.5: a second 429 within the 1 s window halves; 1.0 and 3.5: within the 5 s cooldown,
    # no change (the default 2 s would halve at 3.5); 3.0 and 6.0: more than 1 s after the
    # last 429 (the default 10 s would halve at 6.0); 6.4: past the cooldown, in the window
    assert rates == [100, 50, 50, 50, 50, 50, 25]
    limiter.succeeded()
    assert limiter.rate == pytest.approx(25 + 0.5 * 100 / 25)  # half the rate a second


def test_the_defaults_are_todays() -> None:
    limiter = AdaptiveLimiter.from_settings(LimitSettings(rate=100), clock=lambda: 0.0)
    assert (limiter.window, limiter.cooldown) == (10.0, 2.0)
    assert limiter.step == pytest.approx(100 * (1 - 0.015) * 0.05)
