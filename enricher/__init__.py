"""enricher: asynchronous bulk IOC enrichment against the Cybereason GTI reputation API.

The names below are imported on first use (PEP 562), so that `import enricher` is quick:
the command line installs its signal handlers before the heavy modules (aiohttp, the
engine) load, and a SIGTERM in the first moments of a run is answered like any other.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .engine import Enricher, Outcome
    from .errors import (
        AuthRefused,
        EnricherError,
        FatalError,
        InputError,
        RequestError,
        SettingsError,
    )
    from .ioc import Endpoint, IocType
    from .normalize import normalize, refang
    from .records import SCHEMA_VERSION, Failure, Record, Skipped
    from .settings import Settings, load_settings
    from .stats import RunStats

#: public name -> the module that defines it
_WHERE = {
    "Enricher": "engine",
    "Outcome": "engine",
    "AuthRefused": "errors",
    "EnricherError": "errors",
    "FatalError": "errors",
    "InputError": "errors",
    "RequestError": "errors",
    "SettingsError": "errors",
    "Endpoint": "ioc",
    "IocType": "ioc",
    "normalize": "normalize",
    "refang": "normalize",
    "SCHEMA_VERSION": "records",
    "Failure": "records",
    "Record": "records",
    "Skipped": "records",
    "Settings": "settings",
    "load_settings": "settings",
    "RunStats": "stats",
}

__all__ = [
    "SCHEMA_VERSION",
    "AuthRefused",
    "Endpoint",
    "Enricher",
    "EnricherError",
    "Failure",
    "FatalError",
    "InputError",
    "IocType",
    "Outcome",
    "Record",
    "RequestError",
    "RunStats",
    "Settings",
    "SettingsError",
    "Skipped",
    "__version__",
    "load_settings",
    "normalize",
    "refang",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'enricher' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
