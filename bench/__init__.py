"""Benchmarks: speed figures printed and written to bench/results/ as JSON (never asserted in tests)."""
