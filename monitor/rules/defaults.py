"""The built-in rules that watch every model without a rule of its own (DESIGN.md §6, §9).

They are written as the YAML a user would write and validated by the same `Rule` model, so a
default can be copied into a config file and tuned. What each watches, and why this way:

- ``default-feature-drift`` / ``default-prediction-drift``: ``decision:drift``, the default
  drift decision of ``stats.decision`` (a large effect AND statistical support at the
  window's size), not a fixed PSI threshold. DESIGN.md §5 explains why: a distance threshold
  alone flags noise on small windows, a p-value alone flags negligible shifts on large ones.
  Inputs are the features not starting with ``@``; outputs are ``@prediction`` and
  ``@score``, separate so a message says which one moved.
- ``default-data-quality``: ``decision:quality``, a feature's missing, type-error,
  out-of-range or unseen rate flagged above the reference by a floor and a binomial test.
- ``default-volume-collapse``: fewer than a fifth of the events the reference rate expects
  (a threshold on purpose: the volume decision also flags mere doubling, which is no outage).
  A window with no event at all never closes, so a complete stop shows in ``status``, not here.
- ``default-performance-drop``: accuracy 10 % (warn) / 20 % (critical) below the reference's
  own, or RMSE 10 % / 20 % above it for regression; silent until labels join, and without a
  labelled reference there is nothing to compare with (insufficient).

Defaults notify every configured channel (a model with no rule should still be heard) and
never trigger a retraining: that needs a rule someone wrote. "Of its own" means a configured
rule whose ``models`` globs match the model's name, whatever its versions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from monitor.rules.matching import DRIFT_DECISION, QUALITY_DECISION, matches
from monitor.settings import Rule, Settings

_DEFAULTS: tuple[Mapping[str, Any], ...] = (
    {"name": "default-feature-drift", "metric": DRIFT_DECISION, "features": "[!@]*", "warn": 1},
    {
        "name": "default-prediction-drift",
        "metric": DRIFT_DECISION,
        "features": ["@prediction", "@score"],
        "warn": 1,
    },
    {"name": "default-data-quality", "metric": QUALITY_DECISION, "warn": 1},
    {
        "name": "default-volume-collapse",
        "metric": "volume_ratio",
        "features": "-",
        "segments": "-",
        "direction": "below",
        "critical": 0.2,
    },
    {
        "name": "default-performance-drop",
        "metric": "accuracy",
        "features": "-",
        "direction": "below",
        "relative_to_reference": True,
        "warn": -0.1,
        "critical": -0.2,
    },
    {
        "name": "default-error-rise",
        "metric": "rmse",
        "features": "-",
        "relative_to_reference": True,
        "warn": 0.1,
        "critical": 0.2,
    },
)


def default_rules(channels: Iterable[str] = (), models: Iterable[str] = ("*",)) -> list[Rule]:
    """The built-in rules, notifying ``channels``, scoped to the ``models`` globs."""
    return list(_validated_defaults(tuple(sorted(channels)), tuple(models)))


@functools.lru_cache(maxsize=64)
def _validated_defaults(notify: tuple[str, ...], scope: tuple[str, ...]) -> tuple[Rule, ...]:
    """Validated once per (channels, models): every closed window of a model without rules
    of its own asks for them. Rules are frozen, so the instances can be shared."""
    return tuple(
        Rule.model_validate({**d, "notify": list(notify), "models": list(scope)}) for d in _DEFAULTS
    )


def own_rules(settings: Settings, model: str) -> list[Rule]:
    """The configured rules whose ``models`` globs match ``model``."""
    return [r for r in settings.rules if matches(model, r.models)]


def rules_for(settings: Settings, model: str) -> list[Rule]:
    """The rules evaluated on ``model``'s windows: its own, else the defaults."""
    return own_rules(settings, model) or default_rules(settings.channels)


def effective_rules(settings: Settings) -> list[Rule]:
    """Every rule in force, for ``monitor rules``: the configured ones, then the defaults.

    The defaults are scoped to the configured models that have no rule of their own, or to
    every model when no rule is configured at all. A model known only at run time
    (``unknown_models: accept``) gets the defaults too when no rule matches it: `rules_for`
    decides, and this listing cannot name such models in advance.
    """
    if not settings.rules:
        return default_rules(settings.channels)
    bare = [m.name for m in settings.models if not own_rules(settings, m.name)]
    return [*settings.rules, *(default_rules(settings.channels, bare) if bare else [])]
