"""Benchmarks: run as `python -m bench.engine`, `bench.conform`, `bench.bridge`."""
