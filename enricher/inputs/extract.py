"""Text extraction: the hashes, domains and IP addresses in free text.

Log lines (Zeek, Suricata, proxy, DNS, Windows events) and threat reports (Markdown, AsciiDoc,
HTML) hold IOCs among ordinary words. `extract` finds them and returns each one already
normalized, so none of the ordinary words reaches the rejects file:

- characters that do not show (zero-width spaces and joiners, soft hyphens) are dropped and
  footnote marks (`evil.com²`) end a word; Markdown escapes (`my\\_host`, `evil\\-cdn`) are
  undone; defanged forms are refanged (`normalize.refang`: `evil[.]com`, `hxxp`, `[:]`, ...);
- one boundary rule for every kind: an IOC ends where a character that cannot be part of it
  begins. `_`, `%`, `+` and `-` join the words of a name or an e-mail address; around a value
  (`+1.2.3.4+`, `_evil.com_`, `++evil.cc|5.6.7.8++` in AsciiDoc) and after it they are
  punctuation, and so are `+` and `-` before it, but a leading `_` is part of a name
  (`_dmarc.evil.ru`, `_sip._tls.evil.com`; not in reStructuredText's `.. _evil.com:`). A
  label holding `%` or `+` is a placeholder (`%s.evil.com`, `%TEMP%.evil.com`,
  `\\w+\\.evil\\.com`): the name is the one after it, as for wildcards. A percent-escaped
  separator (`%3A`, `%2F`, `%40`, ...) is one too, so `?h=sha256%3A<hex>` gives the hash; an
  e-mail address may have an empty, wildcard or quoted user (`*@evil.com`, `"a.b"@evil.com`);
- a name with dots is a domain when it ends in a public suffix (`suffixes.py`): `invoice.pdf`
  and `setup.exe` are file names. A name that ends in a file-like suffix (`name.zip`, `x.py`,
  `main.rs`, `poweriso.7.3.incl.zip`, `crack.keygen.zip`, `<md5>.zip`; see suffixes.py), is
  a program's or code (`Microsoft.NET`, `asp.net`, `com.evil.app`, `self.name`), or is
  followed by `(` (a call), ` {` (a CSS rule) or `.*` (an import) is not one unless it was
  defanged or is the host of a URL or e-mail address; a name right after a single `/` or `\\`
  is a path component (`/download/update.php`, `C:\\Windows\\Microsoft.NET`), unless what is
  before the `/` is a name standing alone (`evil1.com/evil2.com`); special-use names
  (`.arpa`, `.onion`) are no hosts;
- the host of a URL (after `scheme://`, or `scheme:/` as in a URL nested in another one's path)
  is a domain even when its suffix looks like a file's (`http://fotos.pl/x`) or it is under an
  alternative root (`http://x.bit/`), but not without a public suffix (`http://stage2.dll/`,
  `http://redis.default.svc/`); the host of an e-mail address is a domain or an address like
  any other; the rest of a URL is not read for names (a hash in it still counts);
- a wildcard or template label gives the name it is under: `*.evil.com` and
  `server-{1,30}.evil.top` give `evil.com` and `evil.top`, as does `.evil.com`;
- a dotted quad is an IPv4 address unless it starts a network range (`10.0.0.0/8`; but
  `1.2.3.4/32`, `10.1.2.3/24` and `1.2.3.4/443` are the address), follows the word `version`
  (`FileVersion: 1.0.0.1`), the key `v=`, a package's `==` (`evil-pkg==1.2.3.4`, but not
  `ip.addr==`), or a product name and a slash (`Chrome/121.0.0.0`, `OPR/106.0.0.0`; while
  `HIER_DIRECT/1.2.3.4` in a proxy log and `1.2.3.4/1.2.3.5` are addresses); tcpdump's
  `1.2.3.4.443 > ...` is the address and a port. An IPv6 address needs `::` or all eight
  groups, follows a key glued to it (`src:2001:db8::1`, `[IPv6:...]`), is no
  range either (`2001:db8::/32`), and, unless bracketed or defanged, is more than one group
  and `::` (`2::` and the `26::` of `2015-05-26::` are AsciiDoc terms and dates), more than a
  time (`12:45::`), more than letters (`Face::Bad`, `A::B` are code) and no EUI-64 (eight
  groups of two digits);
- a hash is a run of exactly 32, 40 or 64 hex digits between characters that are not letters
  or digits: 64 digits inside a longer run are not a sha256, nor is a label of a domain. A
  run after `IMPHASH=` (Sysmon's import hash), a TLS/SSH fingerprint or thumbprint key, a
  commit (`/commit/<sha1>`) or a GUID key is no file hash, and all-digit runs are numbers.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
import socket
import string
from collections import Counter
from collections.abc import Callable, Iterator

from ..ioc import IocType
from ..pipeline.normalize import (
    KNOWN_MAX,
    bracket_port_after_ipv6,
    is_range,
    known_canonical,
    normalize,
    refang,
    strip_invisible,
)
from . import native
from .suffixes import (
    ALTERNATIVE_ROOTS,
    has_public_suffix,
    is_file_or_program_name,
    judge_tables,
    registrable,
    top_labels,
)
from .suffixes import INTERNAL_SUFFIXES as _INTERNAL

__all__ = ["extract", "extract_lines"]

# The text is scanned in separate passes, one simple pattern each: together they run three
# times faster than one pattern with alternatives. Each pattern begins with the character that
# must come before a candidate: a character class, which the regex engine skips to in C rather
# than trying the pattern at every position. The text scanned starts with a newline, so that
# its first word has a character before it too.
#
# Names and dotted quads, and e-mail addresses (`%` and `+` are for their user part; at the
# ends of a token, `_%+-` are judged by _trim). A name may also follow a dot after a wildcard
# or template label (`*.`, `}.`, `].`, `>.`) or at the start of a word (`.evil.com`); an
# e-mail address may have no user, or a quoted one (`@evil.com`, `"a.b"@evil.com`), or `@@`.
# On ASCII text the classes are ranges, twice as fast as `\w`; a block with a letter or digit
# outside ASCII is scanned with `\w`, so that `bücher.de` is one name rather than `cher.de`
# after a `ü` (one with only `©` or `·` is not: to both patterns they are punctuation).
# The first separator and word after the first word are written out, and the rest repeated
# possessively: the same matches as `W++(?:(?:\.|@++)W++)+`, found 15% faster. The ASCII
# pattern is not searched for but matched where a dot is (see _dotted_names).
_NAMES_ASCII = re.compile(
    r"[^0-9A-Za-z_.@%+-]\.?+(@?+[0-9A-Za-z_%+-]++(?:\.|@++)[0-9A-Za-z_%+-]++"
    r"(?:(?:\.|@++)[0-9A-Za-z_%+-]++)*+)"
)
_NAMES_UNICODE = re.compile(
    r"[^\w.@%+-]\.?+(@?+[\w%+-]++(?:\.|@++)[\w%+-]++(?:(?:\.|@++)[\w%+-]++)*+)"
)
_EDGE = "_%+-"  # joins the words of a name inside it; punctuation around it
# Every match of _NAMES_ASCII that can give anything holds a dot followed by a letter (the
# top-level label of a name: none starts with a digit) or three dots each between digits (a
# dotted quad), and begins at the last character before that dot that the pattern's first
# class takes. In a copy of the text as bytes with each character replaced by its class (`d`
# a digit, `w` another word character, `.` and `@` as they are, anything else a space), a
# pattern led by a literal dot finds those dots at hundreds of MB/s, and `rfind` the space
# before each: the names pattern is then tried only there, instead of after every space of the
# text, and never on a word that cannot be a name or an address (`8.1`, `3.7.1`, a log's
# `12:01.114` and `07.115Z`; see _dotted_names).
_NAME_CLASSES = bytes.maketrans(
    bytes(range(256)),
    bytes(
        ord("w") if chr(c) in string.ascii_letters + "_%+-"
        else ord("d") if chr(c) in string.digits
        else c if chr(c) in ".@"
        else ord(" ")
        for c in range(256)
    ),
)  # fmt: skip
_NAME_HINT = re.compile(rb"\.(?:w|d+\.d+\.d)")
# the `_` or `%` that closes a word a token began with the same character (`_x.com:80_`)
_CLOSING = {c: re.compile(rf"[^\s{c}]{{0,64}}{c}(?![0-9A-Za-z])").match for c in "_%"}
# Superscript and subscript digits are footnote marks, not part of a name (`\w` holds them)
_FOOTNOTE = re.compile("[\u00b2\u00b3\u00b9\u2070-\u209f]")
# The characters outside ASCII in a text are gathered in one pass: what they are says whether
# the text needs the invisible characters or footnote marks taken out, and whether it needs
# the `\w` pattern for names at all (not when none of them is a letter or digit: `©`, `·`)
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")
_WORD = re.compile(r"\w")
# Markdown's backslash escapes: `my\_host.com` is `my_host.com`, `evil\[.\]com` is `evil[.]com`
_MARKDOWN_ESCAPE = re.compile(r"\\([_\-*\[\]])")
# Hex runs are found in a copy of the text as bytes with each character replaced by its class
# (a hex digit `x`, another ASCII letter or digit `a`, anything else left as it is, and each
# character outside ASCII a `?`, so that offsets stay those of the text): there, bytes.find
# looks for 32 `x` in a row at hundreds of MB/s, where _HEX (the definition) runs at tens.
_HEX = re.compile(r"[^0-9A-Za-z]([0-9A-Fa-f]{32,}+)(?![0-9A-Za-z])")
_HEX_CLASSES = bytes.maketrans(
    (string.ascii_letters + string.digits).encode(),
    bytes(ord("x" if c in string.hexdigits else "a") for c in string.ascii_letters + string.digits),
)
_HEX_RUN = b"x" * 32
_NOT_HEX = re.compile(b"[^x]")
# Percent-escaped separators (not letters, digits, `-`, `.`, `_`, `%` or control characters)
# are decoded before the scan: `sha256%3A<hex>`, `http%3A%2F%2Fevil.com%2Fx`, `a%40evil.com`.
_ESCAPE = re.compile(r"%(?:2[0-46-9A-Ca-cFf]|3[A-Fa-f]|40|5[B-Eb-e]|60|7[B-Eb-e])")
_UNESCAPED = {f"%{c:02{x}}": chr(c) for c in range(0x20, 0x7F) for x in "Xx"}
# IPv6 needs `::` or eight groups: each candidate holds one of these (see _ipv6_candidates)
_IPV6_HINT = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_V6_RUN_CHARS = "0123456789abcdefABCDEF:."
_V6_CHARS = frozenset(_V6_RUN_CHARS)
_V6_RUN_END = re.compile(r"[^0-9A-Fa-f:.]")
_IPV6_BODY = (
    r"(?=[0-9A-Fa-f]{0,4}:)"
    r"((?=[0-9A-Fa-f:.]*::|:?(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f])[0-9A-Fa-f:.]{2,45}+)"
    r"(?![0-9A-Za-z])"
)
_IPV6 = re.compile(r"[^0-9A-Za-z:.]" + _IPV6_BODY)
_IPV6_AFTER_KEY = re.compile(_IPV6_BODY)
# a key glued to an IPv6 address by one colon: `src:`, `ip6:`, `IPv6:`, `client:`
_V6_KEY = re.compile(r"[A-Za-z][A-Za-z_-]*[0-9]?")
_KEY_CHARS = string.ascii_letters + string.digits + "_-"
# what looks like IPv6 but is not, unless bracketed or defanged: one group and `::` (AsciiDoc
# terms, the end of a date), a time and `::`, and eight groups of two digits (an EUI-64 or a
# WWN); and letters alone, in mixed case or one a group (`Face::Bad`, `A::B`: code): see
# _looks_like_ipv6
_NOT_IPV6 = re.compile(
    r"[0-9A-Fa-f]{1,4}:::?|(?:[0-9]{1,2}:)+:|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){7}"
)
_LETTERS_AND_COLONS = re.compile(r"[A-Fa-f:]*::[A-Fa-f:]*")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_CIDR_SUFFIX = re.compile(r"/[0-9]{1,3}(?![0-9])")
# words before a dotted quad that make it a version number
_VERSION = re.compile(r"""version["']?\s*[=:]?\s*["']?\Z""", re.IGNORECASE)
_VERSION_KEY = re.compile(r"(?:^|[^0-9A-Za-z_])(?:[vV]|[vV][eE][rR])=\Z")
# the end of a word glued to `==` that names an address (Wireshark's `ip.addr==`, a query's
# `RemoteIP==`): after any other word, `==` pins a package's version (`evil-pkg==1.2.3.4`)
_ADDRESS_WORD = re.compile(
    r"(?:ip|ipv4|addr|address|src|dst|host|server|peer|client|source|destination)\Z",
    re.IGNORECASE,
)
# the word before a `/`: a product name (`Chrome/`), a host (`evil.com/`), a squid hierarchy
# code (`HIER_DIRECT/`, `DIRECT/`), after which an address is one
_WORD_CHARS = string.ascii_letters + string.digits + "_.-"
_SQUID = re.compile(r"[A-Z]+(?:_[A-Z]+)+|DIRECT|CARP|PINNED")
# keys whose 32- to 64-hex values are fingerprints, commits or GUIDs, not file hashes
_NOT_FILE_HASH = re.compile(
    r"(?:imphash|ja[34]s?|hassh(?:server|_server)?|serial(?:_?number)?|btih|thumbprint"
    r"|fingerprint|commits?|/blob|/tree|guid|uuid)"
    r"(?:[ _-]?(?:hash|md5|sha1|sha256|fingerprint|digest|string))*"
    # JSON read as text: Suricata's `"ja3":{"hash":"<md5>"`, MISP's `"ja3-fingerprint-md5",
    # "value": "<md5>"`
    r"""(?:["']?\s*[:,{]\s*\{?\s*["'](?:hash|value)["'])?"""
    r"""(?:\(\))?[\s"'`|/]*(?:[=:]|==)?[\s"'`|/]*\Z""",
    re.IGNORECASE,
)
# the same, for text in lower-case ASCII, where it matches what _NOT_FILE_HASH does (its
# letters are all lower case): four to ten times faster than with IGNORECASE
_NOT_FILE_HASH_LOWER = re.compile(_NOT_FILE_HASH.pattern)
_HASH_LENGTHS = frozenset({32, 40, 64})
_DOMAIN = IocType.DOMAIN
_IPV4 = IocType.IPV4
# the values found are canonical: `normalize` answers them from this table (see there)
_KNOWN = known_canonical()


def extract(text: str) -> list[str]:
    """The normalized IOCs found in `text`: names and IPv4 addresses, then hashes, then IPv6
    addresses, each kind in order of appearance (repeats included)."""
    return _Scan(text, 1).values


def extract_lines(text: str, first_line: int) -> tuple[list[str], list[int]]:
    """`extract(text)` with the line of each IOC, `text` starting at line `first_line`."""
    scan = _Scan(text, first_line)
    return scan.values, scan.lines


class _Scan:
    """The IOCs of one text, found pass by pass into `values` and `lines`."""

    def __init__(self, text: str, first_line: int) -> None:
        # Each step keeps the lines as they are, so line numbers stay right.
        # names are read with the `\w` pattern only where a letter or digit outside ASCII is
        self.unicode_words = False
        if not text.isascii():
            odd = _not_ascii(text)
            if len(strip_invisible(odd)) < len(odd):
                text = strip_invisible(text)
            if _FOOTNOTE.search(odd):
                text = _FOOTNOTE.sub(" ", text)
                odd = _FOOTNOTE.sub("", odd)
            self.unicode_words = _WORD.search(odd) is not None
        if "\\" in text:
            text = _MARKDOWN_ESCAPE.sub(r"\1", text)
        if "%" in text:
            text = _ESCAPE.sub(_unescape, text)
        if "[:]" in text:
            text = bracket_port_after_ipv6(text)
        self.original = text
        # where line `original_at[0]` (counted from 0) of `original` starts: a line is found
        # from the last one asked for (the passes ask for them in order), not by splitting
        self.original_at = (0, 0)
        # defanged_on's line: its number, its refanged and written forms, and how often each
        # string stands alone in each (None when they are the same)
        self.alone_on: tuple[int, str, str, tuple[Counter[str], Counter[str]] | None] | None
        self.alone_on = None
        refanged = refang(text)
        self.defanged = refanged is not text
        self.text = "\n" + refanged
        self.first_line = first_line
        self.values: list[str] = []
        self.lines: list[int] = []
        ipv6 = _ipv6_spans(self.text)
        # where the names that may hold a hash label, and (if IPv6 is about) the dotted quads,
        # were found: a hash inside a name, or an IPv4 inside an IPv6, is not one of its own
        self.long_names: list[tuple[int, int]] = []
        self.quads: list[tuple[int, int]] | None = [] if ipv6 else None
        self.names()
        self.hashes()
        if ipv6:
            self.ipv6(ipv6)

    def original_line(self, line: int) -> str:
        """Line `line` of the text as written (not refanged)."""
        index = line - self.first_line
        done, at = self.original_at
        if index < done:
            done = at = 0
        at = _skip_lines(self.original, at, index - done)
        self.original_at = (index, at)
        end = self.original.find("\n", at)
        return self.original[at:] if end < 0 else self.original[at:end]

    def defanged_on(self, line: int, start: int, written: str) -> bool:
        """Whether the IPv6 address `written` (as refanged, at `start` on line `line`) stands
        alone on its line more often than it was written there: then one of them was
        defanged. (Alone: `2::` is not counted inside `2002::`.)"""
        if not self.defanged:
            return False
        # the line's two forms, and what stands alone in each, are found once a line: asked
        # for each candidate, a line of thousands of them took quadratic time
        known = self.alone_on
        if known is None or known[0] != line:
            text = self.text
            end = text.find("\n", start)
            here = text[text.rfind("\n", 0, start) + 1 : end if end >= 0 else len(text)]
            there = self.original_line(line)
            counts = None if here == there else (_alone_counts(here), _alone_counts(there))
            known = self.alone_on = (line, here, there, counts)
        _, here, written_there, counts = known
        if counts is None:
            return False  # nothing on this line was defanged
        if len(written) <= _ALONE_MAX:
            return counts[0][written] > counts[1][written]
        alone = re.compile(rf"(?<![0-9A-Za-z:.]){re.escape(written)}(?![0-9A-Za-z:])")
        return len(alone.findall(here)) > len(alone.findall(written_there))

    def names(self) -> None:
        text = self.text
        count = text.count
        values = self.values
        lines = self.lines
        add_value = values.append
        add_line = lines.append
        cache_get = _NAMES.get
        quads = self.quads
        plain_line = -1  # the line of the original text whose names `plain` holds
        plain: set[str] | None = None
        plain_words: list[str] | None = None  # the dotted words of that line, when short
        original = ""
        plain_text = ""  # that line in lower case if short: a name not in it is not in `plain`
        line = self.first_line - 1  # the line of `last`; the "\n" put in front counts as one
        last = 0
        quad = _DOTTED_QUAD.fullmatch
        find = text.find
        known = _KNOWN
        known_get = known.get
        ipv4 = _IPV4
        # where the first `ersion` and the first `ERSION` at or after the `near` of an earlier
        # quad start (past the end if none): the quads come in order, so each word is looked
        # for once per place it occurs rather than around each quad
        lower_at = upper_at = -1
        past = len(text)
        edge = _EDGE
        never = _NEVER
        if self.unicode_words:
            found = list(_NAMES_UNICODE.finditer(text))
            tokens, starts = [m[1] for m in found], [m.start(1) for m in found]
        else:
            tokens, starts = _dotted_names(text)
        walk = _names_walk if -_FAR_LINE < line < _FAR_LINE else None
        size = len(tokens)
        i = 0
        while i < size:
            tok = tokens[i]
            # the tokens that need no judgment go through in C, up to the next that does; not
            # called for a token it would hand straight back (after a `$`): a text of such
            # tokens would pay a call for each
            if walk is not None and text[starts[i] - 1] != "$":
                i, line, last = walk(
                    text, tokens, starts, i, line, last, _NAMES, never, known, ipv4, KNOWN_MAX,
                    values, lines, self.long_names, quads, self.defanged, _NAMES_MAX, _DOMAIN,
                )  # fmt: skip
                if i >= size:
                    break
            tok = tokens[i]
            start = starts[i]
            i += 1
            if tok in never:
                continue
            # whether `tok` is the token as found, neither trimmed nor cut after a `$`: only
            # such a token is remembered as one that gives nothing wherever it is
            raw = True
            last_char = tok[-1]
            first = tok[0]
            if last_char in edge or first in edge or "%" in tok or "+" in tok:
                # `_x.com:80_`: the word that starts with `_` or `%` ends with it, a wrapper
                closed = (first == "_" or first == "%") and bool(
                    _CLOSING[first](text, start + len(tok))
                )
                if first == "_" and text[start - 3 : start] == ".. ":
                    closed = True  # a reStructuredText link target, `.. _evil.com: <url>`
                trimmed = _trim(tok, closed)
                if trimmed is None:
                    continue
                cut, tok = trimmed
                start += cut
                last_char = tok[-1]
                raw = False
            before = text[start - 1]
            if before == "$":  # `$host.evil.com`: a variable's value, then a name
                raw = False
                dot = tok.find(".") + 1
                tok = tok[dot:]
                start += dot
                if "." not in tok:
                    continue
                before = "."
            end = start + len(tok)
            if last_char <= "9":  # no top-level domain ends in a digit: an address or nothing
                if known_get(tok) is not ipv4:
                    dots = tok.count(".")
                    if dots != 3 or not quad(tok):
                        if dots != 4:
                            continue
                        tok = _tcpdump(text, tok, start, end)  # `1.2.3.4.443 > `
                        if not tok:
                            continue
                        end = start + len(tok)
                    if len(known) >= KNOWN_MAX:
                        _forget()
                    known[tok] = ipv4
                near = start - 24 if start > 24 else 0
                if lower_at < near:
                    lower_at = find("ersion", near)
                    if lower_at < 0:
                        lower_at = past
                if upper_at < near:
                    upper_at = find("ERSION", near)
                    if upper_at < 0:
                        upper_at = past
                # not `Chrome/121.0.0.0` (but `HIER_DIRECT/1.2.3.4`), a range, a version
                if (
                    before == "/"
                    or before == "="
                    or text.startswith("/", end)
                    or lower_at + 6 <= start  # `ersion` in text[near:start]
                    or upper_at + 6 <= start
                ) and not self.is_address(start, end):
                    continue
                value = tok
                if quads is not None:
                    quads.append((start, len(values)))
            else:
                in_url: bool | None = None
                if before == "/" or before == "\\":
                    # a path component (`/download/update.php`, `Windows\Microsoft.NET`), or
                    # the host of a URL or of a UNC path: see _after_slash (whose commonest
                    # case, `//host`, is answered here)
                    if before == "/" and text[start - 2] == "/":
                        in_url = text[start - 3] == ":"
                    else:
                        in_url = _after_slash(text, start, end)
                    name = cache_get(tok, _UNKNOWN)
                    if name is _UNKNOWN:
                        name = _name(tok)
                    if in_url is None:
                        if name is None and raw:
                            _remember_if_nothing(tok)
                        continue
                    if in_url:
                        if name is None:
                            name = _alternative_root_host(tok)
                        elif name[0] == "!":
                            name = name[1:]
                else:
                    name = cache_get(tok, _UNKNOWN)
                    if name is _UNKNOWN:
                        name = _name(tok)
                if name is None:
                    if raw and not in_url:
                        _remember_if_nothing(tok)
                    continue
                if name[0] != "!" and not in_url:
                    after = text[end : end + 2]
                    if after and (after[0] == "(" or after == " {" or after == ".*"):
                        name = "!" + name  # code: a call, a CSS rule, an import
                if name[0] == "!":  # a file-like name: a domain only if it was defanged
                    if not self.defanged:
                        continue
                    line += count("\n", last, start)
                    last = start
                    name = name[1:]
                    if plain_line != line:  # once a line, however many names it holds
                        # a short line is searched for the name before its names are
                        # gathered (most are not in it); a long one's are gathered at once
                        original = self.original_line(line)
                        plain_text = original.lower() if len(original) <= _SHORT_LINE else ""
                        plain = None if plain_text else _plain_names(original)
                        plain_words = None
                        plain_line = line
                    if plain is None:
                        if name in plain_text:
                            if plain_words is None:
                                plain_words = _dotted_words(original)
                            if _written_plain(name, plain_words):
                                continue
                    elif name in plain:  # written plain on this line too
                        continue
                if len(tok) > 32:
                    self.long_names.append((start, end))
                value = name
            line += count("\n", last, start)
            last = start
            add_value(value)
            add_line(line)

    def is_address(self, start: int, end: int) -> bool:
        """Whether the dotted quad at `start`-`end` is an address (not a range or a version)."""
        text = self.text
        before = text[start - 1]
        if before == "/" and _product_before(text, start - 1):
            return False  # `Chrome/121.0.0.0`; but `HIER_DIRECT/1.2.3.4` is an address
        if before == "=" and _VERSION_KEY.search(text[max(0, start - 5) : start]):
            return False  # `&v=1.4.0.2`
        if before == "=" and text[start - 2] == "=" and _pinned(text, start - 2):
            return False  # `evil-pkg==1.2.3.4`; but `ip.addr==1.2.3.4`
        if text.startswith("/", end):
            prefix = _CIDR_SUFFIX.match(text, end)
            if prefix and is_range(text[start:end], int(prefix[0][1:])):
                return False
        near = max(0, start - 24)
        before_text = text[near:start]
        return not (
            ("ersion" in before_text or "ERSION" in before_text) and _VERSION.search(before_text)
        )

    def hashes(self) -> None:
        text = self.text
        count = text.count
        values = self.values
        lines = self.lines
        line = self.first_line - 1
        last = 0
        starts = [s for s, _ in self.long_names]
        spans = _hex_spans(text)
        walk = _hashes_walk if -_FAR_LINE < line < _FAR_LINE else None
        size = len(spans)
        # the runs the C gave that Python judges after: (index in spans, place in values)
        pending: list[tuple[int, int]] = []
        k = 0
        while k < size:
            if walk is not None:
                # the runs that need no judgment go through in C, up to the next that does
                k, line, last = walk(
                    text, spans, k, line, last, bool(starts), values, lines, pending
                )
                if k >= size:
                    break
            start = spans[k]
            end = spans[k + 1]
            k += 2
            if end - start not in _HASH_LENGTHS:
                continue
            digits = text[start:end]
            if digits.isdigit() or not self.file_hash(start, end, starts):
                continue
            line += count("\n", last, start)
            last = start
            values.append(digits.lower())
            lines.append(line)
        drop = {at for i, at in pending if not self.file_hash(spans[i], spans[i + 1], starts)}
        if drop:  # all after the names' values: only the hashes are gathered again
            first = min(drop)
            keep = [i for i in range(first, len(values)) if i not in drop]
            values[first:] = [values[i] for i in keep]
            lines[first:] = [lines[i] for i in keep]

    def file_hash(self, start: int, end: int, starts: list[int]) -> bool:
        """Whether the run of 32, 40 or 64 hex digits (not all digits) at `start`-`end` is a
        file hash: no fingerprint, commit or GUID key before it, and no label of a long name
        (`starts`: where each of `long_names` starts)."""
        text = self.text
        before = text[max(0, start - 40) : start].lower()
        if (
            "hash" in before
            or "ja" in before
            or "ssh" in before
            or "serial" in before
            or "btih" in before
            or "print" in before
            or "commit" in before
            or "/blob" in before
            or "/tree" in before
            or "uid" in before
        ) and _after_fingerprint_key(before):
            return False
        if starts and (text[start - 1] == "." or text.startswith(".", end)):
            i = bisect.bisect_right(starts, start) - 1
            if i >= 0 and self.long_names[i][1] >= end:
                return False  # a label of a domain: `<md5>.evil.com`
        return True

    def ipv6(self, spans: list[int]) -> None:
        """The IPv6 addresses among the candidates at `spans` (`_ipv6_spans(self.text)`)."""
        text = self.text
        count = text.count
        line = self.first_line - 1
        last = 0
        inside: list[tuple[int, int]] = []  # spans of IPv6 addresses ending in a dotted quad
        pairs = iter(spans)
        for start, end in zip(pairs, pairs, strict=True):
            written = text[start:end]
            value = _ipv6(written)
            if value is None:
                continue
            line += count("\n", last, start)
            last = start
            # `2::` alone is an AsciiDoc term, `[2::]` an address, and so is `2[:]:`
            if (
                not _looks_like_ipv6(written.rstrip("."))
                and not (text[start - 1] == "[" and text.startswith("]", end))
                and not self.defanged_on(line, start, written)
            ):
                continue
            if text.startswith("/", end):
                prefix = _CIDR_SUFFIX.match(text, end)
                if prefix and is_range(value, int(prefix[0][1:])):
                    continue  # a range, `2001:db8::/32`
            if "." in written:
                inside.append((start, end))
            self.values.append(value)
            self.lines.append(line)
        if inside and self.quads:  # `::ffff:192.0.2.1` is one IPv6 address, not also an IPv4
            starts = [s for s, _ in inside]  # in order, and apart
            drop = set()
            for pos, i in self.quads:
                k = bisect.bisect_right(starts, pos) - 1
                if k >= 0 and pos < inside[k][1]:
                    drop.add(i)
            if drop:
                keep = [i for i in range(len(self.values)) if i not in drop]
                self.values = [self.values[i] for i in keep]
                self.lines = [self.lines[i] for i in keep]


def _remember_if_nothing(tok: str) -> None:
    """Remember a token that is no name (`lb3.exe`, `e.g`, found neither trimmed nor after a
    `$`) among those that give nothing, if it gives nothing wherever it is written: no name
    after a `$` (one dot), no host of a URL under an alternative root. The table is emptied
    when full, as `_NAMES` is."""
    if (
        tok.count(".") == 1
        and tok.isascii()
        and len(tok) <= _CACHED_LENGTH
        and tok.rpartition(".")[2].lower() not in ALTERNATIVE_ROOTS
    ):
        if len(_NEVER) >= _NAMES_MAX:
            _NEVER.clear()
        _NEVER.add(tok)


def _after_fingerprint_key(before: str) -> bool:
    """`_NOT_FILE_HASH.search(before) is not None` for `before` in lower case."""
    pattern = _NOT_FILE_HASH_LOWER if before.isascii() else _NOT_FILE_HASH
    return pattern.search(before) is not None


def _looks_like_ipv6(written: str) -> bool:
    """Whether an address written this way, unbracketed and not defanged, is one: not a term,
    a time, an EUI-64 or code (see _NOT_IPV6)."""
    if _NOT_IPV6.fullmatch(written):
        return False
    if _LETTERS_AND_COLONS.fullmatch(written):
        groups = [g for g in written.split(":") if g]
        mixed = any(g != g.lower() and g != g.upper() for g in groups)
        return not (mixed or all(len(g) == 1 for g in groups))
    return True


def _trim(tok: str, closed: bool = False) -> tuple[int, str] | None:
    """The token a name or address is, and how many characters were cut from the front of
    `tok`; None when no dotted token is left. `_ % + -` after a value are punctuation, and
    before it too when they wrap it (`_x_`, `++x++`, `%x%`; `closed`: the word it starts
    ends with the same character, as `_x.com:80_` does) or it is an address; otherwise
    `+` and `-` before it are (no name starts with one), but `_` is part of the name
    (`_dmarc.evil.ru`). A label holding `%` or `+` is a placeholder (`%s.`, `%08x.`,
    `%TEMP%.`, `\\w+.`): the name is the one after the last such label."""
    body = tok.rstrip(_EDGE)
    if not body:
        return None
    wrapped = closed or len(body) < len(tok) or body[-1] <= "9"  # or an address
    head = body.lstrip(_EDGE if wrapped else "+-")
    cut = len(body) - len(head)
    if "@" not in head:  # the user of an e-mail address may hold `%` and `+`
        at = max(head.rfind("%"), head.rfind("+"))
        if at >= 0:
            dot = head.find(".", at)
            if dot < 0:
                return None
            cut += dot + 1
            head = head[dot + 1 :]
    if "." not in head:
        return None
    return cut, head


def _tcpdump(text: str, tok: str, start: int, end: int) -> str:
    """The address of tcpdump's `1.2.3.4.443` (an address and a port, before ` > ` or after
    `> ` and before `:`) in the token `tok` of five dotted parts, or "" for no address."""
    address, _, port = tok.rpartition(".")
    if (
        port.isdigit()
        and len(port) <= 5
        and (
            text.startswith(" > ", end)
            or (text[start - 2 : start] == "> " and text.startswith(":", end))
        )
        and _DOTTED_QUAD.fullmatch(address)
    ):
        return address
    return ""


def _product_before(text: str, slash: int) -> bool:
    """Whether the word right before the `/` at `slash` is a product's name, as in a user
    agent (`Chrome/121.0.0.0`, `OPR/106.0.0.0`): it starts with a letter and holds no dot,
    and is no squid hierarchy code (`HIER_DIRECT/1.2.3.4`, `DIRECT/1.2.3.4`)."""
    window = text[max(0, slash - 32) : slash]
    word = window[len(window.rstrip(_WORD_CHARS)) :]
    return word[:1].isalpha() and "." not in word and _SQUID.fullmatch(word) is None


def _pinned(text: str, equals: int) -> bool:
    """Whether the word glued to the `==` at `equals` is a package's, pinned to a version:
    it starts with a letter and does not name an address (see _ADDRESS_WORD)."""
    window = text[max(0, equals - 64) : equals]
    word = window[len(window.rstrip(_WORD_CHARS)) :]
    return word[:1].isalpha() and _ADDRESS_WORD.search(word) is None


def _ipv6_candidates(text: str) -> Iterator[re.Match[str]]:
    """The matches `_IPV6.finditer(text)` gives, found faster: each one holds a `::` or eight
    groups, which _IPV6_HINT finds with a literal `:` first (at C speed), and it begins right
    before the run of hex digits, colons and dots around that hint. A run glued to a key by a
    colon (`src:2001:db8::1`, `[IPv6:2a0b::20]`) gives the address after the key."""
    match = _IPV6.match
    run_end = _V6_RUN_END.search
    size = len(text)
    past = 0  # the end of the last run looked at
    for hint in _IPV6_HINT.finditer(text):
        at = hint.start()
        if at < past:
            continue  # in the run already looked at
        while at > past and text[at - 1] in _V6_CHARS:  # back to the run's start
            low = max(past, at - 48)
            back = text[low:at]
            at -= len(back) - len(back.rstrip(_V6_RUN_CHARS))
        end = run_end(text, hint.end())
        past = end.start() if end else size
        if at > 0:
            found = match(text, at - 1)
            if found:
                yield found
            elif text[at - 1] in _KEY_CHARS:
                found = _after_key(text, at, past)
                if found:
                    yield found


def _py_ipv6_spans(text: str) -> list[int]:
    """The spans of group 1 of the matches `_ipv6_candidates(text)` gives, flat
    (`_scan.ipv6_runs` is the same in C)."""
    out: list[int] = []
    for found in _ipv6_candidates(text):
        out += found.span(1)
    return out


# what `(?<![0-9A-Za-z:.])W(?![0-9A-Za-z:])` (W standing alone) can start at: a whole run of
# these characters
_ALONE_RUN = re.compile(r"[0-9A-Za-z:.]+")
_ALONE_MAX = 64


def _alone_counts(line: str) -> Counter[str]:
    """How often each string W of [0-9A-Za-z:.] up to _ALONE_MAX characters long stands
    alone in `line`, as `len(re.findall(rf"(?<![0-9A-Za-z:.]){re.escape(W)}(?![0-9A-Za-z:])",
    line))` counts it: a match starts a run of those characters, and is the whole run or
    the part of it before one of its dots."""
    counts: Counter[str] = Counter()
    for run in _ALONE_RUN.findall(line):
        if len(run) <= _ALONE_MAX:
            counts[run] += 1
        dot = run.find(".", 1, _ALONE_MAX + 1)
        while dot > 0:
            counts[run[:dot]] += 1
            dot = run.find(".", dot + 1, _ALONE_MAX + 1)
    return counts


def _after_key(text: str, at: int, past: int) -> re.Match[str] | None:
    """The address after the first colon of the run `at`-`past`, when a key is glued to it
    (`src:`, `ip6:`, `IPv6:`: letters, and maybe one digit), or None."""
    colon = text.find(":", at, past)
    if colon < 0 or text.startswith("::", colon):
        return None
    window = text[max(0, colon - 17) : colon]
    key = window[len(window.rstrip(_KEY_CHARS)) :]
    if len(key) < 2 or len(key) == len(window) == 17 or not _V6_KEY.fullmatch(key):
        return None
    if len(key) < len(window) and window[-len(key) - 1] in ":.":
        return None  # a word inside a run of groups (`::src:0::`) is no key
    return _IPV6_AFTER_KEY.match(text, colon + 1)


_SHORT_LINE = 2048


def _dotted_words(line: str) -> list[str]:
    """The dotted words of a line of the original text that may be a name written plain
    (_written_plain): those of `_NAMES_UNICODE.findall("\n" + line)` that hold a dot before
    a letter, at least (a name holds one). On an ASCII line _NAMES_UNICODE finds what
    _NAMES_ASCII does, and `_dotted_names` gives those of its matches (see there)."""
    if line.isascii():
        return _dotted_names("\n" + line)[0]
    return _NAMES_UNICODE.findall("\n" + line)


def _py_skip_lines(text: str, at: int, count: int) -> int:
    """Where the line `count` lines after the one starting at `at` starts (`_scan.skip_lines`
    is the same in C); ValueError when `text` has fewer."""
    for _ in range(count):
        at = text.index("\n", at) + 1
    return at


def _written_plain(name: str, words: list[str]) -> bool:
    """Whether `name` is in `_plain_names` of the line whose dotted words (_NAMES_UNICODE's,
    or those of them `_dotted_words` gives) are `words`: only the words that hold it are
    trimmed. (A name is ASCII, and a word's part that is it in lower case is part of the word
    in lower case.)"""
    for word in words:
        if name in word.lower():
            trimmed = _trim(word)
            if trimmed is not None and trimmed[1].lower() == name:
                return True
    return False


def _plain_names(line: str) -> set[str]:
    """The dotted names written as they are (not defanged) on a line of the original text,
    in lower case."""
    names = set()
    for tok in _NAMES_UNICODE.findall("\n" + line):
        trimmed = _trim(tok)
        if trimmed is not None:
            names.add(trimmed[1].lower())
    return names


def _after_slash(text: str, start: int, end: int) -> bool | None:
    """What the name at `start`-`end`, right after a `/` or `\\`, is: the host of a URL (True:
    `scheme://host`, `scheme:\\/\\/host` in JSON text, `scheme:/host` as in a URL nested in
    another's path), a name to judge like any other (False: `//host`, a UNC path's `\\\\host`,
    the second of `evil1.com/evil2.com`), or a path component (None: `/download/update.php`,
    `C:\\Windows\\Microsoft.NET`, `evil.com/path/other.com`)."""
    two = text[start - 2]
    if text[start - 1] == "\\":
        # `\\host` starting a word is a UNC path; `x\\y` (JSON-escaped `\\`) is a path
        return False if two == "\\" and not text[start - 3].isalnum() else None
    if two == "/":
        return text[start - 3] == ":"
    if text[start - 4 : start] == "\\/\\/":
        return text[start - 5] == ":"
    if two == ":" and text[start - 3].isalpha() and text[start - 4].isalpha():
        return True  # `hxxps:/www.evil.com` nested in a URL; not `C:/Users`
    if two.isalnum() and not text.startswith("/", end) and _name_before(text, start - 1):
        return False  # a list: `evil1.com/evil2.com`, `ns1.evil.com/ns2.evil.com`
    return None


def _name_before(text: str, slash: int) -> bool:
    """Whether the word right before the `/` at `slash` is a dotted name or address standing
    alone (not a URL's host or path, nor a path's component)."""
    window = text[max(0, slash - 254) : slash]
    word = window[len(window.rstrip(_WORD_CHARS)) :]
    if "." not in word or word[0] == "." or len(word) == len(window) == 254:
        return False
    begin = slash - len(word)
    return begin == 0 or text[begin - 1] not in "/\\:@%"


def _py_dotted_names(text: str) -> tuple[list[str], list[int]]:
    """Group 1 of each match of `_NAMES_ASCII.finditer(text)` that may give a name or an
    address, and where it starts: those holding a dot before a letter or `_%+-`, or three
    dots each between digits (no other gives anything: `user@host`, `8.1`, `3.7.1`), found
    faster (see _NAME_CLASSES). `_scan.dotted_names` is the same in C."""
    mask = text.encode("ascii", "replace").translate(_NAME_CLASSES)
    space = mask.rfind
    match = _NAMES_ASCII.match
    search = _NAME_HINT.search
    past = 0  # the end of the last match: the next one's first character is at or after it
    out: list[re.Match[str]] = []
    keep = out.append
    dot = search(mask)
    while dot is not None:
        at = dot.start()
        lead = space(b" ", 0, at)
        found = match(text, lead) if lead >= past else None
        if found is None:
            dot = search(mask, at + 1)
            continue
        past = found.end()
        # the dot must be in the token, not its lead's (` .a@b`), nor past it (`1@1` of `1@1@.1`)
        if past > at and (at != lead + 1 or "." in found[1]):
            keep(found)
            dot = search(mask, past)
        else:
            dot = search(mask, at + 1)
    return [m[1] for m in out], [m.start(1) for m in out]


def _hex_runs(text: str) -> Iterator[tuple[int, int]]:
    """The start and end of each run of 32 or more hex digits in `text` that has no ASCII
    letter or digit right before or after it (the spans of _HEX's matches)."""
    spans = iter(_hex_spans(text))
    return zip(spans, spans, strict=True)


def _py_hex_spans(text: str) -> list[int]:
    """The starts and ends of `_hex_runs(text)`, flat (`_scan.hex_runs` is the same in C)."""
    out: list[int] = []
    mask = text.encode("ascii", "replace").translate(_HEX_CLASSES)
    find = mask.find
    run_end = _NOT_HEX.search
    size = len(mask)
    other = ord("a")
    at = 0
    while (start := find(_HEX_RUN, at)) >= 0:
        found = run_end(mask, start + 32)
        at = found.start() if found else size
        # `start` is where a run begins: a hex digit before it would have been found first
        if (start == 0 or mask[start - 1] != other) and (at == size or mask[at] != other):
            out += (start, at)
    return out


# The candidate finders in C (_scan.c, see native.py) when they were built: the same results,
# found several times faster
_dotted_names = native.dotted_names or _py_dotted_names
# the names and hash passes' loops over what needs no judgment, in C (None: all in Python)
_names_walk = native.names_walk
_hashes_walk = native.hashes_walk
# the C loops count lines in a Py_ssize_t and refuse one past a quarter of its range: a text
# said to start at a line further out than this is counted in Python
_FAR_LINE = 1 << 60
_hex_spans = native.hex_runs or _py_hex_spans
_ipv6_spans = native.ipv6_runs or _py_ipv6_spans
_skip_lines = native.skip_lines or _py_skip_lines
C_SCAN = native.dotted_names is not None


# Logs name the same hosts over and over: what a token stands for is remembered (the table
# is emptied when full, which keeps memory bounded and costs one miss per token). Only tokens
# that may be a name are kept (no domain is longer than 253 characters, nor its e-mail
# address's user than 64), so the table holds at most _NAMES_MAX of them, whatever the input.
_NAMES: dict[str, str | None] = {}
_NAMES_MAX = 1 << 15
_CACHED_LENGTH = 253 + 65
_UNKNOWN = ""  # never a value of the table
# Tokens that are no name and give nothing wherever they are written (`lb3.exe`, `e.g`),
# skipped before any other look at them: bounded as `_NAMES` is, and emptied with it. (Not
# numbers: `8.1` is told apart as fast, and a log's timestamps would fill the table.)
_NEVER: set[str] = set()


def _name(tok: str) -> str | None:
    """The domain a dotted token (or e-mail address) stands for; `!` + the name for a
    file-like name, which counts only if defanged; None for anything else."""
    if len(_NAMES) >= _NAMES_MAX or len(_KNOWN) >= KNOWN_MAX:
        _forget()
    value = _new_name(tok)
    if len(tok) <= _CACHED_LENGTH:
        _NAMES[tok] = value
    if value is not None:
        _KNOWN[value[1:] if value[0] == "!" else value] = _DOMAIN
    return value


def _forget() -> None:
    """Empty both tables together, so that every domain in `_NAMES` stays in `_KNOWN`."""
    _NAMES.clear()
    _NEVER.clear()
    _KNOWN.clear()


def _new_name(tok: str) -> str | None:
    """What `tok` stands for (see _name), judged in C where it can be (`_scan.judge_name`,
    given suffixes.py's tables on the first call), else by `_py_new_name`."""
    global _judge_c
    if _judge_c is not None:
        value = _judge_c(tok)
        if value is not NotImplemented:
            return value  # type: ignore[return-value]
    elif native.judge_tables is not None and native.judge_name is not None:
        native.judge_tables(*judge_tables())
        _judge_c = native.judge_name
        return _new_name(tok)
    return _py_new_name(tok)


# the C judge once it holds suffixes.py's tables (native.judge_name; None until then or without C)
_judge_c: Callable[[str], object] | None = None


def _py_new_name(tok: str) -> str | None:
    """`_new_name(tok)` in Python: the reference the C judge gives the same as."""
    s = tok
    email = "@" in s
    if email:
        s = s.rpartition("@")[2]
    if "." not in s:
        return None
    value = s.lower()
    if s.isascii() and "xn--" not in value:
        # an ASCII domain is its name in lower case: the public suffix first (most names that
        # are no domain end in none), then the rules of a domain, without all of `normalize`;
        # as has_public_suffix, but with the one partition the rest of this uses too
        head, _, top = value.rpartition(".")
        alone, deeper = top_labels()
        if top in alone:
            if not head or not _is_plain_name(value, top):
                return None
        elif top not in deeper or not _is_plain_name(value, top) or not registrable(value):
            return None
    else:
        ioc_type, value = normalize(s)
        if ioc_type is not _DOMAIN or not has_public_suffix(value):
            return None
        top = value.rpartition(".")[2]
    if top in _INTERNAL:
        return None  # `.arpa` (reverse lookups) and `.onion` are under public suffixes
    if not email and is_file_or_program_name(value, s):
        return "!" + value
    return value


def _py_is_plain_name(low: str, top: str) -> bool:
    """`is_plain_domain(low)` for a name the names pattern found, in lower-case ASCII (words
    of letters, digits and `_%+-` joined by dots; `top` its last label, after a dot): a few
    string tests instead of the pattern of every rule, which backtracks at each label's end
    (a test checks both agree; `_scan.plain_name` is the same in one pass of C)."""
    return (
        len(low) <= 253
        and "%" not in low
        and "+" not in low
        and ".." not in low
        and "-." not in low
        and ".-" not in low
        and low[0] != "-"
        and low[0] != "."
        and top != ""
        and top[-1] != "-"
        and "_" not in top
        and not top.isdigit()
        and (len(low) <= 63 or max(map(len, low.split("."))) <= 63)
    )


_is_plain_name = native.plain_name or _py_is_plain_name


def _py_not_ascii(text: str) -> str:
    """Each character of `text` outside ASCII once, in order of code point (`_scan.not_ascii`
    is the same in C)."""
    return "".join(sorted(set(_NOT_ASCII.findall(text))))


_not_ascii = native.not_ascii or _py_not_ascii


def _alternative_root_host(tok: str) -> str | None:
    """The domain the host of a URL stands for when it is under an alternative root
    (`http://x.bit/`), which no other name is; None for anything else. Not kept in `_NAMES`,
    which answers for the name anywhere."""
    ioc_type, value = normalize(tok.rpartition("@")[2])
    if ioc_type is not _DOMAIN or value.rpartition(".")[2] not in ALTERNATIVE_ROOTS:
        return None
    if len(_KNOWN) >= KNOWN_MAX:
        _forget()
    _KNOWN[value] = _DOMAIN
    return value


def _unescape(m: re.Match[str]) -> str:
    return _UNESCAPED[m[0]]


def _ipv6(text: str) -> str | None:
    text = text.rstrip(".")
    if text[:1] == ":" and (text[1:2] != ":" or text[2:3] == ":"):
        text = text[1:]  # a key's colon before the address (`=:2001:db8::1`, `::::1`)
    if text.count(":") < 2 or not any(c not in ":." for c in text):
        return None
    return _compressed(text)


@functools.lru_cache(maxsize=1 << 12)
def _compressed(text: str) -> str | None:
    """The compressed form of the IPv6 address `text` (logs repeat theirs: remembered)."""
    value = _compress(text)
    # a colon after the address, as in `connect to 2001:db8::1: refused` or `64:ff9b::: x`
    if value is None and text.endswith(":"):
        value = _compress(text[:-1])
    return value


def _compress(text: str) -> str | None:
    """`ipaddress.IPv6Address(text).compressed`, or None for no address. The C functions of
    the socket module answer the same ten times faster, but for dotted quads, which they also
    write dotted: those go to ipaddress (a test checks both agree)."""
    if "." in text:
        try:
            return _canonical(ipaddress.IPv6Address(text))
        except ValueError:
            return None
    try:
        value = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):
        return None
    return _canonical(ipaddress.IPv6Address(text)) if "." in value else value


def _canonical(address: ipaddress.IPv6Address) -> str:
    """The address as `normalize` gives it: an IPv4-mapped one is its IPv4 address."""
    mapped = address.ipv4_mapped
    return address.compressed if mapped is None else str(mapped)
