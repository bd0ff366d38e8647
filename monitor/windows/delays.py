"""Label delays of a window: how long its labels took to arrive, in bounded memory.

``label_delay_p50`` and ``label_delay_p95`` (seconds) must merge across partitions and
roll-ups, and a window may collect millions of labels, so the delays are counted in a fixed
log-spaced histogram rather than kept: ``DELAY_BINS`` bins of equal ratio from 1 s to 90 days,
plus one bin below (0 to 1 s) and one above (beyond 90 days). The exact minimum and maximum
are kept too, and every estimate is clamped to them.

A percentile is the geometric middle of the bin holding the k-th smallest delay,
k = ceil(q/100 * n) (numpy's ``method="inverted_cdf"``). Within [1 s, 90 days] the bins have
a ratio r = (7,776,000)^(1/400) ≈ 1.0405, so the estimate is within sqrt(r) - 1 ≈ 2.0% of
that delay. Below 1 s it is the middle of [min, 1 s] (an error under 1 s); beyond 90 days
the geometric middle of [90 days, max].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Final, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.windows.numeric import STATE_VERSION, check_kind
from monitor.windows.snapshot import StateRoundTrip

DELAY_BINS: Final = 400
MIN_DELAY: Final = 1.0  # seconds
MAX_DELAY: Final = 90 * 86_400.0
_EDGES: Final = np.geomspace(MIN_DELAY, MAX_DELAY, DELAY_BINS + 1)
RELATIVE_ERROR: Final = math.sqrt(float(_EDGES[1] / _EDGES[0])) - 1.0  # ≈ 0.0200


class LabelDelayAccumulator(StateRoundTrip):
    """Counts of label delays (seconds) over fixed log-spaced bins; exact min, max and count.

    A negative delay (a label stamped before its prediction: clock skew between the serving
    system and the labeller) is counted in ``negative`` and binned as 0.
    """

    def __init__(self) -> None:
        self._counts = np.zeros(DELAY_BINS + 2, np.int64)  # [below 1 s, bins..., beyond]
        self._negative = 0
        self._min = math.inf
        self._max = -math.inf

    def update(self, delays: ArrayLike) -> Self:
        """Add a batch of delays in seconds; they must be finite."""
        values = np.asarray(delays, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError("delays must be a 1-D array")
        if not np.isfinite(values).all():
            raise ValueError("delays must be finite")
        if values.size == 0:
            return self
        negative = values < 0.0
        self._negative += int(negative.sum())
        values = np.where(negative, 0.0, values) + 0.0  # -0.0 → 0.0: min is order-free
        index = np.searchsorted(_EDGES, values, side="right")  # 0 below, B+1 at or beyond 90 d
        self._counts = self._counts + np.bincount(index, minlength=DELAY_BINS + 2)
        self._min = min(self._min, float(values.min()))
        self._max = max(self._max, float(values.max()))
        return self

    def merge(self, other: LabelDelayAccumulator) -> Self:
        """Add ``other``'s delays: exactly, whatever the order."""
        if not isinstance(other, LabelDelayAccumulator):
            raise TypeError(f"cannot merge {type(other).__name__} into LabelDelayAccumulator")
        self._counts = self._counts + other._counts
        self._negative += other._negative
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        return self

    @property
    def n(self) -> int:
        return int(self._counts.sum())

    @property
    def negative(self) -> int:
        """Delays below 0 (counted as 0)."""
        return self._negative

    @property
    def min(self) -> float:
        return self._min if self.n else math.nan

    @property
    def max(self) -> float:
        return self._max if self.n else math.nan

    def percentile(self, q: float) -> float:
        """The estimated q-th percentile (0 ≤ q ≤ 100) in seconds; NaN without delays."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"q must be within [0, 100], got {q!r}")
        n = self.n
        if n == 0:
            return math.nan
        k = max(1, math.ceil(Fraction(q) * n / 100))  # exact: 0.95 * 100 is not 95 in floats
        bin_ = int(np.searchsorted(np.cumsum(self._counts), k))
        lo = self._min if bin_ == 0 else max(self._min, float(_EDGES[bin_ - 1]))
        hi = self._max if bin_ == DELAY_BINS + 1 else min(self._max, float(_EDGES[bin_]))
        return (lo + hi) / 2 if bin_ == 0 else math.sqrt(lo * hi)

    def p50(self) -> float:
        return self.percentile(50)

    def p95(self) -> float:
        return self.percentile(95)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON values, counts sparse (nonzero bins only); ``from_state`` restores."""
        bins = np.flatnonzero(self._counts)
        return {
            "kind": "label_delay",
            "version": STATE_VERSION,
            "delay_bins": DELAY_BINS,
            "bins": bins.tolist(),
            "counts": self._counts[bins].tolist(),
            "negative": self._negative,
            "min": self._min if bins.size else None,
            "max": self._max if bins.size else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``to_state()``; ValueError when the state is not of this kind."""
        check_kind(state, "label_delay")
        if state["delay_bins"] != DELAY_BINS:
            raise ValueError(f"label delays stored with other bins than {DELAY_BINS}")
        acc = cls()
        index = np.asarray(state["bins"], dtype=np.intp)
        if index.size and (index.min() < 0 or index.max() > DELAY_BINS + 1):
            raise ValueError("label delay bins out of range")
        acc._counts[index] = state["counts"]
        acc._negative = int(state["negative"])
        if index.size:
            acc._min, acc._max = float(state["min"]), float(state["max"])
        return acc

    @property
    def histogram(self) -> NDArray[np.int64]:
        """[below 1 s, DELAY_BINS bins, beyond 90 days], read-only."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    def __repr__(self) -> str:
        return f"LabelDelayAccumulator(n={self.n}, p50={self.p50():.6g}, p95={self.p95():.6g})"
