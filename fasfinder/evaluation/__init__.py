"""Benchmark protocols (docs/BENCHMARKS.md)."""
