"""`python -m benchmarks [--quick]`: the whole suite (benchmarks/run.py)."""

import sys

from benchmarks.run import main

sys.exit(main())
