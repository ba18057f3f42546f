"""A package's public names imported on first use (PEP 562), so that importing it is quick:
`enricher`, `enricher.inputs` and `enricher.emulator` name what their modules define without
loading those modules (aiohttp, the readers, the server) until a name is used."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, where: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`: a name of `where` (name -> the module of
    the package defining it) is imported when first asked for, then kept on the package."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)  # once
        return value

    def __dir__() -> list[str]:
        # what a module's dir() holds (its docstring, path, submodules imported), and the
        # names not imported yet
        return sorted({*names, *vars(sys.modules[package])})

    return __getattr__, __dir__
