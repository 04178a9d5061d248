"""Importable helpers for the test suite (fixtures live in conftest.py files)."""
