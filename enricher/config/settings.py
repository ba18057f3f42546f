"""Settings: frozen, keyword-only dataclasses loaded from TOML, the environment and flags.

Precedence, lowest first: the defaults below, a TOML profile (`configs/*.toml`; the shipped
`default` one when none is named), environment variables `ENRICHER_<SECTION>_<FIELD>` (e.g.
`ENRICHER_LIMITS_RATE=20`, `ENRICHER_VERDICTS_SINKHOLED=malicious`), then command-line flags.
An `ENRICHER_*` variable that is none of these, nor one enricher reads elsewhere (a secret's,
the emulator's), is warned about with the nearest known name: a misspelling is never silent.
Every value is validated on construction; a bad one raises `SettingsError` naming the field
and the fix. Secrets are never settings values: a setting names the environment
variable or file that holds the secret, and `Secret` keeps its value out of every repr.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from yarl import URL

from ..api.redaction import check_secret
from ..errors import SettingsError
from ..ioc import Endpoint

__all__ = [
    "PROFILES",
    "ApiSettings",
    "AuthSettings",
    "CacheSettings",
    "ClusterSettings",
    "LimitSettings",
    "NetworkSettings",
    "PipelineSettings",
    "PrivacySettings",
    "RetrySettings",
    "Secret",
    "Settings",
    "StateSettings",
    "check_url",
    "config_path",
    "load_settings",
    "parse_duration",
    "redact_url",
]

log = logging.getLogger("enricher")

VERDICTS = ("malicious", "suspicious", "benign", "unknown")
PROXY_SCHEMES = ("http", "https")
ENV_PREFIX = "ENRICHER_"
#: the settings profiles that ship with enricher, loaded by name: `load_settings("emulator")`
PROFILES = ("default", "emulator")
#: `ENRICHER_*` variables read outside the settings (`enricher emulator`'s secrets, and
#: ENRICHER_NO_C: the text extractor without its C module, enricher/inputs/native.py)
_OTHER_VARIABLES = ("ENRICHER_EMULATOR_TOKEN", "ENRICHER_EMULATOR_LOGIN", "ENRICHER_NO_C")
_VERDICT_PREFIX = f"{ENV_PREFIX}VERDICTS_"


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise SettingsError(f"{name}: {message}")


# Everything from `://` to the last `@` of the line: a password may hold `/`, `@`, `#` or a
# space typed unencoded, and redacting a little too much never leaks.
_USERINFO = re.compile(r"(?<=://)[^\n]*@")
# A URL's query, which may carry an API key (`?apikey=…`), up to a space or a quote.
_QUERY = re.compile(r"(://[^\s?#'\"]*)\?[^\s#'\"]*")


def redact_url(text: str) -> str:
    """`https://user:pw@host/x?key=K` → `https://***@host/x?***`: a URL may carry
    credentials, in its user info or its query."""
    return _QUERY.sub(r"\1?***", _USERINFO.sub("***@", text))


def check_url(
    url: str,
    name: str,
    *,
    schemes: tuple[str, ...] = ("http", "https"),
    prefix: bool = False,
) -> None:
    """A URL of one of `schemes` with a host and a valid port, as aiohttp reads it; with
    `prefix` (a URL that paths are appended to), no query or fragment. A password in it must
    be one that can be kept out of what servers send back (`redaction.check_secret`). The
    message never shows its userinfo or query (nor the parser's own words, which may quote a
    piece of a password)."""
    shown = redact_url(url)
    want = " or ".join(f"{s}://" for s in schemes)
    _check(url.startswith(tuple(f"{s}://" for s in schemes)), name,
           f"must start with {want} (got {shown!r})")  # fmt: skip
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        raise SettingsError(
            f"{name}: not a valid URL (a port that is not a number from 0 to 65535, or a"
            f" bracket that does not close): {shown!r}"
        ) from None
    _check(bool(parts.hostname), name, f"has no host: {shown!r}")
    host = parts.hostname or ""
    labels = host.rstrip(".").split(".")
    _check(
        not any(c.isspace() for c in host) and all(labels), name, f"has no valid host: {shown!r}"
    )
    try:
        # as aiohttp reads it (a backslash in the user info, say, would fail only there,
        # quoting the whole URL)
        URL(url).host  # noqa: B018 - an internationalized name is encoded here
    except (ValueError, UnicodeError):
        raise SettingsError(
            f"{name}: not a valid URL (a character that must be percent-encoded, such as"
            f" a backslash, or a host name that is not one): {shown!r}"
        ) from None
    if prefix:
        _check(
            "?" not in url and "#" not in url,
            name,
            f"must not hold a query or a fragment (`?…`, `#…`): the endpoint's name is"
            f" appended to it (got {shown!r}; percent-encode a `?` or `#` of a password)",
        )
    if parts.password:
        check_secret(urllib.parse.unquote(parts.password), f"{name}: the URL's password")


def _redacted_repr(self: Any) -> str:
    """The dataclass repr, with credentials in URLs (a proxy's, say) replaced by `***`."""
    parts = []
    for f in dataclasses.fields(self):
        if f.repr:
            value = getattr(self, f.name)
            shown = redact_url(value) if isinstance(value, str) else value
            parts.append(f"{f.name}={shown!r}")
    return f"{type(self).__qualname__}({', '.join(parts)})"


#: the setting that holds each endpoint's batch size
_BATCH_SIZE_FIELDS = {
    Endpoint.FILE: "file_batch_size",
    Endpoint.DOMAIN: "domain_batch_size",
    Endpoint.IP: "ip_batch_size",
}


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    #: the prefix before the endpoint name
    base_url: str = "https://sage.cybereason.com/rest/classification_v1"
    #: sha256 is not documented for file_batch: off, such keys become `unsupported` failures
    send_sha256: bool = False
    #: the unit of the answers' `ttl` field (undocumented; milliseconds by inference)
    ttl_unit: Literal["ms", "s"] = "ms"
    #: keys per request for each endpoint (the real limit is undocumented)
    file_batch_size: int = 500
    domain_batch_size: int = 500
    ip_batch_size: int = 500
    #: an answer larger than this is refused without reading it all
    max_response_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        check_url(self.base_url, "api.base_url", prefix=True)
        for ep, size in self.batch_sizes().items():
            _check(
                1 <= size <= 100_000,
                f"api.{_BATCH_SIZE_FIELDS[ep]}",
                "must be between 1 and 100000",
            )
        _check(self.max_response_bytes >= 1024, "api.max_response_bytes", "must be >= 1024")

    __repr__ = _redacted_repr

    def batch_sizes(self) -> dict[Endpoint, int]:
        """Keys per request, by endpoint."""
        return {
            Endpoint.FILE: self.file_batch_size,
            Endpoint.DOMAIN: self.domain_batch_size,
            Endpoint.IP: self.ip_batch_size,
        }

    def batch_size(self, endpoint: Endpoint) -> int:
        return self.batch_sizes()[endpoint]

    @staticmethod
    def one_batch_size(size: int) -> dict[str, int]:
        """The settings that give every endpoint `size` keys per request (`--batch-size`)."""
        return dict.fromkeys(_BATCH_SIZE_FIELDS.values(), size)

    def url(self, endpoint: Endpoint) -> str:
        return f"{self.base_url.rstrip('/')}/{endpoint.value}"


@dataclass(frozen=True, kw_only=True)
class LimitSettings:
    #: requests per second across all endpoints; 0 means no limit (only for the emulator)
    rate: float = 10.0
    #: pace this fraction below `rate`, so jitter on the way never puts the server over it
    rate_headroom: float = 0.015
    #: requests in flight at once (also the connection pool size)
    concurrency: int = 8
    #: lower the rate on repeated 429s (multiplicative decrease, additive increase)
    adaptive: bool = True
    min_rate: float = 0.2
    #: with `adaptive`: a 429 within this many seconds of the last one halves the rate (a
    #: lone 429 only costs its retry)
    rate_window: float = 10.0
    #: ... at most once in this many seconds (429s of requests already on their way count once)
    rate_cooldown: float = 2.0
    #: ... and the rate then climbs back by this share of `rate` a second without 429s
    rate_recovery: float = 0.05
    #: requests a UTC day, across runs (counted in the cache database); 0 = no budget
    daily_budget: int = 0

    def __post_init__(self) -> None:
        # below one request in 1,000 s a run never ends, and the pacing divides by the rate
        _check(
            self.rate == 0 or 0.001 <= self.rate <= 1_000_000,
            "limits.rate",
            "must be 0 (unlimited) or between 0.001 and 1000000 requests a second",
        )
        _check(self.daily_budget >= 0, "limits.daily_budget", "must be >= 0 (0 = none)")
        _check(0 <= self.rate_headroom < 0.5, "limits.rate_headroom", "must be in [0, 0.5)")
        _check(1 <= self.concurrency <= 1024, "limits.concurrency", "must be between 1 and 1024")
        _check(0.001 <= self.min_rate <= 1_000_000, "limits.min_rate", "must be >= 0.001")
        _check(self.rate_window >= 0, "limits.rate_window", "must be >= 0 seconds")
        _check(self.rate_cooldown >= 0, "limits.rate_cooldown", "must be >= 0 seconds")
        _check(0 < self.rate_recovery <= 1, "limits.rate_recovery", "must be in (0, 1]")


@dataclass(frozen=True, kw_only=True)
class RetrySettings:
    #: HTTP attempts per batch before its keys become failures
    attempts: int = 6
    #: full-jitter exponential backoff: uniform(0, min(backoff_max, backoff_base * 2**n))
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: the longest wait between two attempts that a 429's Retry-After imposes (capped)
    retry_after_max: float = 120.0
    #: a 429 whose Retry-After is longer than this is a quota spent, not a moment's excess:
    #: the run stops sending and defers what it did not ask, for a run after that time
    max_wait: float = 300.0
    #: the longest a spent quota stops sending, whatever the server says (seconds; 2 days): a
    #: Retry-After of a year, or `Fri, 31 Dec 9999`, would stop every run of the identity
    max_quota_wait: float = 2 * 86400.0
    #: times a key left out of an answer is asked again before it becomes a failure
    missing_attempts: int = 3

    def __post_init__(self) -> None:
        _check(1 <= self.attempts <= 100, "retry.attempts", "must be between 1 and 100")
        _check(self.backoff_base >= 0, "retry.backoff_base", "must be >= 0")
        _check(self.backoff_max >= self.backoff_base, "retry.backoff_max", ">= backoff_base")
        _check(self.retry_after_max >= 0, "retry.retry_after_max", "must be >= 0")
        _check(self.max_wait >= 0, "retry.max_wait", "must be >= 0 seconds")
        _check(
            self.max_wait <= self.max_quota_wait <= 366 * 86400,
            "retry.max_quota_wait",
            "must be between retry.max_wait and 366 days (in seconds)",
        )
        _check(self.missing_attempts >= 1, "retry.missing_attempts", "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    connect_timeout: float = 10.0
    #: the longest silence while reading an answer
    read_timeout: float = 60.0
    #: one attempt, start to end
    total_timeout: float = 120.0
    verify_tls: bool = True
    ca_bundle: str | None = None
    #: an explicit proxy URL; with `trust_env`, HTTPS_PROXY / NO_PROXY are honoured too
    proxy: str | None = None
    trust_env: bool = True

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            _check(getattr(self, name) > 0, f"network.{name}", "must be > 0 seconds")
        if self.ca_bundle is not None:
            _check(
                Path(self.ca_bundle).is_file(),
                "network.ca_bundle",
                f"no such file: {self.ca_bundle}",
            )
        if self.proxy:
            # as aiohttp takes it: a proxy given without a scheme is an http:// one
            proxy = self.proxy if "://" in self.proxy else f"http://{self.proxy}"
            check_url(proxy, "network.proxy", schemes=PROXY_SCHEMES)

    __repr__ = _redacted_repr


class Secret:
    """A secret value that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    """How to authenticate. Settings name where secrets live, never the secrets themselves."""

    #: none (public clients send nothing), session (tenant login cookie) or header
    mode: Literal["none", "session", "header"] = "none"
    #: session: the tenant login page, e.g. https://tenant.cybereason.net/login.html
    login_url: str | None = None
    username_env: str = "ENRICHER_USERNAME"
    password_env: str = "ENRICHER_PASSWORD"
    password_file: str | None = None
    #: header: the header's name and where its value is
    header_name: str = "Authorization"
    header_value_env: str = "ENRICHER_AUTH_HEADER"
    header_value_file: str | None = None

    def __post_init__(self) -> None:
        _check(
            self.mode in ("none", "session", "header"),
            "auth.mode",
            "must be none, session or header",
        )
        if self.mode == "session":
            _check(bool(self.login_url), "auth.login_url", "is required with mode = session")
        if self.login_url:
            check_url(self.login_url, "auth.login_url")

    __repr__ = _redacted_repr

    def _secret(self, env: str, file: str | None, what: str) -> Secret:
        if file:
            try:
                return Secret(Path(file).read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise SettingsError(f"auth: cannot read the {what} file: {exc.strerror}") from None
        value = os.environ.get(env)
        if not value:
            raise SettingsError(f"auth: set the environment variable {env} to the {what}")
        return Secret(value)

    def username(self) -> str:
        """The tenant login's user name (mode = session)."""
        user = os.environ.get(self.username_env)
        if not user:
            raise SettingsError(f"auth: set the environment variable {self.username_env}")
        return user

    def credentials(self) -> tuple[str, Secret]:
        """Username and password for the tenant login (mode = session); SettingsError for a
        password that could not be kept out of what the server sends back."""
        password = self._secret(self.password_env, self.password_file, "password")
        where = self.password_file or self.password_env
        check_secret(password.reveal(), f"auth: the password ({where})")
        return self.username(), password

    def check_secrets(self) -> None:
        """Read the secrets this mode sends (SettingsError, as a run would give, for one
        that is missing or could not be kept out of what the server sends back): found out
        before a run opens anything."""
        if self.mode == "header":
            self.header_value()
        elif self.mode == "session":
            self.credentials()

    def header_value(self) -> Secret:
        """The header's value (mode = header): SettingsError if it, or the token after its
        scheme (`Bearer TOKEN`), could not be kept out of what the server sends back."""
        secret = self._secret(self.header_value_env, self.header_value_file, "header value")
        where = self.header_value_file or self.header_value_env
        value = secret.reveal()
        check_secret(value, f"auth: the header value ({where})")
        scheme, _, token = value.partition(" ")
        if token:
            check_secret(token, f"auth: the token after {scheme!r} in {where}")
        return secret


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    #: a partial batch is sent when no new key has come for this long (seconds)
    batch_deadline: float = 0.2
    #: a longer input line is rejected without being held in memory
    max_line_bytes: int = 1024 * 1024
    #: chunks of input lines waiting between the reader and the batcher
    read_queue: int = 8
    #: on a first SIGINT/SIGTERM, how long requests in flight may still finish (seconds)
    grace_period: float = 10.0
    #: the event loop of `enricher run`: "auto" (uvloop when installed: enricher[fast]),
    #: "uvloop" (an error if it is not installed) or "asyncio"
    event_loop: str = "auto"

    def __post_init__(self) -> None:
        _check(
            self.event_loop in ("auto", "uvloop", "asyncio"),
            "pipeline.event_loop",
            "must be auto, uvloop or asyncio",
        )
        _check(self.batch_deadline > 0, "pipeline.batch_deadline", "must be > 0 seconds")
        _check(self.max_line_bytes >= 256, "pipeline.max_line_bytes", "must be >= 256")
        _check(self.read_queue >= 1, "pipeline.read_queue", "must be >= 1")
        _check(self.grace_period >= 0, "pipeline.grace_period", "must be >= 0 seconds")


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """The persistent answer cache of `enricher run` (SQLite)."""

    enabled: bool = True
    #: the database file; empty: $XDG_CACHE_HOME/enricher/cache.sqlite3 (~/.cache/...)
    path: str = ""
    #: the longest an answer is kept, whatever its ttl says (seconds; 7 days)
    max_ttl: float = 7 * 86400.0
    #: how long an answer without a ttl is kept (seconds; 1 day)
    default_ttl: float = 86400.0
    #: the most the file may hold (bytes; 2 GiB): past it, the oldest answers are evicted
    max_size: int = 2 * 1024**3

    def __post_init__(self) -> None:
        _check(self.max_ttl >= 0, "cache.max_ttl", "must be >= 0 seconds")
        _check(self.default_ttl >= 0, "cache.default_ttl", "must be >= 0 seconds")
        _check(self.max_size >= 1024**2, "cache.max_size", "must be at least 1048576 (1 MiB)")


#: the schemes of `state.url`
STATE_SCHEMES = ("sqlite", "redis", "rediss")


@dataclass(frozen=True, kw_only=True)
class StateSettings:
    """Where the state that outlives a run lives (`--state URL`): the answers, the daily
    budget, the deferred lists and, with Redis, the rate limiter (see `enricher.state.open`)."""

    #: `sqlite:///PATH` (the state file; empty: `cache.path`, the default), or
    #: `redis://[:PASSWORD@]HOST[:PORT][/DB]` (`rediss://` for TLS): shared by every process
    #: of the same API identity (extra `enricher[redis]`)
    url: str = ""
    #: the prefix of every Redis key (several enricher installations on one server)
    prefix: str = "enricher"
    #: the Redis password when the URL holds none: this file's content, else this variable's
    password_env: str = "ENRICHER_STATE_PASSWORD"
    password_file: str | None = None
    #: with Redis, the shared limiter paces this far below `limits.rate` (or
    #: `limits.rate_headroom`, if more): requests of several processes reach the server
    #: with more jitter than one's (benchmarks/shared_state.py: 3 jobs at 20/s on a loaded
    #: 2-core machine drew 3 429s of 303 with 1.5%, halving the shared rate; 1 of 301 with 3%)
    rate_headroom: float = 0.03
    #: with Redis, the name this process's claims on keys in flight are taken under (empty:
    #: a random one): a cluster's parts set it to their job and part, so that a part run
    #: again on another worker takes its lost run's claims over instead of waiting them out
    claim_token: str = ""

    def __post_init__(self) -> None:
        _check(0 <= self.rate_headroom < 0.5, "state.rate_headroom", "must be in [0, 0.5)")
        _check(
            self.claim_token.isprintable() and len(self.claim_token) <= 128,
            "state.claim_token",
            "must be printable characters, 128 at most",
        )
        if self.url:
            scheme = self.url.partition("://")[0] if "://" in self.url else ""
            _check(
                scheme in STATE_SCHEMES,
                "state.url",
                f"must start with sqlite://, redis:// or rediss:// (got {redact_url(self.url)!r})",
            )
            if scheme == "sqlite":
                _check(bool(self.sqlite_path), "state.url", "sqlite:///PATH names no file")
            else:
                check_url(self.url, "state.url", schemes=("redis", "rediss"))
        _check(
            bool(self.prefix) and self.prefix.isprintable() and ":" not in self.prefix,
            "state.prefix",
            "must be printable characters, no colon",
        )

    __repr__ = _redacted_repr

    @property
    def shared(self) -> bool:
        """Whether the state is a Redis server's (shared by many processes)."""
        return self.url.startswith(("redis://", "rediss://"))

    @property
    def sqlite_path(self) -> str | None:
        """The state file a `sqlite://` URL names (`sqlite:///tmp/x` is /tmp/x)."""
        return self.url.removeprefix("sqlite://") if self.url.startswith("sqlite://") else None

    def password(self) -> Secret | None:
        """The Redis password when the URL holds none (`password_file`, else
        `password_env`), if any."""
        if self.password_file:
            try:
                return Secret(Path(self.password_file).read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise SettingsError(
                    f"state: cannot read the password file: {exc.strerror}"
                ) from None
        value = os.environ.get(self.password_env)
        return Secret(value) if value else None


@dataclass(frozen=True, kw_only=True)
class PrivacySettings:
    """What is never sent (see `enricher.pipeline.privacy`)."""

    #: send internal addresses and names, and the organization's own, as any other IOC
    send_internal: bool = False
    #: the organization's own domains: they and every name under them are never sent
    internal_domains: tuple[str, ...] = ()
    #: the organization's own networks (CIDR, or single addresses): never sent
    internal_networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from ..pipeline.privacy import (
            Privacy,  # here: it loads the inputs package, settings stay light
        )

        Privacy(internal_domains=self.internal_domains, internal_networks=self.internal_networks)


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    """One job spread over a Dask cluster (`enricher[dask]`, see `enricher.cluster`)."""

    #: worker processes of a local cluster started for the job; 1: this process alone (no Dask)
    workers: int = 1
    #: an existing cluster's scheduler (tcp://host:8786); empty: none
    address: str = ""
    #: the parts the unique IOCs are hashed into, each enriched by one task; 0: twice the
    #: cluster's worker threads
    partitions: int = 0
    #: a plain file of lines or text bigger than this is read in blocks of about this many
    #: bytes, which the workers share; 0: each input read whole, by one task
    block_bytes: int = 16_000_000

    def __post_init__(self) -> None:
        _check(1 <= self.workers <= 1024, "cluster.workers", "must be between 1 and 1024")
        _check(self.block_bytes >= 0, "cluster.block_bytes", "must be 0 (whole inputs) or more")
        _check(0 <= self.partitions <= 100_000, "cluster.partitions", "must be 0 (auto) to 100000")
        if self.address:
            check_url(self.address, "cluster.address", schemes=("tcp", "tls"))

    @property
    def on(self) -> bool:
        """The job runs over a cluster (a local one of several workers, or another's)."""
        return self.workers > 1 or bool(self.address)


def _default_verdicts() -> dict[str, str]:
    table = _read_toml(config_path("verdicts.toml"))
    return dict(table.get("verdicts", {}))


@dataclass(frozen=True, kw_only=True)
class Settings:
    api: ApiSettings = field(default_factory=ApiSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    state: StateSettings = field(default_factory=StateSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    #: classification type -> verdict; types not listed map to `unknown`
    verdicts: Mapping[str, str] = field(default_factory=_default_verdicts)

    def __post_init__(self) -> None:
        for ctype, verdict in self.verdicts.items():
            _check(
                verdict in VERDICTS,
                f"verdicts.{ctype}",
                f"must be one of {', '.join(VERDICTS)} (got {verdict!r})",
            )
        # a frozen, read-only copy: the table is shared by every record built
        object.__setattr__(self, "verdicts", types.MappingProxyType(dict(self.verdicts)))

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some fields of some sections changed, validated again."""
        return _build(self, {name: dict(values) for name, values in sections.items()})


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in `90`, `90s`, `30m`, `12h`, `7d` or `2w`."""
    t = text.strip().lower()
    unit = _UNITS.get(t[-1:])
    number = t[:-1] if unit is not None else t
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise SettingsError(f"not a duration: {text!r} (use e.g. 90s, 30m, 12h, 7d)")
    if value < 0:
        raise SettingsError(f"a duration cannot be negative: {text!r}")
    return value


def config_path(name: str) -> Path:
    """A file from `configs/`: in the installed package, or beside it in a checkout."""
    packaged = resources.files("enricher").joinpath("configs", name)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "configs" / name


#: a settings profile is a few lines; more is not one (and /dev/zero never ends)
_MAX_PROFILE = 1 << 20


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        if path.is_dir():
            raise SettingsError(f"settings file is a directory: {path}")
        if path.exists() and not path.is_file():
            raise SettingsError(f"settings file is not a regular file: {path}")
        with path.open("rb") as f:
            data = f.read(_MAX_PROFILE + 1)
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path}") from None
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file {path}: {exc.strerror}") from None
    if len(data) > _MAX_PROFILE:
        raise SettingsError(f"settings file {path}: larger than 1 MiB, not a settings profile")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SettingsError(f"settings file {path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Check (and for strings from the environment, convert) one value against its type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        _check(value in args, name, f"must be one of {', '.join(map(str, args))}")
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None or (isinstance(value, str) and value == "" and type(None) in args):
            _check(type(None) in args, name, "is required")
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, inner[0], value)
    if hint is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            _check(low in ("1", "0", "true", "false", "yes", "no", "on", "off"), name, "bool")
            return low in ("1", "true", "yes", "on")
        _check(isinstance(value, bool), name, f"must be true or false (got {value!r})")
        return value
    if hint is int or hint is float:
        if isinstance(value, str):
            try:
                value = hint(value)
            except ValueError:
                raise SettingsError(f"{name}: must be a number (got {value!r})") from None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        _check(ok and (hint is float or isinstance(value, int)), name, f"must be {hint.__name__}")
        # inf and nan parse as floats; no setting means either (inf / rate = 0 s, say)
        _check(math.isfinite(value), name, f"must be a finite number (got {value!r})")
        return hint(value)
    if hint is str:
        _check(isinstance(value, str), name, f"must be a string (got {value!r})")
        return value
    if origin is tuple:  # a list of strings; from the environment, separated by commas
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        _check(ok, name, f"must be a list of strings (got {value!r})")
        return tuple(value)
    return value


def _build(base: Settings, changes: Mapping[str, Mapping[str, Any]]) -> Settings:
    sections: dict[str, Any] = {}
    for name, values in changes.items():
        if name == "verdicts":
            merged = dict(base.verdicts)
            merged.update({str(k): v for k, v in values.items()})
            sections[name] = merged
            continue
        current: Any = getattr(base, name, None)
        if current is None or not dataclasses.is_dataclass(current) or isinstance(current, type):
            known = ", ".join(f.name for f in dataclasses.fields(Settings))
            raise SettingsError(f"unknown settings section [{name}] (known: {known})")
        hints = typing.get_type_hints(type(current))
        fields = {f.name for f in dataclasses.fields(current)}
        kwargs = {}
        for key, value in values.items():
            if key not in fields:
                raise SettingsError(
                    f"unknown setting {name}.{key} (known: {', '.join(sorted(fields))})"
                )
            kwargs[key] = _coerce(f"{name}.{key}", hints[key], value)
            if name == "privacy" and isinstance(kwargs[key], tuple):
                # what is never sent adds up, from the profile, the environment and the flags:
                # a later layer (an empty variable in a cron template) cannot clear it
                kwargs[key] = tuple(dict.fromkeys((*getattr(current, key), *kwargs[key])))
        sections[name] = dataclasses.replace(current, **kwargs)
    try:
        return dataclasses.replace(base, **sections)
    except TypeError as exc:  # pragma: no cover - guarded by the checks above
        raise SettingsError(str(exc)) from None


def _setting_variables() -> dict[str, tuple[str, str]]:
    """`ENRICHER_<SECTION>_<FIELD>` -> (section, field), for every setting but the verdicts."""
    found = {}
    hints = typing.get_type_hints(Settings)
    for section in dataclasses.fields(Settings):
        if section.name == "verdicts":
            continue
        for f in dataclasses.fields(hints[section.name]):
            found[f"{ENV_PREFIX}{section.name}_{f.name}".upper()] = (section.name, f.name)
    return found


def _from_environment(
    environ: Mapping[str, str], verdicts: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    changes: dict[str, dict[str, str]] = {}
    for var, (section, name) in _setting_variables().items():
        if var in environ:
            changes.setdefault(section, {})[name] = environ[var]
    for var, value in environ.items():
        if var.startswith(_VERDICT_PREFIX) and len(var) > len(_VERDICT_PREFIX):
            ctype = var.removeprefix(_VERDICT_PREFIX).lower()
            if ctype not in verdicts:
                near = difflib.get_close_matches(ctype, list(verdicts), n=1, cutoff=0.8)
                hint = f" (did you mean {_VERDICT_PREFIX}{near[0].upper()}?)" if near else ""
                log.warning(
                    "warning: %s: %r is not in the verdict table%s; added as a new type",
                    var, ctype, hint,
                )  # fmt: skip
            changes.setdefault("verdicts", {})[ctype] = value
    return changes


def _warn_unknown(environ: Mapping[str, str], settings: Settings) -> None:
    """A warning for each `ENRICHER_*` variable enricher does not read, with the nearest
    name it does: a misspelled setting must not be silently ignored."""
    auth = settings.auth
    defaults = AuthSettings()
    known = set(_setting_variables()) | set(_OTHER_VARIABLES)
    known |= {auth.username_env, auth.password_env, auth.header_value_env}
    known |= {defaults.username_env, defaults.password_env, defaults.header_value_env}
    known |= {settings.state.password_env, StateSettings().password_env}
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var in known or var.startswith(_VERDICT_PREFIX):
            continue
        near = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean {near[0]}?)" if near else ""
        log.warning("warning: %s is not a variable enricher reads%s; it is ignored", var, hint)


def _profile(path: str | Path | None) -> Path:
    """The TOML file to load: the shipped default profile for None, a shipped profile by
    name (`emulator`), else the path."""
    if path is None:
        return config_path("default.toml")
    text = str(path)
    if not os.path.lexists(text) and "/" not in text and "." not in text:
        if text in PROFILES:
            return config_path(f"{text}.toml")
        raise SettingsError(
            f"no settings profile named {text!r}: the shipped ones are "
            f"{', '.join(PROFILES)}; or give the path of a TOML file"
        )
    return Path(path)


def load_settings(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings of a profile, then `ENRICHER_*` variables (`os.environ`, or `environ`),
    then `overrides`. The profile is the TOML file at `path`, or a shipped one by name
    (`PROFILES`: "default", for the real API; "emulator"), or without `path` the shipped
    default: in a notebook or a service, `load_settings()` needs no checkout."""
    source = _profile(path)
    doc = _read_toml(source)
    for name, values in doc.items():
        if not isinstance(values, dict):
            raise SettingsError(f"{source}: `{name}` must be a [section] table")
    settings = _build(Settings(), doc)
    env = os.environ if environ is None else environ
    settings = _build(settings, _from_environment(env, settings.verdicts))
    _warn_unknown(env, settings)
    if overrides:
        settings = _build(settings, {k: v for k, v in overrides.items() if v})
    return settings
