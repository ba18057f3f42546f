"""enricher: asynchronous bulk IOC enrichment against the Cybereason GTI reputation API."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
