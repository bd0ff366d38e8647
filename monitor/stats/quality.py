"""Data-quality rates of one window, as pure functions of the counts the windows keep.

Every rate is a share of a stated denominator, so the decision layer can test it with a
binomial test on the same two integers (`monitor.stats.decision`):

- missing and type-error rates are shares of all events of the window, because a missing or
  mistyped value is exactly an event that produced no valid value;
- out-of-range and unseen-category rates are shares of the valid values, because only a
  valid value can be compared with the reference's range or categories.

An empty denominator yields 0.0: nothing observed is nothing wrong, and the decision layer
reads ``n`` before trusting any rate.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import numpy as np
from numpy.typing import ArrayLike


def rate(part: int, whole: int) -> float:
    """``part / whole``, or 0.0 when ``whole`` is 0 (see the module docstring)."""
    if part < 0 or whole < 0 or part > whole:
        raise ValueError(f"need 0 <= part <= whole, got {part} of {whole}")
    return part / whole if whole else 0.0


def missing_rate(missing: int, events: int) -> float:
    """Share of the window's events whose value was absent or null."""
    return rate(missing, events)


def type_error_rate(type_errors: int, events: int) -> float:
    """Share of the window's events whose value had the wrong type (text for a number...)."""
    return rate(type_errors, events)


def out_of_range_counts(hist: ArrayLike) -> tuple[int, int]:
    """(underflow + overflow, valid values) of a B + 2 histogram [under, B bins, over]."""
    counts = np.asarray(hist, dtype=np.int64)
    if counts.ndim != 1 or counts.size < 3:
        raise ValueError("a window histogram has B + 2 >= 3 counts: under, bins, over")
    return int(counts[0] + counts[-1]), int(counts.sum())


def out_of_range_rate(hist: ArrayLike) -> float:
    """Share of valid values outside [min, max] of the reference (its under/overflow bins)."""
    return rate(*out_of_range_counts(hist))


def unseen_counts(ref_categories: Collection[str], counts: Mapping[str, int]) -> tuple[int, int]:
    """(values in categories the reference never saw, valid values) of a window."""
    unseen = sum(n for category, n in counts.items() if category not in ref_categories)
    return unseen, sum(counts.values())


def unseen_rate(ref_categories: Collection[str], counts: Mapping[str, int]) -> float:
    """Share of the window's valid values in categories the reference never saw."""
    return rate(*unseen_counts(ref_categories, counts))


def reference_out_of_range_rate(n_ref: int) -> float:
    """Chance that a fresh value from the reference's own distribution falls outside its range.

    The reference histogram has no under/overflow by construction, yet a new draw lands
    outside the min and max of N exchangeable draws with probability 2 / (N + 1); a small
    reference therefore legitimately sees some out-of-range values, and the test must expect
    them.
    """
    if n_ref < 1:
        raise ValueError("the reference has no values")
    return 2.0 / (n_ref + 1)


def volume_ratio(events: int, expected_events: float | None) -> float | None:
    """Events of the window over the number the reference rate predicts for one window.

    ``None`` when the reference states no rate (nothing to compare with) or predicts zero.
    """
    if events < 0:
        raise ValueError("events must be >= 0")
    if expected_events is None or not math.isfinite(expected_events) or expected_events <= 0:
        return None
    return events / expected_events
