"""Benchmarks: `make bench` prints serving and pipeline figures, measured side by side in one run."""
