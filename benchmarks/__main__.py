"""`python -m benchmarks [--quick]`: the whole suite (benchmarks/run.py);
`python -m benchmarks extract-peers`: text extraction against the public extractors
(benchmarks/extract_peers.py)."""

import sys

if sys.argv[1:2] == ["extract-peers"]:
    from benchmarks.extract_peers import main as peers

    sys.exit(peers(sys.argv[2:]))

from benchmarks.run import main

sys.exit(main())
