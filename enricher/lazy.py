"""A package's public names imported on first use (PEP 562), so that importing it is quick:
`enricher`, `enricher.inputs` and `enricher.emulator` name what their modules define without
loading those modules (aiohttp, the readers, the server) until a name is used."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_function", "lazy_names"]


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


def lazy_function(module: str, name: str) -> Callable[..., Any]:
    """A function that calls `module`'s `name`, importing `module` on its first call: for a
    module a run may never need (the text extractor, for an input that is all IOCs)."""
    found: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not found:
            found.append(getattr(importlib.import_module(module), name))
        return found[0](*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"`{module}.{name}`, imported on its first call."
    return call
