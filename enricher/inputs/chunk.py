"""The unit the read stage hands to the engine: candidate IOC strings of one source."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Chunk", "ChunkBuilder"]


@dataclass(slots=True)
class Chunk:
    """Candidate IOC strings from one source, with where each came from.

    `lines[i]` is line `first_line + i` (1-based), unless `line_numbers` is given: then it is
    line `line_numbers[i]` (formats that yield several candidates a line, or skip lines).
    """

    source: str
    first_line: int
    lines: list[str | None]
    #: index in `lines` -> why that line is None
    errors: dict[int, str] = field(default_factory=dict)
    line_numbers: list[int] | None = None
    #: input lines this chunk stands for, when not len(lines) (extracting formats)
    lines_read: int | None = None
    #: input bytes this chunk stands for (compressed bytes for compressed input), if known
    nbytes: int | None = None
    #: the source's last chunk, when it could not be read to its end (a corrupt or truncated
    #: stream, text that stops being JSON): why
    damaged: str | None = None

    def line_of(self, i: int) -> int:
        return self.line_numbers[i] if self.line_numbers is not None else self.first_line + i


class ChunkBuilder:
    """Collects the candidates of formats that give several (or none) per input line."""

    __slots__ = ("errors", "lines", "lines_read", "source", "values")

    def __init__(self, source: str) -> None:
        self.source = source
        self.values: list[str | None] = []
        self.lines: list[int] = []
        self.errors: dict[int, str] = {}
        self.lines_read = 0

    def add(self, values: list[str], line: int) -> None:
        if values:
            self.values.extend(values)
            self.lines.extend([line] * len(values))

    def reject(self, line: int, reason: str) -> None:
        """Something that is no IOC yet would not be rejected by `normalize` (an unreadable
        line, a file name): passed on as None with its reason."""
        self.errors[len(self.values)] = reason
        self.values.append(None)
        self.lines.append(line)

    def take(self, next_line: int) -> Chunk:
        """What was collected as a chunk; the builder starts again, at `next_line`."""
        first = self.lines[0] if self.lines else next_line
        chunk = Chunk(
            self.source,
            first,
            self.values,
            self.errors,
            line_numbers=self.lines,
            lines_read=self.lines_read,
        )
        self.values, self.lines, self.errors, self.lines_read = [], [], {}, 0
        return chunk
