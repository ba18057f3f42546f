"""Imported by each worker of a local cluster as it starts (Dask's `preload`), before the
first task reaches it: what the tasks need, so that the first part on each worker does not
import redis-py and the shared state (~0.5 s, while the other parts wait on it)."""

from __future__ import annotations

import contextlib

from . import parts

with contextlib.suppress(ImportError):  # without the redis extra, the job says so itself
    from ..state.redis import answers, budget, deferred, limiter

__all__ = ["answers", "budget", "deferred", "limiter", "parts"]
