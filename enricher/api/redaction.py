"""Our secrets, kept out of what a server sends back: error texts and answers.

A server may echo what it was sent (our token, the session cookie, the login or URL password)
in an error body, an error said with HTTP 200, or inside an answer. Error texts go to the
failures file and the logs, answers to the output and the cache. Only what a run sends is a
secret here: the header value (and the token after its scheme, `Bearer TOKEN`), the tenant
password and session cookie, the password of a URL's user info and the Basic credentials
made of it; a variable that is set but not in use is never sent, so never echoed.

A server may echo a secret in another form, and each is looked for: as it was sent,
JSON-escaped (`\\"`, `\\/`, `\\uXXXX`), percent-encoded the ways common encoders do it (which
characters they leave, `+` or `%20` for a space, upper- or lower-case hex), in base64
(standard or URL-safe, padded or not) and in hex.

- **Error texts**: every form is replaced by `***` before the text is cut to length (a cut
  first could leave most of a secret behind).
- **Answers**: each entry of a 200 is checked. A secret in a string the record's verdict does
  not come from is replaced by `***` in that string, and the rest of the entry is kept byte
  for byte. A secret in the entry's `requestKey`, in a field name or in its classification
  type is not replaced (that would change the key or the verdict silently): the entry is no
  answer, and its key fails as `secret_in_answer`. A secret's digits inside a number are a
  coincidence, not an echo, and are left alone.
- A secret shorter than `MIN_SECRET` characters, or part of a word every answer holds
  (`whitelist`, `requestKey`), cannot be told apart from ordinary text: the settings refuse
  it (`check_secret`).

Everything is linear in the size of what is searched (a string token is matched from where
the last one ended, never from inside it), and costs nothing without a secret.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec
import orjson

from ..errors import BadRequest, MalformedBody, SettingsError
from .protocol import ANSWER_WORDS, ParsedResponse, blank_escapes, read_entry

__all__ = ["ERROR_TEXT_MAX", "MASK", "MIN_SECRET", "Redactor", "check_secret", "clip"]

MASK = "***"
#: the longest error text written (the server's part of it, after redaction)
ERROR_TEXT_MAX = 200
#: a shorter secret would blank out ordinary words (and is guessed anyway): refused
MIN_SECRET = 8

_E = TypeVar("_E", bound=Exception)

#: one JSON string in `protocol.blank_escapes` of the bytes (a quote in it is a delimiter)
_STRING = re.compile(rb'"[^"]*"')
#: the JSON escapes that may hide a secret in a text that is not read as JSON
_ESCAPE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|(["\\/]))')
#: the characters percent-encoders leave as they are besides letters and digits, and whether
#: they write a space as `+`: RFC 3986 (Python's quote, Go, PHP's rawurlencode), with `/`
#: (Python's default), JavaScript's encodeURIComponent, Java's URLEncoder, PHP's urlencode
_PERCENT = [("-_.~", False), ("-_.~/", False), ("-_.!~*'()", False), ("-_.*", True),
            ("-_.", True), ("-_.~", True)]  # fmt: skip
_read_json = msgspec.json.Decoder(float_hook=float).decode  # 1e400: inf, as records read it


def clip(text: str, limit: int = ERROR_TEXT_MAX) -> str:
    """`text` cut to `limit` characters, saying so."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_secret(value: str, what: str) -> None:
    """SettingsError if `value` cannot be kept out of what a server sends back: shorter than
    MIN_SECRET characters, or part of a word every answer holds."""
    if len(value) < MIN_SECRET:
        raise SettingsError(
            f"{what} is {len(value)} characters long: a secret shorter than {MIN_SECRET} cannot"
            " be told apart from ordinary text in what the server sends back; use a longer one"
        )
    if any(value in word for word in ANSWER_WORDS):
        raise SettingsError(
            f"{what} is part of a word every answer holds (a field name or a classification):"
            " it cannot be told apart from the answers; use another"
        )


def _percent(text: str, safe: str, plus: bool, lower: bool) -> str:
    out = []
    for byte in text.encode():
        c = chr(byte)
        if c.isascii() and (c.isalnum() or c in safe):
            out.append(c)
        elif c == " " and plus:
            out.append("+")
        else:
            out.append(f"%{byte:02x}" if lower else f"%{byte:02X}")
    return "".join(out)


def _encodings(value: str) -> set[str]:
    """`value` in base64 (standard and URL-safe, padded and not) and in hex."""
    data = value.encode()
    b64 = {base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()}
    return b64 | {b.rstrip("=") for b in b64} | {data.hex(), data.hex().upper()}


def _forms(value: str) -> set[str]:
    """`value` as it is, percent-encoded in every common way, and JSON-escaped (as a
    string may hold it: a dump of our request's headers, say)."""
    escaped = orjson.dumps(value).decode()[1:-1]
    return {value, escaped, escaped.replace("/", "\\/")} | {
        _percent(value, safe, plus, lower) for safe, plus in _PERCENT for lower in (False, True)
    }


def _minimal(needles: Iterable[Any]) -> list[Any]:
    """The needles no shorter one is part of: finding those finds all."""
    kept: list[Any] = []
    for needle in sorted(set(needles), key=len):
        if not any(k in needle for k in kept):
            kept.append(needle)
    return kept


def _unescape(text: str) -> str:
    """`text` with its JSON escapes (`\\uXXXX`, `\\"`, `\\\\`, `\\/`) read; surrogate pairs
    joined, a lone one replaced."""
    plain = _ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else m[2], text)
    return plain.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Redactor:
    """The secrets a run sends, and their replacement in error texts and in answers."""

    def __init__(self) -> None:
        #: every form of every secret, longest first (replaced in decoded text)
        self._forms: list[str] = []
        #: the forms no shorter one is part of (found in decoded text)
        self._found: list[str] = []
        #: the same as an answer's bytes may hold them, raw or JSON-escaped
        self._needles: list[bytes] = []
        self._secrets: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._forms)

    def add(self, value: str, *, encoded: bool = True) -> None:
        """Keep `value` out of texts and answers, in every form (`encoded`: its base64 and
        hex too; not for a value that is itself base64, as Basic credentials are)."""
        if not value or value in self._secrets:
            return
        self._secrets.add(value)
        bases = {value} | (_encodings(value) if encoded else set())
        forms = {form for base in bases for form in _forms(base)} | set(self._forms)
        self._forms = sorted(forms, key=len, reverse=True)
        self._found = _minimal(self._forms)
        needles = set()
        for form in self._found:
            escaped = orjson.dumps(form)[1:-1]
            needles |= {form.encode(), escaped, escaped.replace(b"/", b"\\/")}
        self._needles = _minimal(needles)

    # -- texts ----------------------------------------------------------------------------

    def _mask(self, text: str) -> tuple[str, int]:
        """`text` with every form of every secret replaced, and how many were."""
        n = 0
        if any(form in text for form in self._found):
            for form in self._forms:  # longest first: "Bearer TOKEN" is one, not two
                if form in text:
                    n += text.count(form)
                    text = text.replace(form, MASK)
        return text, n

    def _clean(self, text: str) -> str:
        """`text` without our secrets (read with its JSON escapes where they hide one)."""
        text, _ = self._mask(text)
        if "\\" in text:
            masked, n = self._mask(_unescape(text))
            if n:
                text = masked
        return text

    def text(self, text: str, limit: int = ERROR_TEXT_MAX) -> str:
        """`text` with every secret replaced, then cut to `limit` characters."""
        if not self._forms:
            return clip(text, limit)
        # Only the start can be written: what a form that begins past it leaves (or hides
        # in escapes, six characters to one at most) is cut off with it. A 32 MiB error
        # body costs no more than a short one.
        window = 6 * (limit + len(self._forms[0])) + 16
        return clip(self._clean(text[:window]), limit)

    def exception(self, exc: _E, limit: int = ERROR_TEXT_MAX + 50) -> _E:
        """`exc` with its text (and a 400's cause) redacted, then cut to length."""
        exc.args = (self.text(str(exc), limit),)
        if isinstance(exc, BadRequest) and exc.cause is not None:
            exc.cause = self.text(exc.cause)
        return exc

    # -- answers --------------------------------------------------------------------------

    def _suspect(self, data: bytes) -> bool:
        """Whether JSON bytes may hold a secret (False: they do not)."""
        needles = self._needles
        if any(needle in data for needle in needles):
            return True
        if b"\\u" not in data:
            return False
        try:  # \u escapes may hide one: read, and written again without them
            again = msgspec.json.encode(_read_json(data))
        except (ValueError, UnicodeError):
            return True  # cannot tell: look closer
        return any(needle in again for needle in needles)

    def answers(self, parsed: ParsedResponse, body: bytes) -> int:
        """Take our secrets out of the entries of a parsed answer `body`: replaced in the
        strings no field of the record's verdict comes from (the count is returned); an
        entry with one in its `requestKey`, a field name or its classification type is
        taken out of `parsed.answers`, its key put in `parsed.echoed`. Free without
        secrets; one search of `body` per form of the secrets when it holds none."""
        if not self._needles or not self._suspect(body):
            return 0
        replaced = 0
        for key, (_, raw) in list(parsed.answers.items()):
            if not self._suspect(raw):
                continue
            try:
                doc = _read_json(raw)
            except (ValueError, UnicodeError):  # pragma: no cover - it was read as an entry
                bad, good = True, False
            else:
                bad, good = self._judge(doc)
            if bad:
                del parsed.answers[key]
                parsed.echoed.add(key)
            elif good:
                scrubbed, n = self._scrub(raw)
                try:
                    parsed.answers[key] = read_entry(scrubbed)
                except MalformedBody:  # pragma: no cover - strings replaced by strings
                    del parsed.answers[key]
                    parsed.echoed.add(key)
                    continue
                replaced += n
        return replaced

    def _hit(self, text: str) -> bool:
        return any(form in text for form in self._found)

    def _judge(self, entry: Any) -> tuple[bool, bool]:
        """Whether an entry (as read) holds a secret where it must not be replaced (its
        `requestKey`, a field name, its classification type), and whether it holds one
        where it may."""
        hit = self._hit
        if isinstance(entry, dict):
            agg = entry.get("aggregatedResult")
            mal = agg.get("maliciousClassification") if isinstance(agg, dict) else None
            ctype = mal.get("type") if isinstance(mal, dict) else None
            if isinstance(ctype, str) and hit(ctype):
                return True, False
        found = False
        todo: list[tuple[Any, bool]] = [(entry, False)]
        while todo:
            node, guarded = todo.pop()
            if isinstance(node, str):
                if hit(node):
                    if guarded:
                        return True, False
                    found = True
            elif isinstance(node, dict):
                for name, value in node.items():
                    if hit(name):
                        return True, False
                    todo.append((value, guarded or (node is entry and name == "requestKey")))
            elif isinstance(node, list):
                todo.extend((value, guarded) for value in node)
        return False, found

    def _scrub(self, raw: bytes) -> tuple[bytes, int]:
        """An entry's bytes with the secrets in its strings replaced (each such string
        written again by orjson; every other byte as it came), and how many were."""
        replaced = 0
        parts: list[bytes] = []
        done = 0
        for m in _STRING.finditer(blank_escapes(raw)):
            start, end = m.span()
            token = raw[start:end]
            try:
                text = _read_json(token)
            except (ValueError, UnicodeError):  # pragma: no cover - the entry was read
                continue
            if not isinstance(text, str):  # pragma: no cover - a token is a string
                continue
            masked, n = self._mask(text)
            if n:
                replaced += n
                parts += (raw[done:start], orjson.dumps(masked))
                done = end
        parts.append(raw[done:])
        return b"".join(parts), replaced
