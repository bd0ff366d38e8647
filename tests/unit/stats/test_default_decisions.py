"""Default decisions: BH, quality flags, and seeded windows that must (not) be flagged."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from monitor.stats import decision, drift
from monitor.stats.decision import (
    CategoricalInputs,
    FeatureDrift,
    FeatureInputs,
    NumericInputs,
    Row,
    RowValues,
    benjamini_hochberg,
    evaluate_drift,
    evaluate_window,
    window_rows,
)
from tests.unit.stats.synthetic import N_NUMERIC, Model


@pytest.fixture(scope="module")
def model() -> Model:
    """The seeded reference: 20,000 rows, 20 normal and 3 categorical features."""
    return Model()


def flagged(rows: list[Row], verdict: str) -> set[tuple[str | None, str]]:
    """(feature, metric) of the rows carrying ``verdict``."""
    return {(r.feature, r.metric) for r in rows if r.decision == verdict}


def drifted(results: Mapping[str, FeatureDrift | None]) -> set[str]:
    """Names of the features decided ``drift``."""
    return {name for name, r in results.items() if r is not None and r.decision == "drift"}


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_benjamini_hochberg_matches_scipy(pvalues: list[float]) -> None:
    """Adjusted p-values equal scipy.stats.false_discovery_control(method='bh')."""
    oracle = stats.false_discovery_control(pvalues, method="bh")
    assert benjamini_hochberg(pvalues) == pytest.approx(list(oracle), abs=1e-12)


def test_benjamini_hochberg_of_nothing_is_nothing() -> None:
    """A window without a tested feature adjusts no p-value."""
    assert benjamini_hochberg([]) == []


def test_shifted_features_and_only_they_drift(model: Model) -> None:
    """(a) A 1-sd mean shift in 3 of 23 features over 2,000 events flags exactly those 3."""
    rng = np.random.default_rng(11)
    results = evaluate_drift(model.window(rng, 2_000, shift={2: 1, 7: -1, 15: 1}), min_samples=200)
    assert drifted(results) == {"x2", "x7", "x15"}


def test_stationary_windows_of_2000_never_drift(model: Model) -> None:
    """(b) 250 stationary windows of 2,000 events (500,000 events): no feature is flagged."""
    rng = np.random.default_rng(12)
    for _ in range(250):
        rows = evaluate_window(model.window(rng, 2_000), min_samples=200)
        assert not flagged(rows, "drift") | flagged(rows, "quality")


def test_negligible_shift_on_huge_windows_is_not_drift(model: Model) -> None:
    """(c) A 0.02-sd shift of every feature on 50,000-event windows is never flagged."""
    rng = np.random.default_rng(13)
    everything = dict.fromkeys(range(N_NUMERIC), 0.02)
    for _ in range(3):
        rows = evaluate_window(model.window(rng, 50_000, shift=everything), min_samples=200)
        assert not flagged(rows, "drift") | flagged(rows, "quality")


def test_new_category_is_drift_and_a_quality_issue(model: Model) -> None:
    """(d) A new category at 25 % drifts its feature and flags unseen_rate."""
    rng = np.random.default_rng(14)
    rows = evaluate_window(model.window(rng, 2_000, new_category={1: 0.25}), min_samples=200)
    assert {f for f, _ in flagged(rows, "drift")} == {"c1"}
    assert flagged(rows, "quality") == {("c1", "unseen_rate")}


def test_a_feature_going_missing_is_a_quality_issue(model: Model) -> None:
    """(e) 40 % missing values flag missing_rate, and only that."""
    rng = np.random.default_rng(15)
    rows = evaluate_window(model.window(rng, 2_000, missing={"x4": 0.4}), min_samples=200)
    assert flagged(rows, "quality") == {("x4", "missing_rate")}
    assert flagged(rows, "drift") == set()
    assert next(r for r in rows if r.metric == "missing_rate" and r.feature == "x4").value > 0.35


def test_small_window_is_insufficient_data(model: Model) -> None:
    """(f) 150 valid values with min_samples 200: every feature is insufficient_data."""
    rng = np.random.default_rng(16)
    results = evaluate_drift(model.window(rng, 150, shift={0: 3}), min_samples=200)
    assert {r.decision for r in results.values() if r is not None} == {"insufficient_data"}
    assert all(r is not None and r.p_adjusted is None for r in results.values())


def test_small_stationary_windows_do_not_cry_wolf(model: Model) -> None:
    """(g) 200 stationary windows of 300 events each: no false drift or quality flag."""
    rng = np.random.default_rng(17)
    for _ in range(200):
        rows = evaluate_window(model.window(rng, 300), min_samples=200)
        assert not flagged(rows, "drift") | flagged(rows, "quality")


def test_rows_carry_the_design_metric_names_per_type(model: Model) -> None:
    """Numeric rows: psi js wasserstein ks_*; categorical: psi js chi2_pvalue; plus quality."""
    rng = np.random.default_rng(18)
    rows = evaluate_window(model.window(rng, 500), min_samples=200, events=500, expected_events=480)
    by_feature: dict[str | None, set[str]] = {}
    for row in rows:
        by_feature.setdefault(row.feature, set()).add(row.metric)
    numeric = {"psi", "js", "wasserstein", "ks_stat", "ks_pvalue"}
    categorical = {"psi", "js", "chi2_pvalue"}
    common = {"missing_rate", "type_error_rate"}
    assert by_feature["x0"] == numeric | common | {"out_of_range_rate"}
    assert by_feature["c0"] == categorical | common | {"unseen_rate"}
    assert by_feature[None] == {"volume_ratio"}


def test_row_n_is_the_metrics_denominator(model: Model) -> None:
    """Drift rows count valid values; missing_rate counts events."""
    rng = np.random.default_rng(19)
    rows = evaluate_window(model.window(rng, 1_000, missing={"x1": 0.1}), min_samples=200)
    x1 = {r.metric: r for r in rows if r.feature == "x1"}
    assert x1["missing_rate"].n == 1_000
    assert x1["psi"].n == x1["out_of_range_rate"].n == 1_000 - round(x1["missing_rate"].value * 1e3)


def test_a_feature_without_values_has_no_drift_rows() -> None:
    """No valid value, no drift metric: only its quality rows remain."""
    empty = CategoricalInputs({"a": 10, "b": 5}, 0.0, {}, n=50, missing=50)
    assert evaluate_drift({"c": empty}, min_samples=0) == {"c": None}
    rows = evaluate_window({"c": empty}, min_samples=0)
    assert {r.metric for r in rows} == {"missing_rate", "type_error_rate", "unseen_rate"}


def test_a_feature_without_reference_values_has_no_drift_rows() -> None:
    """A feature null throughout training: no drift metric (nothing to compare), no crash."""
    categorical = CategoricalInputs({}, 1.0, {"a": 40}, n=50, missing=10)
    numeric = NumericInputs(
        np.zeros(4, np.int64), np.empty(0), 0.0, 1.0, np.array([5, 5, 0, 0]), np.ones(10), n=10
    )
    assert evaluate_drift({"c": categorical, "x": numeric}, min_samples=0) == {"c": None, "x": None}
    rows = evaluate_window({"c": categorical}, min_samples=0)
    assert {r.metric for r in rows} == {"missing_rate", "type_error_rate", "unseen_rate"}


def test_insufficient_features_stay_out_of_the_bh_family() -> None:
    """Only features with enough values share the multiplicity correction."""
    big = CategoricalInputs({"a": 900, "b": 100}, 0.0, {"a": 100, "b": 200}, n=300)
    small = CategoricalInputs({"a": 900, "b": 100}, 0.0, {"a": 5, "b": 5}, n=10)
    alone = evaluate_drift({"big": big}, min_samples=50)["big"]
    paired = evaluate_drift({"big": big, "small": small}, min_samples=50)["big"]
    assert alone is not None and paired is not None
    assert paired.p_adjusted == alone.p_adjusted == alone.chi2_pvalue


@pytest.mark.parametrize(
    ("count", "total", "ref_rate", "floor", "expected"),
    [
        (100, 1_000, 0.0, 0.05, True),  # 10 % missing where none were
        (40, 1_000, 0.0, 0.05, False),  # below the 5-point floor
        (150, 1_000, 0.12, 0.05, False),  # +3 points over the reference
        (3, 10, 0.0, 0.05, True),  # 3 of 10 against 0.1 %: binomial p ~ 1e-7
        (1, 10, 0.0, 0.05, False),  # 1 of 10 is p ~ 0.01, not enough
        (30, 1_000, 0.0, 0.01, True),  # 3 % type errors on a big window
        (0, 0, 0.0, 0.01, False),  # nothing observed
    ],
)
def test_rate_flagged_needs_the_floor_and_the_binomial_test(
    count: int, total: int, ref_rate: float, floor: float, expected: bool
) -> None:
    """A quality rate is flagged only when both the floor and the one-sided test agree."""
    assert decision.rate_flagged(count, total, ref_rate, floor) is expected


@pytest.mark.parametrize(
    ("events", "expected_events", "verdict"),
    [(400, 1_000.0, "quality"), (2_500, 1_000.0, "quality"), (900, 1_000.0, "ok"),
     (10, 100.0, "ok")],
)  # fmt: skip
def test_volume_ratio_is_flagged_outside_half_to_double(
    events: int, expected_events: float, verdict: str
) -> None:
    """volume_ratio < 0.5 or > 2 is a quality issue once min_samples events are expected."""
    row = decision.volume_row(events, expected_events, min_samples=200)
    assert row is not None and row.decision == verdict and row.feature is None


def test_volume_row_needs_a_reference_rate() -> None:
    """Without a reference rate there is no volume_ratio row."""
    assert decision.volume_row(500, None, min_samples=200) is None
    assert evaluate_window({}, min_samples=200, events=500) == []


def test_numeric_inputs_refuse_mismatched_histograms() -> None:
    """Reference and window histograms must share the B + 2 layout."""
    sample = np.zeros(3)
    with pytest.raises(ValueError):
        NumericInputs(np.ones(5, np.int64), sample, 1.0, 0.0, np.ones(4, np.int64), sample, n=4)


def test_inputs_are_a_union_the_evaluator_dispatches_on() -> None:
    """Both input kinds evaluate side by side in one window."""
    features: dict[str, FeatureInputs] = {
        "n": NumericInputs(
            np.array([0, 50, 50, 0]), np.arange(100.0), 29.0, 0.0,
            np.array([0, 20, 30, 0]), np.arange(50.0), n=50,
        ),
        "c": CategoricalInputs({"a": 60, "b": 40}, 0.0, {"a": 30, "b": 20}, n=50),
    }  # fmt: skip
    results = evaluate_drift(features, min_samples=10)
    assert {k: v.decision for k, v in results.items() if v is not None} == {"n": "ok", "c": "ok"}


def test_a_p_value_of_exactly_zero_still_counts() -> None:
    """An underflowed p-value of 0.0 is the strongest evidence, not a missing one."""
    ref = CategoricalInputs({"a": 100_000, "b": 100_000}, 0.0, {"a": 10_000}, n=10_000)
    result = evaluate_drift({"c": ref}, min_samples=200)["c"]
    assert result is not None and result.chi2_pvalue == 0.0
    assert result.decision == "drift"


def test_null_quantile_is_spent_per_window(model: Model) -> None:
    """PSI's threshold is the 1 - (1 - 0.999) / F quantile, F the features tested."""
    rng = np.random.default_rng(20)
    features = model.window(rng, 1_000)
    results = evaluate_drift(features, min_samples=200)
    x0 = results["x0"]
    assert x0 is not None
    quantile = 1 - (1 - decision.NULL_QUANTILE) / len(features)
    assert x0.null_psi == pytest.approx(drift.psi_null_quantile(10, 20_000, 1_000, quantile))


def measured(kind: str, psi: float, other: float, p_adjusted: float) -> FeatureDrift:
    """A numeric (other = wasserstein) or categorical (other = js) result to decide on."""
    common = {"n": 1_000, "n_ref": 20_000, "bins": 10, "psi": psi, "p_adjusted": p_adjusted}
    null_psi = drift.psi_null_quantile(10, 20_000, 1_000, 0.999)
    if kind == "numeric":
        return FeatureDrift(**common, wasserstein=other, ks_pvalue=p_adjusted, null_psi=null_psi)
    return FeatureDrift(**common, js=other, chi2_pvalue=p_adjusted, null_psi=null_psi)


@pytest.mark.parametrize(
    ("kind", "psi", "other", "p_adjusted", "expected"),
    [
        ("numeric", 0.2, 0.3, 1e-6, True),  # large and real
        ("numeric", 0.05, 0.12, 1e-6, True),  # wasserstein carries the effect
        ("numeric", 0.05, 0.05, 1e-9, False),  # real but small: the large-window trap
        ("numeric", 0.2, 0.3, 0.02, False),  # large but the p-value does not support it
        ("numeric", 0.02, 0.3, 1e-6, False),  # psi inside its null quantile (~0.029)
        ("categorical", 0.05, 0.12, 1e-6, True),  # js carries the effect
        ("categorical", 0.05, 0.05, 1e-6, False),  # neither psi nor js is large
    ],
)
def test_is_drift_needs_effect_and_support(
    kind: str, psi: float, other: float, p_adjusted: float, expected: bool
) -> None:
    """The default rule is (psi or wasserstein/js large) and psi > null and BH p < 0.01."""
    assert decision.is_drift(measured(kind, psi, other, p_adjusted)) is expected


def test_a_presorted_reference_sample_gives_the_same_rows(model: Model) -> None:
    """Inputs carrying the reference sample sorted once (as evaluation passes a profile's)
    give exactly the rows of the raw sample, drifted features and ties included."""
    rng = np.random.default_rng(21)
    raw = model.window(rng, 600, shift={3: 0.5, 9: -1})
    raw["tied"] = NumericInputs(
        ref_hist=np.array([0, 3, 4, 0]),
        ref_sample=np.array([2.0, 1.0, 2.0, 1.0, 1.0, 3.0, 3.0]),
        ref_std=0.8,
        ref_missing_rate=0.0,
        win_hist=np.array([1, 2, 2, 0]),
        win_sample=np.array([3.0, 1.0, 0.0, 2.0, 1.0]),
        n=5,
    )
    presorted = {
        name: replace(i, ref_sample=np.sort(i.ref_sample), ref_sample_sorted=True)
        if isinstance(i, NumericInputs)
        else i
        for name, i in raw.items()
    }
    rows = evaluate_window(raw, min_samples=5)
    assert evaluate_window(presorted, min_samples=5) == rows
    assert flagged(rows, "drift") >= {("x3", "psi"), ("x9", "psi")}


def row_bits(rows: Sequence[Row | RowValues]) -> list[tuple[object, ...]]:
    """Rows as comparable tuples, each value as its IEEE 754 bytes (bit for bit)."""
    return [
        (f, metric, struct.pack("<d", v), type(v), n, type(n), d)
        for f, metric, v, n, d in (
            (r.feature, r.metric, r.value, r.n, r.decision) if isinstance(r, Row) else r
            for r in rows
        )
    ]


@st.composite
def window_inputs(draw: st.DrawFn) -> dict[str, FeatureInputs]:
    """Numeric and categorical inputs of one window: histograms of several bin counts,
    some empty on either side, samples of shared and differing sizes with ties (or none),
    missing values and type errors, unseen and vanished categories."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    features: dict[str, FeatureInputs] = {}
    sizes = draw(
        st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1, max_size=3)
    )
    for j in range(draw(st.integers(0, 8))):
        n_ref, n_win = draw(st.sampled_from(sizes))
        bins = draw(st.sampled_from([3, 4, 12, 12, 12]))
        decimals = draw(st.sampled_from([0, 1, 4]))
        shift = draw(st.sampled_from([0.0, 0.0, 0.3, 2.0]))
        ref_hist = rng.integers(0, 400, bins) * (rng.random(bins) < 0.8)
        ref_hist[0] = ref_hist[-1] = 0
        ref_hist[1] += 1
        win_hist = rng.integers(0, 60, bins) * (rng.random(bins) < 0.8)
        empty = draw(st.integers(0, 39))  # nothing to measure: no drift rows
        if empty < 4:
            (win_hist if empty else ref_hist)[:] = 0
        missing, errors = (int(k) for k in rng.integers(0, 30, 2))
        ref = np.sort(np.round(rng.normal(size=n_ref), decimals))
        features[f"x{j}"] = NumericInputs(
            ref_hist=ref_hist.astype(np.int64),
            ref_sample=ref if j % 3 else rng.permutation(ref),
            ref_std=draw(st.sampled_from([0.0, 1e-5, 1.0, 3.5])),
            ref_missing_rate=draw(st.sampled_from([0.0, 0.01, 0.2])),
            win_hist=win_hist.astype(np.int64),
            win_sample=np.round(rng.normal(shift, 1.0, n_win), decimals),
            n=int(win_hist.sum()) + missing + errors,
            missing=missing,
            type_errors=errors,
            ref_sample_sorted=bool(j % 3),
        )
    for j in range(draw(st.integers(0, 4))):
        ref_counts = {
            c: int(k) for c, k in zip("abcdef", rng.integers(0, 500, 6), strict=True) if k or j % 2
        }
        win_counts = {
            c: int(k)
            for c, k in zip("abcxyz", rng.integers(0, 80, 6), strict=True)
            if k and c != "b"
        }
        missing, errors = (int(k) for k in rng.integers(0, 30, 2))
        features[f"c{j}"] = CategoricalInputs(
            ref_counts=ref_counts,
            ref_missing_rate=draw(st.sampled_from([0.0, 0.05])),
            win_counts=win_counts,
            n=sum(win_counts.values()) + missing + errors,
            missing=missing,
            type_errors=errors,
        )
    return features


@given(
    window_inputs(),
    st.sampled_from([0, 1, 30, 200]),
    st.sampled_from([(None, None), (500, 480.0), (500, 100.0), (10, None)]),
)
def test_window_rows_are_evaluate_window_bit_for_bit(
    features: dict[str, FeatureInputs], min_samples: int, volume: tuple[int | None, float | None]
) -> None:
    """Measuring the numeric features together gives evaluate_window's rows: the same rows
    in the same order, the same values to the last bit, the same decisions (or the same
    refusal: a reference histogram without values has no out-of-range rate)."""
    events, expected_events = volume
    kwargs = {"min_samples": min_samples, "events": events, "expected_events": expected_events}
    try:
        expected = row_bits(evaluate_window(features, **kwargs))
    except ValueError:
        with pytest.raises(ValueError):
            window_rows(features, **kwargs)
        return
    assert row_bits(window_rows(features, **kwargs)) == expected


def test_window_rows_of_seeded_windows_are_evaluate_window(model: Model) -> None:
    """Drifted, stationary, new-category and missing-value windows of the seeded model, with
    the reference sample sorted once as a profile keeps it: the same rows, bit for bit."""
    rng = np.random.default_rng(22)
    decisions = set()
    for size, kwargs in [
        (300, {}), (2_000, {"shift": {2: 1, 7: -1}}), (500, {"new_category": {1: 0.25}}),
        (1_000, {"missing": {"x4": 0.4, "c2": 0.1}}), (150, {"shift": {0: 3}}), (6_000, {}),
    ]:  # fmt: skip
        raw = model.window(rng, size, **kwargs)
        features = {
            k: replace(i, ref_sample=np.sort(i.ref_sample), ref_sample_sorted=True)
            if isinstance(i, NumericInputs)
            else i
            for k, i in raw.items()
        }
        rows = window_rows(features, min_samples=200, events=size, expected_events=500.0)
        assert row_bits(rows) == row_bits(
            evaluate_window(raw, min_samples=200, events=size, expected_events=500.0)
        )
        decisions |= {r[4] for r in rows}
    assert decisions == {"drift", "ok", "insufficient_data", "quality"}
