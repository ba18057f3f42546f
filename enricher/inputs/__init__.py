"""Reading inputs the way log exports deliver them: formats, compression, many files.

    check_inputs(paths)       files.py       paths, directories, globs → files, checked
    check_columns(paths, o)   read.py        each CSV/TSV file has the --column names
    read_inputs(paths, opts)  read.py        each file → Chunks of candidate IOCs:
      open + decompress       decompress.py    gzip, bzip2, xz, zstd by magic bytes
      decode                  encoding.py      UTF-16 and UTF-32 read as UTF-8
      tell the format         sniff.py         --format auto: extension + content
      lines                   blocks.py        one IOC a line (the original format)
      csv / tsv               delimited.py     every cell scanned, or --column
      ndjson / json           jsonfmt.py       every string scanned, or --field
                              jsonstream.py    a big JSON document streamed
      text                    text.py          free text (logs, reports)
                              extract.py     the IOCs in free text, for all of the above
                              suffixes.py    domain or file name: the public suffix list
                              candidates.py  a chosen value passed as it is, the rest scanned

`enricher.inputs` is the face of this package to the engine and the job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .chunk import Chunk
    from .files import STDIN, check_inputs, find_inputs
    from .options import FORMATS, InputOptions, add_arguments, input_options
    from .read import check_columns, read_inputs

# The names below are imported on first use (PEP 562): the command line's flags need
# `options` alone, not the readers and the extractor (`enricher --help`, `emulator`, `report`).
#: public name -> the module that defines it
_WHERE = {
    "Chunk": "chunk",
    "STDIN": "files",
    "check_inputs": "files",
    "find_inputs": "files",
    "FORMATS": "options",
    "InputOptions": "options",
    "add_arguments": "options",
    "input_options": "options",
    "check_columns": "read",
    "read_inputs": "read",
}

__all__ = [
    "FORMATS",
    "STDIN",
    "Chunk",
    "InputOptions",
    "add_arguments",
    "check_columns",
    "check_inputs",
    "find_inputs",
    "input_options",
    "read_inputs",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__)
