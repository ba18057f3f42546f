"""The Redis components have the shapes of the seams they plug into (issue 14's Protocols:
`AnswerStore`, `BudgetStore`, `DeferredList`, `RateLimiter`): every member, a coroutine where
the seam's is one, with the seam's parameters. Skips where the seams are not there yet."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from enricher.state.redis.answers import RedisAnswers
from enricher.state.redis.budget import RedisBudget
from enricher.state.redis.deferred import RedisDeferred
from enricher.state.redis.limiter import RedisLimiter

SEAMS = [
    ("enricher.state.ports", "AnswerStore", RedisAnswers),
    ("enricher.state.ports", "BudgetStore", RedisBudget),
    ("enricher.state.ports", "DeferredList", RedisDeferred),
    ("enricher.api.ratelimit", "RateLimiter", RedisLimiter),
]


@pytest.mark.parametrize(("module", "name", "ours"), SEAMS, ids=[s[1] for s in SEAMS])
def test_has_the_shape_of_its_seam(module: str, name: str, ours: type) -> None:
    try:
        seam = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        pytest.skip(f"{module}.{name} is not there yet (issue 14's seams)")
    members = {k: v for k, v in vars(seam).items() if not k.startswith("_")}
    members.update({k: None for k in getattr(seam, "__annotations__", {})})
    for member, spec in members.items():
        assert hasattr(ours, member) or member in _attributes(ours), f"{name}.{member}"
        if not inspect.isfunction(spec):
            continue
        mine = getattr(ours, member)
        assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(spec), member
        wanted = list(inspect.signature(spec).parameters.items())
        got = inspect.signature(mine).parameters
        for param, p in wanted:
            assert param in got and got[param].kind == p.kind, f"{name}.{member}({param})"


def _attributes(cls: type) -> set[str]:
    """What `__init__` sets on an instance (`self.NAME = ...`)."""
    source = inspect.getsource(cls.__init__)  # type: ignore[misc]
    return set(re.findall(r"^\s*self\.(\w+)\s*[:=]", source, re.MULTILINE))
