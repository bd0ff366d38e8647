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


@dataclass(frozen=True, slots=True)
class FieldGetters:
    """The compiled getters of one model's ``fields`` config."""

    id: Getter
    ts: Getter
    features: Getter
    prediction: Getter
    score: Getter
    scores: Getter
    label: Getter
    segment: Getter

    @classmethod
    def from_config(cls, fields: ModelFields) -> FieldGetters:
        return cls(
            id=compile_path(fields.id),
            ts=compile_path(fields.ts),
            features=compile_path(fields.features),
            prediction=compile_path(fields.prediction),
            score=compile_path(fields.score),
            scores=compile_path(fields.scores),
            label=compile_path(fields.label),
            segment=compile_path(fields.segment),
        )
