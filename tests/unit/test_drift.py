"""Drift from Feast's stored histograms (streamflow/quality/drift.py): shapes Feast really stores
(each month binned over its own min..max, bins closed on the right), compared without a database."""

from __future__ import annotations

import numpy as np
import pytest

from streamflow.quality import drift


def feast_histogram(values, bins: int = 20) -> dict:
    """What Feast's PostgreSQL offline store stores for a numeric column (width_bucket over
    min..max with the upper edge nudged up, so a value on an inner edge falls in the lower bin)."""
    values = np.asarray(values, dtype=float)
    low, high = float(values.min()), float(values.max())
    if low == high:
        return {"bins": [low, high], "counts": [len(values)], "bin_width": 0.0}
    upper = high + (high - low) * 1e-10
    width = (high - low) / bins
    buckets = np.floor((values - low) / ((upper - low) / bins)).astype(int)
    counts = np.bincount(buckets, minlength=bins)[:bins]
    return {"bins": [low + i * width for i in range(bins + 1)], "counts": counts.tolist(), "bin_width": width}


def test_the_same_values_binned_over_different_ranges_do_not_drift():
    rng = np.random.default_rng(1)
    base = rng.normal(30, 8, 20_000)
    # the same law; one extreme value stretches this month's bins, so no edge lines up
    month = np.append(rng.normal(30, 8, 20_000), 90.0)
    assert drift.distance(feast_histogram(base), feast_histogram(month)) < 0.05


def test_a_shifted_distribution_drifts():
    rng = np.random.default_rng(2)
    base, month = rng.normal(30, 8, 20_000), rng.normal(42, 8, 20_000)
    assert drift.distance(feast_histogram(base), feast_histogram(month)) > 0.5


def test_counts_compare_exactly_whatever_their_edges():
    """Small counts (0..9 in one month, 0..10 in the next): spreading each bin over its width would
    smear 1 over (0.45, 0.9] in one month and (0.5, 1.0] in the other and report drift that is not
    there; read as whole numbers they are the same distribution."""
    rng = np.random.default_rng(3)
    base = rng.poisson(2.3, 7_000)
    month = np.append(rng.poisson(2.3, 7_000), [10])  # one more extreme value moves every edge
    as_floats = drift.distance(feast_histogram(base), feast_histogram(month))
    as_integers = drift.distance(feast_histogram(base), feast_histogram(month), integer=True)
    assert as_integers < 0.03
    assert as_integers < as_floats


def test_a_whole_number_shift_is_seen():
    rng = np.random.default_rng(4)
    base, month = rng.poisson(1.0, 7_000), rng.poisson(3.0, 7_000)
    assert drift.distance(feast_histogram(base), feast_histogram(month), integer=True) > 0.4


def test_one_value_months():
    same = drift.distance(feast_histogram([5, 5, 5]), feast_histogram([5, 5]))
    other = drift.distance(feast_histogram([5, 5, 5]), feast_histogram([6, 6]))
    inside = drift.distance(feast_histogram(np.arange(0, 11)), feast_histogram([5, 5]))
    assert (same, other) == (0.0, 1.0)
    assert 0 < inside < 1


def test_categorical_top_values_and_other():
    base = {"values": [{"value": "DSL", "count": 50}, {"value": "Fiber", "count": 40}], "other_count": 10}
    same = {"values": [{"value": "Fiber", "count": 400}, {"value": "DSL", "count": 500}], "other_count": 100}
    moved = {"values": [{"value": "Fiber", "count": 90}, {"value": "DSL", "count": 5}], "other_count": 5}
    assert drift.distance(base, same) == pytest.approx(0.0, abs=1e-9)
    assert drift.distance(base, moved) > 0.3


def test_a_month_without_values_has_no_distance():
    assert drift.distance(None, feast_histogram([1, 2, 3])) is None
    assert drift.distance(feast_histogram([1, 2, 3]), None) is None


def test_the_distance_is_bounded_and_symmetric():
    a, b = feast_histogram([0, 1, 2, 3]), feast_histogram([100, 101, 102])
    assert drift.distance(a, b) == pytest.approx(1.0)
    assert drift.distance(a, b) == pytest.approx(drift.distance(b, a))


def test_levels_and_thresholds_from_the_environment(monkeypatch):
    limits = drift.Thresholds()
    assert [limits.level(d) for d in (None, 0.0, 0.05, 0.07, 0.1, 0.2)] == [
        "n/a",
        "ok",
        "ok",
        "watch",
        "watch",
        "drift",
    ]
    monkeypatch.setenv("DRIFT_THRESHOLD", "0.2")
    monkeypatch.setenv("DRIFT_WATCH_THRESHOLD", "0.15")
    assert drift.Thresholds.from_env() == drift.Thresholds(drift=0.2, watch=0.15)
    monkeypatch.setenv("DRIFT_THRESHOLD", "2")
    with pytest.raises(ValueError, match="DRIFT_THRESHOLD='2': expected a number between 0 and 1"):
        drift.Thresholds.from_env()
    monkeypatch.setenv("DRIFT_THRESHOLD", "0.1")
    with pytest.raises(ValueError, match="must not exceed"):
        drift.Thresholds.from_env()


def test_the_thresholds_sit_between_sampling_noise_and_a_real_shift():
    rng = np.random.default_rng(5)
    noise = [
        drift.distance(feast_histogram(rng.normal(30, 8, 7_043)), feast_histogram(rng.normal(30, 8, 7_043)))
    ]
    shifted = drift.distance(
        feast_histogram(rng.normal(30, 8, 7_043)), feast_histogram(rng.normal(32, 8, 7_043))
    )
    assert max(noise) < drift.WATCH_THRESHOLD < shifted


def test_wide_whole_numbers_match_the_distance_of_the_raw_values():
    """months_active-like: 0..71 in 20 bins of 3.6 (3 or 4 values each), everyone a month older
    next month. From the histograms alone the distance must match that of the raw values counted
    in the same cells of 4."""
    rng = np.random.default_rng(6)
    base = rng.integers(0, 72, 7_043)
    month = base + 1
    raw = drift._compare(
        drift._cells(dict(enumerate(np.bincount(base))), 4),
        drift._cells(dict(enumerate(np.bincount(month))), 4),
    )
    estimate = drift.distance(feast_histogram(base), feast_histogram(month), integer=True)
    assert estimate == pytest.approx(raw, abs=0.01)
