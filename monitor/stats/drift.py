"""Drift statistics: one window against the reference, as pure functions of counts and samples.

Histogram metrics (PSI, Jensen-Shannon) read counts over the same bins: for numeric features
the reference's quantile edges plus an underflow and an overflow bin (B + 2 counts), for
categorical ones the reference's categories plus one bin for categories it never saw. They are
nearly free at window close because the windows accumulate the counts batch by batch.
Exact tests (Kolmogorov-Smirnov, Wasserstein) read bounded samples, because their cost grows
with the number of values and a few thousand values already resolve any shift worth alerting.

Nothing here decides anything; `monitor.stats.decision` combines these numbers into a verdict.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special
from scipy import stats as sps

PSI_EPS = 1e-4
"""Probability mass added to every bin before PSI, so an empty bin costs a finite amount."""

MIN_STD = 1e-3
"""Floor of the reference spread that normalises Wasserstein (Evidently uses the same)."""


def _proportions(counts: ArrayLike, name: str) -> NDArray[np.float64]:
    """Counts → proportions, refusing what has no distribution (negative or all zero)."""
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array of counts")
    total = float(values.sum())
    if not total > 0 or bool((values < 0).any()):
        raise ValueError(f"{name} needs non-negative counts with a positive total")
    return values / total


def _same_bins(
    expected: ArrayLike, actual: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both count vectors as proportions, refusing vectors over different bins."""
    e, a = _proportions(expected, "expected"), _proportions(actual, "actual")
    if e.shape != a.shape:
        raise ValueError(f"bins differ: expected has {e.size}, actual {a.size}")
    return e, a


def psi(expected: ArrayLike, actual: ArrayLike, eps: float = PSI_EPS) -> float:
    """Population stability index Σ (a - e)·ln(a / e) of ``actual`` against ``expected``.

    Both are counts over the same bins. Each proportion is smoothed additively,
    p' = (p + eps) / (1 + K·eps), so a bin empty on one side costs about (a - eps)·ln(a / eps)
    instead of infinity, and p' still sums to one: PSI is then the symmetric Kullback-Leibler
    divergence of two distributions, hence ≥ 0, and exactly 0 for equal proportions.
    ``eps=0`` gives the unsmoothed index (infinite when a bin is empty on one side only).
    """
    return _psi(*_same_bins(expected, actual), eps)


def _psi(e: NDArray[np.float64], a: NDArray[np.float64], eps: float) -> float:
    if eps:
        e, a = (e + eps) / (1 + e.size * eps), (a + eps) / (1 + a.size * eps)
    if eps > 0:  # all proportions positive: every term finite, and exactly 0 where a == e
        return float(((a - e) * np.log(a / e)).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (a - e) * np.log(a / e)
    terms[a == e] = 0.0  # covers bins empty on both sides (0 · ln(0/0))
    return float(terms.sum())


def js_distance(expected: ArrayLike, actual: ArrayLike) -> float:
    """Jensen-Shannon distance, base 2, of two count vectors over the same bins, in [0, 1].

    The square root of the JS divergence is a metric and, in base 2, bounded by 1, which makes
    one threshold mean the same for every feature. Equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` without its per-call overhead.
    """
    return _js(*_same_bins(expected, actual))


def _js(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    m = (p + q) / 2.0
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2.0
    return float(min(1.0, math.sqrt(max(0.0, float(divergence) / math.log(2.0)))))


def histogram_distances(expected: ArrayLike, actual: ArrayLike) -> tuple[float, float]:
    """``psi(expected, actual)`` and ``js_distance(expected, actual)``, the same numbers, from
    one conversion of each count vector to proportions: every feature of every window reports
    both, and the conversion and its checks cost as much as either metric."""
    e, a = _same_bins(expected, actual)
    return _psi(e, a, PSI_EPS), _js(e, a)


def histogram_distances_rows(
    expected: ArrayLike, actual: ArrayLike
) -> tuple[list[float], list[float]]:
    """`histogram_distances` of each row pair of two 2-d count arrays (features x bins): the
    same numbers bit for bit, in a few numpy calls for all the rows.

    A window's numeric features share their bin count (B + 2 over each reference's edges),
    and per feature the conversions and checks cost far more than the arithmetic on a dozen
    bins. Each row goes through the operations of the 1-d functions in the same order (a row
    reduction of a C-contiguous array sums the row as the 1-d sum does; tests check it).
    """
    e = _proportion_rows(expected, "expected")
    a = _proportion_rows(actual, "actual")
    if e.shape != a.shape:
        raise ValueError(f"bins differ: expected has {e.shape[1]}, actual {a.shape[1]}")
    scale = 1 + e.shape[1] * PSI_EPS  # the 1-d `_psi`'s 1 + K·eps, K the bins of one row
    es, as_ = (e + PSI_EPS) / scale, (a + PSI_EPS) / scale
    psis = ((as_ - es) * np.log(as_ / es)).sum(axis=1).tolist()
    m = (e + a) / 2.0
    divergences = (special.rel_entr(e, m).sum(axis=1) + special.rel_entr(a, m).sum(axis=1)) / 2.0
    log2 = math.log(2.0)
    js = [min(1.0, math.sqrt(max(0.0, d / log2))) for d in divergences.tolist()]
    return psis, js


def _proportion_rows(counts: ArrayLike, name: str) -> NDArray[np.float64]:
    """`_proportions` of every row of a 2-d count array."""
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-d array of count rows")
    totals = values.sum(axis=1, keepdims=True)  # integral counts: exact in any order
    if not (totals > 0).all() or bool((values < 0).any()):
        raise ValueError(f"{name} needs non-negative counts with a positive total")
    proportions: NDArray[np.float64] = values / totals
    return proportions


def wasserstein_normalized(ref_sample: ArrayLike, cur_sample: ArrayLike, ref_std: float) -> float:
    """Earth mover's distance between the samples, in units of the reference's spread.

    Dividing by the reference standard deviation makes 0.1 mean "a tenth of a standard
    deviation" for every feature whatever its unit. A constant reference (std 0) is divided by
    ``MIN_STD`` instead: the result stays finite (infinities do not survive JSON) and any real
    movement of a feature that never moved scores as large.
    """
    if not ref_std >= 0 or math.isinf(ref_std):
        raise ValueError(f"ref_std must be a finite non-negative number, got {ref_std}")
    return wasserstein(ref_sample, cur_sample) / normalizer(ref_std)


def normalizer(ref_std: float) -> float:
    """What `wasserstein_normalized` divides by: the reference's spread, at least MIN_STD."""
    return max(ref_std, MIN_STD)


def wasserstein(u_sample: ArrayLike, v_sample: ArrayLike) -> float:
    """``scipy.stats.wasserstein_distance(u, v)``: the area between the two empirical CDFs."""
    return ecdf_distances(u_sample, v_sample)[1]


def ecdf_distances(ref_sample: ArrayLike, cur_sample: ArrayLike) -> tuple[float, float]:
    """The KS statistic (largest gap between the empirical CDFs) and the Wasserstein distance
    (the area between them) of two samples, from one sort of the pooled values.

    scipy's two functions sort and search four times between them; this was most of a
    window's evaluation. A caller comparing many windows with one reference sorts it once
    and calls `ecdf_distances_sorted`.
    """
    ref, cur = _sample(ref_sample), _sample(cur_sample)
    return _pooled_distances(np.concatenate((ref, cur)), ref.size)


def ecdf_distances_sorted(ref_sorted: ArrayLike, cur_sample: ArrayLike) -> tuple[float, float]:
    """`ecdf_distances` of a reference sample already sorted ascending (as ``np.sort`` leaves
    it, e.g. a profile's cached ``sorted_sample``): the same numbers, at a fraction of the cost.

    Only the window's sample is sorted; the pooled values are then two ascending runs, which
    the stable sort (timsort) merges in one linear pass instead of sorting them afresh.
    Sorting each side first changes nothing the walk reads: the stable sort still puts tied
    reference values before window ones, so the grid and the running counts are those of
    the unsorted samples (up to the order of tied -0.0 and 0.0, which no result can see).
    Being sorted, the reference is finite iff its ends are: that is all that is checked of it.
    """
    ref = np.asarray(ref_sorted, dtype=np.float64)
    if ref.ndim != 1 or ref.size == 0 or not (math.isfinite(ref[0]) and math.isfinite(ref[-1])):
        raise ValueError("a sample must be a non-empty 1-d array of finite values")
    cur = np.sort(_sample(cur_sample))
    return _pooled_distances(np.concatenate((ref, cur)), ref.size)


def _pooled_distances(pooled: NDArray[np.float64], n: int) -> tuple[float, float]:
    """KS statistic and area between the ECDFs of ``pooled[:n]`` and ``pooled[n:]``.

    Walking the pooled values in order, the reference's CDF rises by 1/n at its own values and
    the window's by 1/m at its; where values tie only the last of the run holds both CDFs, and
    the area ignores the others as their width is zero.
    """
    # method calls, no np.append / np.diff: their wrappers cost more than the arithmetic here
    order = pooled.argsort(kind="stable")  # ties: reference values first
    grid = pooled[order]
    from_ref = (order < n).cumsum()
    size = grid.size
    # |F_ref - F_cur| just after each pooled value
    gaps = np.abs(from_ref / n - (np.arange(1, size + 1) - from_ref) / (size - n))
    run_ends = np.empty(size, dtype=bool)
    np.not_equal(grid[1:], grid[:-1], out=run_ends[:-1])
    run_ends[-1] = True
    statistic = float(gaps[run_ends].max())
    widths = grid[1:] - grid[:-1]
    area = float(np.einsum("i,i->", gaps[:-1], widths))  # no BLAS threads
    return statistic, area


ROWS_BUDGET: Final = 131_072
"""Pooled values per block of `ecdf_distances_rows`: a window's numeric features at the
default sample sizes (25 x 4,000) in one block, and a bound on its temporaries' memory."""

_ROWS_MAX: Final = 8_192
"""Pooled sizes beyond which `ecdf_distances_rows` walks each row on its own (numpy could
sum a longer einsum operand in buffered chunks, which would change the area's last bits)."""


def ecdf_distances_rows(
    refs_sorted: Sequence[ArrayLike], cur_samples: Sequence[ArrayLike]
) -> list[tuple[float, float]]:
    """`ecdf_distances_sorted` of each (``refs_sorted[i]``, ``cur_samples[i]``): the same
    numbers bit for bit, the pairs of equal sizes walked together as rows of 2-d arrays.

    At window sizes of a few hundred values each pair costs a dozen numpy calls on a few
    thousand values, mostly fixed overhead; a block of rows pays it once. Each row goes
    through the 1-d walk's operations on the same values in the same order: the window's
    sample is sorted, appended to the reference, merged by the stable argsort (ties:
    reference first), and the area is the same einsum over the row, whose summation
    ``"ij,ij->i"`` runs row by row exactly as ``"i,i->"`` runs over one row. Blocks hold at
    most `ROWS_BUDGET` pooled values.
    """
    if len(refs_sorted) != len(cur_samples):
        raise ValueError("need one window sample per reference sample")
    refs = [np.asarray(r, dtype=np.float64) for r in refs_sorted]
    curs = [np.asarray(c, dtype=np.float64) for c in cur_samples]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (ref, cur) in enumerate(zip(refs, curs, strict=True)):
        if ref.ndim != 1 or cur.ndim != 1 or ref.size == 0 or cur.size == 0:
            raise ValueError("a sample must be a non-empty 1-d array of finite values")
        groups.setdefault((ref.size, cur.size), []).append(i)
    results: list[tuple[float, float]] = [(0.0, 0.0)] * len(refs)
    for (n, m), rows in groups.items():
        if n + m > _ROWS_MAX:
            for i in rows:
                results[i] = ecdf_distances_sorted(refs[i], curs[i])
            continue
        step = max(1, ROWS_BUDGET // (n + m))
        for start in range(0, len(rows), step):
            block = rows[start : start + step]
            pairs = _pooled_rows([refs[i] for i in block], [curs[i] for i in block], n, m)
            for i, pair in zip(block, pairs, strict=True):
                results[i] = pair
    return results


def _pooled_rows(
    refs: list[NDArray[np.float64]], curs: list[NDArray[np.float64]], n: int, m: int
) -> list[tuple[float, float]]:
    """`_pooled_distances` of each row [ref, sorted cur] of one block (see the 1-d walk)."""
    size = n + m
    pooled = np.empty((len(refs), size))
    for row, ref, cur in zip(pooled, refs, curs, strict=True):
        row[:n] = ref
        row[n:] = cur
    pooled[:, n:].sort(axis=1)
    # both parts sorted: finite iff their ends are (a NaN sorts last)
    if not np.isfinite(pooled[:, [0, n - 1, n, size - 1]]).all():
        raise ValueError("a sample must be a non-empty 1-d array of finite values")
    order = pooled.argsort(axis=1, kind="stable")  # two runs merged; ties: reference first
    # the 1-d walk's integer counts, as floats (exact): the same quotients, fewer casts
    from_ref = (order < n).cumsum(axis=1, dtype=np.int32).astype(np.float64)
    order += np.arange(0, pooled.size, size)[:, None]  # the flat index of each row's values
    grid = pooled.ravel().take(order)
    from_cur = np.arange(1.0, size + 1.0) - from_ref
    from_cur /= m
    from_ref /= n
    from_ref -= from_cur
    gaps = np.abs(from_ref, out=from_ref)
    widths = np.subtract(grid[:, 1:], grid[:, :-1], out=from_cur[:, :-1])
    areas = np.einsum("ij,ij->i", gaps[:, :-1], widths).tolist()  # no BLAS threads
    # the statistic reads the last of each run of tied values only
    inside = np.empty(pooled.shape, dtype=bool)
    np.equal(grid[:, 1:], grid[:, :-1], out=inside[:, :-1])
    inside[:, -1] = False
    np.copyto(gaps, -1.0, where=inside)
    statistics = gaps.max(axis=1).tolist()
    return list(zip(statistics, areas, strict=True))


KS_EXACT_BELOW: Final = 50
"""Effective sample size below which ``ks`` leaves the p-value to scipy's exact computation."""


def ks(ref_sample: ArrayLike, cur_sample: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (two-sided).

    The statistic is ``scipy.stats.ks_2samp``'s (`ecdf_distances`). The p-value comes from the
    Kolmogorov distribution with Stephens' small-sample correction,
    ``kolmogorov((√n + 0.12 + 0.11/√n)·D)`` for the effective size ``n = n₁n₂/(n₁+n₂)``: within
    a few percent of scipy's exact two-sample value (5% at p = 4e-8), in microseconds, not the
    millisecond scipy spends per call. Samples smaller than ``KS_EXACT_BELOW`` (effective)
    still get scipy's exact value.
    """
    statistic = ecdf_distances(ref_sample, cur_sample)[0]
    return statistic, ks_pvalue(ref_sample, cur_sample, statistic)


def ks_pvalue(ref_sample: ArrayLike, cur_sample: ArrayLike, statistic: float) -> float:
    """The two-sided p-value of a KS ``statistic`` of these samples (see `ks`)."""
    n, m = np.size(ref_sample), np.size(cur_sample)
    effective = n * m / (n + m)
    if effective < KS_EXACT_BELOW:
        return float(sps.ks_2samp(_sample(ref_sample), _sample(cur_sample)).pvalue)
    root = math.sqrt(effective)
    pvalue = float(special.kolmogorov((root + 0.12 + 0.11 / root) * statistic))
    return min(1.0, max(0.0, pvalue))


def ks_pvalues(
    ref_samples: Sequence[ArrayLike], cur_samples: Sequence[ArrayLike], statistics: Sequence[float]
) -> list[float]:
    """`ks_pvalue` of each (reference, window, statistic), the same numbers, with one call of
    the Kolmogorov distribution for all of them."""
    pvalues = [1.0] * len(statistics)
    where, arguments = [], []
    for i, (ref, cur, statistic) in enumerate(
        zip(ref_samples, cur_samples, statistics, strict=True)
    ):
        n, m = _size(ref), _size(cur)
        effective = n * m / (n + m)
        if effective < KS_EXACT_BELOW:
            pvalues[i] = ks_pvalue(ref, cur, statistic)
        else:
            root = math.sqrt(effective)
            where.append(i)
            arguments.append((root + 0.12 + 0.11 / root) * statistic)
    if arguments:
        for i, pvalue in zip(where, special.kolmogorov(arguments).tolist(), strict=True):
            pvalues[i] = min(1.0, max(0.0, pvalue))
    return pvalues


def _size(values: ArrayLike) -> int:
    """``np.size(values)``, without its wrapper for an array."""
    return values.size if isinstance(values, np.ndarray) else int(np.size(values))


def _sample(values: ArrayLike) -> NDArray[np.float64]:
    """A sample as floats; NaN or infinity is a value the windows should have counted invalid."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError("a sample must be a non-empty 1-d array of finite values")
    return array


def chi2_pvalue(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> float:
    """Chi-square test of homogeneity of two category count tables (reference vs window).

    The 2-by-K table spans the union of categories; columns empty on both sides carry no
    information and would make expected frequencies zero, so they are dropped. With fewer than
    two columns left there is nothing to compare, and the answer is "no evidence": 1.0.
    """
    categories = sorted(set(ref_counts) | set(cur_counts))
    table = np.array(
        [[ref_counts.get(c, 0) for c in categories], [cur_counts.get(c, 0) for c in categories]],
        dtype=np.float64,
    ).reshape(2, len(categories))
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or not (table.sum(axis=1) > 0).all():
        return 1.0
    # scipy.stats.chi2_contingency(table).pvalue, Yates' correction at one degree of freedom
    # included, without the ~1 ms its argument handling costs per call.
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    dof = table.shape[1] - 1
    if dof == 1:
        diff = expected - table
        table = table + np.sign(diff) * np.minimum(0.5, np.abs(diff))
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(special.chdtrc(dof, statistic))


def category_psi(ref_freq: Mapping[str, float], cur_counts: Mapping[str, int]) -> float:
    """PSI over the reference's categories plus one bin gathering every unseen category.

    Unseen categories share one bin because the reference has no mass to compare each with;
    their total is what matters (a new category at 25 % is drift, whatever its name).
    """
    categories = list(ref_freq)
    unseen = sum(n for c, n in cur_counts.items() if c not in ref_freq)
    expected = [*(ref_freq[c] for c in categories), 0.0]
    actual = [*(cur_counts.get(c, 0) for c in categories), unseen]
    return psi(expected, actual)


def psi_null_quantile(bins: int, n_ref: int, n_cur: int, q: float = 0.999) -> float:
    """Quantile ``q`` of PSI when nothing changed: χ²_q(bins - 1) · (1/n_ref + 1/n_cur).

    Under no change PSI ≈ (1/N + 1/M) · χ²(B - 1) (Yurdakul 2018), so a threshold from this
    quantile adapts to the window's size: high for small windows, where noise is large, and
    low for large ones, where a fixed 0.1 would hide real but modest shifts.
    """
    if bins < 2 or n_ref < 1 or n_cur < 1 or not 0 < q < 1:
        raise ValueError("need bins >= 2, n_ref >= 1, n_cur >= 1 and 0 < q < 1")
    return _chi2_quantile(bins - 1, q) * (1.0 / n_ref + 1.0 / n_cur)


@functools.lru_cache(maxsize=1024)
def _chi2_quantile(df: int, q: float) -> float:
    """``chi2.ppf(q, df)``, remembered: a window asks it for every feature with few distinct
    (bins, q), and even the bare ``chdtri`` (without the distribution object's ~100 us) costs
    more than a cache hit."""
    return float(special.chdtri(df, 1.0 - q))
