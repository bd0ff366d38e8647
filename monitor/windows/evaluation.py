"""A closed window's metrics: its merged state against the model's reference.

Each slice (the whole model, then every ``key=value`` segment) is evaluated on its own with
the default decisions of ``stats.decision``: drift needs a large effect and statistical
support, quality rates are flagged only beyond a floor and a binomial test. Beside them go
the summaries (``mean``, ``std``), the volume (``events``, ``volume_ratio``) and
``score_change`` (1 when a partition's score change detector fired in the window). Without a
reference a window is still counted and quality-checked: ``missing_rate`` and
``type_error_rate`` without a decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.reference.columns import CategoricalProfile, NumericProfile
from monitor.reference.profile import ReferenceProfile
from monitor.stats import quality
from monitor.stats.decision import (
    CategoricalInputs,
    FeatureInputs,
    NumericInputs,
    window_rows,
)
from monitor.stats.names import REFERENCE
from monitor.windows.accumulators import CategoricalAccumulator, NumericAccumulator
from monitor.windows.labelled import LabelledState, Performance
from monitor.windows.performance import RegressionPerformance
from monitor.windows.state import (
    PREDICTION,
    SCORE,
    WHOLE_MODEL,
    Accumulator,
    SliceState,
    WindowState,
)


@dataclass(slots=True)
class Metric:
    """One metric of one slice; ``feature`` None is model-level, ``decision`` None: no verdict.

    Not frozen, though nothing changes one: a window makes hundreds, and a frozen dataclass
    costs five times as much to build.
    """

    segment: str | None
    feature: str | None
    metric: str
    value: float | None
    n: int
    decision: str | None


def evaluate(
    state: WindowState,
    profile: ReferenceProfile | None,
    *,
    min_samples: int,
    window_seconds: float,
) -> list[Metric]:
    """Every metric of a closed window (``state`` merged over all partitions)."""
    metrics: list[Metric] = []
    expected = None
    if profile is not None and profile.rate_per_second is not None:
        expected = profile.rate_per_second * window_seconds
    for name in sorted(state.slices):
        piece = state.slices[name]
        segment = name or None
        metrics.append(Metric(segment, None, "events", float(piece.events), piece.events, None))
        metrics += _summaries(segment, piece)
        if profile is None:
            metrics += _quality_without_reference(segment, piece)
            continue
        inputs = {n: i for n, acc in piece.accumulators.items() if (i := _inputs(n, acc, profile))}
        volume = expected if name == WHOLE_MODEL else None
        rows = window_rows(  # evaluate_window's rows, the numeric features measured together
            inputs,
            min_samples=min_samples,
            events=piece.events if volume is not None else None,
            expected_events=volume,
        )
        metrics += [Metric(segment, f, metric, v, n, d) for f, metric, v, n, d in rows]
    changed = 1.0 if state.score_changes else 0.0  # a partition's detector fired in the window
    metrics.append(Metric(None, None, "score_change", changed, state.events, None))
    if profile is not None:  # the reference's own performance, when it had labels
        metrics += [
            Metric(None, REFERENCE, name, value, profile.rows, None)
            for name, value in sorted(profile.baseline.items())
        ]
    return metrics


def _summaries(segment: str | None, piece: SliceState) -> list[Metric]:
    rows = []
    for name, acc in sorted(piece.accumulators.items()):
        if isinstance(acc, NumericAccumulator) and acc.valid:
            rows.append(Metric(segment, name, "mean", acc.mean, acc.valid, None))
            rows.append(Metric(segment, name, "std", acc.std, acc.valid, None))
    return rows


def _quality_without_reference(segment: str | None, piece: SliceState) -> list[Metric]:
    rows = []
    for name, acc in sorted(piece.accumulators.items()):
        if name in (SCORE, PREDICTION) or not acc.count:
            continue
        missing = quality.missing_rate(acc.missing, acc.count)
        errors = quality.type_error_rate(acc.type_errors, acc.count)
        rows.append(Metric(segment, name, "missing_rate", missing, acc.count, None))
        rows.append(Metric(segment, name, "type_error_rate", errors, acc.count, None))
    return rows


def _inputs(name: str, acc: Accumulator, profile: ReferenceProfile) -> FeatureInputs | None:
    """The stats inputs of one accumulator against its part of the reference, if comparable."""
    ref = _reference_part(name, profile)
    if isinstance(acc, NumericAccumulator) and isinstance(ref, NumericProfile):
        histogram = acc.histogram
        if histogram is None or ref.std is None or len(histogram) != len(ref.histogram):
            return None
        return NumericInputs(  # the profile's arrays are made once, not per window
            ref_hist=ref.histogram_counts,
            ref_sample=ref.sorted_sample,
            ref_std=ref.std,
            ref_missing_rate=ref.missing_rate,
            win_hist=histogram,
            win_sample=acc.sample,
            n=acc.count,
            missing=acc.missing,
            type_errors=acc.type_errors,
            ref_sample_sorted=True,
        )
    if isinstance(acc, CategoricalAccumulator) and isinstance(ref, CategoricalProfile):
        return CategoricalInputs(
            ref_counts=ref.counts,
            ref_missing_rate=ref.missing_rate,
            win_counts=acc.counts,
            n=acc.count,
            missing=acc.missing,
            type_errors=acc.type_errors,
        )
    return None


def _reference_part(
    name: str, profile: ReferenceProfile
) -> NumericProfile | CategoricalProfile | None:
    if name == SCORE:
        return profile.score
    if name == PREDICTION:
        return profile.prediction
    return profile.features.get(name)


def evaluate_labelled(
    state: LabelledState, predictions: Mapping[str, int], *, min_labels: int
) -> list[Metric]:
    """A window's performance metrics from its merged labelled shares (DESIGN.md §5).

    ``predictions`` gives each slice's prediction count, the denominator of
    ``label_coverage``. Model-quality metrics below ``min_labels`` rows say
    ``insufficient_data``; coverage, delays and ``error_change`` carry no decision.
    """
    metrics: list[Metric] = []
    for name in sorted(state.slices):
        piece, segment = state.slices[name], name or None
        labelled = piece.delays.n
        total = predictions.get(name, 0)
        coverage = labelled / total if total else None
        metrics.append(Metric(segment, None, "label_coverage", coverage, total, None))
        if labelled:
            p50, p95 = piece.delays.p50(), piece.delays.p95()
            metrics.append(Metric(segment, None, "label_delay_p50", p50, labelled, None))
            metrics.append(Metric(segment, None, "label_delay_p95", p95, labelled, None))
        for feature, metric, value, n in _performance(piece.performance):
            decision = "insufficient_data" if n < min_labels else None
            finite = value if value is not None and math.isfinite(value) else None
            metrics.append(Metric(segment, feature, metric, finite, n, decision))
    changed = 1.0 if state.error_changes else 0.0
    metrics.append(Metric(None, None, "error_change", changed, state.labelled, None))
    return metrics


def _performance(perf: Performance) -> list[tuple[str | None, str, float | None, int]]:
    """(feature, metric, value, n) of one slice's performance accumulator."""
    if isinstance(perf, RegressionPerformance):
        n = perf.n
        return [(None, m, getattr(perf, m)(), n) for m in ("mae", "rmse", "mape", "r2")]
    n, scored = perf.n, perf.n_scored
    rows: list[tuple[str | None, str, float | None, int]] = [
        (None, "accuracy", perf.accuracy(), n),
        (None, "precision", perf.precision(), n),
        (None, "recall", perf.recall(), n),
        (None, "f1", perf.f1(), n),
    ]
    if scored:
        rows += [
            (None, "log_loss", perf.log_loss(), scored),
            (None, "roc_auc", perf.roc_auc(), scored),
        ]
    for cls in perf.classes:
        feature = f"@class:{cls}"
        rows += [(feature, m, getattr(perf, m)(cls), n) for m in ("precision", "recall", "f1")]
        if scored and perf.multiclass:
            rows.append((feature, "roc_auc", perf.roc_auc(cls), scored))
    return rows
