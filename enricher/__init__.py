"""enricher: asynchronous bulk IOC enrichment against the Cybereason GTI reputation API."""

from __future__ import annotations

__version__ = "0.1.0"

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
from .records import SCHEMA_VERSION, Failure, Record
from .settings import Settings, load_settings
from .stats import RunStats

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
    "__version__",
    "load_settings",
    "normalize",
    "refang",
]
