"""The cluster's tests: a real redis-server for the shared state, as tests/state starts one
(its `redis_server` helper, imported from there), one per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "state"))

from redis_server import running_redis


@pytest.fixture(scope="session")
def cluster_redis() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0` of a redis-server started for this session."""
    with running_redis() as (url, _):
        yield url
