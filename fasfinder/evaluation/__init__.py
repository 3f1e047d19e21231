"""Benchmark protocols (BENCHMARKS.md)."""
