"""Is a name a domain, or a file name? The public suffix decides, with one more rule.

`invoice.pdf` and `setup.exe` end in no public suffix, so they are file names. The Public
Suffix List comes from the `publicsuffixlist` package, which ships the list as a data file
next to its code: it is read once, on first use, from there. Only that package's separate
`update` module goes to the network, and nothing here imports it. The ICANN section alone is
used, so `github.io` is a domain under `io` rather than a suffix of its own.

Some file extensions are also top-level domains (`.zip`, `.py`, `.sh`, `.md`, ...). A bare
`name.ext` with one of those is taken for a file name, and so is a longer name with one that
holds a version (`poweriso.7.3.incl.serial.zip`); some program and namespace names are spelled
like domains (`Microsoft.NET`, `asp.net`, `System.IO`). The caller decides when the context
(a defanged name, the host of a URL or of an e-mail address) says it is a host after all.
"""

from __future__ import annotations

import functools

from publicsuffixlist import PSLFILE, PublicSuffixList, encode_idn

__all__ = [
    "FILE_LIKE_TLDS",
    "INTERNAL_SUFFIXES",
    "has_public_suffix",
    "is_program_name",
    "looks_like_file_name",
]

#: top-level domains that are far more often a file extension in logs and reports
FILE_LIKE_TLDS = frozenset(
    {
        "app", "cab", "cat", "dot", "java", "map", "md", "mov", "one", "pl", "pm", "ps",
        "py", "rs", "run", "sh", "so", "zip",
    }
)  # fmt: skip


#: names of programs, frameworks and namespaces far more often than of hosts, in lower case
PROGRAM_NAMES = frozenset(
    {"asp.net", "ado.net", "vb.net", "microsoft.net", "system.net", "system.io", "socket.io"}
)

#: top-level labels of names that are never a public host, even as the host of a URL:
#: special-use names (RFC 6761, RFC 8375) and the usual internal ones
INTERNAL_SUFFIXES = frozenset(
    {"arpa", "corp", "example", "home", "internal", "intranet", "invalid", "lan", "local",
     "localdomain", "localhost", "test"}
)  # fmt: skip


@functools.cache
def _list() -> PublicSuffixList:
    return PublicSuffixList(accept_unknown=False, only_icann=True)


@functools.cache
def _top_labels() -> tuple[frozenset[str], frozenset[str]]:
    """The top-level labels of the ICANN section (A-labels): those that are a rule alone and
    head no longer rule (`com`), and those that head longer ones (`uk`, `jp`, `ck`)."""
    alone: set[str] = set()
    deeper: set[str] = set()
    icann = False
    with open(PSLFILE, encoding="utf-8") as f:
        for line in f:
            rule = line.split(" ")[0].strip().lower()
            if rule.startswith("//"):
                if "===BEGIN ICANN DOMAINS===" in line or "===END ICANN DOMAINS===" in line:
                    icann = "BEGIN" in line
                continue
            if not icann or not rule:
                continue
            top = encode_idn(rule.rpartition(".")[2])
            (deeper if "." in rule else alone).add(top)
    return frozenset(alone - deeper), frozenset(deeper)


@functools.lru_cache(maxsize=1 << 14)
def _registrable(name: str) -> bool:
    return _list().privatesuffix(name) is not None


def has_public_suffix(name: str) -> bool:
    """True when the lower-case `name` ends in a public suffix and has a label of its own
    before it (`evil.co.uk`, not `co.uk`, `invoice.pdf` or `corp.local`)."""
    # Most names end in a top-level label that is a rule of its own and heads no longer one
    # (`com`, `net`, `ru`): then any name of two labels or more has a label of its own. This
    # answers them without the list's walk over every suffix of the name (12 us a new name).
    alone, deeper = _top_labels()
    head, dot, top = name.rpartition(".")
    if top in alone:
        return bool(dot) and bool(head)
    return top in deeper and _registrable(name)


def looks_like_file_name(name: str) -> bool:
    """True for a lower-case name whose suffix is a file-like TLD and which is a bare
    `name.ext`, or holds a label of digits alone, as versions in file names do
    (`utorrent.pro.v.3.5.5.multi.winall.cracked-f4cg.zip`)."""
    head, dot, tld = name.rpartition(".")
    if not dot or tld not in FILE_LIKE_TLDS:
        return False
    return "." not in head or any(label.isdigit() for label in head.split("."))


def is_program_name(written: str, name: str) -> bool:
    """True when `name` (lower case), written as `written`, names a program or a namespace:
    one of PROGRAM_NAMES, or a name written as .NET namespaces are, each label starting with a
    capital and not all in capitals (`Microsoft.NET`, `System.IO`, `Microsoft.Office`, but
    `EVIL.COM` and `Evil.com` are domains)."""
    if name in PROGRAM_NAMES:
        return True
    return (
        written[0].isupper()
        and not written.isupper()
        and all(label[:1].isupper() for label in written.split(".")[1:])
    )
