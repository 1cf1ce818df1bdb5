"""Benchmarks: `python -m bench webhooks [--sqlite] [--quick]` (see docs/benchmarks.md)."""
