"""Builders and fakes for tests, the demo and the benchmarks: tiny models, small datasets, a fake model."""
