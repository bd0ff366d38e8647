"""Method name → function, the feature types it applies to, and its default decision.

Rules, the CLI and the docs name statistics by their stored metric names (DESIGN §5); this
table is where those names meet the functions, so a rule on a metric that cannot apply to a
feature type, or on a metric that does not exist, is refused by name instead of silently
matching nothing. The thresholds here are the ones `monitor.stats.decision` applies (same
constants), offered as defaults to rules that name a metric without thresholds.

The table is an immutable constant built from functions and numbers only: nothing is
registered or created at import time, and nothing can register into it later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from monitor.errors import ConfigError
from monitor.stats import decision as d
from monitor.stats import drift, quality

FeatureType = Literal["numeric", "categorical", "boolean"]
Family = Literal["drift", "quality"]

NUMERIC: frozenset[FeatureType] = frozenset({"numeric"})
CATEGORICAL: frozenset[FeatureType] = frozenset({"categorical", "boolean"})
ALL_TYPES: frozenset[FeatureType] = NUMERIC | CATEGORICAL
MODEL_LEVEL: frozenset[FeatureType] = frozenset()


@dataclass(frozen=True, slots=True)
class Method:
    """One statistic: how it is computed, where it applies, and when it flags by default.

    ``above``/``below``: by default a value past ``above`` or under ``below`` is flagged;
    ``relative_to_reference``: those are offsets from the reference's own rate.
    ``decision`` says in words how the default decision reads the metric, because for drift
    no single threshold decides alone (see `monitor.stats.decision`).
    """

    name: str
    family: Family
    function: Callable[..., Any]
    feature_types: frozenset[FeatureType]
    decision: str
    above: float | None = None
    below: float | None = None
    relative_to_reference: bool = False

    def applies_to(self, feature_type: FeatureType | None) -> bool:
        """Whether the metric exists for a feature of this type (None: model-level)."""
        if feature_type is None:
            return not self.feature_types
        return feature_type in self.feature_types


_JOINT = "joint drift rule: effect >= {0} and psi above its null quantile and BH p < {1}"

_METHODS = (
    Method("psi", "drift", drift.psi, ALL_TYPES,
           _JOINT.format(d.EFFECT_PSI, d.DRIFT_ALPHA), above=d.EFFECT_PSI),
    Method("js", "drift", drift.js_distance, ALL_TYPES,
           "effect part of the categorical drift rule", above=d.EFFECT_JS),
    Method("wasserstein", "drift", drift.wasserstein_normalized, NUMERIC,
           "effect part of the numeric drift rule", above=d.EFFECT_WASSERSTEIN),
    Method("ks_stat", "drift", drift.ks, NUMERIC,
           "reported; the decision reads ks_pvalue"),
    Method("ks_pvalue", "drift", drift.ks, NUMERIC,
           "support part of the numeric drift rule, BH-adjusted", below=d.DRIFT_ALPHA),
    Method("chi2_pvalue", "drift", drift.chi2_pvalue, CATEGORICAL,
           "support part of the categorical drift rule, BH-adjusted", below=d.DRIFT_ALPHA),
    Method("missing_rate", "quality", quality.missing_rate, ALL_TYPES,
           "above the reference by the floor, binomial p < alpha", above=d.MISSING_FLOOR,
           relative_to_reference=True),
    Method("type_error_rate", "quality", quality.type_error_rate, ALL_TYPES,
           "above the reference by the floor, binomial p < alpha", above=d.RATE_FLOOR,
           relative_to_reference=True),
    Method("out_of_range_rate", "quality", quality.out_of_range_rate, NUMERIC,
           "above the reference by the floor, binomial p < alpha", above=d.RATE_FLOOR,
           relative_to_reference=True),
    Method("unseen_rate", "quality", quality.unseen_rate, CATEGORICAL,
           "above the reference by the floor, binomial p < alpha", above=d.RATE_FLOOR,
           relative_to_reference=True),
    Method("volume_ratio", "quality", quality.volume_ratio, MODEL_LEVEL,
           "outside [low, high] once min_samples events are expected",
           above=d.VOLUME_HIGH, below=d.VOLUME_LOW),
)  # fmt: skip

METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in _METHODS})
"""Every method by its stored metric name (DESIGN §5)."""


def get_method(name: str) -> Method:
    """The method stored under ``name``; an unknown name is a configuration error."""
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise ConfigError(f"unknown statistic {name!r}; known: {known}") from None


def methods_for(feature_type: FeatureType | None, family: Family | None = None) -> list[Method]:
    """Methods that apply to a feature type (None: model-level), optionally of one family."""
    return [
        m for m in _METHODS if m.applies_to(feature_type) and (family is None or m.family == family)
    ]
