from collections.abc import Callable
from typing import Any

SOURCE: str
NAME: int
HEX: int
IPV4: int
IPV6: int

class Table:
    def __init__(self, kind: int, width: int, packer: Callable[[str], bytes]) -> None: ...
    def add(self, value: str, /) -> bool: ...
    def has(self, value: str, /) -> bool: ...
    def blob(self) -> bytes: ...
    def load(self, blob: bytes, /) -> None: ...
    def __len__(self) -> int: ...

def take_plain(
    tables: tuple[Table, ...],
    types: tuple[object, ...],
    tops: frozenset[str],
    screen: tuple[bool | bytes | None, ...],
    lines: list[str | None],
    start: int,
    fresh: list[Any],
    flagged: list[int],
    /,
) -> tuple[int, int, int]: ...
def fill(
    keys: list[Any],
    start: int,
    endpoint_of: dict[Any, Any],
    pending: dict[Any, list[Any]],
    sizes: dict[Any, int],
    /,
) -> int: ...
