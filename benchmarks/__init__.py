"""Benchmarks behind ``socrec bench ...``: each writes JSON and prints a table."""
