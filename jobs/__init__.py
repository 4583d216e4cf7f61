"""Spark entry points of JStore (run with spark-submit, or called in-process by tests)."""
