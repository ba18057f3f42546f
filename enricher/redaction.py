"""Our secrets, kept out of what a server sends back: error texts and answers.

A server may echo what it was sent (our token, the session cookie, the login or URL
password) in an error body, an error said with HTTP 200, or inside an answer. Error texts go
to the failures file and the logs, answers to the output and the cache: each occurrence of a
secret is replaced by `***` before any of that, and before an error text is cut to length (a
cut first could leave most of a secret behind, out of reach of the replacement).
"""

from __future__ import annotations

import re
from typing import TypeVar

import orjson

from .errors import BadRequest

__all__ = ["ERROR_TEXT_MAX", "MASK", "Redactor"]

MASK = "***"
#: the longest error text written (the server's part of it, after redaction)
ERROR_TEXT_MAX = 200
#: shorter values are not kept: they would blank out ordinary words (and are guessed anyway)
MIN_SECRET = 4

_E = TypeVar("_E", bound=Exception)

#: one JSON string (its escapes whole)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def clip(text: str, limit: int = ERROR_TEXT_MAX) -> str:
    """`text` cut to `limit` characters, saying so."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Redactor:
    """The secrets in use, and their replacement in texts and in answer bodies."""

    def __init__(self) -> None:
        self._secrets: list[str] = []  # longest first: a secret holding another goes whole
        #: each secret as an answer body may hold it: raw, and as JSON escapes it
        self._needles: list[bytes] = []

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def add(self, value: str) -> None:
        if len(value) < MIN_SECRET or value in self._secrets:
            return
        self._secrets = sorted([*self._secrets, value], key=len, reverse=True)
        escaped = orjson.dumps(value)[1:-1]
        forms = {value.encode(), escaped, escaped.replace(b"/", b"\\/")}
        self._needles = sorted({*self._needles, *forms}, key=len, reverse=True)

    def text(self, text: str, limit: int = ERROR_TEXT_MAX) -> str:
        """`text` with every secret replaced, then cut to `limit` characters."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return clip(text, limit)

    def exception(self, exc: _E, limit: int = ERROR_TEXT_MAX + 50) -> _E:
        """`exc` with its text (and a 400's cause) redacted, then cut to length."""
        exc.args = (self.text(str(exc), limit),)
        if isinstance(exc, BadRequest) and exc.cause is not None:
            exc.cause = self.text(exc.cause)
        return exc

    def body(self, body: bytes) -> tuple[bytes, int]:
        """An answer body with every secret inside its JSON strings replaced, and how many
        were. The bytes of everything else are kept as they came; a body that holds none
        costs one `in` per form of each secret (and nothing without secrets)."""
        if not self._needles or not (
            b"\\u" in body or any(needle in body for needle in self._needles)
        ):
            return body, 0
        found = 0
        secrets, needles = self._secrets, self._needles

        def scrub(m: re.Match[bytes]) -> bytes:
            nonlocal found
            token = m.group()
            if b"\\u" not in token and not any(n in token for n in needles):
                return token
            text = orjson.loads(token)  # a JSON string: \u escapes read too
            n = 0
            for secret in secrets:  # longest first: "Bearer TOKEN" is one, not two
                if secret in text:
                    n += text.count(secret)
                    text = text.replace(secret, MASK)
            if not n:
                return token
            found += n
            return orjson.dumps(text)

        # a secret outside any string (inside a number, say) is a coincidence, not an echo,
        # and replacing it would break the JSON; a body that is no JSON at all fails later
        scrubbed = _STRING.sub(scrub, body)
        return scrubbed, found
