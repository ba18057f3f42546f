"""The engine's intake alone, as a process of its own: read a file as a run reads it (the
`lines` format), take each chunk through `Ingest.take` (normalize, dedupe, the privacy rule,
admit) and the new keys into a `Batcher`, and print how many keys were new. No emulator, no
answers, no output: `instructions.py --intake` counts this under cachegrind, less the same
over the file's first lines only (the imports and the set-up), per unique IOC.

    python benchmarks/intake.py FILE [--first N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/intake.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from enricher.inputs import Chunk, InputOptions
from enricher.inputs.read import read_source
from enricher.ioc import Endpoint
from enricher.pipeline.batcher import Batcher
from enricher.pipeline.ingest import Ingest
from enricher.pipeline.ledger import Ledger
from enricher.pipeline.privacy import Privacy
from enricher.pipeline.stats import RunStats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--first", type=int, help="take only the first N lines (all are read)")
    args = ap.parse_args()
    chunks = list(read_source(args.file, InputOptions(), max_line=1 << 20))
    if args.first is not None:
        chunks = [Chunk(chunks[0].source, 1, chunks[0].lines[: args.first])]
    ingest = Ingest(Ledger(RunStats()), withhold=Privacy().reason, send_sha256=True)
    batcher = Batcher(dict.fromkeys(Endpoint, 500))
    new = 0
    for chunk in chunks:
        _, keys = ingest.take(chunk)
        batcher.add_all(keys)
        new += len(keys)
    print(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
