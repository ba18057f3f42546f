"""enricher: asynchronous bulk IOC enrichment against the Cybereason GTI reputation API.

The names below are imported on first use (PEP 562), so that `import enricher` is quick:
the command line installs its signal handlers before the heavy modules (aiohttp, the
engine) load, and a SIGTERM in the first moments of a run is answered like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_names

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .app.sync import Enriched, enrich_sync
    from .config.settings import PROFILES, Settings, load_settings
    from .errors import (
        AuthRefused,
        EnricherError,
        FatalError,
        InputError,
        RequestError,
        SettingsError,
        UsageError,
    )
    from .ioc import Endpoint, IocType
    from .output.records import SCHEMA_VERSION, Deferred, Failure, Record, Reject, Skipped
    from .pipeline.normalize import normalize, refang
    from .pipeline.run import Enricher, Item, Outcome
    from .pipeline.stats import RunStats

#: public name -> the module that defines it
_WHERE = {
    "Enricher": "pipeline.run",
    "Item": "pipeline.run",
    "Outcome": "pipeline.run",
    "AuthRefused": "errors",
    "EnricherError": "errors",
    "FatalError": "errors",
    "InputError": "errors",
    "RequestError": "errors",
    "SettingsError": "errors",
    "UsageError": "errors",
    "Endpoint": "ioc",
    "IocType": "ioc",
    "normalize": "pipeline.normalize",
    "refang": "pipeline.normalize",
    "SCHEMA_VERSION": "output.records",
    "Deferred": "output.records",
    "Failure": "output.records",
    "Record": "output.records",
    "Reject": "output.records",
    "Skipped": "output.records",
    "PROFILES": "config.settings",
    "Settings": "config.settings",
    "load_settings": "config.settings",
    "RunStats": "pipeline.stats",
    "Enriched": "app.sync",
    "enrich_sync": "app.sync",
}

__all__ = [
    "PROFILES",
    "SCHEMA_VERSION",
    "AuthRefused",
    "Deferred",
    "Endpoint",
    "Enriched",
    "Enricher",
    "EnricherError",
    "Failure",
    "FatalError",
    "InputError",
    "IocType",
    "Item",
    "Outcome",
    "Record",
    "Reject",
    "RequestError",
    "RunStats",
    "Settings",
    "SettingsError",
    "Skipped",
    "UsageError",
    "__version__",
    "enrich_sync",
    "load_settings",
    "normalize",
    "refang",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__)
