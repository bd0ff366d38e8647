"""Rules against a closed window: scopes, severities, hysteresis, sufficiency, defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.rules.defaults import default_rules, effective_rules, rules_for
from monitor.rules.matching import (
    DRIFT_DECISION,
    QUALITY_DECISION,
    SCOPE_CACHE,
    Observation,
    _in_scope,
    matches,
    observe,
)
from monitor.settings import Rule, Settings
from monitor.stats.names import REFERENCE
from monitor.windows.evaluation import Metric

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
END = START + timedelta(minutes=5)


def rule(**fields: Any) -> Rule:
    """A validated rule, ``psi`` above warn 0.1 unless told otherwise."""
    return Rule.model_validate({"name": "r", "metric": "psi", "warn": 0.1, **fields})


def row(
    metric: str = "psi",
    value: float | None = 0.3,
    *,
    feature: str | None = "age",
    segment: str | None = None,
    n: int = 1_000,
    decision: str | None = None,
) -> Metric:
    """One metric row of the window."""
    return Metric(segment, feature, metric, value, n, decision)


def run(
    rules: list[Rule], rows: list[Metric], *, model: str = "churn", **kw: Any
) -> list[Observation]:
    """Observations of one window of churn v1 (min_samples 200 unless told)."""
    kw.setdefault("min_samples", 200)
    return observe(rules, rows, model=model, version="v1", start=START, end=END, **kw)


def only(observations: list[Observation]) -> Observation:
    """The single observation a case expects."""
    assert len(observations) == 1, observations
    return observations[0]


# --- globs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "patterns", "expected"),
    [
        (None, ["*"], True),
        ("x\ny", ["-", "*"], True),
        (None, ["-"], True),
        (None, ["device=*"], False),
        (None, ["[!@]*"], False),
        ("device=mobile", ["device=*"], True),
        ("device=mobile", ["-"], False),
        ("age", ["[!@]*"], True),
        ("@score", ["[!@]*"], False),
        ("@score", ["@prediction", "@score"], True),
        ("Age", ["age"], False),
    ],
)
def test_scope_globs(value: str | None, patterns: list[str], expected: bool) -> None:
    """None (whole model, model level) matches '*' and '-'; names match case-sensitive globs."""
    assert matches(value, patterns) is expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 3),
        ({"models": "fraud"}, 0),
        ({"models": "ch*", "versions": "v2"}, 0),
        ({"versions": ["v1", "v2"]}, 3),
        ({"segments": "-"}, 2),
        ({"segments": "device=*"}, 1),
        ({"features": "income"}, 1),
        ({"metric": "js"}, 0),
    ],
)
def test_rule_scope_selects_rows(fields: dict[str, Any], expected: int) -> None:
    """A rule observes exactly the rows its model, version, segment and feature globs take."""
    rows = [row(), row(feature="income"), row(segment="device=mobile"), row("ks_stat")]
    assert len(run([rule(**fields)], rows)) == expected


def test_reference_rows_are_never_observed() -> None:
    """The reference's own baseline rows are no observation of the window."""
    rows = [row("accuracy", 0.9, feature=REFERENCE, n=10_000)]
    assert run([rule(metric="accuracy", direction="below", warn=0.95)], rows) == []


# --- severities and hysteresis ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "value", "firing", "expected"),
    [
        ({"warn": 0.1, "critical": 0.25}, 0.05, False, None),
        ({"warn": 0.1, "critical": 0.25}, 0.1, False, "warn"),
        ({"warn": 0.1, "critical": 0.25}, 0.2, False, "warn"),
        ({"warn": 0.1, "critical": 0.25}, 0.25, False, "critical"),
        ({"warn": None, "critical": 0.25}, 0.2, False, None),
        ({"direction": "below", "warn": 0.9, "critical": 0.8}, 0.95, False, None),
        ({"direction": "below", "warn": 0.9, "critical": 0.8}, 0.9, False, "warn"),
        ({"direction": "below", "warn": 0.9, "critical": 0.8}, 0.7, False, "critical"),
        # fire at PSI >= 0.25, clear below 0.15
        ({"warn": None, "critical": 0.25, "clear": 0.15}, 0.2, False, None),
        ({"warn": None, "critical": 0.25, "clear": 0.15}, 0.2, True, "critical"),
        ({"warn": None, "critical": 0.25, "clear": 0.15}, 0.15, True, "critical"),
        ({"warn": None, "critical": 0.25, "clear": 0.15}, 0.149, True, None),
        ({"warn": 0.1, "critical": 0.25, "clear": 0.05}, 0.07, True, "warn"),
        ({"warn": 0.1, "critical": 0.25, "clear": 0.05}, 0.3, True, "critical"),
        ({"warn": 0.1, "critical": 0.25}, 0.07, True, None),
        ({"direction": "below", "warn": 0.8, "clear": 0.85}, 0.84, True, "warn"),
        ({"direction": "below", "warn": 0.8, "clear": 0.85}, 0.86, True, None),
    ],
)
def test_severity_levels(
    fields: dict[str, Any], value: float, firing: bool, expected: str | None
) -> None:
    """Thresholds include their value; `clear` holds only an alert that is already firing."""
    obs = only(run([rule(**fields)], [row(value=value)]))
    assert obs.level(firing=firing) == expected
    if not firing:
        assert obs.severity == expected


def test_threshold_per_severity() -> None:
    """An observation names the threshold behind each severity, for the message."""
    obs = only(run([rule(warn=0.1, critical=0.25)], [row(value=0.3)]))
    assert (obs.threshold("warn"), obs.threshold("critical")) == (0.1, 0.25)


# --- sufficiency ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "metric_row", "insufficient"),
    [
        ({}, row(n=200), False),
        ({}, row(n=199), True),
        ({"min_samples": 50}, row(n=60), False),
        ({"min_samples": 5_000}, row(n=1_000), True),
        ({}, row(decision="insufficient_data"), True),
        ({}, row(value=None), True),
        ({}, row(value=float("nan")), True),
        # counts and detector flags carry no sampling error
        ({"metric": "events", "direction": "below", "warn": 100}, row("events", 40, n=40), False),
        ({"metric": "score_change", "warn": 1}, row("score_change", 1.0, n=30), False),
        # performance is sized by min_labels upstream: its decision says so
        ({"metric": "accuracy", "direction": "below", "warn": 0.8}, row("accuracy", n=150), False),
        (
            {"metric": "accuracy", "direction": "below", "warn": 0.8},
            row("accuracy", n=50, decision="insufficient_data"),
            True,
        ),
        # volume_ratio is sized by the events expected: a collapse is not a small sample
        (
            {"metric": "volume_ratio", "direction": "below", "warn": 0.2},
            row("volume_ratio", 0.05, feature=None, n=50),
            False,
        ),
        (
            {"metric": "volume_ratio", "direction": "below", "warn": 0.2},
            row("volume_ratio", 0.05, feature=None, n=5),
            True,
        ),
    ],
)
def test_insufficient_observations(
    fields: dict[str, Any], metric_row: Metric, insufficient: bool
) -> None:
    """Too few samples (rule's, else model's), insufficient_data or no value: no verdict."""
    obs = only(run([rule(**fields)], [metric_row]))
    assert obs.insufficient is insufficient
    if insufficient:
        assert obs.level(firing=False) is None and obs.level(firing=True) is None


# --- relative to the reference ----------------------------------------------------------------

ACCURACY_DROP = {
    "metric": "accuracy",
    "features": "-",
    "direction": "below",
    "relative_to_reference": True,
    "warn": -0.1,
    "critical": -0.2,
}


@pytest.mark.parametrize(
    ("accuracy", "reference", "value", "severity"),
    [
        (0.88, 0.9, -0.0222, None),
        (0.81, 0.9, -0.1, "warn"),
        (0.7, 0.9, -0.2222, "critical"),
        (0.95, 0.9, 0.0556, None),
    ],
)
def test_relative_to_the_reference_rows(
    accuracy: float, reference: float, value: float, severity: str | None
) -> None:
    """Thresholds compare the relative change against the window's @reference baseline."""
    rows = [row("accuracy", accuracy, feature=None), row("accuracy", reference, feature=REFERENCE)]
    obs = only(run([rule(**ACCURACY_DROP)], rows))
    assert obs.value == pytest.approx(value, abs=1e-4)
    assert (obs.raw, obs.reference, obs.severity) == (accuracy, reference, severity)


@pytest.mark.parametrize(
    ("references", "insufficient"),
    [({("accuracy", None): 0.9}, False), ({}, True), ({("accuracy", None): 0.0}, True)],
)
def test_relative_needs_a_usable_reference(
    references: dict[tuple[str, str | None], float], insufficient: bool
) -> None:
    """Passed-in references win; without one (or a zero one) the observation is insufficient."""
    rows = [row("accuracy", 0.6, feature=None), row("accuracy", 0.5, feature=REFERENCE)]
    obs = only(run([rule(**ACCURACY_DROP)], rows, references=references))
    assert obs.insufficient is insufficient
    assert obs.severity == (None if insufficient else "critical")


# --- decision metrics -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "value", "insufficient"),
    [("drift", 1.0, False), ("ok", 0.0, False), ("insufficient_data", 0.0, True)],
)
def test_drift_decision_metric(decision: str, value: float, insufficient: bool) -> None:
    """decision:drift is 1 when the feature's drift family says drift, with its numbers."""
    rows = [row("psi", 0.4, decision=decision), row("js", 0.2, decision=decision)]
    obs = only(run([rule(metric=DRIFT_DECISION, warn=1)], rows))
    assert (obs.value, obs.insufficient) == (value, insufficient)
    assert dict(obs.evidence) == {"psi": 0.4, "js": 0.2}


def test_quality_decision_metric_names_the_flagged_rate() -> None:
    """decision:quality fires on any flagged rate of a feature and names only those rates."""
    rows = [
        row("missing_rate", 0.3, decision="quality"),
        row("type_error_rate", 0.0, decision="ok"),
        row("missing_rate", 0.01, feature="income", decision="ok"),
        row("volume_ratio", 0.1, feature=None, decision="quality"),
    ]
    found = {o.feature: o for o in run([rule(metric=QUALITY_DECISION, warn=1)], rows)}
    assert set(found) == {"age", "income"}
    assert (found["age"].severity, found["age"].evidence) == ("warn", (("missing_rate", 0.3),))
    assert found["income"].severity is None


# --- defaults ---------------------------------------------------------------------------------


def settings(**data: Any) -> Settings:
    """Validated settings from a mapping."""
    return Settings.from_mapping(data)


def test_models_without_rules_get_the_defaults() -> None:
    """No rule of its own: the defaults, notifying every channel, never triggering."""
    s = settings(channels={"chat": {"urls": ["json://localhost"]}})
    rules = rules_for(s, "churn")
    assert [r.name for r in rules] == [r.name for r in default_rules()]
    assert all(r.notify == ["chat"] and r.trigger is None for r in rules)


def test_a_rule_of_its_own_replaces_the_defaults() -> None:
    """A model matched by a configured rule is watched by its rules only."""
    s = settings(
        models=[{"name": "churn"}, {"name": "fraud"}],
        rules=[{"name": "acc", "metric": "accuracy", "models": "churn", "critical": 0.8}],
    )
    assert [r.name for r in rules_for(s, "churn")] == ["acc"]
    assert "default-feature-drift" in [r.name for r in rules_for(s, "fraud")]
    listed = effective_rules(s)
    assert listed[0].name == "acc"
    assert {tuple(r.models) for r in listed[1:]} == {("fraud",)}


def test_without_rules_the_listing_shows_defaults_for_every_model() -> None:
    """With no configured rule the defaults apply to '*'."""
    assert all(r.models == ["*"] for r in effective_rules(settings()))


def test_default_rules_on_a_window() -> None:
    """Defaults alert on drifted inputs, outputs, quality, volume collapse and accuracy drop."""
    rows = [
        row("psi", 0.4, decision="drift"),
        row("psi", 0.01, feature="income", decision="ok"),
        row("psi", 0.5, feature="@score", decision="drift"),
        row("missing_rate", 0.4, feature="income", decision="quality"),
        row("volume_ratio", 0.1, feature=None, n=100, decision="quality"),
        row("accuracy", 0.6, feature=None, n=150),
        row("accuracy", 0.9, feature=REFERENCE, n=5_000),
    ]
    alerting = {(o.rule.name, o.feature, o.severity) for o in run(default_rules(), rows)}
    assert {a for a in alerting if a[2] is not None} == {
        ("default-feature-drift", "age", "warn"),
        ("default-prediction-drift", "@score", "warn"),
        ("default-data-quality", "income", "warn"),
        ("default-volume-collapse", None, "critical"),
        ("default-performance-drop", None, "critical"),
    }


def test_scope_answers_stay_bounded_and_right_for_endless_names() -> None:
    """A stream inventing segment values forever must not grow a rule's remembered scope
    answers without bound; past the bound they start afresh and stay right."""
    cache: dict[str | None, bool] = {}
    for i in range(SCOPE_CACHE + 5):
        assert _in_scope(cache, f"country=c{i}", ["country=c1*"]) == f"c{i}".startswith("c1")
    assert len(cache) <= SCOPE_CACHE
    assert _in_scope(cache, None, ["country=*"]) is False
