"""Data-quality rates: their denominators and their edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.stats import quality


def test_missing_and_type_error_rates_are_shares_of_all_events() -> None:
    """A missing or mistyped value counts against every event of the window."""
    assert quality.missing_rate(25, 100) == 0.25
    assert quality.type_error_rate(3, 300) == 0.01


def test_a_rate_of_nothing_is_zero() -> None:
    """An empty window reports 0.0, not NaN, so rows stay valid JSON."""
    assert quality.missing_rate(0, 0) == 0.0
    assert quality.out_of_range_rate([0, 0, 0, 0]) == 0.0


@pytest.mark.parametrize(("part", "whole"), [(-1, 10), (11, 10), (0, -1)])
def test_an_impossible_rate_is_refused(part: int, whole: int) -> None:
    """More missing values than events is a counting bug, reported as such."""
    with pytest.raises(ValueError):
        quality.rate(part, whole)


def test_out_of_range_reads_the_under_and_overflow_bins() -> None:
    """Out of range = (underflow + overflow) over the valid values of a B + 2 histogram."""
    hist = np.array([3, 40, 50, 5])
    assert quality.out_of_range_counts(hist) == (8, 98)
    assert quality.out_of_range_rate(hist) == pytest.approx(8 / 98)


def test_out_of_range_refuses_a_histogram_without_flow_bins() -> None:
    """A histogram shorter than [under, bin, over] is not the window layout."""
    with pytest.raises(ValueError):
        quality.out_of_range_counts([1, 2])


def test_unseen_rate_counts_categories_the_reference_never_saw() -> None:
    """Unseen = values in categories outside the reference, over the valid values."""
    counts = {"a": 60, "b": 20, "new": 15, "other": 5}
    assert quality.unseen_counts({"a", "b", "c"}, counts) == (20, 100)
    assert quality.unseen_rate({"a", "b", "c"}, counts) == 0.2


def test_reference_out_of_range_rate_is_the_exchangeable_chance() -> None:
    """A fresh draw falls outside the range of N draws with probability 2 / (N + 1)."""
    assert quality.reference_out_of_range_rate(19_999) == 1e-4
    draws = np.random.default_rng(3).normal(size=(40_000, 100))
    ref, fresh = draws[:, :-1], draws[:, -1]
    outside = np.mean((fresh < ref.min(axis=1)) | (fresh > ref.max(axis=1)))
    assert outside == pytest.approx(quality.reference_out_of_range_rate(99), abs=0.003)


def test_volume_ratio_compares_with_the_reference_rate() -> None:
    """volume_ratio is events over expected events, None without a usable rate."""
    assert quality.volume_ratio(600, 1_200.0) == 0.5
    assert quality.volume_ratio(600, None) is None
    assert quality.volume_ratio(600, 0.0) is None
