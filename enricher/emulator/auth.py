"""Optional authentication: a static token header and/or a tenant-style login session.

Secrets are compared in constant time and never logged or put in an error body.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping

from .config import EmulatorConfig

__all__ = ["SESSION_COOKIE", "Authenticator"]

SESSION_COOKIE = "JSESSIONID"


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class Authenticator:
    """Decides whether an API request may pass, and runs `POST /login.html`."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float]) -> None:
        self._token = config.api_token
        self._header = config.token_header
        self._bearer_only = config.token_header.lower() == "authorization"
        self._credentials = config.login_credentials
        self._session_seconds = config.session_seconds
        self._clock = clock
        self._sessions: dict[str, float] = {}  # session id -> expiry on the clock
        self.required = config.auth_required

    @property
    def login_enabled(self) -> bool:
        return self._credentials is not None

    def allows(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """Whether a request with these headers and cookies is authenticated."""
        if not self.required:
            return True
        if self._token is not None and self._token_ok(headers.get(self._header)):
            return True
        session = cookies.get(SESSION_COOKIE)
        if session is not None and self._credentials is not None:
            expiry = self._sessions.get(session)
            if expiry is not None:
                if self._clock() < expiry:
                    return True
                del self._sessions[session]
        return False

    def _token_ok(self, value: str | None) -> bool:
        assert self._token is not None
        if value is None:
            return False
        if value[:7].lower() == "bearer ":
            value = value[7:].strip()
        elif self._bearer_only:
            return False
        return _same(value, self._token)

    def login(self, username: str, password: str) -> str | None:
        """A new session id for the right credentials, else None."""
        if self._credentials is None:
            return None
        user, pw = self._credentials
        # Both comparisons always run, so timing does not tell which one failed.
        ok = _same(username, user) & _same(password, pw)
        if not ok:
            return None
        session = secrets.token_hex(16).upper()
        self._sessions[session] = self._clock() + self._session_seconds
        return session
