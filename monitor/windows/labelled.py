"""A partition's share of a window's labelled predictions: performance, label delay, changes.

Labels join their prediction anywhere from seconds to days later; each join adds to the window
of the PREDICTION's event time, in every slice the prediction counted in. The share belongs to
the partition whose record completed the join and is stored beside its offset; all shares of
a window merge into its performance metrics whenever they change, closed window or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import orjson

from monitor.windows.delays import LabelDelayAccumulator
from monitor.windows.performance import ClassificationPerformance, RegressionPerformance

Task = Literal["binary_classification", "multiclass_classification", "regression"]
Performance = ClassificationPerformance | RegressionPerformance


@dataclass(frozen=True, slots=True)
class Join:
    """One label met its prediction: what the model said, the truth, and the label's time."""

    slices: tuple[str, ...]
    prediction: Any
    score: float | None
    scores: dict[str, Any] | None
    label: Any
    delay_s: float


def new_performance(task: Task, positive: str) -> Performance:
    if task == "regression":
        return RegressionPerformance()
    return ClassificationPerformance(positive, multiclass=task == "multiclass_classification")


def binary(value: Any) -> Any:
    """Booleans as 1 / 0, so true/false labels meet the default positive class "1"."""
    return int(value) if isinstance(value, bool) else value


@dataclass(slots=True)
class LabelledSlice:
    """The labelled rows of one slice ('' is the whole model)."""

    performance: Performance
    delays: LabelDelayAccumulator = field(default_factory=LabelDelayAccumulator)

    def update(self, joins: Sequence[Join]) -> None:
        perf = self.performance
        if isinstance(perf, RegressionPerformance):
            perf.update([j.label for j in joins], [j.prediction for j in joins])
        elif perf.multiclass:
            perf.update(
                [j.label for j in joins],
                [j.prediction for j in joins],
                class_scores=[j.scores for j in joins],
            )
        else:
            perf.update(
                [binary(j.label) for j in joins],
                [binary(j.prediction) for j in joins],
                scores=[j.score for j in joins],
            )
        self.delays.update([max(j.delay_s, 0.0) for j in joins])

    def merge(self, other: LabelledSlice) -> None:
        self.performance.merge(other.performance)  # type: ignore[arg-type]
        self.delays.merge(other.delays)


@dataclass(slots=True)
class LabelledState:
    """Per slice, the joined labels of a window's share; ``error_changes``: detector firings."""

    task: Task
    positive: str = "1"
    slices: dict[str, LabelledSlice] = field(default_factory=dict)
    error_changes: int = 0

    @property
    def labelled(self) -> int:
        """Joins of the whole model (each prediction joins at most once)."""
        whole = self.slices.get("")
        return 0 if whole is None else whole.delays.n

    def update(self, joins: Sequence[Join]) -> Self:
        by_slice: dict[str, list[Join]] = {}
        for join in joins:
            for name in join.slices:
                by_slice.setdefault(name, []).append(join)
        for name, rows in by_slice.items():
            piece = self.slices.get(name)
            if piece is None:
                piece = self.slices[name] = LabelledSlice(new_performance(self.task, self.positive))
            piece.update(rows)
        return self

    def merge(self, other: LabelledState) -> Self:
        self.error_changes += other.error_changes
        for name, piece in other.slices.items():
            mine = self.slices.get(name)
            if mine is None:
                self.slices[name] = LabelledSlice(piece.performance.copy(), piece.delays.copy())
            else:
                mine.merge(piece)
        return self

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "task": self.task,
                "positive": self.positive,
                "error_changes": self.error_changes,
                "slices": {
                    name: {
                        "performance": piece.performance.to_state(),
                        "delays": piece.delays.to_state(),
                    }
                    for name, piece in sorted(self.slices.items())
                },
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> LabelledState:
        data = orjson.loads(raw)
        state = cls(data["task"], data["positive"], error_changes=data["error_changes"])
        for name, piece in data["slices"].items():
            perf: Performance
            if piece["performance"]["kind"] == "regression_performance":
                perf = RegressionPerformance.from_state(piece["performance"])
            else:
                perf = ClassificationPerformance.from_state(piece["performance"])
            state.slices[name] = LabelledSlice(
                perf, LabelDelayAccumulator.from_state(piece["delays"])
            )
        return state
