"""Default decisions of one closed window: drift needs a large effect AND statistical support.

Why both: a p-value alone flags negligible shifts once windows are large (50,000 events make a
0.02-sd shift "significant"), and a fixed distance threshold alone flags noise when windows
are small (PSI over 10 bins of 100 events exceeds 0.1 most of the time by chance). So, with F
the features of the window that have at least ``min_samples`` valid values:

- numeric: ``drift`` iff (psi >= 0.1 or wasserstein >= 0.1) and psi > psi_null_quantile(B, N,
  M, q_F) and the KS p-value, Benjamini-Hochberg adjusted across the F features, < 0.01;
- categorical: ``drift`` iff (psi >= 0.1 or js >= 0.1) and psi > psi_null_quantile(K + 1, N,
  M, q_F) and the chi-square p-value, adjusted in the same family, < 0.01;
- fewer than ``min_samples`` valid values (and never fewer than one): ``insufficient_data``,
  and that feature stays out of the family.

q_F = 1 - (1 - 0.999) / F spends the 0.999 quantile per WINDOW (Bonferroni), not per feature:
at small M the 0.1 effect lies inside the noise and PSI and chi-square are nearly one test, so
per feature (q = 0.999 each) stationary 300-event windows of 23 features were flagged 37 times
in 20,000 (a false drift every third 200-window run); per window, 5 in 20,000. B counts the
reference bins holding mass, K its categories (+1: unseen), N and M the valid values.

Quality rates are flagged ``quality`` when they exceed the reference by an absolute floor AND a
one-sided binomial test rejects the reference rate (`rate_flagged`); each quality row carries
its own metric's verdict, so an alert names the rate that moved.

Inputs, one per feature, filled by the windows layer at close:

- `NumericInputs`: ``ref_hist`` and ``win_hist`` are B + 2 counts [underflow, B bins on the
  reference's edges (numpy.histogram semantics), overflow] (the reference's under/overflow are
  0); ``ref_sample``/``win_sample`` bounded raw samples; ``ref_std`` the reference's standard
  deviation; ``ref_missing_rate`` its share of missing values; ``n`` the window's events,
  ``missing`` and ``type_errors`` among them (valid values are ``win_hist.sum()``);
  ``ref_sample_sorted`` says ``ref_sample`` is sorted ascending already, as a reference
  profile keeps it, so that the exact tests do not sort it again for every window.
- `CategoricalInputs`: ``ref_counts``/``win_counts`` counts per category (booleans as
  ``"true"``/``"false"``), plus ``ref_missing_rate``, ``n``, ``missing``, ``type_errors``.

`evaluate_window` turns them into `Row` values (feature, metric, value, n, decision), ``n``
being the metric's denominator: valid values for drift, out-of-range and unseen rates,
events for missing and type-error rates and for the model-level ``volume_ratio``.
`window_rows`, what a window's close calls, gives the same rows bit for bit as plain tuples,
measuring the numeric features together instead of one by one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from monitor.stats import drift, quality
from monitor.stats.names import DRIFT_METRICS

EFFECT_PSI = 0.1  # PSI of a practically large shift (the industry's "moderate" line)
EFFECT_JS = 0.1  # Jensen-Shannon distance, base 2, of a practically large shift
EFFECT_WASSERSTEIN = 0.1  # a tenth of the reference's standard deviation
NULL_QUANTILE = 0.999  # per window: PSI above this no-change quantile (Bonferroni over F)
DRIFT_ALPHA = 0.01  # level of the BH-adjusted KS / chi-square p-values
MISSING_FLOOR = 0.05  # missing rate must exceed the reference's by this much
RATE_FLOOR = 0.01  # same for type-error, out-of-range and unseen rates
QUALITY_ALPHA = 0.001  # level of the one-sided binomial test against the reference rate
MIN_NULL_RATE = 1e-3  # the binomial null never assumes a rate below this
VOLUME_LOW, VOLUME_HIGH = 0.5, 2.0  # volume_ratio outside [low, high] is a quality issue

DriftDecision = Literal["drift", "ok", "insufficient_data"]
QualityDecision = Literal["quality", "ok"]
Decision = DriftDecision | QualityDecision


@dataclass(frozen=True, slots=True)
class NumericInputs:
    """Reference and window parts of one numeric feature (module docstring)."""

    ref_hist: NDArray[np.int64]
    ref_sample: NDArray[np.float64]
    ref_std: float
    ref_missing_rate: float
    win_hist: NDArray[np.int64]
    win_sample: NDArray[np.float64]
    n: int
    missing: int = 0
    type_errors: int = 0
    ref_sample_sorted: bool = False  # ref_sample is ascending (a profile's cached sort)

    def __post_init__(self) -> None:
        if len(self.ref_hist) != len(self.win_hist) or len(self.win_hist) < 3:
            raise ValueError("ref_hist and win_hist need the same B + 2 >= 3 bins")


@dataclass(frozen=True, slots=True)
class CategoricalInputs:
    """Reference and window parts of one categorical (or boolean) feature."""

    ref_counts: Mapping[str, int]
    ref_missing_rate: float
    win_counts: Mapping[str, int]
    n: int
    missing: int = 0
    type_errors: int = 0


FeatureInputs = NumericInputs | CategoricalInputs


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """Every drift metric of one feature in one window, and the verdict they support."""

    n: int  # the window's valid values (M)
    n_ref: int  # the reference's valid values (N)
    bins: int  # bins of PSI's null distribution: B with reference mass, or K + 1
    decision: DriftDecision = "insufficient_data"
    psi: float | None = None
    js: float | None = None
    wasserstein: float | None = None
    ks_stat: float | None = None
    ks_pvalue: float | None = None
    chi2_pvalue: float | None = None
    p_adjusted: float | None = None  # BH-adjusted p-value the decision read
    null_psi: float | None = None  # the null quantile this window's psi had to exceed

    @property
    def pvalue(self) -> float:
        """The raw p-value of this feature's test: chi-square for categories, else KS."""
        p = self.ks_pvalue if self.chi2_pvalue is None else self.chi2_pvalue
        return 1.0 if p is None else p

    def metrics(self) -> dict[str, float]:
        """The stored metrics (DESIGN §5 names) that apply to this feature's type."""
        return {k: v for k in DRIFT_METRICS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True)
class Row:
    """One stored metric row of a window (DESIGN §5); ``feature`` None is model-level."""

    feature: str | None
    metric: str
    value: float
    n: int
    decision: Decision


RowValues = tuple[str | None, str, float, int, Decision]
"""A `Row`'s fields as a plain tuple: what `window_rows` returns."""


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``, 'bh').

    Features of one window are tested together; adjusting keeps the expected share of false
    discoveries among flagged features at the level, whatever the number of features.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size == 0:
        return []
    order = np.argsort(p)
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.empty_like(p)
    adjusted[order] = np.clip(np.minimum.accumulate(scaled[::-1])[::-1], 0.0, 1.0)
    return [float(v) for v in adjusted]


def measure(inputs: FeatureInputs) -> FeatureDrift | None:
    """Every drift metric of a feature, no verdict yet; None without a single valid value in
    the window or in the reference (a feature always null in training has nothing to drift
    from: its quality rates still report it)."""
    if isinstance(inputs, CategoricalInputs):
        measurable = any(inputs.win_counts.values()) and any(inputs.ref_counts.values())
        return _measure_categorical(inputs) if measurable else None
    ref_hist, win_hist = np.asarray(inputs.ref_hist), np.asarray(inputs.win_hist)
    if not win_hist.any() or not ref_hist.any():
        return None
    ref, win = inputs.ref_sample, inputs.win_sample
    if not inputs.ref_std >= 0 or math.isinf(inputs.ref_std):
        raise ValueError(f"ref_std must be a finite non-negative number, got {inputs.ref_std}")
    # one pass for KS and Wasserstein; a reference sorted once is merged, not sorted again
    ecdf = drift.ecdf_distances_sorted if inputs.ref_sample_sorted else drift.ecdf_distances
    ks_stat, distance = ecdf(ref, win)
    psi, js = drift.histogram_distances(ref_hist, win_hist)
    return FeatureDrift(
        n=int(win_hist.sum()),
        n_ref=int(ref_hist.sum()),
        bins=max(2, int(np.count_nonzero(ref_hist))),
        psi=psi,
        js=js,
        wasserstein=distance / drift.normalizer(inputs.ref_std),
        ks_stat=ks_stat,
        ks_pvalue=drift.ks_pvalue(ref, win, ks_stat),
    )


def _measure_categorical(inputs: CategoricalInputs) -> FeatureDrift:
    n, n_ref, bins, psi, js, chi2 = _categorical_values(inputs)
    return FeatureDrift(n=n, n_ref=n_ref, bins=bins, psi=psi, js=js, chi2_pvalue=chi2)


def _categorical_values(inputs: CategoricalInputs) -> tuple[int, int, int, float, float, float]:
    """(M, N, bins, psi, js, chi-square p-value) of a measurable categorical feature."""
    ref = {c: k for c, k in inputs.ref_counts.items() if k > 0}
    unseen, n = quality.unseen_counts(ref, inputs.win_counts)
    actual = [*(inputs.win_counts.get(c, 0) for c in ref), unseen]
    # the bins of drift.category_psi: the reference's categories, then one for unseen ones
    psi, js = drift.histogram_distances([*ref.values(), 0], actual)
    chi2 = drift.chi2_pvalue(ref, inputs.win_counts)
    return n, sum(ref.values()), len(ref) + 1, psi, js, chi2


def is_drift(measured: FeatureDrift) -> bool:
    """The default rule: a practically large effect that noise at this size cannot explain.

    Reads ``p_adjusted`` and ``null_psi``, which `evaluate_drift` sets for the window.
    """
    return _drift_rule(measured, measured.p_adjusted, measured.null_psi)


def _drift_rule(measured: FeatureDrift, p_adjusted: float | None, null_psi: float | None) -> bool:
    """`is_drift` with the window's calibration given apart, so that `evaluate_drift` can
    copy a measurement once, calibration and verdict together."""
    if measured.chi2_pvalue is None:  # numeric
        return _verdict(measured.psi, measured.wasserstein, True, p_adjusted, null_psi)
    return _verdict(measured.psi, measured.js, False, p_adjusted, null_psi)


def _verdict(
    psi: float | None,
    other: float | None,
    numeric: bool,
    p_adjusted: float | None,
    null_psi: float | None,
) -> bool:
    """The rule on plain numbers; ``other`` is Wasserstein for numeric features, else JS."""
    psi = psi or 0.0
    effect = psi >= EFFECT_PSI or (other or 0.0) >= (EFFECT_WASSERSTEIN if numeric else EFFECT_JS)
    p_adjusted = 1.0 if p_adjusted is None else p_adjusted  # 0.0 is falsy
    return effect and psi > (null_psi or 0.0) and p_adjusted < DRIFT_ALPHA


def evaluate_drift(
    features: Mapping[str, FeatureInputs], *, min_samples: int
) -> dict[str, FeatureDrift | None]:
    """Drift of every feature of one window, calibrated over the F features tested in it.

    PSI must exceed its ``1 - (1 - NULL_QUANTILE) / F`` null quantile (Bonferroni) and the
    p-values are BH-adjusted across the same F features; None marks a feature without a
    single valid value (no metric exists for it).
    """
    measured = {name: measure(inputs) for name, inputs in features.items()}
    tested = {k: m for k, m in measured.items() if m is not None and m.n >= min_samples}
    calibration = _calibrate([(m.pvalue, m.bins, m.n_ref, m.n) for m in tested.values()])
    for (name, m), (p_adjusted, null_psi) in zip(tested.items(), calibration, strict=True):
        decision: DriftDecision = "drift" if _drift_rule(m, p_adjusted, null_psi) else "ok"
        measured[name] = replace(m, p_adjusted=p_adjusted, null_psi=null_psi, decision=decision)
    return measured


def _calibrate(tested: Sequence[tuple[float, int, int, int]]) -> list[tuple[float, float]]:
    """(BH-adjusted p-value, PSI null quantile) of each tested (p-value, bins, N, M)."""
    adjusted = benjamini_hochberg([t[0] for t in tested])
    quantile = 1.0 - (1.0 - NULL_QUANTILE) / max(1, len(tested))
    return [
        (p_adjusted, drift.psi_null_quantile(bins, n_ref, n, quantile))
        for (_, bins, n_ref, n), p_adjusted in zip(tested, adjusted, strict=True)
    ]


def rate_flagged(count: int, total: int, ref_rate: float, floor: float) -> bool:
    """``count / total`` exceeds ``ref_rate`` by ``floor`` and a binomial test agrees.

    The floor keeps a statistically real but harmless rise (0.1 % → 0.3 % on a huge window)
    quiet; the one-sided test ``binomtest(count, total, max(ref_rate, MIN_NULL_RATE),
    'greater')`` at ``QUALITY_ALPHA`` keeps a few unlucky events on a tiny window quiet.
    """
    if total <= 0 or count / total - ref_rate < floor - 1e-12:
        return False
    null_rate = min(1.0, max(ref_rate, MIN_NULL_RATE))
    test = sps.binomtest(count, total, null_rate, alternative="greater")
    return bool(test.pvalue < QUALITY_ALPHA)


def quality_rows(name: str, inputs: FeatureInputs) -> list[Row]:
    """Quality rows of one feature, each with its own verdict (see `rate_flagged`)."""
    if isinstance(inputs, NumericInputs):
        out, valid = quality.out_of_range_counts(inputs.win_hist)
        ref_rate = quality.reference_out_of_range_rate(int(np.sum(inputs.ref_hist)))
        rows = _quality(name, inputs, "out_of_range_rate", out, valid, ref_rate)
    else:
        rows = _quality(name, inputs, "unseen_rate", *_unseen(inputs), 0.0)
    return [Row(f, metric, value, n, decision) for f, metric, value, n, decision in rows]


def _unseen(inputs: CategoricalInputs) -> tuple[int, int]:
    """(values in categories without reference mass, valid values) of a window."""
    ref_categories = {c for c, k in inputs.ref_counts.items() if k > 0}
    return quality.unseen_counts(ref_categories, inputs.win_counts)


def _quality(
    name: str, inputs: FeatureInputs, metric: str, count: int, valid: int, ref_rate: float
) -> list[RowValues]:
    """The three quality rows of a feature, ``metric`` its out-of-range or unseen rate."""
    checks = (
        ("missing_rate", inputs.missing, inputs.n, inputs.ref_missing_rate, MISSING_FLOOR),
        ("type_error_rate", inputs.type_errors, inputs.n, 0.0, RATE_FLOOR),
        (metric, count, valid, ref_rate, RATE_FLOOR),
    )
    return [
        (name, metric, quality.rate(count, total), total,
         "quality" if rate_flagged(count, total, ref, floor) else "ok")
        for metric, count, total, ref, floor in checks
    ]  # fmt: skip


def volume_row(events: int, expected_events: float | None, min_samples: int) -> Row | None:
    """The model-level ``volume_ratio`` row, or None when the reference states no rate.

    Flagged outside [VOLUME_LOW, VOLUME_HIGH], once ``min_samples`` events are expected: a
    quiet hour of a low-traffic model is not an outage.
    """
    ratio = quality.volume_ratio(events, expected_events)
    if ratio is None or expected_events is None:
        return None
    flagged = expected_events >= min_samples and not VOLUME_LOW <= ratio <= VOLUME_HIGH
    return Row(None, "volume_ratio", ratio, events, "quality" if flagged else "ok")


def evaluate_window(
    features: Mapping[str, FeatureInputs],
    *,
    min_samples: int,
    events: int | None = None,
    expected_events: float | None = None,
) -> list[Row]:
    """Every drift and quality row of one window, in feature order, then ``volume_ratio``.

    ``events``/``expected_events`` (the window's events and the reference rate times the
    window's length) add the model-level volume row when both are known.
    """
    drifts = evaluate_drift(features, min_samples=min_samples)
    rows: list[Row] = []
    for name, inputs in features.items():
        measured = drifts[name]
        if measured is not None:
            rows += [
                Row(name, metric, value, measured.n, measured.decision)
                for metric, value in measured.metrics().items()
            ]
        rows += quality_rows(name, inputs)
    volume = None if events is None else volume_row(events, expected_events, min_samples)
    return [*rows, volume] if volume is not None else rows


def window_rows(
    features: Mapping[str, FeatureInputs],
    *,
    min_samples: int,
    events: int | None = None,
    expected_events: float | None = None,
) -> list[RowValues]:
    """`evaluate_window`'s rows as plain tuples, with the same numbers bit for bit and the same
    decisions, for a window's evaluation at close (``monitor.windows.evaluation``).

    The numeric features are measured together (`drift.histogram_distances_rows`,
    `drift.ecdf_distances_rows`, `drift.ks_pvalues`), not one by one: at a few hundred
    events per window each feature's statistics are a few microseconds of arithmetic under
    tens of microseconds of per-call overhead, and the per-feature objects (`FeatureDrift`,
    `Row`) cost as much again. The inputs are checked as `measure` checks them.
    """
    measured: dict[str, _Measured | None] = {}
    numeric = [(k, i) for k, i in features.items() if isinstance(i, NumericInputs)]
    counts = _numeric_values(numeric, measured)
    for name, inputs in features.items():
        if isinstance(inputs, CategoricalInputs):
            measurable = any(inputs.win_counts.values()) and any(inputs.ref_counts.values())
            if measurable:
                n, n_ref, bins, psi, js, chi2 = _categorical_values(inputs)
                values = (("psi", psi), ("js", js), ("chi2_pvalue", chi2))
                measured[name] = (n, n_ref, bins, chi2, psi, js, False, values)
            else:
                measured[name] = None
    tested = [
        (name, m) for name in features if (m := measured[name]) is not None and m[0] >= min_samples
    ]
    calibration = _calibrate([(m[3], m[2], m[1], m[0]) for _, m in tested])
    decisions: dict[str, Decision] = {}
    for (name, m), (p_adjusted, null_psi) in zip(tested, calibration, strict=True):
        drifted = _verdict(m[4], m[5], m[6], p_adjusted, null_psi)
        decisions[name] = "drift" if drifted else "ok"
    rows: list[RowValues] = []
    for name, inputs in features.items():
        m = measured[name]
        if m is not None:
            n, decision = m[0], decisions.get(name, "insufficient_data")
            rows += [(name, metric, value, n, decision) for metric, value in m[7]]
        if isinstance(inputs, NumericInputs):
            out, valid, n_ref = counts[name]
            ref_rate = quality.reference_out_of_range_rate(n_ref)
            rows += _quality(name, inputs, "out_of_range_rate", out, valid, ref_rate)
        else:
            rows += _quality(name, inputs, "unseen_rate", *_unseen(inputs), 0.0)
    volume = None if events is None else volume_row(events, expected_events, min_samples)
    if volume is not None:
        rows.append((volume.feature, volume.metric, volume.value, volume.n, volume.decision))
    return rows


_Measured = tuple[int, int, int, float, float, float, bool, tuple[tuple[str, float], ...]]
"""(M, N, bins, p-value, psi, Wasserstein or JS, numeric, (metric, value) in DESIGN order)."""


def _numeric_values(
    numeric: list[tuple[str, NumericInputs]], measured: dict[str, _Measured | None]
) -> dict[str, tuple[int, int, int]]:
    """Measure the numeric features together into ``measured`` (as `measure` would); return
    each one's (out-of-range values, valid values, reference values) for its quality rows."""
    counts: dict[str, tuple[int, int, int]] = {}
    by_bins: dict[int, list[tuple[str, NumericInputs]]] = {}
    for name, inputs in numeric:
        by_bins.setdefault(len(inputs.win_hist), []).append((name, inputs))
    found: list[tuple[str, NumericInputs, int, int, int, float, float]] = []
    for group in by_bins.values():
        ref = np.array([inputs.ref_hist for _, inputs in group], dtype=np.int64)
        win = np.array([inputs.win_hist for _, inputs in group], dtype=np.int64)
        valid, n_ref = win.sum(axis=1).tolist(), ref.sum(axis=1).tolist()
        out = (win[:, 0] + win[:, -1]).tolist()
        ref_bins = np.count_nonzero(ref, axis=1).tolist()
        win_any = np.count_nonzero(win, axis=1).tolist()
        rows = [j for j in range(len(group)) if win_any[j] and ref_bins[j]]
        for j, (name, _) in enumerate(group):
            counts[name] = (out[j], valid[j], n_ref[j])
            measured[name] = None
        if not rows:
            continue
        chosen = rows if len(rows) < len(group) else slice(None)
        psis, jss = drift.histogram_distances_rows(ref[chosen], win[chosen])
        for j, psi, js in zip(rows, psis, jss, strict=True):
            name, inputs = group[j]
            found.append((name, inputs, valid[j], n_ref[j], max(2, ref_bins[j]), psi, js))
    for _, inputs, *_ in found:  # as `measure` checks it, before the exact tests
        if not inputs.ref_std >= 0 or math.isinf(inputs.ref_std):
            raise ValueError(f"ref_std must be a finite non-negative number, got {inputs.ref_std}")
    merged = [f for f in found if f[1].ref_sample_sorted]
    ecdf = drift.ecdf_distances_rows(
        [f[1].ref_sample for f in merged], [f[1].win_sample for f in merged]
    )
    distances = dict(zip([f[0] for f in merged], ecdf, strict=True))
    for name, inputs, *_ in found:
        if name not in distances:  # a reference sample not sorted yet: sort the pooled values
            distances[name] = drift.ecdf_distances(inputs.ref_sample, inputs.win_sample)
    statistics = [distances[f[0]][0] for f in found]
    pvalues = drift.ks_pvalues(
        [f[1].ref_sample for f in found], [f[1].win_sample for f in found], statistics
    )
    for (name, inputs, n, n_ref, bins, psi, js), ks_stat, p in zip(
        found, statistics, pvalues, strict=True
    ):
        distance = distances[name][1] / drift.normalizer(inputs.ref_std)
        values = (("psi", psi), ("js", js), ("wasserstein", distance),
                  ("ks_stat", ks_stat), ("ks_pvalue", p))  # fmt: skip
        measured[name] = (n, n_ref, bins, p, psi, distance, True, values)
    return counts
