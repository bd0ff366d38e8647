"""The rule table: valid rules parse to the documented defaults, invalid ones name rule and field.

Rules are validated at start-up by the same pydantic model that ``check-config`` and ``run``
use; nothing in a rule is ever evaluated as code.
"""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import ConfigError
from monitor.settings import Settings

CHANNELS = {"chat": {"urls": ["json://127.0.0.1:9/x"]}, "mail": {"urls": ["mailto://h"]}}
TRIGGERS = {"retrain": {"url": "http://127.0.0.1:9/hook"}}


def parse(*rules: dict[str, Any]) -> Settings:
    return Settings.from_mapping({"channels": CHANNELS, "triggers": TRIGGERS, "rules": list(rules)})


VALID: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"name": "r", "metric": "psi", "warn": 0.1},
        {
            "models": ["*"],
            "features": ["*"],
            "direction": "above",
            "for_": 1,
            "resolve_after": 2,
            "critical": None,
            "clear": None,
            "notify": [],
            "trigger": None,
            "min_samples": None,
            "relative_to_reference": False,
        },
    ),
    (
        {"name": "r", "metric": "psi", "warn": 0.1, "critical": 0.25, "clear": 0.05},
        {"warn": 0.1, "critical": 0.25, "clear": 0.05},
    ),
    (
        {
            "name": "r",
            "metric": "accuracy",
            "direction": "below",
            "critical": 0.8,
            "clear": 0.85,
            "for": 3,
            "resolve_after": 4,
        },
        {"direction": "below", "critical": 0.8, "clear": 0.85, "for_": 3, "resolve_after": 4},
    ),
    (
        {
            "name": "r",
            "metric": "accuracy",
            "direction": "below",
            "relative_to_reference": True,
            "warn": -0.1,
            "critical": -0.2,
        },
        {"relative_to_reference": True, "warn": -0.1, "critical": -0.2},
    ),
    (
        {
            "name": "r",
            "metric": "js",
            "critical": 0.2,
            "models": "churn-*",
            "versions": ["v2"],
            "segments": "country=*",
            "features": ["f0?", "age"],
        },
        {
            "models": ["churn-*"],
            "versions": ["v2"],
            "segments": ["country=*"],
            "features": ["f0?", "age"],
        },
    ),
    (
        {
            "name": "r",
            "metric": "psi",
            "warn": 0.1,
            "notify": "chat",
            "trigger": "retrain",
            "min_samples": 500,
        },
        {"notify": ["chat"], "trigger": "retrain", "min_samples": 500},
    ),
    ({"name": " r ", "metric": "missing_rate", "warn": 0}, {"name": "r", "warn": 0.0}),
]


@pytest.mark.parametrize(("rule", "expected"), VALID, ids=[str(r) for r, _ in VALID])
def test_valid_rules_parse_with_their_defaults(
    rule: dict[str, Any], expected: dict[str, Any]
) -> None:
    """A valid rule parses; unspecified keys take DESIGN.md §9's defaults."""
    parsed = parse(rule).rules[0]
    for key, value in expected.items():
        assert getattr(parsed, key) == value, key


INVALID: list[tuple[list[dict[str, Any]], str]] = [
    ([{"name": "r", "metric": "psi"}], "rules[0] (r): at least one of warn / critical is required"),
    ([{"metric": "psi", "warn": 1}], "rules[0].name: is required"),
    ([{"name": "r", "warn": 1}], "rules[0] (r).metric: is required"),
    ([{"name": "r", "metric": "", "warn": 1}], "rules[0] (r).metric: must not be empty"),
    ([{"name": "r", "metric": "psi", "warn": "high"}], "rules[0] (r).warn: must be a number"),
    (
        [{"name": "r", "metric": "psi", "warn": 1, "direction": "up"}],
        "rules[0] (r).direction: must be one of: above, below",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": 0.3, "critical": 0.2}],
        "rules[0] (r): critical must not be below warn for direction above",
    ),
    (
        [{"name": "r", "metric": "accuracy", "direction": "below", "warn": 0.8, "critical": 0.9}],
        "rules[0] (r): critical must not be above warn for direction below",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": 0.1, "clear": 0.2}],
        "rules[0] (r): clear must not be above warn for direction above",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": 1, "for": 0}],
        "rules[0] (r).for: must be greater than 0",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": 1, "resolve_after": -1}],
        "rules[0] (r).resolve_after: must be greater than 0",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": 1, "models": []}],
        "rules[0] (r).models: must not be empty",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": 1, "notify": ["pager"]}],
        "rules[0] (r).notify: unknown channel 'pager'",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": 1, "trigger": "retrain-all"}],
        "rules[0] (r).trigger: unknown trigger 'retrain-all'",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": 1, "treshold": 2}],
        "rules[0] (r).treshold: unknown field",
    ),
    (
        [{"name": "a", "metric": "psi", "warn": 1}, {"name": "a", "metric": "js", "warn": 1}],
        "rules[1].name: duplicate rule name 'a'",
    ),
    (
        [
            {"name": "ok", "metric": "psi", "warn": 1},
            {"name": "bad", "metric": "psi", "warn": float("nan")},
        ],
        "rules[1] (bad).warn: must be a finite number",
    ),
    (
        [{"name": "r", "metric": "psi", "warn": "__import__('os').system('true')"}],
        "rules[0] (r).warn: must be a number",
    ),
]


@pytest.mark.parametrize(("rules", "expected"), INVALID, ids=[e for _, e in INVALID])
def test_invalid_rules_name_the_rule_and_field(rules: list[dict[str, Any]], expected: str) -> None:
    """Each invalid rule stops start-up with an error naming the rule (index, name) and field."""
    with pytest.raises(ConfigError) as info:
        parse(*rules)
    assert any(expected in error for error in info.value.errors), info.value.errors
