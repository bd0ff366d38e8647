"""The regression performance accumulator: error sums and label moments of labelled rows.

Conventions (merging, states, sklearn's semantics) are in ``monitor.windows.performance``.
MAE, RMSE and MAPE are running sums divided by a count; R² needs the spread of the labels,
kept as Welford/Chan moments about a shift (``numeric.combine_moments``) rather than sums of y and
y², whose difference loses every digit when the labels sit far from zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from monitor.windows.columns import numeric_column
from monitor.windows.numeric import (
    STATE_VERSION,
    check_kind,
    combine_moments,
    decode_float,
    encode_float,
)
from monitor.windows.scoring import EPS, Raw
from monitor.windows.snapshot import StateRoundTrip

_SUMS = ("abs_error", "squared_error", "abs_pct_error")


class RegressionPerformance(StateRoundTrip):
    """Counts, error sums and label moments of a window's labelled regression predictions.

    MAPE averages |error| / max(|y|, eps) over the rows whose truth is nonzero, as sklearn's
    ``mean_absolute_percentage_error`` does for them. sklearn keeps rows with y = 0 too, each
    weighing |prediction| / 2.2e-16 ≈ 4.5e15 * |prediction|: one such row swamps a window and
    would fire any alert. They are left out here and counted in ``n_zero_truth``.
    """

    def __init__(self) -> None:
        self._n = 0
        self._invalid = 0
        self._n_nonzero = 0  # rows in the MAPE
        self._sums = dict.fromkeys(_SUMS, 0.0)
        self._shift = 0.0  # label moments are kept about the first label (numeric.combine_moments)
        self._mean = 0.0
        self._m2 = 0.0

    def update(self, y_true: Raw, y_pred: Raw) -> Self:
        """Add a batch of joined rows; a row with a missing or non-finite side is ``invalid``."""
        truth = numeric_column(y_true).values
        predicted = numeric_column(y_pred).values
        if truth.shape != predicted.shape:
            raise ValueError("y_true and y_pred must have the same length")
        valid = ~(np.isnan(truth) | np.isnan(predicted))
        truth, predicted = truth[valid], predicted[valid]
        batch = RegressionPerformance()
        batch._invalid = int(valid.size - truth.size)
        if truth.size:
            error = np.abs(predicted - truth)
            nonzero = truth != 0.0
            batch._n, batch._n_nonzero = int(truth.size), int(nonzero.sum())
            batch._sums = {
                "abs_error": float(error.sum()),
                "squared_error": float(error @ error),
                "abs_pct_error": float(
                    (error[nonzero] / np.maximum(np.abs(truth[nonzero]), EPS)).sum()
                ),
            }
            batch._shift = float(truth[0])
            shifted = truth - batch._shift
            batch._mean = float(shifted.mean())
            deviations = shifted - batch._mean
            batch._m2 = float(deviations @ deviations)
        return self.merge(batch)

    def merge(self, other: RegressionPerformance) -> Self:
        """Add ``other``'s rows."""
        if not isinstance(other, RegressionPerformance):
            raise TypeError(f"cannot merge {type(other).__name__} into RegressionPerformance")
        if self._n == 0:
            self._shift = other._shift
        other_mean = (other._shift - self._shift) + other._mean
        self._n, self._mean, self._m2 = combine_moments(
            (self._n, self._mean, self._m2), (other._n, other_mean, other._m2)
        )
        self._invalid += other._invalid
        self._n_nonzero += other._n_nonzero
        for name in _SUMS:
            self._sums[name] += other._sums[name]
        return self

    @property
    def n(self) -> int:
        return self._n

    @property
    def invalid(self) -> int:
        return self._invalid

    @property
    def n_zero_truth(self) -> int:
        """Rows left out of the MAPE because their truth is 0."""
        return self._n - self._n_nonzero

    def mae(self) -> float:
        return self._sums["abs_error"] / self._n if self._n else math.nan

    def rmse(self) -> float:
        return math.sqrt(self._sums["squared_error"] / self._n) if self._n else math.nan

    def mape(self) -> float:
        """A fraction (0.1 is 10%) like sklearn's; NaN when every truth is 0."""
        return self._sums["abs_pct_error"] / self._n_nonzero if self._n_nonzero else math.nan

    def r2(self) -> float:
        """1 - SSE / SST, sklearn's ``force_finite`` form: constant labels give 1 when every
        prediction is exact, else 0. NaN below two rows, as sklearn returns."""
        if self._n < 2:
            return math.nan
        sse = self._sums["squared_error"]
        if self._m2 == 0.0:
            return 1.0 if sse == 0.0 else 0.0
        return 1.0 - sse / self._m2

    def to_state(self) -> dict[str, Any]:
        """Plain JSON values (non-finite sums as strings); ``from_state`` restores."""
        return {
            "kind": "regression_performance",
            "version": STATE_VERSION,
            "n": self._n,
            "invalid": self._invalid,
            "n_nonzero": self._n_nonzero,
            **{name: encode_float(self._sums[name]) for name in _SUMS},
            "shift": encode_float(self._shift),
            "mean": encode_float(self._mean),
            "m2": encode_float(self._m2),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``to_state()``; ValueError when the state is not of this kind."""
        check_kind(state, "regression_performance")
        acc = cls()
        acc._n, acc._invalid = int(state["n"]), int(state["invalid"])
        acc._n_nonzero = int(state["n_nonzero"])
        acc._sums = {name: decode_float(state[name]) for name in _SUMS}
        acc._shift, acc._mean = decode_float(state["shift"]), decode_float(state["mean"])
        acc._m2 = decode_float(state["m2"])
        return acc

    def __repr__(self) -> str:
        return (
            f"RegressionPerformance(n={self._n}, invalid={self._invalid}, mae={self.mae():.6g}, "
            f"rmse={self.rmse():.6g}, r2={self.r2():.6g})"
        )
