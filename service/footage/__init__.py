"""Footage made from real photographs that installed packages ship, for tests, benchmarks and export checks."""
