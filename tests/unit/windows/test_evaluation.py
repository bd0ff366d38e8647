"""Evaluating a closed window: the profile's cached arrays give the numbers of plain inputs."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from monitor.ingest.events import PredictionEvent
from monitor.reference.columns import NumericProfile
from monitor.reference.profile import ReferenceProfile, build_profile
from monitor.settings import ModelConfig
from monitor.stats.decision import FeatureInputs, NumericInputs, evaluate_window
from monitor.windows.accumulators import NumericAccumulator
from monitor.windows.evaluation import Metric, _inputs, _reference_part, evaluate
from monitor.windows.hashing import event_keys
from monitor.windows.schema import schema_from_reference
from monitor.windows.state import WindowState


def _rows(rng: np.random.Generator, n: int, shift: float) -> list[dict[str, Any]]:
    """Rounded values (ties within and across samples) and a category."""
    x = np.round(rng.normal(shift, 1.0, n), 1).tolist()
    y = rng.integers(0, 4, n).astype(float).tolist()
    c = rng.choice(["a", "b", "c"], n).tolist()
    return [{"x": a, "y": b, "c": k} for a, b, k in zip(x, y, c, strict=True)]


def _window(profile: ReferenceProfile, rows: list[dict[str, Any]]) -> WindowState:
    events = [
        PredictionEvent("m", "1", 0, f"id-{i}", f, i % 2, 0.25, None, {"r": "ab"[i % 2]}, 0, i)
        for i, f in enumerate(rows)
    ]
    keys = event_keys([e.id for e in events], [0] * len(events), [e.offset for e in events])
    schema = schema_from_reference(profile, 1, {})
    return WindowState(None).update(schema, events, keys, ["r"])


def _plain_inputs(name: str, acc: Any, profile: ReferenceProfile) -> FeatureInputs | None:
    """What evaluation passed before profiles cached their arrays: fresh, unsorted copies."""
    inputs = _inputs(name, acc, profile)
    ref = _reference_part(name, profile)
    if not isinstance(inputs, NumericInputs) or not isinstance(ref, NumericProfile):
        return inputs
    assert isinstance(acc, NumericAccumulator)
    return NumericInputs(
        ref_hist=np.asarray(ref.histogram, dtype=np.int64),
        ref_sample=np.asarray(ref.sample, dtype=np.float64),
        ref_std=inputs.ref_std,
        ref_missing_rate=inputs.ref_missing_rate,
        win_hist=np.asarray(acc.histogram, dtype=np.int64),
        win_sample=np.asarray(acc.sample, dtype=np.float64),
        n=acc.count,
        missing=acc.missing,
        type_errors=acc.type_errors,
    )


def bits(metric: Metric) -> tuple[object, ...]:
    """A metric with its value as IEEE 754 bytes, so that equal means equal bit for bit."""
    value = None if metric.value is None else struct.pack("<d", metric.value)
    return (metric.segment, metric.feature, metric.metric, value, metric.n, metric.decision)


def test_evaluate_equals_evaluation_of_plain_inputs() -> None:
    """Every drift and quality row of every slice is exactly that of fresh, unsorted reference
    arrays evaluated feature by feature (`evaluate_window`): caching and sorting the
    reference's sample, and measuring the numeric features together, change no number (to
    the last bit) and no decision."""
    rng = np.random.default_rng(3)
    reference = [{"features": f, "prediction": 0, "score": 0.5} for f in _rows(rng, 3_000, 0.0)]
    profile = build_profile(reference, ModelConfig(name="m"), None, "t")
    decisions = set()
    for shift, size in ((0.0, 400), (0.4, 400), (1.0, 30)):
        state = _window(profile, _rows(rng, size, shift))
        metrics = evaluate(state, profile, min_samples=20, window_seconds=300.0)
        expected = []
        for name in sorted(state.slices):
            piece = state.slices[name]
            plain = {
                n: i
                for n, acc in piece.accumulators.items()
                if (i := _plain_inputs(n, acc, profile))
            }
            rows = evaluate_window(plain, min_samples=20)
            expected += [Metric(name or None, r.feature, r.metric, r.value, r.n, r.decision)
                         for r in rows]  # fmt: skip
        decided = [m for m in metrics if m.decision is not None and m.metric != "volume_ratio"]
        assert decided == expected
        assert [bits(m) for m in decided] == [bits(m) for m in expected]  # to the last bit
        decisions |= {m.decision for m in decided if m.metric == "ks_stat"}
    assert decisions == {"drift", "ok", "insufficient_data"}  # every path was compared
