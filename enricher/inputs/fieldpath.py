"""`--field` paths: which values of a JSON record to read, as `process.hash.md5` or
`answers[*].rdata`.

A path is keys joined by dots, each followed by any number of `[*]` (every element) or `[N]`
(element N, from 0). Arrays met where the path names a key are walked all the same, so
`answers.rdata` finds what `answers[*].rdata` finds. A key with dots in its name (flattened
exports: `{"source.ip": ...}`) is found too when no nested key matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = ["ANY", "FieldPath", "parse_field", "select", "within"]


class _Any:
    def __repr__(self) -> str:
        return "[*]"


#: the `[*]` step
ANY: Any = _Any()

Step = str | int | _Any
FieldPath = tuple[Step, ...]

_SEGMENT = re.compile(r"(?P<key>[^.\[\]]*)(?P<index>(?:\[(?:\*|[0-9]+)\])*)")
_INDEX = re.compile(r"\[(\*|[0-9]+)\]")


def parse_field(text: str) -> FieldPath:
    """The steps of a `--field` path; ValueError with the reason when it is not one."""
    steps: list[Step] = []
    for i, part in enumerate(text.split(".")):
        m = _SEGMENT.fullmatch(part)
        if m is None:
            raise ValueError(f"--field {text!r}: {part!r} is not a key with [*] or [N] after it")
        key = m["key"]
        if key:
            steps.append(key)
        elif not (i == 0 and m["index"]):  # `[*].value` may start with an index
            raise ValueError(f"--field {text!r}: empty key (two dots, or a dot at an end)")
        for index in _INDEX.findall(m["index"]):
            steps.append(ANY if index == "*" else int(index))
    return tuple(steps)


def select(value: Any, path: FieldPath) -> Iterator[Any]:
    """The values at `path` inside `value` (lists met on the way are walked)."""
    if not path:
        yield value
        return
    step = path[0]
    if isinstance(value, list):
        if step is ANY:
            for element in value:
                yield from select(element, path[1:])
        elif isinstance(step, int):
            if -len(value) <= step < len(value):
                yield from select(value[step], path[1:])
        else:
            for element in value:
                yield from select(element, path)
    elif isinstance(value, dict):
        if step is ANY:
            for element in value.values():
                yield from select(element, path[1:])
        elif isinstance(step, str):
            if step in value:
                yield from select(value[step], path[1:])
                return
            # a flattened key: "source.ip" for the steps source, ip
            name = step
            for n in range(1, len(path)):
                nxt = path[n]
                if not isinstance(nxt, str):
                    break
                name = f"{name}.{nxt}"
                if name in value:
                    yield from select(value[name], path[n + 1 :])
                    return


def within(path: FieldPath, where: tuple[str | int, ...]) -> tuple[FieldPath, bool] | None:
    """What is left of `path` to select inside a value found at `where` (keys and indexes
    from the top of the document), and whether that value lies inside a selected object;
    None when `path` does not lead there."""
    i = 0
    for place in where:
        step = path[i] if i < len(path) else None
        if isinstance(place, int):
            if step is ANY or step == place:
                i += 1
            elif isinstance(step, int):
                return None
            continue  # arrays are walked without a [*], also past the end of the path
        if step is None:
            return (), True
        if step is ANY or step == place:
            i += 1
            continue
        # a flattened key: the steps source, ip for the key "source.ip"
        if not isinstance(step, str):
            return None
        name = step
        for n in range(i + 1, len(path)):
            nxt = path[n]
            if not isinstance(nxt, str) or not place.startswith(name):
                break
            name = f"{name}.{nxt}"
            if name == place:
                i = n + 1
                break
        else:
            return None
        if name != place:
            return None
    return path[i:], False
