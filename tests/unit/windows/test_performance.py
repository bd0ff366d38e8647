"""Performance accumulators: oracles against scikit-learn, merge laws, snapshots, label delays."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from fractions import Fraction
from itertools import pairwise
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.exceptions import UndefinedMetricWarning  # type: ignore[import-untyped]
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
)

from monitor.windows.delays import DELAY_BINS, MAX_DELAY, RELATIVE_ERROR, LabelDelayAccumulator
from monitor.windows.performance import (
    EPS,
    ClassificationPerformance,
    RegressionPerformance,
)

TOL = 1e-9
AUC_TOL = 1e-3

Accumulator = ClassificationPerformance | RegressionPerformance | LabelDelayAccumulator


@pytest.fixture(autouse=True)
def _quiet_sklearn() -> Iterator[None]:
    """sklearn warns on the edge cases these tests are about (one class, zero division)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


# --- helpers -----------------------------------------------------------------------------


def batches(n: int, rng: np.random.Generator) -> Iterator[slice]:
    """Random batch sizes, empty ones included, covering 0..n."""
    lo = 0
    while lo < n:
        hi = min(n, lo + int(rng.choice([0, 1, 2, 7, 50, 333])))
        yield slice(lo, hi)
        lo = hi


def split(items: list[Any], cuts: list[int]) -> list[list[Any]]:
    bounds = [0, *sorted(c % (len(items) + 1) for c in cuts), len(items)]
    return [items[lo:hi] for lo, hi in pairwise(bounds)]


def merged(parts: list[Any]) -> Any:
    total = parts[0].copy()
    for part in parts[1:]:
        total.merge(part)
    return total


def round_trips(acc: Accumulator) -> None:
    """The stored state restores an equal accumulator through json (no NaN) and orjson."""
    state = acc.to_json()
    kind = type(acc)
    assert kind.from_json(json.loads(json.dumps(state, allow_nan=False))) == acc
    restored = kind.from_json(orjson.loads(orjson.dumps(state)))
    assert restored == acc
    assert restored.to_json() == state


def close(a: float, b: float, tol: float = TOL) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def binary_stream(n: int, seed: int) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.float64]]:
    """Labels and predictions "0"/"1" and P("1") with some unscored (NaN) rows."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0)
    score[rng.random(n) < 0.05] = np.nan
    prediction = np.where(rng.random(n) < 0.9, (score > 0.5).astype(int), 1 - y)
    return y.astype(str).astype(object), prediction.astype(str).astype(object), score


def multiclass_stream(n: int, k: int, seed: int) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """Labels "c0".."c{k-1}" and a softmax probability matrix (columns in class order)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.array([f"c{j}" for j in y], dtype=object), probabilities


def score_rows(probabilities: NDArray[np.float64], classes: list[str]) -> list[dict[str, float]]:
    return [dict(zip(classes, row.tolist(), strict=True)) for row in probabilities]


def check_class_counts(acc: ClassificationPerformance, y: NDArray[Any], p: NDArray[Any]) -> None:
    """Accuracy, per-class and macro precision / recall / F1 equal sklearn's."""
    if y.size == 0:
        assert acc.n == 0 and math.isnan(acc.accuracy()) and math.isnan(acc.f1())
        return
    classes = sorted(set(y) | set(p))
    assert acc.classes == classes and acc.n == y.size
    assert close(acc.accuracy(), accuracy_score(y, p))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, p, labels=classes, zero_division=0
    )
    for j, c in enumerate(classes):
        assert close(acc.precision(c), precision[j])
        assert close(acc.recall(c), recall[j])
        assert close(acc.f1(c), f1[j])
    macro = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    assert close(acc.precision(), macro[0])
    assert close(acc.recall(), macro[1])
    assert close(acc.f1(), f1_score(y, p, average="macro", zero_division=0))


def check_binary(
    acc: ClassificationPerformance, y: NDArray[Any], p: NDArray[Any], s: NDArray[np.float64]
) -> None:
    """All classification metrics of a binary accumulator equal sklearn's on the same rows."""
    check_class_counts(acc, y, p)
    scored = ~np.isnan(s)
    truth = (y[scored] == "1").astype(int)
    assert acc.n_scored == truth.size
    if truth.size == 0:
        assert math.isnan(acc.log_loss()) and math.isnan(acc.roc_auc())
        return
    assert close(acc.log_loss(), log_loss(truth, s[scored], labels=[0, 1]))
    if len(set(truth)) < 2:
        assert math.isnan(acc.roc_auc())
    else:
        assert acc.roc_auc() == pytest.approx(roc_auc_score(truth, s[scored]), abs=AUC_TOL)


# --- classification: oracles -------------------------------------------------------------


def test_binary_metrics_match_sklearn_on_every_prefix() -> None:
    """Accuracy, P/R/F1, log loss and AUC equal sklearn's after every batch of a stream."""
    y, p, s = binary_stream(3000, seed=1)
    rng = np.random.default_rng(2)
    acc = ClassificationPerformance()
    for i, rows in enumerate(batches(y.size, rng)):
        acc.update(y[rows], p[rows], s[rows])
        if i % 5 == 0 or rows.stop == y.size:
            check_binary(acc, y[: rows.stop], p[: rows.stop], s[: rows.stop])
    assert acc.n_scored < acc.n  # the NaN scores were left out of log loss and AUC only


def test_multiclass_metrics_match_sklearn_including_ovr_macro_auc() -> None:
    """Multiclass log loss and one-vs-rest macro AUC from class_scores equal sklearn's."""
    y, probabilities = multiclass_stream(4000, 4, seed=3)
    classes = [f"c{j}" for j in range(4)]
    prediction = np.array([classes[j] for j in probabilities.argmax(axis=1)], dtype=object)
    rows = score_rows(probabilities, classes)
    acc = ClassificationPerformance(multiclass=True)
    for chunk in np.array_split(np.arange(y.size), 9):
        acc.update(y[chunk], prediction[chunk], class_scores=[rows[i] for i in chunk])
    check_class_counts(acc, y, prediction)
    assert close(acc.log_loss(), log_loss(y, probabilities, labels=classes))
    expected = roc_auc_score(y, probabilities, multi_class="ovr", average="macro", labels=classes)
    assert acc.roc_auc() == pytest.approx(expected, abs=AUC_TOL)
    for j, c in enumerate(classes):
        one_vs_rest = roc_auc_score(y == c, probabilities[:, j])
        assert acc.roc_auc(c) == pytest.approx(one_vs_rest, abs=AUC_TOL)


def test_class_missing_from_a_rows_scores_has_probability_zero() -> None:
    """Rows naming fewer classes (or a label no score names) read as sklearn's zero columns."""
    y = np.array(["a", "b", "c", "a", "b", "z"], dtype=object)
    rows: list[object] = [
        {"a": 0.7, "b": 0.3},
        {"b": 0.9, "c": 0.1},
        {"a": 0.2, "c": 0.8},
        {"a": 0.5, "b": 0.25, "c": 0.25},
        {"c": 1.0},
        {"a": 0.4, "b": 0.6},
    ]
    matrix = np.array([[r.get(c, 0.0) for c in "abcz"] for r in rows])  # type: ignore[attr-defined]
    acc = ClassificationPerformance(multiclass=True).update(y, y, class_scores=rows)
    assert close(acc.log_loss(), log_loss(y, matrix, labels=list("abcz")))
    assert -math.log(EPS) / 6 < acc.log_loss()  # "z" got probability 0, clipped to eps
    for j, c in enumerate("abc"):
        assert close(acc.roc_auc(c), roc_auc_score(y == c, matrix[:, j]))
    assert math.isnan(acc.roc_auc("z"))  # no score ever named it: no histogram


def test_binary_auc_is_exact_when_classes_never_share_a_bin() -> None:
    """With every positive/negative pair in different bins the histogram AUC is sklearn's."""
    rng = np.random.default_rng(4)
    bins = rng.permutation(1000)[:400]
    score = (bins + rng.uniform(0.05, 0.95, bins.size)) / 1000
    y = rng.integers(0, 2, bins.size).astype(str).astype(object)
    acc = ClassificationPerformance().update(y, y, score)
    assert close(acc.roc_auc(), roc_auc_score(y == "1", score), 1e-12)


def test_pairs_within_one_bin_count_half() -> None:
    """Positive 0.5001 below negative 0.5002: sklearn says 0, one shared bin says 1/2."""
    acc = ClassificationPerformance().update(["1", "0"], ["1", "1"], [0.5001, 0.5002])
    assert roc_auc_score([1, 0], [0.5001, 0.5002]) == 0.0
    assert acc.roc_auc() == 0.5
    coarse = ClassificationPerformance(score_bins=1).update(["1", "0"], ["1", "0"], [1.0, 0.0])
    assert coarse.roc_auc() == 0.5  # scores of 1 fall in the last bin, not past it


@pytest.mark.parametrize(
    ("labels", "predictions", "scores"),
    [
        (["1", "1", "1"], ["1", "0", "1"], [0.9, 0.4, 0.7]),  # one class only
        (["0", "1", "0", "1"], ["0", "1", "0", "1"], [0.1, 0.8, 0.3, 0.6]),  # all correct
        (["0", "0"], ["1", "1"], [1.0, 0.0]),  # all wrong; probabilities 0 and 1 get clipped
        (["1"], ["2"], [math.nan]),  # nothing scored
        ([], [], []),  # empty
    ],
)
def test_edge_cases_match_sklearn(
    labels: list[str], predictions: list[str], scores: list[float]
) -> None:
    """One class, all correct, certain mistakes, no scores, no rows: sklearn's numbers or NaN."""
    y, p = np.array(labels, dtype=object), np.array(predictions, dtype=object)
    s = np.array(scores, dtype=np.float64)
    acc = ClassificationPerformance().update(y, p, s)
    check_binary(acc, y, p, s)
    round_trips(acc)


def test_raw_values_are_normalised_and_unusable_rows_counted() -> None:
    """Ints, floats and bools read like categories; missing label/prediction rows are invalid."""
    labels: list[object] = [1, 1.0, True, "1", None, 0, {}, 0]
    predictions: list[object] = [1, "1", True, 0.0, 1, None, 1, 0]
    scores: list[object] = [0.9, None, 0.8, "0.7", 0.6, 0.5, 0.4, 1.5]
    acc = ClassificationPerformance().update(labels, predictions, scores)
    assert acc.confusion == {("1", "1"): 2, ("true", "true"): 1, ("1", "0"): 1, ("0", "0"): 1}
    assert (acc.n, acc.invalid) == (5, 3)
    assert acc.n_scored == 2  # None, a string and 1.5 are not probabilities: unscored
    loss = (-math.log(0.9) - math.log(1 - 0.8)) / 2  # "true" is not the positive class "1"
    assert close(acc.log_loss(), loss)
    booleans = ClassificationPerformance(positive="true").update(
        np.array([True, False]), np.array([True, True]), np.array([0.8, 0.3])
    )
    assert booleans.confusion == {("true", "true"): 1, ("false", "true"): 1}
    assert booleans.roc_auc() == 1.0


def test_update_and_merge_refuse_what_does_not_fit() -> None:
    """Scores of the other task, misaligned rows and different settings are errors."""
    with pytest.raises(ValueError, match="class_scores"):
        ClassificationPerformance(multiclass=True).update(["a"], ["a"], scores=[0.5])
    with pytest.raises(ValueError, match="not class_scores"):
        ClassificationPerformance().update(["a"], ["a"], class_scores=[{"a": 1.0}])
    with pytest.raises(ValueError, match="same length"):
        ClassificationPerformance().update(["1", "0"], ["1"])
    with pytest.raises(ValueError, match="one value per row"):
        ClassificationPerformance().update(["1"], ["1"], [0.1, 0.2])
    for other in (
        ClassificationPerformance(positive="yes"),
        ClassificationPerformance(multiclass=True),
        ClassificationPerformance(score_bins=10),
    ):
        with pytest.raises(ValueError, match="different"):
            ClassificationPerformance().merge(other)
    with pytest.raises(TypeError):
        ClassificationPerformance().merge(RegressionPerformance())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="classification_performance"):
        ClassificationPerformance.from_json(RegressionPerformance().to_json())


def test_histogram_memory_does_not_grow_with_traffic() -> None:
    """A million scored rows keep one (2, bins) histogram and a state of bounded size."""
    rng = np.random.default_rng(5)
    acc = ClassificationPerformance()
    for _ in range(10):
        y = rng.integers(0, 2, 100_000).astype(str)
        acc.update(y, y, rng.random(100_000))
    assert acc.n == 1_000_000
    assert len(orjson.dumps(acc.to_json())) < 40_000


# --- classification: merge laws and snapshots (hypothesis) -------------------------------

raw_class: st.SearchStrategy[object] = st.sampled_from(["0", "1", "2", 0, 1, 1.0, True, None, {}])
raw_score = st.one_of(
    st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 0.5, math.nan, None, -0.1, 1.5, "0.3"])
)
binary_rows = st.lists(st.tuples(raw_class, raw_class, raw_score), max_size=40)
class_name = st.sampled_from(["a", "b", "c", "d"])
probability_rows = st.one_of(
    st.none(),
    st.dictionaries(class_name, st.floats(0.0, 1.0), max_size=3),
    st.just({"a": 2.0}),
)
multiclass_rows = st.lists(
    st.tuples(st.one_of(class_name, st.none()), class_name, probability_rows), max_size=40
)
cuts_st = st.lists(st.integers(0, 1000), max_size=4)
tasks_st = st.one_of(
    st.tuples(st.just(False), binary_rows), st.tuples(st.just(True), multiclass_rows)
)


def classification_of(rows: list[Any], multiclass: bool) -> ClassificationPerformance:
    acc = ClassificationPerformance(positive="1", multiclass=multiclass, score_bins=20)
    labels, predictions, scores = ([r[i] for r in rows] for i in range(3))
    if multiclass:
        return acc.update(labels, predictions, class_scores=scores)
    return acc.update(labels, predictions, scores)


def assert_same_classification(a: ClassificationPerformance, b: ClassificationPerformance) -> None:
    """Counts and histograms exactly equal; the log-loss sum up to float rounding."""
    state_a, state_b = a.to_json(), b.to_json()
    assert close(state_a.pop("log_loss_sum"), state_b.pop("log_loss_sum"))
    assert state_a == state_b


@settings(max_examples=300, deadline=None)
@given(tasks_st, cuts_st)
def test_classification_merge_of_parts_equals_one_accumulator_over_all(
    task: tuple[bool, list[Any]], cuts: list[int]
) -> None:
    """Any split, merged in any order, holds what one pass over every row holds."""
    multiclass, rows = task
    whole = classification_of(rows, multiclass)
    parts = [classification_of(part, multiclass) for part in split(rows, cuts)]
    assert_same_classification(merged(parts), whole)
    assert_same_classification(merged(parts[::-1]), whole)


@settings(max_examples=200, deadline=None)
@given(tasks_st)
def test_classification_state_round_trips_through_json(task: tuple[bool, list[Any]]) -> None:
    """The checkpointed confusion counts, sums and histograms come back exactly."""
    multiclass, rows = task
    acc = classification_of(rows, multiclass)
    round_trips(acc)
    copy = acc.copy()
    assert copy == acc and copy is not acc
    for metric in ("accuracy", "f1", "log_loss", "roc_auc"):
        assert close(getattr(copy, metric)(), getattr(acc, metric)(), 0.0)


# --- regression ----------------------------------------------------------------------------


def check_regression(acc: RegressionPerformance, y: NDArray[Any], yhat: NDArray[Any]) -> None:
    """MAE, RMSE, MAPE (nonzero truth) and R² equal sklearn's to 1e-9."""
    assert acc.n == y.size
    if y.size == 0:
        assert all(math.isnan(f()) for f in (acc.mae, acc.rmse, acc.mape, acc.r2))
        return
    assert close(acc.mae(), mean_absolute_error(y, yhat))
    assert close(acc.rmse(), math.sqrt(mean_squared_error(y, yhat)))
    nonzero = y != 0
    if nonzero.any():
        assert close(acc.mape(), mean_absolute_percentage_error(y[nonzero], yhat[nonzero]))
    assert close(acc.r2(), r2_score(y, yhat)) if y.size > 1 else math.isnan(acc.r2())


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_regression_metrics_match_sklearn_on_every_prefix(offset: float) -> None:
    """Batched sums and Chan label moments give sklearn's metrics after every batch."""
    rng = np.random.default_rng(6)
    y = rng.normal(offset, 3.0, 3000)
    y[rng.random(y.size) < 0.02] = 0.0
    yhat = y + rng.normal(0.0, 1.0, y.size)
    acc = RegressionPerformance()
    for rows in batches(y.size, rng):
        acc.update(y[rows], yhat[rows])
        check_regression(acc, y[: rows.stop], yhat[: rows.stop])
    assert acc.n_zero_truth == int((y == 0).sum()) > 0


def test_mape_leaves_out_zero_truth_where_sklearn_explodes() -> None:
    """sklearn divides by eps for y = 0; here those rows are counted apart, the rest match."""
    y, yhat = np.array([0.0, 2.0, -4.0, 1e-320]), np.array([1.0, 1.0, -5.0, 1.0])
    acc = RegressionPerformance().update(y, yhat)
    assert mean_absolute_percentage_error(y, yhat) > 1e15  # one zero truth swamps it
    assert close(acc.mape(), mean_absolute_percentage_error(y[1:], yhat[1:]))
    assert acc.mape() > 1e15 / 3  # a subnormal truth is nonzero: sklearn's eps floor holds
    assert acc.n_zero_truth == 1
    only_zero = RegressionPerformance().update([0.0, 0.0], [1.0, 0.0])
    assert math.isnan(only_zero.mape()) and only_zero.mae() == 0.5


@pytest.mark.parametrize(
    ("y", "yhat"),
    [([3.0, 3.0, 3.0], [3.0, 3.0, 3.0]), ([3.0, 3.0], [3.0, 4.0]), ([1.0], [2.0]), ([], [])],
)
def test_r2_edge_cases_follow_sklearn(y: list[float], yhat: list[float]) -> None:
    """Constant truth gives 1 (exact) or 0, one row NaN, no rows NaN, as sklearn returns."""
    acc = RegressionPerformance().update(np.array(y), np.array(yhat))
    check_regression(acc, np.array(y), np.array(yhat))
    round_trips(acc)


def test_regression_counts_unusable_rows_and_keeps_overflow_through_json() -> None:
    """Missing, non-finite or non-numeric sides are invalid; an overflowed sum round-trips."""
    acc = RegressionPerformance().update(
        [1.0, None, math.nan, math.inf, "2", 1e300, True], [1.0, 1.0, 1.0, 1.0, 2.0, -1e300, 1.0]
    )
    assert (acc.n, acc.invalid) == (2, 5)
    assert math.isinf(acc.rmse()) and acc.mae() == 1e300
    round_trips(acc)
    with pytest.raises(ValueError, match="same length"):
        acc.update([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="regression_performance"):
        RegressionPerformance.from_json(LabelDelayAccumulator().to_json())


raw_numbers = st.one_of(
    st.floats(-1e6, 1e6), st.integers(-100, 100), st.sampled_from([0.0, None, math.nan, "x"])
)


def regression_of(rows: list[tuple[object, object]]) -> RegressionPerformance:
    return RegressionPerformance().update([r[0] for r in rows], [r[1] for r in rows])


def assert_same_regression(a: RegressionPerformance, b: RegressionPerformance) -> None:
    """Counts exactly equal; sums, mean and M2 up to float rounding."""
    state_a, state_b = a.to_json(), b.to_json()
    for key in ("n", "invalid", "n_nonzero"):
        assert state_a[key] == state_b[key]
    scale = 1e6 * (a.n + 1)
    for key in ("abs_error", "squared_error", "abs_pct_error"):
        assert math.isclose(state_a[key], state_b[key], rel_tol=1e-9, abs_tol=1e-12 * scale)
    for f in (RegressionPerformance.mae, RegressionPerformance.rmse, RegressionPerformance.r2):
        x, z = f(a), f(b)
        assert (math.isnan(x) and math.isnan(z)) or math.isclose(x, z, rel_tol=1e-6, abs_tol=1e-6)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(raw_numbers, raw_numbers), max_size=40), cuts_st)
def test_regression_merge_of_parts_equals_one_accumulator_over_all(
    rows: list[tuple[object, object]], cuts: list[int]
) -> None:
    """Error sums and label moments merge over any split and order."""
    whole = regression_of(rows)
    parts = [regression_of(part) for part in split(rows, cuts)]
    assert_same_regression(merged(parts), whole)
    assert_same_regression(merged(parts[::-1]), whole)
    round_trips(whole)


# --- label delays ----------------------------------------------------------------------------


def exact_percentile(delays: NDArray[np.float64], q: float) -> float:
    """The k-th smallest delay, k = ceil(q/100 n): numpy's inverted_cdf, without float slop."""
    k = max(1, math.ceil(Fraction(q) * delays.size / 100))
    return float(np.sort(delays)[k - 1])


def test_delay_percentiles_are_within_the_stated_relative_error() -> None:
    """Log-spaced bins give p50/p95 (and any q) within 2% of the exact order statistic."""
    rng = np.random.default_rng(7)
    delays = np.clip(rng.lognormal(8.0, 2.5, 20_000), 1.0, MAX_DELAY * 0.999)
    acc = LabelDelayAccumulator()
    for chunk in np.array_split(delays, 13):
        acc.update(chunk)
    assert RELATIVE_ERROR < 0.0201
    for q in (0, 1, 25, 50, 90, 95, 99, 100):
        exact = exact_percentile(delays, q)
        assert acc.percentile(q) == pytest.approx(exact, rel=RELATIVE_ERROR)
    assert (acc.p50(), acc.p95()) == (acc.percentile(50), acc.percentile(95))
    assert acc.p50() == pytest.approx(np.percentile(delays, 50), rel=0.03)
    assert (acc.min, acc.max) == (delays.min(), delays.max())


def test_delays_outside_the_bins_are_clamped_to_the_exact_range() -> None:
    """Sub-second and beyond-90-day delays use the kept min/max; negatives count as 0."""
    acc = LabelDelayAccumulator().update([0.2, 0.4, -3.0])
    assert acc.negative == 1 and acc.min == 0.0
    assert acc.percentile(100) == pytest.approx(0.2)  # middle of [min 0, max 0.4]
    late = LabelDelayAccumulator().update([MAX_DELAY * 4])
    assert late.p50() == MAX_DELAY * 4  # one delay: the range pins the estimate exactly
    single = LabelDelayAccumulator().update([3600.0])
    assert single.p95() == 3600.0
    assert single.histogram.sum() == 1 and single.histogram.size == DELAY_BINS + 2


def test_delay_edge_cases_and_errors() -> None:
    """No delays is NaN, not 0; non-finite delays and impossible percentiles are errors."""
    empty = LabelDelayAccumulator()
    assert math.isnan(empty.p50()) and math.isnan(empty.min) and empty.n == 0
    round_trips(empty)
    with pytest.raises(ValueError, match="finite"):
        empty.update([1.0, math.nan])
    with pytest.raises(ValueError, match="within"):
        empty.percentile(101)
    with pytest.raises(ValueError, match="label_delay"):
        LabelDelayAccumulator.from_json(ClassificationPerformance().to_json())
    with pytest.raises(ValueError, match="bins"):
        LabelDelayAccumulator.from_json(empty.to_json() | {"delay_bins": 7})


delays_st = st.lists(
    st.one_of(st.floats(-10.0, 1e8), st.sampled_from([0.0, -0.0, 1.0, MAX_DELAY])), max_size=50
)


@settings(max_examples=300, deadline=None)
@given(delays_st, cuts_st)
def test_delay_merge_of_parts_is_exactly_one_accumulator_over_all(
    delays: list[float], cuts: list[int]
) -> None:
    """Counts, min and max merge exactly over any split and order; the state round-trips."""
    whole = LabelDelayAccumulator().update(np.array(delays, dtype=np.float64))
    parts = [LabelDelayAccumulator().update(np.array(p, np.float64)) for p in split(delays, cuts)]
    assert merged(parts) == whole
    assert merged(parts[::-1]) == whole
    round_trips(whole)
    if delays:
        inside = [d for d in delays if 1.0 <= d < MAX_DELAY]
        if len(inside) == len(delays):
            exact = exact_percentile(np.array(delays), 95)
            assert whole.p95() == pytest.approx(exact, rel=RELATIVE_ERROR)
