"""Is a name a domain, or a file name? The public suffix decides, with one more rule.

`invoice.pdf` and `setup.exe` end in no public suffix, so they are file names. The Public
Suffix List comes from the `publicsuffixlist` package, which ships the list as a data file
next to its code: it is read once, on first use, from there. Only that package's separate
`update` module goes to the network, and nothing here imports it. The ICANN section alone is
used, so `github.io` is a domain under `io` rather than a suffix of its own.

Some file extensions are also top-level domains (`.zip`, `.py`, `.sh`, `.md`, ...). A bare
`name.ext` with one of those is taken for a file name, and so is a longer name with one that
holds a version (`poweriso.7.3.incl.serial.zip`) and a file named by its hash (`<md5>.zip`,
`<sha1>.com`). A few of those suffixes name far more hosts than files in reports (`.pl`,
`.rs`, `.app`, `.one`, `.run`): there a bare name is a file's only when written as files are,
with a capital or an underscore (`Invoice_1234.one`, `Safari.app`), or named as source files
are (`main.rs`, `lib.rs`, `a.pl`). Under an archive's suffix (`.zip`, `.cab`, `.mov`) a name
of three labels or more is a file's too (`crack.keygen.zip`), unless its first label is a
host's (`cdn.payload.zip`, `www.x.zip`). A few well-known hosts under those suffixes, where
malware stages tools and sends stolen data (`transfer.sh`), are always hosts. Some program,
namespace and package names are spelled like domains (`Microsoft.NET`, `asp.net`,
`System.IO`, `com.evil.app`, `self.name`, `user.id`, `location.host`). The caller decides
when the context (a defanged name, the host of a URL or of an e-mail address) says it is a
host after all.

Which names are sent at all (`name_problem`): those under a public suffix, and the hosts of
the alternative roots malware uses (Namecoin's `.bit`, Emercoin's `.bazar`, ...), but never a
special-use or internal name (`.onion`, `.local`, `.arpa`, `.corp`, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator
from pathlib import Path

import orjson
from publicsuffixlist import PSLFILE, PublicSuffixList, encode_idn

__all__ = [
    "ALTERNATIVE_ROOTS",
    "FILE_LIKE_TLDS",
    "HOST_FIRST_TLDS",
    "INTERNAL_SUFFIXES",
    "has_public_suffix",
    "is_file_or_program_name",
    "is_program_name",
    "judge_tables",
    "looks_like_file_name",
    "name_problem",
    "registrable",
    "top_labels",
]

#: top-level domains that are far more often a file extension in logs and reports
FILE_LIKE_TLDS = frozenset(
    {
        "app", "cab", "cat", "dot", "java", "map", "md", "mov", "one", "pl", "pm", "ps",
        "py", "rs", "run", "sh", "so", "zip",
    }
)  # fmt: skip


#: file-like TLDs that name more hosts than files in reports: a bare two-label name with one is
#: a file name only when written like one (a capital or an underscore in it)
HOST_FIRST_TLDS = frozenset({"app", "one", "pl", "rs", "run"})

#: first labels of two-label names with a host-first suffix that are a source file's or
#: script's (`main.rs`, `mod.rs`, `lib.rs`, `index.pl`), not a host's
FILE_STEMS = frozenset(
    {"app", "build", "config", "index", "init", "install", "lib", "main", "mod", "run",
     "setup", "start", "test", "tests", "util", "utils"}
)  # fmt: skip

#: archive and media suffixes (`.zip`, `.cab`, `.mov`) under which a longer name is a file's
#: (`crack.keygen.zip`, `windows.loader.zip`) unless its first label is a host's (`cdn.x.zip`)
ARCHIVE_TLDS = frozenset({"cab", "mov", "zip"})
HOST_LABELS = frozenset(
    {"api", "cdn", "dl", "download", "downloads", "files", "ftp", "login", "m", "mail", "portal",
     "secure", "static", "update", "updates", "web", "www"}
)  # fmt: skip

#: the hosts under a file-like suffix that reports name most, as file-sharing services used
#: to stage tools and exfiltrate data: hosts, however they are written
WELL_KNOWN_HOSTS = frozenset({"temp.sh", "transfer.sh"})

#: names of programs, frameworks and namespaces far more often than of hosts, in lower case
PROGRAM_NAMES = frozenset(
    {"asp.net", "ado.net", "vb.net", "microsoft.net", "system.net", "system.io", "socket.io"}
)

#: first labels of names that are code, not hosts: `self.name`, `this.id`, and reverse-DNS
#: package names (`com.evil.app`, `net.kestrel.app`) of three labels or more
CODE_FIRST_LABELS = frozenset({"self", "this", "cls"})
#: objects code names most, and top-level domains that are also the names of their attributes:
#: `user.id`, `location.host`, `item.link`, `user.email` are code, not hosts
CODE_OBJECTS = frozenset(
    {"args", "cfg", "config", "console", "ctx", "document", "el", "elem", "element", "err",
     "event", "evt", "foo", "form", "item", "location", "logger", "model", "msg", "node", "obj",
     "options", "opts", "props", "req", "request", "res", "response", "row", "session",
     "state", "user", "window"}
)  # fmt: skip
ATTRIBUTE_TLDS = frozenset(
    {"click", "data", "date", "email", "events", "host", "id", "info", "link", "name",
     "network", "page", "post", "site", "style", "type"}
)  # fmt: skip
PACKAGE_FIRST_LABELS = frozenset({"com", "net", "org", "edu", "gov", "io"})

#: top-level labels of names that are never a public host, even as the host of a URL:
#: special-use names (RFC 6761, RFC 7686's `.onion`, RFC 8375) and the usual internal ones
INTERNAL_SUFFIXES = frozenset(
    {"arpa", "corp", "example", "home", "internal", "intranet", "invalid", "lan", "local",
     "localdomain", "localhost", "onion", "test"}
)  # fmt: skip

#: top-level labels of alternative roots, outside the DNS root but used by malware: Namecoin
#: (`.bit`) and Emercoin (`.bazar`, `.coin`, `.emc`, `.lib`). Taken as hosts of URLs only.
ALTERNATIVE_ROOTS = frozenset({"bit", "bazar", "coin", "emc", "lib"})

_NO_SUFFIX = "domain without a public suffix (a file name?)"
_SPECIAL_USE = "special-use or internal name (.onion, .local, .arpa, ...)"
_HASH_LABEL_LENGTHS = frozenset({32, 40})


#: the A-labels of the list's IDN rules and top-level labels, as `encode_idn` makes them: IDNA's
#: codec is pure Python, ~0.3 M instructions a label, 60% of building the tables. A memo of a
#: pure function (`tools/psl_alabels.py` writes it from the list the package ships): a label
#: it lacks, from a newer list, is encoded as the tables are built.
ALABELS_FILE = Path(__file__).with_name("psl-alabels.json")


_ICANN_BEGIN = "// ===BEGIN ICANN DOMAINS==="
_ICANN_END = "// ===END ICANN DOMAINS==="


def icann_rules() -> Iterator[str]:
    """The ICANN section's rules, each as `PublicSuffixList` reads its line (lower case)."""
    icann = False
    with open(PSLFILE, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            if line.startswith("//"):
                # the markers are whole lines, as the package reads them: a comment may
                # quote one
                marker = line.rstrip()
                if marker in (_ICANN_BEGIN, _ICANN_END):
                    icann = marker == _ICANN_BEGIN
                continue
            rule = line.lower().split(" ")[0].rstrip()
            if icann and rule:
                yield rule


def _known_alabels() -> dict[str, str]:
    try:
        with open(ALABELS_FILE, "rb") as f:
            known = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return known if isinstance(known, dict) else {}


@functools.cache
def _icann_rules() -> tuple[tuple[str, ...], frozenset[str], frozenset[str]]:
    """The ICANN section's rules as `PublicSuffixList` reads them, each IDN rule in its
    A-label form too; and the top-level labels (A-labels) that are a rule alone and head no
    longer rule (`com`), and those that head longer ones (`uk`, `jp`, `ck`).

    One pass over the file the package ships, encoding only the rules that are not ASCII (an
    ASCII rule is its own A-label), from the memo when it has them: the package's parser
    encodes all ~7,000 (0.5 G instructions with the top labels read apart, which every
    process paid before its first name; now ~0.06 G)."""
    known = _known_alabels()

    def a_label(text: str) -> str:
        if text.isascii():
            return text
        found = known.get(text)
        return found if isinstance(found, str) else encode_idn(text)

    rules: list[str] = []
    alone: set[str] = set()
    deeper: set[str] = set()
    for rule in icann_rules():
        rules.append(rule)
        if not rule.isascii():
            bare = a_label(rule.lstrip("!"))
            rules.append("!" + bare if rule[0] == "!" else bare)
        (deeper if "." in rule else alone).add(a_label(rule.rpartition(".")[2]))
    return tuple(rules), frozenset(alone - deeper), frozenset(deeper)


@functools.cache
def _list() -> PublicSuffixList:
    # the A-labels are in the rules already: the package need not encode every rule again
    rules = _icann_rules()[0]
    return PublicSuffixList(rules, accept_unknown=False, accept_encoded_idn=False)


@functools.cache
def top_labels() -> tuple[frozenset[str], frozenset[str]]:
    """The top-level labels of the ICANN section (A-labels): those that are a rule alone and
    head no longer rule (`com`), and those that head longer ones (`uk`, `jp`, `ck`)."""
    _, alone, deeper = _icann_rules()
    return alone, deeper


def tables_built() -> bool:
    """Whether the public suffix tables are built (the first name judged builds them)."""
    return _list.cache_info().currsize > 0 and top_labels.cache_info().currsize > 0


def build_tables() -> None:
    """Build the public suffix tables now: ~20 ms of CPU once per process, which a run would
    otherwise spend on its event loop as it judges its first name. `Enricher` does it in a
    thread as it opens."""
    _list()
    top_labels()


@functools.lru_cache(maxsize=1 << 14)
def registrable(name: str) -> bool:
    """Whether the lower-case `name` has a label of its own before its public suffix (the
    list's walk over every suffix of the name; see has_public_suffix for the quick answer)."""
    return _list().privatesuffix(name) is not None


def has_public_suffix(name: str) -> bool:
    """True when the lower-case `name` ends in a public suffix and has a label of its own
    before it (`evil.co.uk`, not `co.uk`, `invoice.pdf` or `corp.local`)."""
    if len(name) > 253:
        return False  # no domain is longer: and the list's cache keeps only names that can be
    # Most names end in a top-level label that is a rule of its own and heads no longer one
    # (`com`, `net`, `ru`): then any name of two labels or more has a label of its own. This
    # answers them without the list's walk over every suffix of the name (12 us a new name).
    alone, deeper = top_labels()
    head, dot, top = name.rpartition(".")
    if top in alone:
        return bool(dot) and bool(head)
    return top in deeper and registrable(name)


def name_problem(name: str) -> str | None:
    """Why the domain `name` (canonical) is not sent, or None: it must end in a public suffix
    with a label of its own before it, or in an alternative root, and not be special-use."""
    head, dot, top = name.rpartition(".")
    if top in INTERNAL_SUFFIXES:
        return _SPECIAL_USE
    if top in top_labels()[0]:  # most names: as in has_public_suffix, without a second partition
        return None if dot and head and len(name) <= 253 else _NO_SUFFIX
    if top in ALTERNATIVE_ROOTS or has_public_suffix(name):
        return None
    return _NO_SUFFIX


def looks_like_file_name(name: str, written: str) -> bool:
    """True for a lower-case name, written as `written`, that is a file's: its suffix is a
    file-like TLD and it is a bare `name.ext` (for the host-first TLDs, only when written with
    a capital or an underscore, or named as source files are: `main.rs`, `a.pl`), or a longer
    name under an archive's suffix (`crack.keygen.zip`, not `cdn.payload.zip`), or it holds a
    label of digits alone, as versions in file names do
    (`utorrent.pro.v.3.5.5.multi.winall.cracked-f4cg.zip`); or it is a file named by its hash
    (`<md5>.zip`, `<sha1>.com`: two labels, or a file-like suffix). The best-known hosts under
    such suffixes (`transfer.sh`) are never file names."""
    head, dot, tld = name.rpartition(".")
    if not dot:
        return False
    first, _, rest = head.partition(".")
    if len(first) in _HASH_LABEL_LENGTHS and _is_hex(first) and (not rest or tld in FILE_LIKE_TLDS):
        return True
    if tld not in FILE_LIKE_TLDS or name in WELL_KNOWN_HOSTS:
        return False
    if not rest:
        if tld not in HOST_FIRST_TLDS:
            return True
        return len(first) == 1 or first in FILE_STEMS or not written.islower() or "_" in written
    if tld in ARCHIVE_TLDS and first not in HOST_LABELS:
        return True
    return any(label.isdigit() for label in head.split("."))


#: the first labels that may make a name code (see is_program_name)
_CODE_LABELS = CODE_FIRST_LABELS | PACKAGE_FIRST_LABELS | CODE_OBJECTS


def judge_tables() -> tuple[Collection[str], ...]:
    """The tables a new name is judged with, for `_scan.judge_tables` (the C judge of
    extract.py): the top-level labels as `top_labels` splits them, the ICANN rules as
    `PublicSuffixList` reads them (`registrable`'s list), and this module's sets, in the
    order the C takes them."""
    rules, alone, deeper = _icann_rules()
    return (
        alone, deeper, rules, INTERNAL_SUFFIXES, FILE_LIKE_TLDS, HOST_FIRST_TLDS, FILE_STEMS,
        ARCHIVE_TLDS, HOST_LABELS, WELL_KNOWN_HOSTS, PROGRAM_NAMES, CODE_FIRST_LABELS,
        CODE_OBJECTS, ATTRIBUTE_TLDS, PACKAGE_FIRST_LABELS, ALTERNATIVE_ROOTS,
    )  # fmt: skip


def is_file_or_program_name(name: str, written: str) -> bool:
    """`looks_like_file_name(name, written) or is_program_name(written, name)`, answered
    without either for most names: under a suffix that is not file-like, with no label of
    32 or 40 characters before it alone, not written with a capital first, and with a first
    label that names no code (the text extractor asks this of every new name)."""
    head, _, tld = name.rpartition(".")
    if (
        tld not in FILE_LIKE_TLDS
        and len(head) not in _HASH_LABEL_LENGTHS
        and not written[0].isupper()
        and name not in PROGRAM_NAMES
        and name.partition(".")[0] not in _CODE_LABELS
    ):
        return False
    return looks_like_file_name(name, written) or is_program_name(written, name)


def _is_hex(label: str) -> bool:
    return not label.isdigit() and all(c in "0123456789abcdef" for c in label)


def is_program_name(written: str, name: str) -> bool:
    """True when `name` (lower case), written as `written`, names a program, a namespace or
    code: one of PROGRAM_NAMES; a name written as .NET namespaces are, each label starting with
    a capital, not all in capitals and without a hyphen, which no identifier holds, nor ending
    in `.Com` (`Microsoft.NET`, `System.IO`, `Microsoft.Office`, but `EVIL.COM`, `Evil.com`,
    `Secure-PayPal.Com` and `Login.Evil-Bank.Net` are domains); an attribute of `self` or
    `this`, or of an object code names often under a top-level domain that is also an
    attribute's name (`user.id`, `location.host`); or a reverse-DNS package name
    (`com.evil.app`)."""
    if name in PROGRAM_NAMES:
        return True
    first, _, rest = name.partition(".")
    if first in CODE_FIRST_LABELS or (first in PACKAGE_FIRST_LABELS and "." in rest):
        return True
    if first in CODE_OBJECTS and rest in ATTRIBUTE_TLDS:
        return True
    return (
        written[0].isupper()
        and not written.isupper()
        and "-" not in written
        and not name.endswith(".com")
        and all(label[:1].isupper() for label in written.split(".")[1:])
    )
