"""What a window accumulates per feature, fixed when the window opens.

With a reference, the reference decides: each feature's type, its numeric bin edges, its known
categories, and the score and prediction layouts, so that the window's histograms line up with
the reference's bin for bin. Without one, a window still counts and quality-checks: features
typed by the config's overrides or, failing that, by the values of the batch that first shows
them, with no edges (no histograms) and no known categories.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from monitor.reference.columns import CategoricalProfile, NumericProfile
from monitor.reference.profile import ReferenceProfile
from monitor.windows.accumulators import default_score_edges
from monitor.windows.numeric import checked_edges

Kind = Literal["numeric", "categorical", "boolean"]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature's accumulator layout: its kind and, with a reference, edges or categories."""

    kind: Kind
    edges: NDArray[np.float64] | None = None
    known: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class WindowSchema:
    """Every layout a window of one (model, version) needs; ``revision`` None: no reference."""

    revision: int | None
    features: Mapping[str, FeatureSpec] = field(default_factory=dict)
    score: FeatureSpec = field(
        default_factory=lambda: FeatureSpec("numeric", checked_edges(default_score_edges()))
    )
    prediction: FeatureSpec = field(default_factory=lambda: FeatureSpec("categorical"))
    overrides: Mapping[str, Kind] = field(default_factory=dict)

    def spec_for(self, name: str, infer: Callable[[], Kind]) -> FeatureSpec:
        """The layout of a feature; one the reference never saw gets its override or, only
        then computed, ``infer()``."""
        spec = self.features.get(name)
        if spec is not None:
            return spec
        kind = self.overrides.get(name)
        return FeatureSpec(kind if kind is not None else infer())


def _spec(profile: NumericProfile | CategoricalProfile) -> FeatureSpec:
    if isinstance(profile, NumericProfile):
        # the process-wide checked array: accumulators over it skip validating it again
        return FeatureSpec("numeric", checked_edges(profile.edges) if profile.edges else None)
    return FeatureSpec(profile.type, known=frozenset(profile.counts))


def schema_from_reference(
    profile: ReferenceProfile | None, revision: int | None, overrides: Mapping[str, Kind]
) -> WindowSchema:
    """The window layout a reference implies (or the reference-less one for None)."""
    if profile is None:
        return WindowSchema(None, overrides=overrides)
    score = _spec(profile.score) if profile.score is not None else WindowSchema(None).score
    return WindowSchema(
        revision,
        {name: _spec(p) for name, p in profile.features.items()},
        score,
        _spec(profile.prediction),
        overrides,
    )
