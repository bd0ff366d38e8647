"""The life cycle of one alert, as in Prometheus Alertmanager, counted in closed windows.

inactive -> pending (condition held for fewer than ``for`` windows) -> firing -> resolved
(condition absent for ``resolve_after`` windows), then a new episode may start. `step` is a
pure function of the stored `AlertState` and one `Observation`; it returns the new state and
the `Transition` values that each deserve one notification: ``firing``, ``escalated`` and
``resolved``. Choices the issue leaves open:

- An insufficient window is transparent: it neither counts towards ``for`` or
  ``resolve_after`` nor breaks the run it falls in, and does not move ``last_window``, so
  the window is applied once it becomes sufficient (labels that arrive after the close).
- A pending alert whose condition stops holding goes back to inactive (Prometheus drops it);
  hysteresis (``clear``) holds only a firing alert, so ``for`` counts windows beyond a threshold.
- Severity follows the value while firing, down as well as up, silently; ``escalated`` is
  sent only when it exceeds the highest severity of the episode (``peak``), so a value
  hovering on the critical line cannot send a storm of escalations.
- ``started_at`` is the start of the first window of the run that fired; ``resolved_at`` the
  end of the window that completed ``resolve_after``. Both are event time (window bounds).
- A window ending at or before ``last_window`` was applied already (a replay after a crash,
  or a window re-evaluated for more late labels): it changes nothing. A performance alert
  thus decides on a window when the window first has enough labels (``min_labels``).

Repeats are wall clock and belong to the notifier: it stamps ``notified_at`` (`notified`)
when it queues a notification, and `due_repeats` lists the firing alerts due again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Literal

from monitor.rules.matching import (
    SEVERITIES,
    AlertKey,
    Observation,
    Severity,
    lowest_severity,
)

Phase = Literal["inactive", "pending", "firing", "resolved"]
Kind = Literal["firing", "escalated", "resolved"]
_TIMES = ("started_at", "resolved_at", "last_window", "notified_at")


@dataclass(frozen=True, slots=True)
class AlertState:
    """Everything a store keeps of one alert; plain values (`to_dict` / `from_dict`)."""

    rule: str
    model: str
    version: str
    segment: str | None
    feature: str | None
    metric: str
    state: Phase = "inactive"
    severity: Severity | None = None  # current severity while pending or firing
    peak: Severity | None = None  # highest severity notified in this episode
    value: float | None = None  # last sufficient value, as compared with thresholds
    threshold: float | None = None  # the threshold of ``severity`` (or the last one)
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    held: int = 0  # consecutive sufficient windows the condition held (towards ``for``)
    cleared: int = 0  # consecutive sufficient windows it did not, while firing
    last_window: datetime | None = None  # end of the last window applied
    notified_at: datetime | None = None  # wall clock, stamped by the notifier

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.rule, self.model, self.version, self.segment, self.feature)

    @classmethod
    def new(cls, observation: Observation, **fields: Any) -> AlertState:
        """The inactive state of the alert ``observation`` belongs to (with ``fields``)."""
        return cls(*observation.key, metric=observation.metric, **fields)

    def notified(self, now: datetime) -> AlertState:
        """This state with the notifier's wall-clock stamp (the repeat clock restarts)."""
        return replace(self, notified_at=now)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 strings."""
        data = asdict(self)
        for name in _TIMES:
            if data[name] is not None:
                data[name] = data[name].isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertState:
        """The inverse of `to_dict`."""
        values = dict(data)
        for name in _TIMES:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Transition:
    """One notification's worth: what happened to which alert, in which window.

    ``value`` and ``threshold`` are the window's (for ``resolved``: the last value and the
    threshold of the alert's last severity); ``severity`` of a ``resolved`` is the episode's
    peak; ``previous`` is the peak before an escalation.
    """

    kind: Kind
    observation: Observation
    severity: Severity
    value: float | None
    threshold: float | None
    started_at: datetime
    resolved_at: datetime | None = None
    previous: Severity | None = None

    @property
    def key(self) -> AlertKey:
        return self.observation.key


def _rank(severity: Severity | None) -> int:
    return -1 if severity is None else SEVERITIES.index(severity)


_NEVER_SEEN = AlertState("", "", "", None, None, "")  # the phase fields of a new alert

Changes = dict[str, Any]  # fields of an `AlertState` and their new values


def step(state: AlertState | None, observation: Observation) -> tuple[AlertState, list[Transition]]:
    """Apply one closed window to one alert (None: never seen before).

    `_while_quiet` and `_while_firing` decide which fields change; they are applied in one
    copy (or, for a new alert, at its creation). A close steps every alert its rules
    observe, about 50 a window, and copying a state costs more than deciding.
    """
    end = observation.window_end
    applied = state is not None and state.last_window is not None and end <= state.last_window
    if observation.insufficient or applied:
        return (AlertState.new(observation) if state is None else state), []
    current = _NEVER_SEEN if state is None else state
    decide = _while_firing if current.state == "firing" else _while_quiet
    changes, transitions = decide(current, observation)
    changes["last_window"] = end
    if state is None:
        return AlertState.new(observation, **changes), transitions
    return _replaced(state, changes), transitions


def _replaced(state: AlertState, changes: Changes) -> AlertState:
    """``dataclasses.replace(state, **changes)``, in half the time: every stored alert a
    window observes is stepped, and copied."""
    values = list(_values(state))
    for name, value in changes.items():
        values[_INDEX[name]] = value
    return AlertState(*values)


_FIELDS = tuple(f.name for f in fields(AlertState))
_INDEX = {name: i for i, name in enumerate(_FIELDS)}
_values = attrgetter(*_FIELDS)


def _while_quiet(state: AlertState, obs: Observation) -> tuple[Changes, list[Transition]]:
    """Inactive, pending or resolved: count windows towards ``for``."""
    level = obs.level(firing=False)
    if level is None:
        if state.state == "pending":
            return {"state": "inactive", "severity": None, "started_at": None, "held": 0,
                    "value": obs.value}, []  # fmt: skip
        return {"value": obs.value}, []
    pending = state.state == "pending" and state.started_at is not None
    held = state.held + 1 if pending else 1
    started = state.started_at if pending and state.started_at else obs.window_start
    threshold = obs.threshold(level)
    changes: Changes = {
        "severity": level,
        "value": obs.value,
        "threshold": threshold,
        "started_at": started,
        "resolved_at": None,
        "held": held,
        "cleared": 0,
    }
    if held < obs.rule.for_:
        changes["state"] = "pending"
        return changes, []
    changes.update(state="firing", peak=level, notified_at=None)
    return changes, [Transition("firing", obs, level, obs.value, threshold, started)]


def _while_firing(state: AlertState, obs: Observation) -> tuple[Changes, list[Transition]]:
    """Firing: follow the severity, escalate above the peak, resolve after enough clear."""
    started = state.started_at or obs.window_start  # always set by the firing transition
    level = obs.level(firing=True)
    if level is None:
        cleared = state.cleared + 1
        if cleared < obs.rule.resolve_after:
            return {"value": obs.value, "cleared": cleared}, []
        peak = state.peak or state.severity or lowest_severity(obs.rule)
        resolved = Transition("resolved", obs, peak, obs.value, state.threshold, started,
                              resolved_at=obs.window_end)  # fmt: skip
        return {"state": "resolved", "value": obs.value, "resolved_at": obs.window_end,
                "peak": None, "held": 0, "cleared": 0}, [resolved]  # fmt: skip
    threshold = obs.threshold(level)
    changes: Changes = {"severity": level, "value": obs.value, "threshold": threshold, "cleared": 0}
    if _rank(level) <= _rank(state.peak):
        return changes, []
    escalated = Transition("escalated", obs, level, obs.value, threshold, started,
                           previous=state.peak)  # fmt: skip
    changes["peak"] = level
    return changes, [escalated]


def due_repeats(
    states: Iterable[AlertState], now: datetime, repeat_interval: timedelta
) -> list[AlertState]:
    """Firing alerts last notified at least ``repeat_interval`` ago (wall clock).

    An alert without ``notified_at`` still has its firing notification queued: not due.
    """
    return [
        s
        for s in states
        if s.state == "firing" and s.notified_at and now - s.notified_at >= repeat_interval
    ]
