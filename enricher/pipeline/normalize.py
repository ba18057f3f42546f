"""Normalize and classify one raw IOC string: a hash, a domain or an IP address.

`normalize` turns one input line into the `(IocType, value)` pair that is deduplicated, sent
and written, or into `(None, reason)` for the rejects file. Values are canonical, so
`normalize(value) == (type, value)`: hashes in lower case; domains in lower case, without a
trailing dot, internationalized labels as A-labels (UTS 46 mapping, IDNA 2008); IPv4 as a
strict dotted quad; IPv6 compressed (an IPv4-mapped address, `::ffff:1.2.3.4`, is the IPv4
address). A URL, `host:port` or e-mail address yields its host, a wildcard name (`*.evil.com`)
the name under it, and an address with a prefix length that is no range (`1.2.3.4/32`, an
interface's `10.1.2.3/24`) the address. Defanged text (`evil[.]com`, `hxxp://`) is refanged
first; characters that do not show (zero-width spaces and joiners, soft hyphens) are dropped.

Most input is clean, one hash, domain or dotted quad a line, so `normalize` tries those with
one precompiled regex each; anything else takes `_normalize_slow`, which gives the same
answer for every input and is the definition of the rules.
"""

from __future__ import annotations

import ipaddress
import re
import socket

import idna

from ..inputs import native
from ..ioc import IocType

__all__ = [
    "KNOWN_MAX",
    "MAX_LENGTH",
    "bracket_port_after_ipv6",
    "is_plain_domain",
    "is_range",
    "known_canonical",
    "normalize",
    "refang",
    "strip_invisible",
]

MAX_LENGTH = 2048
"""Longer input is rejected before any other work: no IOC, nor a URL worth reading, is longer."""

_NOT_IOC = "not a hash, domain, IP or URL"
_BAD_HEX = "hex string of unsupported length (md5, sha1, sha256 have 32, 40, 64)"
_BAD_IPV4 = "invalid IPv4 address"
_BAD_IPV6 = "invalid IPv6 address"
_BAD_IDN = "invalid internationalized domain name"

_HASH_TYPE = {32: IocType.MD5, 40: IocType.SHA1, 64: IocType.SHA256}
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGITS = frozenset("0123456789")
# No leading zeros: `010` is 8 to inet_aton and 10 to a person, so neither reading is safe.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_DIGITS_AND_DOTS = re.compile(r"\.*[0-9][0-9.]*")  # at least one digit
# Underscores are not LDH, but real (malware) host names have them, so labels may hold them;
# top-level labels may not.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_TLD = r"(?![0-9]+\.?\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_TLD}\.?")  # lower-case ASCII, all rules but length
_DOMAIN_LABEL = re.compile(_LABEL)
_LABEL_CHARS = re.compile(r"[a-z0-9_-]+")

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_AUTHORITY_END = re.compile(r"[/?#\\]")
_PORT = re.compile(r"[0-9]{1,5}")
_CIDR = re.compile(r"[0-9.]+/[0-9]{1,2}|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*/[0-9]{1,3}")
# a port after a `[:]` that ends an IPv6 address: see bracket_port_after_ipv6
_V6_RUN = "0123456789abcdefABCDEF:"
_PORT_AFTER = re.compile(r"[0-9]{1,5}(?![0-9A-Za-z:.\[])")
# Characters that do not show, which text pasted from documents and web pages hides inside
# names (`ev\u200bil.com`): zero-width space, non-joiner, joiner, word joiner, soft hyphen, BOM
_INVISIBLE = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")
_INET6 = socket.AF_INET6

# One pass over the text. Every alternative consumes its first character before anything
# else, so the pattern starts with one character class and the regex engine skips, in C, the
# positions where no defanging can start (3 to 4 times faster on long text than trying each
# alternative everywhere). A lookbehind then says which character it was; the empty named
# group at the end of each alternative says what it stands for. No IGNORECASE: it would turn
# that first-class scan off, so letters are spelled in both cases. Quantifiers are bounded, so
# long text without any marker costs linear time.
_DEFANG = re.compile(
    r"""
    [\ \[({<.\\hHfF]
    (?:
        # ' [.] ' ' (dot) ' ' [@] ' ' [at] ': the spaces around go too
        (?<=\ ) [\[({]
        (?: \[?+ \ ? (?:\.|[dD][oO][tT]) \ ? [\])}] \]?+ \ ? (?P<dot>)
          | \ ? (?:@|[aA][tT]) \ ? [\])}] \ ? (?P<at>) )
        # [.] (.) {.} [dot] [@] [at] [://] [:] [/], and the half bracket in example[.com;
        # a doubled bracket around a dot goes too: [[.]] [[.] [.]]
      | (?<=[\[({])
        (?: \[?+ \ ? (?:\.|[dD][oO][tT]) \ ? [\])}] \]?+ \ ? (?P<dot_>)
          | \ ? (?:@|[aA][tT]) \ ? [\])}] \ ? (?P<at_>)
          | (?P<punct> :// | :/ | : | / ) [\])}]
          | (?<=\[) \. (?P<half>) )
      | (?<=\.) \] (?P<half_>)                        # the half bracket in example.]com
      | (?<=<) \. > (?P<angle>)                        # example<.>com
      | (?<=\\) \. (?P<escaped>)                      # example\.com
        # hxxp:// hXXps[:]// fxp://, at the start of a word
      | (?<![a-zA-Z0-9_][hHfF])
        (?: (?<=[hH]) [xX]{2} (?P<h>) | (?<=[fF]) [xX] (?P<f>) ) [pP] (?P<s> [sS]? ) (?=[\[({]?:)
    )
    """,
    re.VERBOSE | re.ASCII,
)


def _undefang(m: re.Match[str]) -> str:
    kind = m.lastgroup
    if kind == "punct":
        return m["punct"]
    if kind == "s":
        return ("http" if m["h"] is not None else "ftp") + m["s"].lower()
    if kind == "at" or kind == "at_":
        return "@"
    return "."  # dot, half, escaped


# Every defanging holds one of these: an opening bracket, a backslash, the `x` of `hxxp` or
# `fxp`, each followed by what makes it a defanging, or the `]` of `.]`. None is farther than
# _REACH characters from the ends of its defanging, so `refang` runs `_DEFANG` only around
# them: they are found at hundreds of MB/s, where `_DEFANG` scans at tens.
_TRIGGER = re.compile(
    r"[\[({<\\xX\]](?:(?<=[\[({])\ ?(?:[.@:/]|[dD][oO][tT]|[aA][tT])|(?<=\\)\."
    r"|(?<=[hH][xX])[xX][pP]|(?<=[fF][xX])[pP]|(?<=\.\])|(?<=<)\.>)"
)
_REACH = 12


def _python_triggers(text: str) -> list[int]:
    """Where the matches of `_TRIGGER` in `text` start."""
    return [m.start() for m in _TRIGGER.finditer(text)]


# the same in C when it was built (enricher/inputs/native.py): five to ten times faster
_triggers = native.triggers or _python_triggers
# the word `DOT` in capitals between two words, as in `evil DOT com`; in lower case it is
# prose too often (`the dot com era`)
_SPELLED_DOT = re.compile(r"(?<=[0-9A-Za-z]) DOT (?=[0-9A-Za-z])")
# `[.]` with no space, bracket or backslash before it and no space or `]` after it
_LONE_DOT = re.compile(r"\[(?<![ \[({\\]\[)\.\](?![ \]])")
# what most defangings stand for, without a call
_PLAIN = {
    "dot": ".",
    "dot_": ".",
    "half": ".",
    "half_": ".",
    "escaped": ".",
    "angle": ".",
    "at": "@",
    "at_": "@",
}


def refang(text: str) -> str:
    """`text` with the usual defanging undone: `[.]`, `(dot)`, `[:]`, `[://]`, `[@]`, `[at]`,
    doubled brackets (`[[.]]`), half brackets (`.]`, `[.`), `<.>`, `\\.`, ` DOT `, and the
    `hxxp`, `hxxps` and `fxp` schemes.

    The word `dot` or `at` counts only inside brackets, or `DOT` in capitals between two words
    (`evil DOT com`). The result is not validated.
    """
    if " DOT " in text:
        text = _SPELLED_DOT.sub(".", text)
    if "[.]" in text:
        # the commonest defanging, where nothing next to it makes it part of another, is
        # replaced in one C pass: the windows below are then fewer. The C windows need it
        # too: without it `<[.]>` is left `<.>` (the pass makes `<.>`, which the windows
        # take), and the windows, placed around other triggers, may end elsewhere (a trailing
        # space of ` [at] ` kept or not): the result would differ from the Python's
        text = _LONE_DOT.sub(".", text)
    return _refang_windows(text)


def _py_refang_windows(text: str) -> str:
    """`_DEFANG.sub(_undefang, text)` (after refang's first steps), run only in windows around
    the triggers (`text` itself when nothing was refanged): the reference
    `_scan.refang_windows` gives the same as, in C."""
    parts: list[str] = []
    done = 0  # the text before this is in `parts`
    start = end = -1  # the window being gathered: around triggers, each close to the last
    for at in _triggers(text):
        if at < end:
            end = at + _REACH
            continue
        if end >= 0:
            done = _refang_window(text, max(done, start), end, done, parts)
        start, end = at - _REACH, at + _REACH
    if end < 0:
        return text
    done = _refang_window(text, max(done, start), end, done, parts)
    parts.append(text[done:])
    return "".join(parts)


def _refang_window(text: str, start: int, end: int, done: int, parts: list[str]) -> int:
    """Refang the matches of `_DEFANG` that start in `start`-`end` (each of them lies within
    the window, and none of the whole text's starts before it and ends in it): appends the
    text from `done` on to `parts`, and says where it stopped."""
    for found in _DEFANG.finditer(text, max(start, 0), min(len(text), end + 4)):
        at = found.start()
        if at >= end:
            break
        parts.append(text[done:at])
        parts.append(_PLAIN.get(found.lastgroup or "") or _undefang(found))
        done = found.end()
    return done


# the same in C when it was built: the windows' matches found and replaced in one pass over
# the triggers, with no regex call or string made for each
_refang_windows = native.refang_windows or _py_refang_windows


# Values already known to be canonical, with their type: the text extractor puts here the
# names and addresses it found (and has just normalized), which logs repeat over and over, so
# that `normalize` answers them with one lookup. Any canonical value may be in it, since
# `normalize(v) == (t, v)`; a value missing from it takes the usual path. While the table is
# empty (no text read) it costs one truth test. Bounded: whoever fills it empties it when full.
_KNOWN: dict[str, IocType] = {}
KNOWN_MAX = 1 << 16


def known_canonical() -> dict[str, IocType]:
    """The table of canonical values to their type that `normalize` looks up first. Put in it
    only a value `v` for which `normalize(v) == (t, v)`, and empty it at `KNOWN_MAX` entries."""
    return _KNOWN


def normalize(text: str) -> tuple[IocType, str] | tuple[None, str]:
    """(type, normalized value) for a valid IOC; (None, reason) for anything else.

    Never raises. Surrounding whitespace is ignored. For every accepted `(t, v)`,
    `normalize(v) == (t, v)`.
    """
    if _KNOWN:
        known = _KNOWN.get(text)
        if known is not None:
            return known, text
    if len(text) > MAX_LENGTH:
        return None, "too long"
    s = text.strip()
    if s.isascii():  # also keeps str.lower() from turning a Kelvin sign into "k"
        hash_type = _HASH_TYPE.get(len(s))
        if hash_type is not None:
            # hex digits alone: one C call, faster than a regex (a space, which `fromhex`
            # skips, makes the bytes fewer); inline, as this runs for every hash of an input
            try:
                if len(bytes.fromhex(s)) * 2 == len(s):
                    return hash_type, s.lower()
            except ValueError:
                pass
        # a dotted quad ends in a digit (a name seldom does: no regex for it)
        if s[-1:] in _DIGITS and _IPV4.fullmatch(s):
            return IocType.IPV4, s
        low = s.lower()
        if _DOMAIN.fullmatch(low) and "xn--" not in low:
            name = low[:-1] if low[-1] == "." else low
            if len(name) <= 253:
                return IocType.DOMAIN, name
    return _normalize_slow(s)


def bracket_port_after_ipv6(text: str) -> str:
    """`text` with the `[:]` that ends an IPv6 address holding a `::`, before a port, read as
    the port's colon (`2606:4700::6815:3a[:]443` is `[2606:4700::6815:3a]:443`): no one
    defangs one colon between the groups of an address."""
    parts: list[str] = []
    done = 0
    at = text.find("[:]")
    while at >= 0:
        window = text[max(done, at - 40) : at]
        run = window[len(window.rstrip(_V6_RUN)) :]
        begin = at - len(run)
        if (
            "::" in run
            and run[-1] != ":"
            and len(run) < 40
            and (begin == 0 or not text[begin - 1].isalnum())
            and _PORT_AFTER.match(text, at + 3)
        ):
            parts += [text[done:begin], "[", run, "]:"]
            done = at + 3
        at = text.find("[:]", at + 3)
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def strip_invisible(text: str) -> str:
    """`text` without the characters that do not show (zero-width spaces and joiners, soft
    hyphens, BOMs): `ev\u200bil.com` is `evil.com` to whoever reads it."""
    return _INVISIBLE.sub("", text)


def is_range(address: str, prefix: int) -> bool:
    """Whether `address/prefix` (a canonical IPv4 or IPv6 address) is a network range: a prefix
    shorter than the address with no bit of the address past it set (`10.0.0.0/8`,
    `2001:db8::/32`). `1.2.3.4/32` is one host, `10.1.2.3/24` an interface's address on its
    network, and `1.2.3.4/443` (past 32) a port: each is the address."""
    if ":" not in address:
        # a dotted quad: socket's C parser gives the same bits as ipaddress ten times faster
        if prefix >= 32:
            return False
        return int.from_bytes(socket.inet_aton(address), "big") & ((1 << (32 - prefix)) - 1) == 0
    ip = ipaddress.ip_address(address)
    if prefix >= ip.max_prefixlen:
        return False
    return int(ip) & ((1 << (ip.max_prefixlen - prefix)) - 1) == 0


def is_plain_domain(low: str) -> bool:
    """Whether `low`, in lower-case ASCII with no `xn--` label and no trailing dot, is a domain:
    then `normalize(low) == (IocType.DOMAIN, low)`. The text extractor asks this of the names
    it finds, without the rest of `normalize`'s work."""
    return len(low) <= 253 and _DOMAIN.fullmatch(low) is not None


def _normalize_slow(text: str) -> tuple[IocType, str] | tuple[None, str]:
    """`normalize` for text up to MAX_LENGTH, without the fast path."""
    if "[:]" in text:
        text = bracket_port_after_ipv6(text)
    s = refang(text)
    if not s.isascii():
        s = strip_invisible(s)
    s = s.strip()
    if not s:
        return None, "empty"
    if _HEX.fullmatch(s):
        hash_type = _HASH_TYPE.get(len(s))
        return (hash_type, s.lower()) if hash_type is not None else (None, _BAD_HEX)
    scheme = _SCHEME.match(s)
    if scheme is None and _CIDR.fullmatch(s):
        address, _, prefix = s.partition("/")
        ioc_type, value = _normalize_slow(address)
        if ioc_type is None or is_range(value, int(prefix)):
            return None, "network range (CIDR), not a single address"
        return ioc_type, value
    rest = s[scheme.end() :] if scheme else s
    authority = _AUTHORITY_END.split(rest, 1)[0]
    host = authority.rpartition("@")[2]  # drops the userinfo of a URL, the user of an e-mail
    bad_port = "invalid port" if scheme else _NOT_IOC  # `C:\Windows` is no host:port
    if host.startswith("["):
        inner, bracket, after = host[1:].partition("]")
        if not bracket:
            return None, "unclosed '[' in address"
        if after and not (after[0] == ":" and _port_ok(after[1:], scheme is not None)):
            return None, bad_port
        return _ipv6(inner)
    colons = host.count(":")
    if colons == 1:
        host, _, port = host.partition(":")
        if not _port_ok(port, scheme is not None):
            return None, bad_port
    elif colons > 1:
        if scheme:  # in a URL, 2001:db8::1:80 might be an address or an address and a port
            return None, "IPv6 address in a URL must be in brackets"
        return _ipv6(host)
    while host.startswith("*."):
        host = host[2:]  # a wildcard stands for the names under the name after it
    if not host:
        return None, "URL without a host" if scheme else _NOT_IOC
    if _DIGITS_AND_DOTS.fullmatch(host):
        return (IocType.IPV4, host) if _IPV4.fullmatch(host) else (None, _BAD_IPV4)
    return _domain(host)


def _port_ok(port: str, in_url: bool) -> bool:
    if not port:
        return in_url  # RFC 3986 allows `http://host:/`
    return _PORT.fullmatch(port) is not None and int(port) <= 65535


def _ipv6(text: str) -> tuple[IocType, str] | tuple[None, str]:
    if "%" in text:
        return None, "IPv6 zone index not supported"
    try:
        # the C parser and writer: ten times faster than ipaddress, and the same compressed
        # form (RFC 5952) unless they write a dotted quad in it (`::ffff:1.2.3.4`,
        # `::1.2.3.4`), which ipaddress writes as hex; anything they refuse, ipaddress decides
        compressed = socket.inet_ntop(_INET6, socket.inet_pton(_INET6, text))
    except (OSError, ValueError):  # ValueError: a NUL character
        compressed = "."
    if "." not in compressed:
        return IocType.IPV6, compressed
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None, _BAD_IPV6
    mapped = address.ipv4_mapped
    if mapped is not None:
        # `::ffff:1.2.3.4` is how a dual-stack socket shows the IPv4 address 1.2.3.4: asked
        # as IPv6 (`::ffff:102:304`) it would be another key, with another answer
        return IocType.IPV4, str(mapped)
    return IocType.IPV6, address.compressed


def _domain(name: str) -> tuple[IocType, str] | tuple[None, str]:
    idn = not name.isascii() or "xn--" in name.lower()
    if idn:
        try:
            # Maps case, full-width forms and the ideographic full stop; keeps `_` (no STD3).
            name = idna.uts46_remap(name, std3_rules=False)
        except UnicodeError:  # idna.IDNAError is one
            return None, _BAD_IDN
    else:
        name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if len(labels) == 1:
        return None, "single-label name (no dot)" if _DOMAIN_LABEL.fullmatch(name) else _NOT_IOC
    # A-labels are never shorter than their U-labels, so length checks may come first; they
    # also bound the work punycode does.
    if len(name) > 253:
        return None, "domain longer than 253 characters"
    for label in labels:
        if not label:
            return None, "empty domain label"
        if len(label) > 63:
            return None, "domain label longer than 63 characters"
    if idn:
        try:
            labels = [_a_label(label) for label in labels]
        except UnicodeError:
            return None, _BAD_IDN
        name = ".".join(labels)
        if len(name) > 253:
            return None, "domain longer than 253 characters"
    for label in labels:
        if not _LABEL_CHARS.fullmatch(label):
            return None, "invalid character in domain"
        if label[0] == "-" or label[-1] == "-":
            return None, "domain label starts or ends with a hyphen"
    tld = labels[-1]
    if "_" in tld:
        return None, "invalid character in domain"
    if tld.isdigit():
        return None, "all-numeric top-level label"
    return IocType.DOMAIN, name


def _a_label(label: str) -> str:
    """The A-label of a non-ASCII or `xn--` label (checked by idna); other labels unchanged."""
    if label.isascii() and not label.startswith("xn--"):
        return label  # idna would refuse `_`; our own rules check these labels
    return idna.alabel(label).decode("ascii")
