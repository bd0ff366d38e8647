"""Reading model scores and binning them: the pure parts of ``ClassificationPerformance``.

Binary models send P(positive class) per row, multiclass ones a mapping class → probability.
A score counts only when it is a probability (a finite number in [0, 1]); the rest leave the
row out of log loss and ROC AUC but not out of the confusion counts. Histograms have
``bins`` equal-width bins of [0, 1] with positives and negatives per bin, so AUC costs the
same memory at any traffic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from monitor.windows.columns import category_key, numeric_column, numeric_value

EPS: Final = float(np.finfo(np.float64).eps)  # sklearn's clip for log loss, floor for MAPE

Raw = Sequence[object] | NDArray[Any]
Histogram = NDArray[np.int64]  # shape (2, bins): row 0 positives, row 1 negatives


# --- reading a batch ---------------------------------------------------------------------


def probabilities(scores: Raw | None, n: int) -> NDArray[np.float64]:
    """P(positive) per row; NaN where absent, unreadable or outside [0, 1]."""
    if scores is None:
        return np.full(n, np.nan)
    p = numeric_column(scores).values
    if p.shape != (n,):
        raise ValueError("scores must have one value per row")
    p[(p < 0.0) | (p > 1.0)] = np.nan
    return p


def score_matrix(
    rows: Sequence[object] | None, valid: NDArray[np.bool_]
) -> tuple[list[str], NDArray[np.float64], NDArray[np.bool_]]:
    """Classes, an (n, classes) probability matrix (0 where a row names no class) and which
    rows are scored: a non-empty mapping whose every probability is a number in [0, 1].

    Only ``valid`` rows are read, so a row left out cannot add a class (and a histogram)."""
    n = valid.size
    if rows is None:
        return [], np.zeros((n, 0)), np.zeros(n, np.bool_)
    if len(rows) != n:
        raise ValueError("class_scores must have one mapping per row")
    index: dict[str, int] = {}
    cells: list[tuple[int, int, float]] = []
    scored = np.zeros(n, np.bool_)
    for i in np.flatnonzero(valid).tolist():  # dicts of strings: no vectorised reading exists
        probabilities = _rowprobabilities(rows[i])
        if probabilities is None:
            continue
        scored[i] = True
        cells.extend((i, index.setdefault(c, len(index)), p) for c, p in probabilities.items())
    matrix = np.zeros((n, len(index)))
    if cells:
        r, c, p = zip(*cells, strict=True)
        matrix[list(r), list(c)] = p
    return list(index), matrix, scored


def _rowprobabilities(row: object) -> dict[str, float] | None:
    """A row's {class: probability}, or None unless it is a non-empty mapping of numbers in
    [0, 1] (classes read as ``category_key`` reads labels, so JSON's "1" matches label 1)."""
    if not isinstance(row, Mapping) or not row:
        return None
    probabilities: dict[str, float] = {}
    for key, value in row.items():
        cls, p = category_key(key), numeric_value(value)
        if cls is None or p is None or not 0.0 <= p <= 1.0:
            return None
        probabilities[cls] = p
    return probabilities


# --- sums and histograms -----------------------------------------------------------------


# --- sums and histograms -----------------------------------------------------------------


def log_loss_sum(p_true: NDArray[np.float64]) -> float:
    """sklearn's per-row loss, summed: -log of the true class's probability, clipped."""
    return float(-np.log(np.clip(p_true, EPS, 1.0 - EPS)).sum())


def histogram(p: NDArray[np.float64], positive: NDArray[np.bool_], bins: int) -> Histogram:
    """Positives and negatives per equal-width bin of [0, 1]; a score of 1 is in the last."""
    index = np.minimum((p * bins).astype(np.intp), bins - 1)
    hist = np.zeros((2, bins), np.int64)
    hist[0] = np.bincount(index[positive], minlength=bins)
    hist[1] = np.bincount(index[~positive], minlength=bins)
    return hist


def auc(hist: Histogram) -> float:
    """Mann-Whitney AUC over bins: P(positive's bin > negative's) + half P(same bin).

    That is the trapezoid under the ROC curve drawn through the bin thresholds. It equals
    sklearn's AUC when no positive and negative share a bin, and stays within ~1e-3 of it for
    smooth score distributions over 1000 bins. NaN without positives or negatives.
    """
    positives, negatives = hist.astype(np.float64)
    n_pos, n_neg = positives.sum(), negatives.sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    below = np.cumsum(negatives) - negatives
    return float((positives @ below + 0.5 * (positives @ negatives)) / (n_pos * n_neg))


def encode_histogram(hist: Histogram) -> dict[str, list[int]]:
    bins = np.flatnonzero(hist.sum(axis=0))
    return {
        "bins": bins.tolist(),
        "positive": hist[0, bins].tolist(),
        "negative": hist[1, bins].tolist(),
    }


def decode_histogram(state: Mapping[str, list[int]], bins: int) -> Histogram:
    index = np.asarray(state["bins"], dtype=np.intp)
    hist = np.zeros((2, bins), np.int64)
    if index.size and (index.min() < 0 or index.max() >= bins):
        raise ValueError("histogram bins out of range")
    hist[0, index] = state["positive"]
    hist[1, index] = state["negative"]
    return hist
