"""Who answered: the API identity every cached answer, and the daily budget, belongs to.

The same key can get another answer from another server (a staging endpoint, the emulator)
or another account (a tenant, a token with other rights), so the cache serves an answer only
to the identity that fetched it. An identity is

- the normalized base URL: scheme, host in lower case (an internationalized name as its
  A-labels, no trailing dot, an IPv6 address in brackets), the port unless it is the scheme's
  default, the path without its trailing slash; never the URL's user info (a base URL holds
  no query or fragment: the settings refuse them);
- and the account: `anonymous`, or what identifies it: `user NAME` (the user info of the
  URL, or the tenant login's user, with the login page), `header NAME` (a static header);
  and, when any secret is part of it (the URL's password, the header's value), a keyed hash
  of those secrets, never the secrets.

The hash is HMAC-SHA256 under a random key made for each cache file and kept in it: a token
then leaves no value that could be looked up in a table or matched across two cache files
(a backup, a support bundle), and the key changes nothing for whoever already holds both
file and token. `--emulator` runs the embedded emulator on a new port every time; it is the
one identity `EMBEDDED_EMULATOR` (its answers are a pure function of the key).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from yarl import URL

from .. import __version__
from ..config.settings import Secret, Settings
from ..errors import SettingsError

__all__ = ["EMBEDDED_EMULATOR", "ApiIdentity", "identity_of", "normalize_base_url"]

#: what the keyed hash is of, so that its value means nothing in any other protocol
_DOMAIN = b"enricher api identity v1\0"


@dataclass(frozen=True)
class ApiIdentity:
    """An API identity: `base` and `account` are shown and stored as they are; `secrets`,
    only as their keyed hash (see `name`)."""

    base: str
    account: str = "anonymous"
    #: (what, value) of each secret part of the account; never shown, never stored
    secrets: tuple[tuple[str, Secret], ...] = field(default=(), repr=False)

    def name(self, key: bytes) -> str:
        """The identity as the cache stores it: base URL, account and, with secrets, the
        first 128 bits of their HMAC-SHA256 under `key` (the cache file's own key)."""
        if not self.secrets:
            return f"{self.base} {self.account}"
        mac = hmac.new(key, _DOMAIN, hashlib.sha256)
        for what, secret in self.secrets:
            for part in (what.encode(), secret.reveal().encode()):
                mac.update(len(part).to_bytes(4, "big") + part)  # unambiguous: each part sized
        return f"{self.base} {self.account} #{mac.hexdigest()[:32]}"


#: `enricher run --emulator`: the embedded emulator, on whatever port it got (its answers
#: depend only on the key and the emulator's code, hence the version)
EMBEDDED_EMULATOR = ApiIdentity(f"embedded emulator (enricher {__version__})")


def normalize_base_url(text: str, setting: str = "api.base_url") -> tuple[str, URL]:
    """The base URL as an identity shows it (see the module's docstring), and the parsed
    URL; SettingsError for a URL without a host."""
    try:
        url = URL(text)
        host = url.raw_host
    except ValueError:
        host = None
    if not host:
        raise SettingsError(f"{setting}: the URL has no host")
    host = host.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = "" if url.explicit_port is None or url.is_default_port() else f":{url.port}"
    return f"{url.scheme.lower()}://{host}{port}{url.raw_path.rstrip('/')}", url


def identity_of(settings: Settings) -> ApiIdentity:
    """The identity the API of `settings` answers as. Reads the credentials the settings
    name (SettingsError, as a run would give, when they are not there)."""
    base, url = normalize_base_url(settings.api.base_url)
    account: list[str] = []
    secrets: list[tuple[str, Secret]] = []
    if url.user:
        account.append(f"user {url.user}")
    if url.password:
        secrets.append(("url password", Secret(url.password)))
    auth = settings.auth
    if auth.mode == "session":
        assert auth.login_url is not None  # checked by AuthSettings
        login, _ = normalize_base_url(auth.login_url, "auth.login_url")
        account.append(f"user {auth.username()} at {login}")
    elif auth.mode == "header":
        account.append(f"header {auth.header_name.lower()}")
        secrets.append(("header", auth.header_value()))
    return ApiIdentity(base, ", ".join(account) or "anonymous", tuple(secrets))
