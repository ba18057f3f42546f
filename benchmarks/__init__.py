"""The benchmark suite: `python -m benchmarks` (see README.md beside this file)."""
