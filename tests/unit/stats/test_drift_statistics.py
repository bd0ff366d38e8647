"""Drift statistics against scipy oracles, hand-computed PSI and hypothesis properties."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from monitor.stats import drift

counts = st.lists(st.integers(0, 1_000), min_size=2, max_size=15).filter(lambda c: sum(c) > 0)


def count_pairs() -> st.SearchStrategy[tuple[list[int], list[int]]]:
    """Two count vectors over the same bins, each with a positive total."""
    return st.integers(2, 15).flatmap(
        lambda k: st.tuples(
            st.lists(st.integers(0, 1_000), min_size=k, max_size=k).filter(lambda c: sum(c) > 0),
            st.lists(st.integers(0, 1_000), min_size=k, max_size=k).filter(lambda c: sum(c) > 0),
        )
    )


def test_psi_matches_hand_computation_without_smoothing() -> None:
    """PSI is sum (a - e) ln(a / e) over proportions."""
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)  # (.25-.5)ln(.5) + (.75-.5)ln(1.5)
    assert drift.psi([50, 50], [25, 75], eps=0) == pytest.approx(expected, rel=1e-12)


def test_psi_smooths_proportions_additively() -> None:
    """With eps, proportions become (p + eps) / (1 + K eps) before the sum."""
    eps, e, a = 1e-4, np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.5, 0.25])
    e, a = (e + eps) / (1 + 3 * eps), (a + eps) / (1 + 3 * eps)
    assert drift.psi([2, 2, 0], [1, 2, 1]) == pytest.approx(float(((a - e) * np.log(a / e)).sum()))


def test_psi_of_an_empty_bin_is_finite_only_when_smoothed() -> None:
    """An empty reference bin costs a finite amount with eps and infinity without."""
    assert math.isfinite(drift.psi([10, 10, 0], [5, 5, 10]))
    assert drift.psi([10, 10, 0], [5, 5, 10], eps=0) == math.inf


@pytest.mark.parametrize(("expected", "actual"), [([1, 2], [1, 2, 3]), ([0, 0], [1, 1]), ([], [])])
def test_psi_refuses_what_is_not_two_distributions(expected: list[int], actual: list[int]) -> None:
    """Mismatched bins, an empty total or no bins raise instead of returning nonsense."""
    with pytest.raises(ValueError):
        drift.psi(expected, actual)


@given(count_pairs())
def test_psi_is_non_negative(pair: tuple[list[int], list[int]]) -> None:
    """PSI is a symmetric divergence, never negative."""
    assert drift.psi(*pair) >= 0.0


@given(counts, st.integers(1, 50))
def test_psi_of_equal_proportions_is_zero(c: list[int], scale: int) -> None:
    """Windows with the reference's proportions score exactly 0, whatever their size."""
    assert drift.psi(c, [x * scale for x in c]) == 0.0


@given(count_pairs())
def test_js_distance_matches_scipy(pair: tuple[list[int], list[int]]) -> None:
    """js_distance equals scipy's jensenshannon(p, q, base=2)."""
    p, q = (np.asarray(x, dtype=float) for x in pair)
    assert drift.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-9)


@given(count_pairs())
def test_js_distance_is_bounded_and_symmetric(pair: tuple[list[int], list[int]]) -> None:
    """JS distance lies in [0, 1] and does not depend on the order of its arguments."""
    p, q = pair
    assert 0.0 <= drift.js_distance(p, q) <= 1.0
    assert drift.js_distance(p, q) == drift.js_distance(q, p)


def test_js_distance_of_disjoint_supports_is_one() -> None:
    """Distributions with nothing in common are at the maximal distance 1 (base 2)."""
    assert drift.js_distance([5, 0], [0, 7]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_wasserstein_is_scipys_distance_over_the_reference_std(seed: int) -> None:
    """wasserstein_normalized equals scipy's wasserstein_distance divided by ref_std."""
    rng = np.random.default_rng(seed)
    ref, cur = rng.normal(0, 2, 1_000), rng.normal(0.5, 2, 700)
    oracle = stats.wasserstein_distance(ref, cur) / 2.0
    assert drift.wasserstein_normalized(ref, cur, 2.0) == pytest.approx(oracle, rel=1e-12)


def test_wasserstein_of_a_constant_reference_stays_finite() -> None:
    """A constant reference divides by MIN_STD: 0 when unchanged, large and finite when moved."""
    assert drift.wasserstein_normalized([3.0] * 10, [3.0] * 5, 0.0) == 0.0
    moved = drift.wasserstein_normalized([3.0] * 10, [3.5] * 5, 0.0)
    assert moved == pytest.approx(0.5 / drift.MIN_STD)


def test_wasserstein_refuses_a_negative_spread() -> None:
    """A negative or NaN ref_std is a caller bug, reported as such."""
    with pytest.raises(ValueError):
        drift.wasserstein_normalized([1.0], [2.0], -1.0)
    with pytest.raises(ValueError):
        drift.wasserstein_normalized([1.0], [2.0], math.nan)


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "shift"),
    [
        (2_000, 2_000, 0.0),
        (2_000, 300, 0.3),
        (2_000, 1_000, 0.1),
        (2_000, 200, 0.05),
        (40, 30, 0.5),
    ],
)
def test_ks_matches_scipy(n_ref: int, n_cur: int, shift: float) -> None:
    """ks returns ks_2samp's statistic, and its exact p-value within 6% (Stephens' form of the
    asymptotic distribution; exact itself for small samples)."""
    rng = np.random.default_rng(n_cur)
    ref, cur = rng.normal(size=n_ref), rng.normal(shift, size=n_cur)
    oracle = stats.ks_2samp(ref, cur, method="exact")
    assert drift.ks(ref, cur) == (
        pytest.approx(oracle.statistic),
        pytest.approx(oracle.pvalue, rel=0.06),
    )


@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300),
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300),
)
def test_ks_statistic_is_scipys_on_any_samples(ref: list[float], cur: list[float]) -> None:
    """Ties, duplicates and tiny samples included, the statistic is ks_2samp's."""
    assert drift.ks(ref, cur)[0] == pytest.approx(stats.ks_2samp(ref, cur).statistic)


@given(
    st.dictionaries(st.sampled_from("abcd"), st.integers(0, 500), min_size=1),
    st.dictionaries(st.sampled_from("abcd"), st.integers(0, 500), min_size=1),
)
def test_chi2_is_chi2_contingency_on_any_tables(ref: dict[str, int], cur: dict[str, int]) -> None:
    """Two categories (Yates' correction) or more, sparse or not: scipy's p-value."""
    categories = sorted(set(ref) | set(cur))
    table = np.array([[ref.get(c, 0) for c in categories], [cur.get(c, 0) for c in categories]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or not (table.sum(axis=1) > 0).all():
        assert drift.chi2_pvalue(ref, cur) == 1.0
    else:
        expected = stats.chi2_contingency(table).pvalue
        assert drift.chi2_pvalue(ref, cur) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_chi2_matches_scipy_on_the_union_of_categories() -> None:
    """chi2_pvalue tests the 2 x K table over both sides' categories, as chi2_contingency."""
    ref, cur = {"a": 500, "b": 300, "c": 200}, {"a": 40, "b": 45, "d": 15}
    table = np.array([[500, 300, 200, 0], [40, 45, 0, 15]])
    assert drift.chi2_pvalue(ref, cur) == pytest.approx(stats.chi2_contingency(table).pvalue)


def test_chi2_drops_columns_empty_on_both_sides() -> None:
    """A category counted zero everywhere changes nothing."""
    ref, cur = {"a": 50, "b": 30, "z": 0}, {"a": 40, "b": 45, "z": 0}
    oracle = stats.chi2_contingency(np.array([[50, 30], [40, 45]])).pvalue
    assert drift.chi2_pvalue(ref, cur) == pytest.approx(oracle)


def test_chi2_without_two_categories_is_no_evidence() -> None:
    """One category, or an empty side, leaves nothing to test: p = 1."""
    assert drift.chi2_pvalue({"a": 10}, {"a": 3}) == 1.0
    assert drift.chi2_pvalue({"a": 10, "b": 5}, {}) == 1.0


def test_category_psi_gathers_unseen_categories_in_one_bin() -> None:
    """category_psi is PSI over the reference categories plus one unseen bin."""
    ref = {"a": 0.6, "b": 0.4}
    cur = {"a": 50, "b": 30, "x": 10, "y": 10}
    assert drift.category_psi(ref, cur) == pytest.approx(drift.psi([0.6, 0.4, 0.0], [50, 30, 20]))


def test_psi_null_quantile_is_the_yurdakul_formula() -> None:
    """The quantile is chi2.ppf(q, B - 1) * (1/N + 1/M)."""
    oracle = stats.chi2.ppf(0.999, 9) * (1 / 20_000 + 1 / 2_000)
    assert drift.psi_null_quantile(10, 20_000, 2_000) == pytest.approx(oracle)


def test_psi_null_quantile_is_exceeded_at_its_nominal_rate_under_no_change() -> None:
    """Simulated PSI of stationary windows exceeds the 0.99 quantile about 1 % of the time."""
    rng = np.random.default_rng(7)
    probs = np.full(10, 0.1)
    ref = rng.multinomial(20_000, probs)
    threshold = drift.psi_null_quantile(10, 20_000, 500, q=0.99)
    exceed = sum(drift.psi(ref, rng.multinomial(500, probs)) > threshold for _ in range(4_000))
    assert 15 <= exceed <= 70  # 40 expected; binomial sd ~6


def test_psi_null_quantile_refuses_meaningless_arguments() -> None:
    """One bin, an empty side or a quantile outside (0, 1) is refused."""
    for args in ((1, 10, 10, 0.9), (5, 0, 10, 0.9), (5, 10, 10, 1.0)):
        with pytest.raises(ValueError):
            drift.psi_null_quantile(*args)


@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
)
def test_wasserstein_matches_scipy(u: list[float], v: list[float]) -> None:
    """drift.wasserstein equals scipy.stats.wasserstein_distance, ties included."""
    oracle = stats.wasserstein_distance(u, v)
    assert drift.wasserstein(u, v) == pytest.approx(oracle, rel=1e-9, abs=1e-6)


def test_samples_with_nan_are_refused() -> None:
    """A NaN in a sample is a windows-layer bug; it must not silently become p = NaN."""
    with pytest.raises(ValueError, match="finite"):
        drift.ks([1.0, math.nan], [1.0, 2.0])


def pooled_ecdf_distances(ref: list[float], cur: list[float]) -> tuple[float, float]:
    """The straightforward computation the fast paths must reproduce bit for bit: one stable
    argsort of reference-then-window values, walked with the running reference count."""
    pooled = np.concatenate((np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)))
    order = np.argsort(pooled, kind="stable")
    grid = pooled[order]
    from_ref = np.cumsum(order < len(ref))
    gaps = from_ref / len(ref) - (np.arange(1, grid.size + 1) - from_ref) / len(cur)
    run_ends = np.append(grid[1:] != grid[:-1], True)
    statistic = float(np.abs(gaps[run_ends]).max())
    area = float(np.einsum("i,i->", np.abs(gaps[:-1]), np.diff(grid)))
    return statistic, area


# few distinct values (ties within and between the samples, signed zeros) or any finite ones
tied = st.sampled_from([-2.5, -1.0, -0.0, 0.0, 1e-300, 1.0, 3.0, 3.0000000000000004])
sample_values = st.one_of(tied, st.floats(-1e6, 1e6), st.integers(-3, 3).map(float))


@given(
    st.lists(sample_values, min_size=1, max_size=80),
    st.lists(sample_values, min_size=1, max_size=80),
)
def test_ecdf_fast_paths_equal_the_pooled_sort_exactly(ref: list[float], cur: list[float]) -> None:
    """Unsorted or with the reference sorted once, the KS statistic and the area are exactly
    those of one stable sort of the pooled values: ties, duplicates across the samples and
    single values included."""
    expected = pooled_ecdf_distances(ref, cur)
    assert drift.ecdf_distances(ref, cur) == expected
    assert drift.ecdf_distances_sorted(np.sort(np.asarray(ref)), cur) == expected
    assert drift.ecdf_distances_sorted(np.sort(np.asarray(ref)), cur[::-1]) == expected


@pytest.mark.parametrize(("n_ref", "n_cur"), [(2_000, 500), (2_000, 2_000), (2_000, 3), (1, 1)])
def test_ecdf_distances_sorted_on_window_sized_samples(n_ref: int, n_cur: int) -> None:
    """Reference-sized samples rounded to force ties give the pooled sort's numbers."""
    rng = np.random.default_rng(n_cur)
    ref, cur = np.round(rng.normal(size=n_ref), 2), np.round(rng.normal(0.1, size=n_cur), 2)
    expected = pooled_ecdf_distances(ref.tolist(), cur.tolist())
    assert drift.ecdf_distances_sorted(np.sort(ref), cur) == expected


@pytest.mark.parametrize(
    ("ref", "cur"),
    [([1.0, math.inf], [1.0]), ([-math.inf, 1.0], [1.0]), ([1.0, math.nan], [1.0]),
     ([], [1.0]), ([1.0], [math.nan]), ([1.0], [])],
)  # fmt: skip
def test_ecdf_distances_sorted_refuses_non_finite_or_empty_samples(
    ref: list[float], cur: list[float]
) -> None:
    """A sorted reference is checked at its ends (NaN sorts last), the window sample fully."""
    with pytest.raises(ValueError, match="finite"):
        drift.ecdf_distances_sorted(np.sort(np.asarray(ref, dtype=np.float64)), cur)


@given(count_pairs())
def test_histogram_distances_are_psi_and_js_exactly(pair: tuple[list[int], list[int]]) -> None:
    """One conversion to proportions gives the very numbers of psi and js_distance."""
    assert drift.histogram_distances(*pair) == (drift.psi(*pair), drift.js_distance(*pair))


@given(count_pairs())
def test_smoothed_psi_is_the_guarded_formula_exactly(pair: tuple[list[int], list[int]]) -> None:
    """Smoothed, PSI skips the 0 · ln(0/0) guard it cannot need: same number as with it."""
    e, a = (np.asarray(c, dtype=np.float64) / sum(c) for c in pair)
    eps = drift.PSI_EPS
    e, a = (e + eps) / (1 + e.size * eps), (a + eps) / (1 + a.size * eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (a - e) * np.log(a / e)
    terms[a == e] = 0.0
    assert drift.psi(*pair) == float(terms.sum())


def test_psi_null_quantile_is_the_same_when_remembered() -> None:
    """The cached chi-square quantile is chdtri's own value, call after call."""
    first = drift.psi_null_quantile(7, 20_000, 500, 0.9999)
    again = drift.psi_null_quantile(7, 20_000, 500, 0.9999)
    oracle = float(special.chdtri(6, 1.0 - 0.9999)) * (1.0 / 20_000 + 1.0 / 500)
    assert first == again == oracle


def bits(values: Sequence[tuple[float, ...]] | Sequence[float]) -> list[bytes]:
    """Floats, or tuples of floats, as their IEEE 754 bytes: "equal" means bit for bit."""
    return [
        struct.pack(f"<{len(v)}d", *v) if isinstance(v, tuple) else struct.pack("<d", v)
        for v in values
    ]


@st.composite
def sample_pairs(draw: st.DrawFn) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    """Reference samples (sorted) and window samples, a few sizes shared by several pairs."""
    sizes = draw(
        st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=3)
    )
    refs, curs = [], []
    for n, m in draw(st.lists(st.sampled_from(sizes), min_size=1, max_size=8)):
        refs.append(np.sort(np.asarray(draw(st.lists(sample_values, min_size=n, max_size=n)))))
        curs.append(np.asarray(draw(st.lists(sample_values, min_size=m, max_size=m))))
    return refs, curs


@given(sample_pairs())
def test_ecdf_rows_are_each_pairs_distances_bit_for_bit(
    pairs: tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]],
) -> None:
    """Walked together as rows, pairs of equal sizes give exactly the 1-d walk's numbers
    (ties, signed zeros, single values; several sizes in one call)."""
    refs, curs = pairs
    expected = [drift.ecdf_distances_sorted(r, c) for r, c in zip(refs, curs, strict=True)]
    assert bits(drift.ecdf_distances_rows(refs, curs)) == bits(expected)


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "rows", "decimals"),
    [(2_000, 500, 25, 4), (2_000, 2_000, 25, 2), (2_000, 37, 9, 1), (1_500, 1, 3, 0),
     (4_000, 4_193, 2, 3)],
)  # fmt: skip
def test_ecdf_rows_on_window_sized_blocks_bit_for_bit(
    n_ref: int, n_cur: int, rows: int, decimals: int
) -> None:
    """A window's features in one block (and past the size where rows are walked one by
    one) give exactly the 1-d walk's numbers."""
    rng = np.random.default_rng(n_cur)
    scale = rng.uniform(0.1, 50.0, (rows, 1))
    refs = list(np.sort(np.round(rng.normal(size=(rows, n_ref)) * scale, decimals), axis=1))
    curs = list(np.round(rng.normal(0.05, 1.1, size=(rows, n_cur)) * scale, decimals))
    expected = [drift.ecdf_distances_sorted(r, c) for r, c in zip(refs, curs, strict=True)]
    assert bits(drift.ecdf_distances_rows(refs, curs)) == bits(expected)


@pytest.mark.parametrize(
    ("ref", "cur"),
    [([1.0, math.inf], [1.0]), ([-math.inf, 1.0], [1.0]), ([1.0, math.nan], [1.0]),
     ([], [1.0]), ([1.0], [math.nan]), ([1.0], [-math.inf, 2.0]), ([1.0], [])],
)  # fmt: skip
def test_ecdf_rows_refuse_non_finite_or_empty_samples(ref: list[float], cur: list[float]) -> None:
    """The rows are checked as `ecdf_distances_sorted` checks one pair."""
    with pytest.raises(ValueError, match="finite"):
        drift.ecdf_distances_rows([[0.5, 2.0], np.sort(np.asarray(ref))], [[1.0], cur])


@st.composite
def count_rows(draw: st.DrawFn) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Two (rows x bins) count arrays, every row with a positive total."""
    rows, k = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    row = st.lists(st.integers(0, 1_000), min_size=k, max_size=k).filter(lambda c: sum(c) > 0)
    return (
        np.array(draw(st.lists(row, min_size=rows, max_size=rows)), dtype=np.int64),
        np.array(draw(st.lists(row, min_size=rows, max_size=rows)), dtype=np.int64),
    )


@given(count_rows())
def test_histogram_rows_are_each_rows_distances_bit_for_bit(
    pair: tuple[NDArray[np.int64], NDArray[np.int64]],
) -> None:
    """PSI and JS of every row pair at once are exactly `histogram_distances` of each."""
    expected, actual = pair
    psis, jss = drift.histogram_distances_rows(expected, actual)
    one_by_one = [drift.histogram_distances(e, a) for e, a in zip(expected, actual, strict=True)]
    assert bits(list(zip(psis, jss, strict=True))) == bits(one_by_one)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [([[1, 2]], [[1, 2, 3]]), ([[0, 0]], [[1, 1]]), ([[1, -1, 2]], [[1, 1, 1]]),
     ([[1, 2]], [[0, 0]]), ([1, 2], [1, 2]), ([[]], [[]])],
)  # fmt: skip
def test_histogram_rows_refuse_what_is_not_two_distributions(
    expected: list[list[int]], actual: list[list[int]]
) -> None:
    """Mismatched bins, an empty or negative row, or 1-d input raise as `psi` does."""
    with pytest.raises(ValueError):
        drift.histogram_distances_rows(expected, actual)


@given(sample_pairs(), st.lists(st.floats(0.0, 1.0), min_size=9, max_size=9))
def test_ks_pvalues_are_each_ks_pvalue(
    pairs: tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]], statistics: list[float]
) -> None:
    """One call of the Kolmogorov distribution gives each pair's `ks_pvalue`, small samples
    (scipy's exact value) included."""
    refs, curs = pairs
    rng = np.random.default_rng(len(refs))
    refs.append(rng.normal(size=2_000))  # effective sizes beyond KS_EXACT_BELOW too
    curs.append(rng.normal(size=300))
    stats_ = statistics[: len(refs)]
    expected = [drift.ks_pvalue(r, c, s) for r, c, s in zip(refs, curs, stats_, strict=True)]
    assert bits(drift.ks_pvalues(refs, curs, stats_)) == bits(expected)
