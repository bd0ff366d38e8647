"""Field paths: where in a user's event JSON each field of the event contract lives.

Paths are dotted (``payload.meta.model``) and compiled once into getters, so the hot path
does dictionary lookups only. A path that leads nowhere yields ``MISSING``, which is not
``None``: an explicit JSON null is a value (a missing feature value, say), an absent key is
not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from monitor.settings import ModelFields


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

Getter = Callable[[Mapping[str, Any]], Any]


def compile_path(path: str) -> Getter:
    """A getter for the dotted ``path``; it returns MISSING when any step is absent."""
    keys = tuple(path.split("."))
    if len(keys) == 1:
        key = keys[0]
        return lambda doc: doc.get(key, MISSING)

    def get(doc: Mapping[str, Any]) -> Any:
        value: Any = doc
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return MISSING
            value = value[key]
        return value

    return get


PredictionFields = tuple[Any, Any, Any, Any, Any, Any, Any]
"""A prediction's ts, id, features, prediction, score, scores and segment, MISSING if absent."""


@dataclass(frozen=True, slots=True)
class FieldGetters:
    """The compiled getters of one model's ``fields`` config: labels read theirs one by one,
    predictions all of theirs at once (``prediction_fields``)."""

    id: Getter
    ts: Getter
    prediction: Getter
    score: Getter
    scores: Getter
    label: Getter
    prediction_fields: Callable[[Mapping[str, Any]], PredictionFields]

    @classmethod
    def from_config(cls, fields: ModelFields) -> FieldGetters:
        order = ("ts", "id", "features", "prediction", "score", "scores", "segment")
        paths = [getattr(fields, name) for name in order]
        return cls(
            id=compile_path(fields.id),
            ts=compile_path(fields.ts),
            prediction=compile_path(fields.prediction),
            score=compile_path(fields.score),
            scores=compile_path(fields.scores),
            label=compile_path(fields.label),
            prediction_fields=_prediction_fields(*paths),
        )


def _prediction_fields(*paths: str) -> Callable[[Mapping[str, Any]], PredictionFields]:
    """All of a prediction's fields in one call: the decoder's hot path makes one Python call
    per event instead of seven. Top-level keys (the default mapping) are plain ``dict.get``s."""
    if any("." in path for path in paths):
        ts, id_, features, prediction, score, scores, segment = map(compile_path, paths)
        return lambda doc: (
            ts(doc), id_(doc), features(doc), prediction(doc), score(doc), scores(doc), segment(doc)
        )  # fmt: skip
    k_ts, k_id, k_features, k_prediction, k_score, k_scores, k_segment = paths
    return lambda doc: (
        doc.get(k_ts, MISSING), doc.get(k_id, MISSING), doc.get(k_features, MISSING),
        doc.get(k_prediction, MISSING), doc.get(k_score, MISSING),
        doc.get(k_scores, MISSING), doc.get(k_segment, MISSING),
    )  # fmt: skip
