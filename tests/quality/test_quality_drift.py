"""Drift against the previous successful validation of the same view version."""

from __future__ import annotations

from jstore.quality import validate_staged
from tests.quality.purchase_rows import purchase_row

AMOUNT_FEATURES = sorted(
    f"amount_{function}_{window}"
    for function in ("sum", "avg", "max")
    for window in ("1h", "1d", "7d", "30d")
)


def twenty_users(scale: float) -> list[dict]:
    return [purchase_row(f"u{i:02}", 1, [scale * (i + 1)]) for i in range(20)]


def test_identical_runs_do_not_drift_and_a_shifted_one_is_flagged(
    settings, registry, user_purchases, stage
):
    def validate(rows, run_id):
        return validate_staged(settings, registry, user_purchases, stage(rows, run_id=run_id))

    first = validate(twenty_users(1.0), "compute-1")
    same = validate(twenty_users(1.0), "compute-2")
    tripled = validate(twenty_users(3.0), "compute-3")

    assert (first.drift, first.drift_flagged) == ({}, [])  # nothing to compare with
    assert set(same.drift) == {f.name for f in user_purchases.features}
    assert all(score == 0.0 for score in same.drift.values())
    assert same.drift_flagged == []
    # amounts tripled, counts unchanged: a warning, not a failed gate
    assert tripled.success
    assert tripled.drift_flagged == AMOUNT_FEATURES
    assert all(tripled.drift[f] > 1.0 for f in AMOUNT_FEATURES)
    assert all(tripled.drift[f"count_{w}"] == 0.0 for w in ("1h", "1d", "7d", "30d"))
    assert registry.get_run(tripled.run_id).details["drift_flagged"] == AMOUNT_FEATURES
