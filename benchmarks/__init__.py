"""Benchmarks for azid: run them from the repository root as `python -m benchmarks.<name>`.

See benchmarks/README.md for the commands and what each one measures.
"""
