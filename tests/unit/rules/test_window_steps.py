"""`apply_window` leaves out what cannot change an alert, and changes nothing else.

It asks `observe` for the observations of alerts already stored, and of the others only those
that are sufficient and beyond a threshold; the rest would leave an alert never seen inactive,
which is not stored. Checked against stepping every observation, window after window, on
random windows of many rules (scopes, relative_to_reference, clear, for, min_samples, derived
decisions, insufficient data, replays).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.rules.alerts import WindowAlerts, apply_window
from monitor.rules.defaults import default_rules
from monitor.rules.lifecycle import AlertState, Transition, step
from monitor.rules.matching import AlertKey, observe
from monitor.settings import Rule
from monitor.stats.names import REFERENCE
from monitor.windows.evaluation import Metric

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SIZE = timedelta(minutes=5)
FEATURES = ("f0", "f1", "f2", "@prediction", "@score", "cat")
SEGMENTS = (None, "seg=x", "seg=y")
FAMILY = (("psi", 0.02, 0.4), ("js", 0.01, 0.2), ("ks_pvalue", 0.5, 1e-4))  # metric, ok, drifted

CUSTOM: tuple[dict[str, Any], ...] = (
    {"name": "psi", "metric": "psi", "features": "f*", "warn": 0.1, "critical": 0.3,
     "clear": 0.05, "for": 2},
    {"name": "psi-any", "metric": "psi", "warn": 0.2, "resolve_after": 1},
    {"name": "drift", "metric": "decision:drift", "segments": "seg=*", "warn": 1},
    {"name": "quality", "metric": "decision:quality", "features": ["f?", "-"], "warn": 1},
    {"name": "calm", "metric": "decision:drift", "direction": "below", "warn": 0.5},
    {"name": "acc", "metric": "accuracy", "segments": ["-", "seg=x"], "direction": "below",
     "relative_to_reference": True, "warn": -0.1, "critical": -0.2, "clear": -0.05,
     "min_samples": 50},
    {"name": "vol", "metric": "volume_ratio", "features": "-", "direction": "below",
     "warn": 0.5, "critical": 0.2},
    {"name": "ks", "metric": "ks_pvalue", "versions": "v1", "features": ["f[0-1]", "@score"],
     "direction": "below", "warn": 0.01, "critical": 0.005, "clear": 0.1},
    {"name": "other-model", "metric": "psi", "models": "other", "warn": 0.1},
)  # fmt: skip


def _value(rng: random.Random, value: float) -> float | None:
    return rng.choice([value] * 12 + [None, float("nan"), float("inf")])


def window_rows(rng: random.Random, drifting: float) -> list[Metric]:
    """One window's rows: drift families and quality rates per feature, model-level rows."""
    rows: list[Metric] = []
    for segment in SEGMENTS:
        for feature in FEATURES:
            bad = rng.random() < drifting
            n = rng.choice([5, 60, 300, 2_000])
            for metric, ok, worse in FAMILY:
                decision = rng.choice(["ok", "drift" if bad else "ok", "insufficient_data", None])
                value = _value(rng, (worse if bad else ok) * rng.uniform(0.5, 1.5))
                rows.append(Metric(segment, feature, metric, value, n, decision))
            for metric in ("missing_rate", "unseen_rate"):
                decision = rng.choice(["ok", "quality" if bad else "ok", "insufficient_data", None])
                rows.append(Metric(segment, feature, metric, _value(rng, 0.1), n, decision))
        volume = rng.choice([1.0, 0.4, 0.1, 0.0])
        rows.append(Metric(segment, None, "volume_ratio", _value(rng, volume), 100, None))
        accuracy = _value(rng, rng.uniform(0.6, 1.0))
        decided = rng.choice([None, "insufficient_data"])
        rows.append(Metric(segment, None, "accuracy", accuracy, rng.choice([0, 40, 400]), decided))
    reference = rng.choice([0.9, 0.0, None])
    if reference is not None:
        rows.append(Metric(None, REFERENCE, "accuracy", reference, 20_000, None))
    rng.shuffle(rows)
    return rows


def every_observation_stepped(
    rules: Sequence[Rule],
    states: Mapping[AlertKey, AlertState],
    rows: list[Metric],
    start: datetime,
    now: datetime,
) -> WindowAlerts:
    """`apply_window` as it was: step every observation of the window."""
    changed: list[AlertState] = []
    transitions: list[Transition] = []
    for observation in observe(rules, rows, model="churn", version="v1", start=start,
                               end=start + SIZE, min_samples=100):  # fmt: skip
        before = states.get(observation.key)
        after, happened = step(before, observation)
        if any(t.kind == "firing" for t in happened):
            after = replace(after, notified_at=now)
        if after != before and (before is not None or after.state != "inactive"):
            changed.append(after)
        transitions += happened
    return WindowAlerts(changed, transitions)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("which", ["custom", "defaults"])
def test_apply_window_equals_stepping_every_observation(seed: int, which: str) -> None:
    rng = random.Random(seed)
    rules = [Rule.model_validate(r) for r in CUSTOM] if which == "custom" else default_rules()
    states: dict[AlertKey, AlertState] = {}
    drifting = 0.0
    applied = 0
    for i in range(30):
        drifting = min(1.0, max(0.0, drifting + rng.uniform(-0.3, 0.3)))
        start = T0 + rng.choice([i, i, i, max(0, i - 2)]) * SIZE  # some windows come again
        now = T0 + timedelta(days=1, minutes=i)
        rows = window_rows(rng, drifting)
        subset = list(rules) if rng.random() < 0.8 else rules[::2]  # a rule set of its own
        expected = every_observation_stepped(subset, states, rows, start, now)
        found = apply_window(subset, states, rows, model="churn", version="v1", start=start,
                             end=start + SIZE, min_samples=100, now=now)  # fmt: skip
        assert found == expected
        states.update((s.key, s) for s in found.changed)
        applied += len(found.transitions)
    assert applied  # the random windows did fire and resolve alerts


def test_observe_without_known_keeps_quiet_observations() -> None:
    rows = [Metric(None, "age", "psi", 0.01, 1_000, None)]
    rule = Rule.model_validate({"name": "r", "metric": "psi", "warn": 0.1})
    kw: dict[str, Any] = {"model": "m", "version": "v", "start": T0, "end": T0 + SIZE}
    assert len(observe([rule], rows, min_samples=1, **kw)) == 1
    assert observe([rule], rows, min_samples=1, known={}, **kw) == []
    key = AlertKey("r", "m", "v", None, "age")
    assert observe([rule], rows, min_samples=1, known={key: None}, **kw) == observe(
        [rule], rows, min_samples=1, **kw
    )
    insufficient = observe([rule], rows, min_samples=10_000, **kw)
    assert [o.insufficient for o in insufficient] == [True]
    assert observe([rule], rows, min_samples=10_000, known={}, **kw) == []
