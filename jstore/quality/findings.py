"""Failed expectations as one readable line each: which check, which columns, how many rows,
and a few of the offending rows by their keys and feature_ts."""

from __future__ import annotations

from typing import Any

from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)

SAMPLES = 3
LISTED_COLUMNS = 4
"""A longer column list (a whole table's) is named by its length only."""
COLUMN_KWARGS = ("column", "column_A", "column_B", "column_list")


def failed_lines(result: ExpectationSuiteValidationResult, index_columns: list[str]) -> list[str]:
    """One line per failed expectation; sample rows show `index_columns` first."""
    return [describe_failure(r, index_columns) for r in result.results if not r.success]


def describe_failure(result: ExpectationValidationResult, index_columns: list[str]) -> str:
    config = result.expectation_config
    named = _column_args(config.kwargs)
    columns = ", ".join(named) if len(named) <= LISTED_COLUMNS else f"{len(named)} columns"
    head = f"{config.type}({columns})"
    if config.description:
        head += f" [{config.description}]"
    details: dict[str, Any] = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        message = result.exception_info.get("exception_message") or "raised an exception"
        return f"{head}: error: {message.splitlines()[0]}"
    if "unexpected_count" in details:
        line = f"{head}: {details['unexpected_count']} of {details.get('element_count')} rows"
        samples = details.get("partial_unexpected_index_list") or []
        if samples:
            line += ", e.g. " + "; ".join(_row(s, index_columns) for s in samples[:SAMPLES])
        elif details.get("partial_unexpected_list"):
            values = details["partial_unexpected_list"][:SAMPLES]
            line += ", e.g. " + ", ".join(map(str, values))
        return line
    mismatched = (details.get("details") or {}).get("mismatched")
    if mismatched:
        return f"{head}: " + "; ".join(
            f"position {m['Expected Column Position']}: expected {m['Expected']}, "
            f"found {m['Found']}"
            for m in mismatched[:SAMPLES]
        )
    return f"{head}: observed {details.get('observed_value')!r}"


def _column_args(kwargs: dict[str, Any]) -> list[str]:
    columns: list[str] = []
    for name in COLUMN_KWARGS:
        value = kwargs.get(name)
        if isinstance(value, list):
            columns += [str(v) for v in value]
        elif value is not None:
            columns.append(str(value))
    return columns


def _row(sample: Any, index_columns: list[str]) -> str:
    if not isinstance(sample, dict):
        return str(sample)
    ordered = [c for c in index_columns if c in sample] + [
        c for c in sample if c not in index_columns
    ]
    return " ".join(f"{c}={sample[c]}" for c in ordered)
