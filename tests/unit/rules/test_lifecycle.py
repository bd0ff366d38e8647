"""Alert life cycle: pending, firing, escalation, resolution, hysteresis and persistence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.rules.lifecycle import AlertState, Phase, Transition, due_repeats, step
from monitor.rules.matching import Observation
from monitor.settings import Rule

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SIZE = timedelta(minutes=5)
PSI = {"name": "feature-drift", "metric": "psi", "warn": 0.1, "critical": 0.25}


def rule(**fields: Any) -> Rule:
    """A psi rule, warn 0.1 / critical 0.25, default for=1 and resolve_after=2."""
    return Rule.model_validate({**PSI, **fields})


def window(i: int, r: Rule, value: float | None) -> Observation:
    """Window ``i``'s observation of age; None: an insufficient window."""
    start = T0 + i * SIZE
    return Observation(r, "churn", "v1", None, "age", start, start + SIZE,
                       value, 1_000, value is None)  # fmt: skip


def run(
    r: Rule, values: Sequence[float | None], state: AlertState | None = None
) -> tuple[AlertState | None, list[Transition]]:
    """Step every window in order; the final state and every transition."""
    transitions: list[Transition] = []
    for i, value in enumerate(values):
        state, happened = step(state, window(i, r, value))
        transitions += happened
    return state, transitions


def kinds(transitions: list[Transition]) -> list[str]:
    return [t.kind for t in transitions]


def test_flapping_metric_fires_and_resolves_once() -> None:
    """Acceptance: alternating above/below, then settling below: one firing, one resolved."""
    state, transitions = run(rule(), [0.3, 0.0, 0.3, 0.0, 0.3, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0])
    assert kinds(transitions) == ["firing", "resolved"]
    assert state is not None and state.state == "resolved"


@pytest.mark.parametrize(
    ("fields", "values", "expected", "final"),
    [
        ({}, [0.0, 0.0], [], "inactive"),
        ({}, [0.3], ["firing"], "firing"),
        ({}, [0.3, 0.0], ["firing"], "firing"),
        ({}, [0.3, 0.0, 0.0], ["firing", "resolved"], "resolved"),
        ({}, [0.3, 0.0, 0.0, 0.3], ["firing", "resolved", "firing"], "firing"),
        ({"resolve_after": 1}, [0.3, 0.0], ["firing", "resolved"], "resolved"),
        # for: 3 -- pending, then firing; a dip resets the count
        ({"for": 3}, [0.3, 0.3], [], "pending"),
        ({"for": 3}, [0.3, 0.3, 0.3], ["firing"], "firing"),
        ({"for": 3}, [0.3, 0.3, 0.0, 0.3, 0.3], [], "pending"),
        ({"for": 3}, [0.3, 0.3, 0.0], [], "inactive"),
        # escalation up to the episode's peak only; falls are silent
        ({}, [0.15, 0.3], ["firing", "escalated"], "firing"),
        ({}, [0.15, 0.3, 0.15, 0.3, 0.15], ["firing", "escalated"], "firing"),
        ({}, [0.3, 0.15, 0.15], ["firing"], "firing"),
        (
            {},
            [0.15, 0.3, 0.0, 0.0, 0.15, 0.3],
            ["firing", "escalated", "resolved", "firing", "escalated"],
            "firing",
        ),
        # insufficient windows neither count nor break a run
        ({}, [None, None], [], "inactive"),
        ({"for": 2}, [0.3, None, 0.3], ["firing"], "firing"),
        ({}, [0.3, 0.0, None, 0.0], ["firing", "resolved"], "resolved"),
        ({}, [0.3, None, None, None], ["firing"], "firing"),
        # hysteresis: fire at PSI >= 0.25, clear below 0.15
        ({"warn": None, "clear": 0.15}, [0.3, 0.2, 0.2, 0.2, 0.15], ["firing"], "firing"),
        ({"warn": None, "clear": 0.15}, [0.3, 0.2, 0.1, 0.1], ["firing", "resolved"], "resolved"),
        ({"warn": None}, [0.3, 0.2, 0.2], ["firing", "resolved"], "resolved"),
        ({"warn": None, "clear": 0.15, "for": 2}, [0.3, 0.2, 0.3], [], "pending"),
    ],
)
def test_life_cycle(
    fields: dict[str, Any], values: list[float | None], expected: list[str], final: str
) -> None:
    """Transitions and final state of a sequence of windows (None: insufficient)."""
    state, transitions = run(rule(**fields), values)
    assert kinds(transitions) == expected
    assert state is not None and state.state == final


def test_transitions_carry_what_a_message_needs() -> None:
    """Severity, value, threshold, windows and episode bounds (event time) of each notice."""
    _, (fired, escalated, resolved) = run(rule(**{"for": 2}), [0.0, 0.2, 0.15, 0.3, 0.0, 0.05])
    episode_start = T0 + SIZE  # window 1, where the run began
    assert (fired.severity, fired.value, fired.threshold) == ("warn", 0.15, 0.1)
    assert (fired.observation.window_start, fired.started_at) == (T0 + 2 * SIZE, episode_start)
    assert (escalated.severity, escalated.previous, escalated.threshold) == (
        "critical",
        "warn",
        0.25,
    )
    assert (resolved.severity, resolved.value) == ("critical", 0.05)
    assert (resolved.started_at, resolved.resolved_at) == (episode_start, T0 + 6 * SIZE)
    assert fired.key == ("feature-drift", "churn", "v1", None, "age")


def test_severity_follows_the_value_down_while_firing() -> None:
    """A fall from critical to warn updates the state silently."""
    state, transitions = run(rule(), [0.3, 0.12])
    assert kinds(transitions) == ["firing"]
    assert state is not None and (state.severity, state.threshold, state.value) == (
        "warn",
        0.1,
        0.12,
    )


def test_replayed_windows_change_nothing() -> None:
    """A window at or before the last one applied (crash replay) is ignored."""
    r = rule()
    state, _ = step(None, window(0, r, 0.3))
    again, transitions = step(state, window(0, r, 0.3))
    assert (again, transitions) == (state, [])
    older, transitions = step(state, window(-1, r, 0.0))
    assert (older, transitions) == (state, [])


def test_a_new_episode_restarts_the_repeat_clock() -> None:
    """Firing clears the notifier's stamp, so no repeat is due before its first notice."""
    r = rule()
    state, _ = run(r, [0.3, 0.0, 0.0])
    assert state is not None
    state, _ = step(state.notified(T0), window(3, r, 0.3))
    assert state.notified_at is None


@pytest.mark.parametrize(
    ("phase", "notified_at", "due"),
    [
        ("firing", T0, True),
        ("firing", T0 + timedelta(hours=1), False),
        ("firing", None, False),
        ("resolved", T0, False),
        ("pending", T0, False),
    ],
)
def test_due_repeats(phase: Phase, notified_at: datetime | None, due: bool) -> None:
    """Only firing alerts notified at least repeat_interval ago (wall clock) are due again."""
    state = AlertState("r", "m", "v", None, None, "psi", state=phase, notified_at=notified_at)
    now = T0 + timedelta(hours=4)
    assert due_repeats([state], now, timedelta(hours=4)) == ([state] if due else [])


# --- properties -------------------------------------------------------------------------------

values = st.lists(st.one_of(st.none(), st.sampled_from([0.0, 0.12, 0.2, 0.3])), max_size=40)
rules = st.builds(
    lambda f, ra, clear: rule(**{"for": f, "resolve_after": ra, "clear": clear}),
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from([None, 0.05]),
)


@given(rules, values)
def test_firing_and_resolved_alternate(r: Rule, sequence: list[float | None]) -> None:
    """Any windows give firing, resolved, firing, ...; escalations only inside an episode."""
    state, transitions = run(r, sequence)
    episodes = [k for k in kinds(transitions) if k != "escalated"]
    assert episodes == ["firing", "resolved"] * (len(episodes) // 2) + (
        ["firing"] if len(episodes) % 2 else []
    )
    firing, escalations = False, 0
    for kind in kinds(transitions):
        firing = kind != "resolved" and (firing or kind == "firing")
        escalations = 0 if kind == "firing" else escalations + (kind == "escalated")
        assert escalations <= 1 and (firing or kind == "resolved")
    assert (state is not None and state.state == "firing") is firing


@given(rules, values)
def test_state_round_trips_through_json(r: Rule, sequence: list[float | None]) -> None:
    """Every state along the way survives to_dict -> JSON -> from_dict unchanged."""
    state = None
    for i, value in enumerate(sequence):
        state, _ = step(state, window(i, r, value))
        assert AlertState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


@given(rules, st.one_of(st.none(), st.sampled_from([0.0, 0.12, 0.2, 0.3])))
def test_a_new_alert_steps_as_its_stored_inactive_state(r: Rule, value: float | None) -> None:
    """step(None, ...) builds the new state at once: the same as stepping a stored new one."""
    observation = window(0, r, value)
    assert step(None, observation) == step(AlertState.new(observation), observation)
