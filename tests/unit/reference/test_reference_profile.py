"""Building reference profiles from rows: the conventions window statistics rely on."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from monitor.errors import MonitorError
from monitor.reference.columns import SAMPLE_SIZE, CategoricalProfile, NumericProfile, row_hash
from monitor.reference.profile import ReferenceProfile, build_profile
from monitor.settings import ModelConfig


def model(**config: Any) -> ModelConfig:
    return ModelConfig(name="m", **config)


def profile_of(values: list[Any], bins: int = 10, **config: Any) -> Any:
    rows = [{"features": {"x": v}, "prediction": 1} for v in values]
    return build_profile(rows, model(**config), None, "test", bins=bins).features["x"]


def test_numeric_profile_matches_hand_computed_values() -> None:
    """Quantile edges, a B+2 histogram, counts and moments of a small known column."""
    values: list[Any] = [float(v) for v in range(1, 11)] + [None, "oops"]
    p = profile_of(values, bins=3, features={"x": "numeric"})
    assert isinstance(p, NumericProfile)
    assert p.edges == (1.0, 4.0, 7.0, 10.0)
    assert p.histogram == (0, 3, 3, 4, 0)  # [1,4) [4,7) [7,10] as numpy.histogram
    assert (p.count, p.missing, p.type_errors) == (10, 1, 1)
    assert p.missing_rate == 1 / 12
    x = np.arange(1.0, 11.0)
    assert p.mean == pytest.approx(x.mean()) and p.std == pytest.approx(x.std(ddof=0))
    assert (p.min, p.max) == (1.0, 10.0)
    assert p.sample == tuple(x.tolist())


def test_quantile_edges_collapse_duplicates() -> None:
    """A heavy value collapses its quantiles: fewer bins, still min..max, still increasing."""
    values = [0.0] * 50 + [float(v) for v in range(1, 51)]
    p = profile_of(values)
    expected = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
    assert p.edges == tuple(expected.tolist())
    assert len(p.edges) < 11 and p.edges[0] == 0.0 and p.edges[-1] == 50.0
    assert p.histogram[1:-1] == tuple(np.histogram(values, expected)[0].tolist())
    assert sum(p.histogram) == p.count == 100


def test_few_distinct_values_get_one_bin_each() -> None:
    """A 0/1 feature gets two bins (midpoint edge), not one bin holding everything."""
    p = profile_of([0, 0, 0, 1])
    assert p.edges == (0.0, 0.5, 1.0)
    assert p.histogram == (0, 3, 1, 0)
    ten = profile_of(list(range(1, 11)))
    assert ten.edges == (1.0, *(v + 0.5 for v in range(1, 10)), 10.0)
    assert ten.histogram == (0, *[1] * 10, 0)


@pytest.mark.parametrize(
    ("value", "edges"), [(7.0, (6.5, 7.5)), (0, (-0.5, 0.5)), (1e12, (1e12 - 1000, 1e12 + 1000))]
)
def test_constant_feature_gets_one_bin_with_width(value: float, edges: tuple[float, ...]) -> None:
    """A constant v has edges [v - 0.5, v + 0.5] (wider for huge v) and std 0."""
    p = profile_of([value] * 3)
    assert p.edges == edges
    assert p.histogram == (0, 3, 0)
    assert (p.std, p.min, p.max) == (0.0, value, value)


def test_all_missing_feature_without_override_is_empty_categorical() -> None:
    """Nothing present: no type can be inferred, the profile says 100% missing."""
    p = profile_of([None, math.nan, None])
    assert p == CategoricalProfile({}, 0, 3, 0, 1.0, "categorical")


def test_all_missing_numeric_feature_has_no_edges() -> None:
    """A numeric override with no valid value: no edges, no histogram, moments None."""
    p = profile_of([None, "a"], features={"x": "numeric"})
    assert p == NumericProfile((), (), 0, 1, 1, None, None, None, None, 0.5, ())


def test_override_feature_never_present_is_profiled_as_missing() -> None:
    """A feature named only in the config still appears, always missing."""
    rows = [{"features": {"x": 1.0}, "prediction": 1}] * 4
    p = build_profile(rows, model(features={"ghost": "numeric"}), None, "t").features["ghost"]
    assert isinstance(p, NumericProfile) and p.missing == 4 and p.missing_rate == 1.0


def test_categorical_counts_stringify_values() -> None:
    """Categories are counted as strings, most frequent first; containers are type errors."""
    p = profile_of(["DE", "FR", "DE", None, 3, True, {"a": 1}, 2.0])
    assert p == CategoricalProfile(
        counts={"DE": 2, "2": 1, "3": 1, "FR": 1, "true": 1},
        count=6,
        missing=1,
        type_errors=1,
        missing_rate=1 / 8,
    )
    assert list(p.counts) == ["DE", "2", "3", "FR", "true"]


def test_boolean_feature_counts_true_and_false() -> None:
    """Booleans are categories true/false but keep the type boolean."""
    p = profile_of([True, False, True, None])
    assert p == CategoricalProfile({"true": 2, "false": 1}, 3, 1, 0, 0.25, "boolean")
    forced = profile_of(["true", 0, 1, "maybe"], features={"x": "boolean"})
    assert forced.counts == {"true": 2, "false": 1} and forced.type_errors == 1


def test_override_wins_over_inference() -> None:
    """A numeric-looking feature configured as categorical is counted, not binned."""
    p = profile_of([1, 2, 2], features={"x": "categorical"})
    assert p == CategoricalProfile({"2": 2, "1": 1}, 3, 0, 0, 0.0, "categorical")


def test_features_absent_from_some_rows_count_as_missing() -> None:
    """A feature missing from a row (not only null) is a missing value of that row."""
    rows = [{"features": {"a": 1.0}}, {"features": {"b": "x"}}, {"features": {"a": 3.0}}]
    p = build_profile(rows, model(), None, "t")
    a, b = p.features["a"], p.features["b"]
    assert isinstance(a, NumericProfile) and a.sample == (1.0, 3.0) and a.missing == 1
    assert isinstance(b, CategoricalProfile) and b.counts == {"x": 1} and b.missing == 2


def classification_rows() -> list[dict[str, Any]]:
    scores, predictions, labels = [0.1, 0.5, 0.9, 1.0], [1, 0, 1, 1], [1, 0, 0, 1]
    return [
        {"ts": f"2026-11-22T10:00:{2 * i:02d}Z", "features": {"x": float(i)},
         "prediction": p, "score": s, "label": y}
        for i, (s, p, y) in enumerate(zip(scores, predictions, labels, strict=True))
    ]  # fmt: skip


def test_classification_outcomes_and_baseline() -> None:
    """Prediction counts, 0..1 score bins, label counts, accuracy and the event rate."""
    p = build_profile(classification_rows(), model(), "3", "file.csv")
    assert p.prediction == CategoricalProfile({"1": 3, "0": 1}, 4, 0, 0, 0.0)
    assert p.label == CategoricalProfile({"1": 2, "0": 2}, 4, 0, 0, 0.0)
    assert p.score is not None
    assert p.score.edges == tuple(np.linspace(0, 1, 11).tolist())
    assert p.score.histogram == (0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0)
    assert p.baseline == {"accuracy": 0.75}
    assert p.rate_per_second == 4 / 6  # 4 rows over 6 s of event time
    assert (p.model, p.version, p.rows, p.created_from) == ("m", "3", 4, "file.csv")


def test_scores_outside_unit_interval_get_data_edges() -> None:
    """Scores that are not probabilities are binned like any numeric column."""
    rows = [{"features": {}, "prediction": 1, "score": s} for s in (-1.0, 2.0, 3.0)]
    p = build_profile(rows, model(), None, "t")
    assert p.score is not None and p.score.edges == (-1.0, 0.5, 2.5, 3.0)


def test_no_scores_no_labels_no_times() -> None:
    """Without scores, labels or times those parts are None / empty, not errors."""
    p = build_profile([{"features": {"x": 1}, "prediction": "a"}], model(), None, "t")
    assert (p.score, p.label, p.baseline, p.rate_per_second) == (None, None, {}, None)


def test_regression_baseline_is_mae_and_rmse() -> None:
    """Regression predictions and labels are numeric; MAE / RMSE over the labelled rows."""
    rows = [
        {"prediction": 1.0, "label": 1.5},
        {"prediction": 2.0, "label": 2.0},
        {"prediction": 4.0, "label": 3.0},
        {"prediction": 5.0, "label": None},
    ]
    p = build_profile(rows, model(task="regression"), None, "t")
    assert isinstance(p.prediction, NumericProfile) and p.prediction.mean == 3.0
    assert isinstance(p.label, NumericProfile) and p.label.missing == 1
    assert p.baseline["mae"] == pytest.approx(0.5)
    assert p.baseline["rmse"] == pytest.approx(math.sqrt(1.25 / 3))


@pytest.mark.parametrize("start", [1_795_341_600, 1_795_341_600_000])
def test_rate_from_epoch_times(start: int) -> None:
    """Epoch seconds and milliseconds both give rows per second of event time."""
    step = 1000 if start > 1e11 else 1
    rows = [{"ts": start + i * step, "prediction": 0} for i in range(11)]
    assert build_profile(rows, model(), None, "t").rate_per_second == 1.1


def test_flat_rows_equal_nested_rows() -> None:
    """CSV-style flat columns (plain or features.-prefixed) profile like nested events."""
    nested = classification_rows()
    flat = [{k: v for k, v in r.items() if k != "features"} | r["features"] for r in nested]
    prefixed = [
        {k: v for k, v in r.items() if k != "features"} | {"features.x": r["features"]["x"]}
        for r in nested
    ]
    expected = build_profile(nested, model(), None, "t")
    assert build_profile(flat, model(), None, "t") == expected
    assert build_profile(prefixed, model(), None, "t") == expected


def test_custom_field_paths_nested_and_flat() -> None:
    """Configured dotted paths read nested rows; flat rows may use the path or its last part."""
    fields = {"features": "input.features", "prediction": "output.pred", "ts": "meta.time"}
    m = model(fields=fields)
    nested = [{"input": {"features": {"x": 1.0}}, "output": {"pred": 1}, "meta": {"time": 0}}]
    flat_leaf = [{"x": 1.0, "pred": 1, "time": 0}]
    flat_path = [{"x": 1.0, "output.pred": 1, "meta.time": 0}]
    expected = build_profile(nested, m, None, "t")
    assert expected.prediction == CategoricalProfile({"1": 1}, 1, 0, 0, 0.0)
    assert set(expected.features) == {"x"}
    assert build_profile(flat_leaf, m, None, "t") == expected
    assert build_profile(flat_path, m, None, "t") == expected


def test_sample_is_bottom_k_by_row_hash_and_stable() -> None:
    """The sample keeps the rows with the smallest hashes, the same rows for every feature."""
    rows = [{"features": {"a": float(i), "b": 2.0 * i}, "prediction": 0} for i in range(5000)]
    first = build_profile(rows, model(), None, "t")
    again = build_profile(iter(rows), model(), None, "t")
    assert first == again
    a, b = first.features["a"], first.features["b"]
    assert isinstance(a, NumericProfile) and isinstance(b, NumericProfile)
    expected = np.sort(np.argsort(row_hash(np.arange(5000)))[:SAMPLE_SIZE]).astype(float)
    assert len(a.sample) == SAMPLE_SIZE and a.sample == tuple(expected.tolist())
    assert b.sample == tuple(2.0 * v for v in a.sample)


def test_no_rows_is_an_error() -> None:
    """An empty reference cannot describe anything: a clear MonitorError."""
    with pytest.raises(MonitorError, match="no rows"):
        build_profile([], model(), None, "empty.csv")


def test_bins_must_be_positive() -> None:
    """bins=0 would give no edges at all."""
    with pytest.raises(ValueError, match="bins"):
        build_profile([{"prediction": 1}], model(), None, "t", bins=0)


def test_reference_profile_is_immutable() -> None:
    """Profiles are shared between windows: they are frozen."""
    p = build_profile([{"prediction": 1}], model(), None, "t")
    with pytest.raises(AttributeError):
        p.rows = 2  # type: ignore[misc]
    assert isinstance(p, ReferenceProfile)


def test_numeric_profile_keeps_sorted_read_only_arrays_for_windows() -> None:
    """The sample sorted and the histogram as arrays are made once, read-only, for every
    window to compare with; derived, they stay out of equality, repr and the stored JSON."""
    rows = [
        {"features": {"x": float((i * 7919) % 101) - 50.0}, "prediction": 0} for i in range(300)
    ]
    profile = build_profile(rows, model(), None, "t")
    p = profile.features["x"]
    assert isinstance(p, NumericProfile)
    assert p.sorted_sample.tolist() == sorted(p.sample) and p.sample != tuple(sorted(p.sample))
    assert p.sorted_sample.dtype == np.float64 and p.histogram_counts.dtype == np.int64
    assert p.histogram_counts.tolist() == list(p.histogram)
    for array in (p.sorted_sample, p.histogram_counts):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1
    assert "sorted" not in repr(p) and b"sorted" not in profile.to_json()
    restored = ReferenceProfile.from_json(profile.to_json())
    assert restored == profile
    x = restored.features["x"]
    assert isinstance(x, NumericProfile) and x.sorted_sample.tolist() == p.sorted_sample.tolist()
    changed = replace(p, sample=(3.0, -1.0, 2.0))
    assert changed.sorted_sample.tolist() == [-1.0, 2.0, 3.0] and changed != p
    empty = NumericProfile((), (), 0, 1, 1, None, None, None, None, 0.5, ())
    assert empty.sorted_sample.size == empty.histogram_counts.size == 0
