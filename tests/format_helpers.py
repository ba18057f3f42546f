"""Helpers for the input-format tests: read inputs as the engine does, to sets of IOCs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enricher.inputs import InputOptions, read_inputs
from enricher.inputs.extract import extract
from enricher.inputs.suffixes import name_problem
from enricher.ioc import IocType
from enricher.pipeline.normalize import normalize
from enricher.pipeline.privacy import Privacy

DATA = Path(__file__).parent / "data" / "formats"


@dataclass
class Read:
    """What reading some inputs gave, after the engine's strip / skip / normalize (or the
    IOCs inside a value that is none) / names never sent."""

    iocs: list[str] = field(default_factory=list)
    rejects: list[tuple[str, int, str]] = field(default_factory=list)  # source, line, reason
    lines_read: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    lines_of: dict[str, int] = field(default_factory=dict)  # IOC -> line of first sight
    damaged: list[tuple[str, str]] = field(default_factory=list)  # source, why

    @property
    def set(self) -> set[str]:
        return set(self.iocs)


async def read_async(paths: Sequence[str], **options: Any) -> Read:
    max_line = options.pop("max_line", 1 << 20)
    opts = InputOptions(**options)
    out = Read()
    async for chunk in read_inputs(list(paths), opts, max_line=max_line, read_as=out.formats):
        out.lines_read += len(chunk.lines) if chunk.lines_read is None else chunk.lines_read
        if chunk.damaged is not None:
            out.damaged.append((chunk.source, chunk.damaged))
        for i, text in enumerate(chunk.lines):
            if text is None:
                out.rejects.append((chunk.source, chunk.line_of(i), chunk.errors[i]))
                continue
            stripped = text.strip()
            if not stripped or stripped[0] == "#":
                continue
            ioc_type, value = normalize(stripped)
            if ioc_type is None:  # the IOCs inside it, if any, as the engine takes them
                values = extract(stripped)
                if not values:
                    out.rejects.append((chunk.source, chunk.line_of(i), value))
            else:
                values = [stripped]
            for one in values:
                ioc_type, value = normalize(one)
                assert ioc_type is not None
                if ioc_type is IocType.DOMAIN and (why := name_problem(value)) is not None:
                    out.rejects.append((chunk.source, chunk.line_of(i), why))
                else:
                    out.iocs.append(value)
                    out.lines_of.setdefault(value, chunk.line_of(i))
    return out


def read(paths: Sequence[str | Path], **options: Any) -> Read:
    return asyncio.run(read_async([str(p) for p in paths], **options))


def expected(name: str) -> set[str]:
    """The IOCs a sample holds, from its plain-lines twin in `expected/`, read as lines."""
    return read([DATA / "expected" / f"{name}.txt"], format="lines").set


def withheld(values: set[str]) -> set[str]:
    """Those of `values` (canonical IOCs) a run never sends by default
    (`enricher.pipeline.privacy`): they go to the skipped file, not the records."""
    privacy = Privacy()
    return {v for v in values if privacy.reason(normalize(v)[0] or IocType.DOMAIN, v)}


def samples() -> list[str]:
    return sorted(p.name for p in DATA.iterdir() if p.is_file())
