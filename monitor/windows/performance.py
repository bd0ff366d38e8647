"""Performance accumulators of a window's labelled predictions: classification and regression.

Labels arrive hours or days after their predictions and are joined to them elsewhere; these
accumulators only count what the joined rows say, so a window's performance merges across
partitions and roll-ups like its other accumulators (``monitor.windows.accumulators``).
Counts and histograms merge exactly; the float sums (log loss, errors, label moments) to
within rounding, so ``==`` after a merge compares them exactly only for equal merge orders.

The metrics follow scikit-learn (checked against 1.9), with these choices where it is silent
or unhelpful on a stream:

- Classes are strings read as ``columns.category_key`` reads categories (True → "true",
  1 and 1.0 → "1"). A row whose label or prediction is missing or not a category counts in
  ``invalid`` and nowhere else.
- Precision, recall and F1 use sklearn's ``zero_division=0``: a class never predicted has
  precision 0, one never true has recall 0. Macro averages run over every class seen as a
  label or a prediction, the classes sklearn infers. Metrics of an empty window are NaN.
- Log loss clips the probability of the true class to [eps, 1 - eps], eps the float64
  machine epsilon, as sklearn ≥ 1.5 does (without renormalising the row). A row whose score
  is missing, not finite or outside [0, 1] still counts in the confusion counts (``n``) but
  not in log loss or ROC AUC (``n_scored``).
- ROC AUC comes from per-class histograms of scores (``score_bins`` equal-width bins on
  [0, 1]), so memory does not grow with traffic; see ``scoring.auc``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Self

import numpy as np
from numpy.typing import NDArray

from monitor.windows.columns import categorical_column
from monitor.windows.numeric import (
    STATE_VERSION,
    check_kind,
    check_size,
    decode_float,
    encode_float,
)
from monitor.windows.regression import RegressionPerformance
from monitor.windows.scoring import (
    EPS,
    Histogram,
    Raw,
    auc,
    decode_histogram,
    encode_histogram,
    histogram,
    log_loss_sum,
    probabilities,
    score_matrix,
)
from monitor.windows.snapshot import StateRoundTrip

__all__ = ["EPS", "SCORE_BINS", "ClassificationPerformance", "RegressionPerformance"]

SCORE_BINS: Final = 1000


class ClassificationPerformance(StateRoundTrip):
    """Confusion counts, log-loss sum and per-class score histograms of labelled predictions.

    Binary models (``multiclass=False``) send ``score`` = P(``positive``); every other label
    is a negative. Multiclass models send ``scores`` = {class: probability}; a class missing
    from a row's scores has probability 0 there, so rows and windows that name different
    classes still merge exactly. Histograms are kept for the classes scores name (the model's
    classes), not for labels, so a garbage label field cannot make them grow.
    """

    def __init__(
        self, positive: str = "1", multiclass: bool = False, score_bins: int = SCORE_BINS
    ) -> None:
        self.positive = str(positive)
        self.multiclass = bool(multiclass)
        self.score_bins = check_size("score_bins", score_bins)
        if score_bins < 1:
            raise ValueError("score_bins must be >= 1")
        self._confusion: dict[tuple[str, str], int] = {}
        self._invalid = 0
        self._n_scored = 0
        self._scored_labels: dict[str, int] = {}  # true labels of the scored rows
        self._log_loss_sum = 0.0
        self._hist: dict[str, Histogram] = {}

    def update(
        self,
        labels: Raw,
        predictions: Raw,
        scores: Raw | None = None,
        class_scores: Sequence[object] | None = None,
    ) -> Self:
        """Add a batch of joined rows: raw labels and predictions, and the model's scores.

        ``scores`` (binary) holds P(positive) per row, NaN or None where absent;
        ``class_scores`` (multiclass) one mapping class → probability per row, or None.
        """
        label_col, prediction_col = (
            categorical_column(_listed(labels)),
            categorical_column(_listed(predictions)),
        )
        n = len(label_col.values)
        if len(prediction_col.values) != n:
            raise ValueError("labels and predictions must have the same length")
        valid = label_col.valid & prediction_col.valid
        label = np.array(label_col.values, dtype=object)[valid]
        prediction = np.array(prediction_col.values, dtype=object)[valid]
        batch = self._empty()
        batch._invalid = n - len(label)
        batch._confusion = dict(Counter(zip(label.tolist(), prediction.tolist(), strict=True)))
        if self.multiclass:
            if scores is not None:
                raise ValueError("a multiclass accumulator takes class_scores, not scores")
            classes, matrix, scored = score_matrix(class_scores, valid)
            batch._add_multiclass(label, classes, matrix[valid], scored[valid])
        else:
            if class_scores is not None:
                raise ValueError("a binary accumulator takes scores, not class_scores")
            p = probabilities(scores, n)[valid]
            batch._add_binary(label, p)
        return self.merge(batch)

    def _add_binary(self, label: NDArray[Any], p: NDArray[np.float64]) -> None:
        scored = ~np.isnan(p)
        label, p = label[scored], p[scored]
        self._count_scored(label)
        if p.size == 0:
            return
        positive = np.asarray(label == self.positive, dtype=np.bool_)
        p_true = np.where(positive, p, 1.0 - p)  # sklearn: 1 - p first, then the clip
        self._log_loss_sum = log_loss_sum(p_true)
        self._hist[self.positive] = histogram(p, positive, self.score_bins)

    def _add_multiclass(
        self,
        label: NDArray[Any],
        classes: list[str],
        matrix: NDArray[np.float64],
        scored: NDArray[np.bool_],
    ) -> None:
        label, matrix = label[scored], matrix[scored]
        self._count_scored(label)
        if label.size == 0:
            return
        # One lookup per distinct label, not per row: column of the true class, -1 if unscored.
        distinct, inverse = np.unique(label, return_inverse=True)
        index = {c: j for j, c in enumerate(classes)}
        column = np.array([index.get(c, -1) for c in distinct.tolist()], np.intp)[inverse]
        rows = np.arange(label.size)
        p_true = np.where(column >= 0, matrix[rows, np.maximum(column, 0)], 0.0)
        self._log_loss_sum = log_loss_sum(p_true)
        for j, c in enumerate(classes):
            self._hist[c] = histogram(matrix[:, j], column == j, self.score_bins)

    def _count_scored(self, label: NDArray[Any]) -> None:
        self._n_scored = int(label.size)
        self._scored_labels = dict(Counter(label.tolist()))

    def merge(self, other: ClassificationPerformance) -> Self:
        """Add ``other``'s rows; positive class, task and score bins must match."""
        if not isinstance(other, ClassificationPerformance):
            raise TypeError(f"cannot merge {type(other).__name__} into ClassificationPerformance")
        if (self.positive, self.multiclass, self.score_bins) != (
            other.positive,
            other.multiclass,
            other.score_bins,
        ):
            raise ValueError("cannot merge accumulators with different classes, tasks or bins")
        # A class one side never scored had probability 0 in all of that side's scored rows.
        for c in self._hist.keys() - other._hist.keys():
            self._hist[c] = self._hist[c] + _zero_scores(other, c)
        for c, hist in other._hist.items():
            mine = self._hist.get(c)
            self._hist[c] = (_zero_scores(self, c) if mine is None else mine) + hist
        _add_counts(self._confusion, other._confusion)
        _add_counts(self._scored_labels, other._scored_labels)
        self._invalid += other._invalid
        self._n_scored += other._n_scored
        self._log_loss_sum += other._log_loss_sum
        return self

    @property
    def n(self) -> int:
        """Rows in the confusion counts (labelled, with a usable label and prediction)."""
        return sum(self._confusion.values())

    @property
    def n_scored(self) -> int:
        """Rows of ``n`` with a usable score: the rows of log loss and ROC AUC."""
        return self._n_scored

    @property
    def invalid(self) -> int:
        """Rows left out: a missing or unreadable label or prediction."""
        return self._invalid

    @property
    def confusion(self) -> dict[tuple[str, str], int]:
        """A copy of the counts per (label, prediction)."""
        return dict(self._confusion)

    @property
    def classes(self) -> list[str]:
        """Every class seen as a label or a prediction, sorted."""
        return sorted({c for pair in self._confusion for c in pair})

    def accuracy(self) -> float:
        n = self.n
        correct = sum(count for (y, p), count in self._confusion.items() if y == p)
        return correct / n if n else math.nan

    def precision(self, cls: str | None = None) -> float:
        """TP / predicted of ``cls``, 0 when never predicted; None: the macro average."""
        return self._per_class(cls, lambda tp, true, pred: _divide(tp, pred))

    def recall(self, cls: str | None = None) -> float:
        """TP / true of ``cls``, 0 when never true; None: the macro average."""
        return self._per_class(cls, lambda tp, true, pred: _divide(tp, true))

    def f1(self, cls: str | None = None) -> float:
        """2 TP / (true + predicted), sklearn's form, 0 when both are 0; None: macro."""
        return self._per_class(cls, lambda tp, true, pred: _divide(2 * tp, true + pred))

    def _per_class(self, cls: str | None, score: Callable[[int, int, int], float]) -> float:
        tp: Counter[str] = Counter()
        true: Counter[str] = Counter()
        predicted: Counter[str] = Counter()
        for (y, p), count in self._confusion.items():
            true[y] += count
            predicted[p] += count
            if y == p:
                tp[y] += count
        if cls is not None:
            return score(tp[cls], true[cls], predicted[cls])
        classes = self.classes
        if not classes:
            return math.nan
        return float(np.mean([score(tp[c], true[c], predicted[c]) for c in classes]))

    def log_loss(self) -> float:
        return self._log_loss_sum / self._n_scored if self._n_scored else math.nan

    def roc_auc(self, cls: str | None = None) -> float:
        """One-vs-rest AUC of ``cls``'s scores; None: the binary AUC, or the multiclass macro.

        The macro averages the classes that have both positives and negatives among the scored
        rows (sklearn's would be NaN as soon as one class is absent from a window); NaN when
        none has. A binary accumulator keeps the positive class's histogram only.
        """
        if cls is not None:
            hist = self._hist.get(cls)
            return math.nan if hist is None else auc(hist)
        if not self.multiclass:
            return self.roc_auc(self.positive)
        # in class order: a restored state's dict order differs, the float sum must not
        per_class = (auc(self._hist[name]) for name in sorted(self._hist))
        aucs = [value for value in per_class if not math.isnan(value)]
        return float(np.mean(aucs)) if aucs else math.nan

    def to_state(self) -> dict[str, Any]:
        """Plain JSON values; histograms sparse (nonzero bins only); ``from_state`` restores."""
        return {
            "kind": "classification_performance",
            "version": STATE_VERSION,
            "positive": self.positive,
            "multiclass": self.multiclass,
            "score_bins": self.score_bins,
            "invalid": self._invalid,
            "n_scored": self._n_scored,
            "confusion": sorted([y, p, c] for (y, p), c in self._confusion.items()),
            "scored_labels": dict(sorted(self._scored_labels.items())),
            "log_loss_sum": encode_float(self._log_loss_sum),
            "histograms": {c: encode_histogram(self._hist[c]) for c in sorted(self._hist)},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``to_state()``; ValueError when the state is not of this kind."""
        check_kind(state, "classification_performance")
        acc = cls(state["positive"], state["multiclass"], state["score_bins"])
        acc._invalid, acc._n_scored = int(state["invalid"]), int(state["n_scored"])
        acc._confusion = {(str(y), str(p)): int(c) for y, p, c in state["confusion"]}
        acc._scored_labels = {str(y): int(c) for y, c in state["scored_labels"].items()}
        acc._log_loss_sum = decode_float(state["log_loss_sum"])
        acc._hist = {
            str(c): decode_histogram(h, acc.score_bins) for c, h in state["histograms"].items()
        }
        return acc

    def _empty(self) -> Self:
        return type(self)(self.positive, self.multiclass, self.score_bins)

    def __repr__(self) -> str:
        return (
            f"ClassificationPerformance(n={self.n}, n_scored={self._n_scored}, "
            f"invalid={self._invalid}, classes={len(self.classes)})"
        )


def _listed(values: Raw) -> Sequence[object]:
    """numpy rows as Python values, so numpy bools and ints read as JSON's would."""
    return values.tolist() if isinstance(values, np.ndarray) else values


def _zero_scores(acc: ClassificationPerformance, cls: str) -> Histogram:
    """``acc``'s scored rows as they stand for a class they never named: probability 0."""
    hist = np.zeros((2, acc.score_bins), np.int64)
    positives = acc._scored_labels.get(cls, 0)
    hist[:, 0] = positives, acc._n_scored - positives
    return hist


def _add_counts(mine: dict[Any, int], other: Mapping[Any, int]) -> None:
    for key, count in other.items():
        mine[key] = mine.get(key, 0) + count


def _divide(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0  # sklearn's zero_division=0
