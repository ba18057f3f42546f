"""A real redis-server for the tests of the shared state, one per test session (see
redis_server.py); each test gets a key prefix of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import running_redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0` of a redis-server started for this session."""
    with running_redis() as (url, _):
        yield url


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own: tests sharing the server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}"
