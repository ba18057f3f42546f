"""Is a name a domain, or a file name? The public suffix decides, with one more rule.

`invoice.pdf` and `setup.exe` end in no public suffix, so they are file names. The Public
Suffix List comes from the `publicsuffixlist` package, which ships the list as a data file
next to its code: it is read once, on first use, from there. Only that package's separate
`update` module goes to the network, and nothing here imports it. The ICANN section alone is
used, so `github.io` is a domain under `io` rather than a suffix of its own.

Some file extensions are also top-level domains (`.zip`, `.py`, `.sh`, `.md`, ...). A bare
`name.ext` with one of those is taken for a file name; the caller decides when the context
(a defanged name, the host of a URL or of an e-mail address) says it is a host after all.
"""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList

__all__ = ["FILE_LIKE_TLDS", "has_public_suffix", "looks_like_file_name"]

#: top-level domains that are far more often a file extension in logs and reports
FILE_LIKE_TLDS = frozenset(
    {
        "app", "cab", "cat", "dot", "java", "map", "md", "mov", "one", "pl", "pm", "ps",
        "py", "rs", "run", "sh", "so", "zip",
    }
)  # fmt: skip


@functools.cache
def _list() -> PublicSuffixList:
    return PublicSuffixList(accept_unknown=False, only_icann=True)


@functools.lru_cache(maxsize=1 << 14)
def has_public_suffix(name: str) -> bool:
    """True when the lower-case `name` ends in a public suffix and has a label of its own
    before it (`evil.co.uk`, not `co.uk`, `invoice.pdf` or `corp.local`)."""
    return _list().privatesuffix(name) is not None


def looks_like_file_name(name: str) -> bool:
    """True for a lower-case two-label `name.ext` whose suffix is a file-like TLD."""
    head, dot, tld = name.rpartition(".")
    return bool(dot) and tld in FILE_LIKE_TLDS and "." not in head
