# The C module built from _scan.c (see hatch_build.py); extract.py falls back on its own
# Python when it is missing.
from collections.abc import Collection
from types import NotImplementedType

def dotted_names(text: str, /) -> tuple[list[str], list[int]]: ...
def hex_runs(text: str, /) -> list[int]: ...
def hashes_walk(
    text: str,
    spans: list[int],
    k: int,
    line: int,
    last: int,
    long_names: bool,
    values: list[str],
    lines: list[int],
    pending: list[tuple[int, int]] | None = None,
    /,
) -> tuple[int, int, int]: ...
def triggers(text: str, /) -> list[int]: ...
def refang_windows(text: str, /) -> str: ...
def ipv6_runs(text: str, /) -> list[int]: ...
def skip_lines(text: str, at: int, count: int, /) -> int: ...
def not_ascii(text: str, /) -> str: ...
def plain_name(low: str, top: str, /) -> bool: ...
def names_walk(
    text: str,
    tokens: list[str],
    starts: list[int],
    i: int,
    line: int,
    last: int,
    memo: dict[str, str | None],
    never: set[str],
    known: dict[str, object],
    ipv4: object,
    known_max: int,
    values: list[str],
    lines: list[int],
    long_names: list[tuple[int, int]],
    quads: list[tuple[int, int]] | None,
    defanged: bool,
    names_max: int,
    domain: object,
    /,
) -> tuple[int, int, int]: ...
def judge_name(tok: str, /) -> str | NotImplementedType | None: ...
def judge_tables(*tables: Collection[str]) -> None: ...

# the digest of the _scan.c it was built from (native.py compares it with the one beside it)
SOURCE: str

def split_lines(text: str, /) -> list[str]: ...
