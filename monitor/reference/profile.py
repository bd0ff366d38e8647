"""Reference profiles: what a model's inputs and outputs looked like while it was trusted.

Drift, quality, volume and relative-to-reference rules compare each closed window with this
profile; columns.py holds the per-column conventions the window accumulators follow.

Rows use the event field names (DESIGN.md §3 and the model's ``fields`` dotted paths), nested
or flat. Nested: the features are the object at the ``features`` path, as in an event. Flat
(CSV and Parquet columns cannot nest): a row without the ``features`` path has one column per
feature, namely every column other than id, ts, prediction, score, scores, label, model,
version and segment (or the model's own paths for them, or the last part of those paths);
a flat column ``features.amount`` is the feature ``amount``. Other fields are looked up by
their dotted path, then by a column literally named so, then by the path's last part.

Building collects the rows into columns first and then profiles each column with numpy: a
reference of 100k rows is mostly one pass of dictionary lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

import orjson

from monitor.errors import MonitorError
from monitor.ingest.mapping import MISSING, compile_path
from monitor.reference.columns import (
    CategoricalProfile,
    Distribution,
    NumericProfile,
    baseline,
    categorical_profile,
    distribution_from_dict,
    event_rate,
    numeric_profile,
)
from monitor.settings import ModelConfig, ModelFields
from monitor.windows.columns import infer_type, is_missing

__all__ = [
    "CategoricalProfile",
    "NumericProfile",
    "ReferenceProfile",
    "WarmupCollector",
    "build_profile",
]

FORMAT: Final = 1
RESERVED: Final = frozenset(
    ("id", "ts", "prediction", "score", "scores", "label", "model", "version", "segment")
)


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Everything a window is compared with; the store keeps it as ``to_json`` bytes."""

    model: str
    version: str | None
    rows: int
    features: dict[str, NumericProfile | CategoricalProfile]
    prediction: NumericProfile | CategoricalProfile
    score: NumericProfile | None
    label: NumericProfile | CategoricalProfile | None
    baseline: dict[str, float]
    rate_per_second: float | None
    created_from: str

    def to_json(self) -> bytes:
        """Compact JSON with a ``format`` number, so a later layout can still read this one."""
        doc = {"format": FORMAT} | {f.name: getattr(self, f.name) for f in fields(self)}
        return orjson.dumps(doc)

    @classmethod
    def from_json(cls, data: bytes) -> ReferenceProfile:
        """The profile ``to_json`` wrote, equal to the original; MonitorError for anything else."""
        try:
            doc = orjson.loads(data)
            if doc["format"] != FORMAT:
                raise ValueError(f"unknown format {doc['format']!r}")
            label, rate = doc["label"], doc["rate_per_second"]
            profile = cls(
                model=str(doc["model"]),
                version=None if doc["version"] is None else str(doc["version"]),
                rows=int(doc["rows"]),
                features={str(k): distribution_from_dict(v) for k, v in doc["features"].items()},
                prediction=distribution_from_dict(doc["prediction"]),
                score=None if doc["score"] is None else _numeric(doc["score"]),
                label=None if label is None else distribution_from_dict(label),
                baseline={str(k): float(v) for k, v in doc["baseline"].items()},
                rate_per_second=None if rate is None else float(rate),
                created_from=str(doc["created_from"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MonitorError(f"not a reference profile: {exc!r}") from exc
        return profile


def _numeric(doc: Mapping[str, Any]) -> NumericProfile:
    profile = distribution_from_dict(doc)
    if not isinstance(profile, NumericProfile):
        raise ValueError("the score distribution is not numeric")
    return profile


def _field(path: str) -> Callable[[Mapping[str, Any]], Any]:
    nested, leaf = compile_path(path), path.rsplit(".", 1)[-1]
    if leaf == path:
        return nested

    def get(row: Mapping[str, Any]) -> Any:
        value = nested(row)
        if value is MISSING:
            value = row.get(path, MISSING)
        return row.get(leaf) if value is MISSING else value

    return get


class _RowShape:
    """Reads nested or flat rows (module docstring) with one model's field paths."""

    def __init__(self, paths: ModelFields) -> None:
        own = [getattr(paths, name) for name in RESERVED if name in ModelFields.model_fields]
        self.reserved = RESERVED | set(own) | {p.rsplit(".", 1)[-1] for p in own}
        self.nested = compile_path(paths.features)
        self.prefix = paths.features + "."
        self.prediction, self.score = _field(paths.prediction), _field(paths.score)
        self.label, self.ts = _field(paths.label), _field(paths.ts)

    def features(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        nested = self.nested(row)
        if isinstance(nested, Mapping):
            return nested
        if nested is not MISSING:
            return {}  # features: null, or not an object: every feature is missing
        reserved, prefix = self.reserved, self.prefix
        return {k.removeprefix(prefix): v for k, v in row.items() if k not in reserved}


def _present(value: Any) -> Any:
    return None if value is MISSING else value


@dataclass
class _Columns:
    """Rows turned into columns; a feature absent from a row is None in its column."""

    rows: int = 0
    features: dict[str, list[Any]] = field(default_factory=dict)
    prediction: list[Any] = field(default_factory=list)
    score: list[Any] = field(default_factory=list)
    label: list[Any] = field(default_factory=list)
    ts: list[Any] = field(default_factory=list)
    _same: tuple[tuple[str, ...], list[list[Any]]] = ((), [])

    def add(
        self, features: Mapping[str, Any], prediction: Any, score: Any, label: Any, ts: Any
    ) -> None:
        i, names = self.rows, tuple(features)
        if names == self._same[0]:  # fast path: the same features as the row before
            for column, value in zip(self._same[1], features.values(), strict=True):
                column.append(value)
        else:
            self._add_features(features, i)
            if len(names) == len(self.features):  # every column is now i + 1 long
                self._same = (names, [self.features[name] for name in names])
            else:
                self._same = ((), [])
        self.prediction.append(_present(prediction))
        self.score.append(_present(score))
        self.label.append(_present(label))
        self.ts.append(_present(ts))
        self.rows = i + 1

    def _add_features(self, features: Mapping[str, Any], i: int) -> None:
        for name, value in features.items():
            column = self.features.get(name)
            if column is None:
                column = self.features[name] = [None] * i
            elif len(column) < i:
                column.extend([None] * (i - len(column)))
            column.append(value)

    def profile(
        self, model: ModelConfig, version: str | None, source: str, bins: int
    ) -> ReferenceProfile:
        if bins < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
        if self.rows == 0:
            raise MonitorError(f"{source}: no rows to build a reference profile of {model.name}")
        for name in model.features:
            self.features.setdefault(name, [])
        for column in self.features.values():
            column.extend([None] * (self.rows - len(column)))
        regression = model.task == "regression"
        has_score = not all(map(is_missing, self.score))
        has_label = not all(map(is_missing, self.label))
        return ReferenceProfile(
            model=model.name,
            version=version,
            rows=self.rows,
            features={
                name: _feature(values, model.features.get(name) or infer_type(values), bins)
                for name, values in sorted(self.features.items())
            },
            prediction=_outcome(self.prediction, regression, bins),
            score=numeric_profile(self.score, bins, unit_scores=True) if has_score else None,
            label=_outcome(self.label, regression, bins) if has_label else None,
            baseline=baseline(self.prediction, self.label, regression) if has_label else {},
            rate_per_second=event_rate(self.ts, self.rows),
            created_from=source,
        )


def _feature(values: Sequence[Any], kind: str, bins: int) -> Distribution:
    if kind == "numeric":
        return numeric_profile(values, bins)
    return categorical_profile(values, boolean=kind == "boolean")


def _outcome(values: Sequence[Any], regression: bool, bins: int) -> Distribution:
    return numeric_profile(values, bins) if regression else categorical_profile(values)


def build_profile(
    rows: Iterable[Mapping[str, Any]],
    model: ModelConfig,
    version: str | None,
    source: str,
    bins: int = 10,
) -> ReferenceProfile:
    """The reference profile of ``rows`` (nested or flat, see the module docstring).

    Feature types: ``model.features`` overrides win, else :func:`infer_type`; a feature named
    only in the overrides is profiled as always missing. ``source`` is kept as ``created_from``.
    """
    shape, columns = _RowShape(model.fields), _Columns()
    for row in rows:
        features = shape.features(row)
        columns.add(
            features, shape.prediction(row), shape.score(row), shape.label(row), shape.ts(row)
        )
    return columns.profile(model, version, source, bins)


class WarmupCollector:
    """The first ``size`` prediction events of a model (``reference: {warmup: N}``).

    Only those events are kept, as columns, so memory is bounded by ``size``; the profile is
    the one :func:`build_profile` gives for the same events (without labels).
    """

    def __init__(
        self, model: ModelConfig, size: int, version: str | None = None, bins: int = 10
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.model, self.size, self.version, self.bins = model, size, version, bins
        self._columns = _Columns()

    @property
    def collected(self) -> int:
        """Events kept so far (at most ``size``)."""
        return self._columns.rows

    @property
    def ready(self) -> bool:
        """Whether ``size`` events are in and :meth:`build` describes the full warm-up."""
        return self._columns.rows >= self.size

    def add(
        self,
        features: Sequence[Mapping[str, Any]],
        predictions: Sequence[Any],
        scores: Sequence[Any],
        times: Sequence[Any] | None = None,
    ) -> int:
        """Keep a batch's events until ``size`` are in; returns how many were kept.

        ``times`` (event times: epoch seconds or milliseconds, ISO strings) give the
        profile's ``rate_per_second``; without them it is None.
        """
        if not len(features) == len(predictions) == len(scores):
            raise ValueError("features, predictions and scores must have the same length")
        if times is not None and len(times) != len(features):
            raise ValueError("times must have the same length as features")
        kept = min(len(features), self.size - self._columns.rows)
        for i in range(kept):
            ts = None if times is None else times[i]
            self._columns.add(features[i], predictions[i], scores[i], None, ts)
        return kept

    def build(self, source: str | None = None) -> ReferenceProfile:
        """The profile of the events kept so far (``created_from`` defaults to warmup:N)."""
        source = source or f"warmup:{self.size}"
        return self._columns.profile(self.model, self.version, source, self.bins)
