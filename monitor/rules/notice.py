"""A notification's worth of one alert, as a plain value the outbox stores as JSON.

The rules produce notices (a transition of the alert life cycle, a repeat while firing, or a
retraining trigger that gave up); the actions render and send them. A notice carries every
number a person needs to act without opening anything: the value against the threshold, the
window, the evidence behind a decision metric and the window's most drifted features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

NoticeKind = Literal["firing", "escalated", "resolved", "repeat", "trigger_dead"]
_TIMES = ("window_start", "window_end", "started_at", "resolved_at")


@dataclass(frozen=True, slots=True)
class Drifted:
    """One of a window's most drifted features: its strongest drift metric."""

    feature: str
    metric: str
    value: float


@dataclass(frozen=True, slots=True)
class Notice:
    """One alert event to tell people about (see the module docstring).

    ``value`` and ``threshold`` are what the rule compared (relative changes when
    ``relative_to_reference``; then ``raw`` and ``reference`` hold the metric and its
    baseline). ``severity`` of a ``resolved`` notice is the episode's peak; ``previous`` the
    severity before an ``escalated``. ``detail`` explains a ``trigger_dead`` notice (trigger
    name, attempts, last error).
    """

    kind: NoticeKind
    alert_id: int
    rule: str
    metric: str
    model: str
    version: str
    segment: str | None
    feature: str | None
    severity: Literal["warn", "critical"]
    value: float | None
    threshold: float | None
    direction: Literal["above", "below"]
    window_start: datetime
    window_end: datetime
    started_at: datetime
    resolved_at: datetime | None = None
    previous: Literal["warn", "critical"] | None = None
    relative_to_reference: bool = False
    raw: float | None = None
    reference: float | None = None
    evidence: tuple[tuple[str, float], ...] = ()
    top_drift: tuple[Drifted, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 strings, tuples as lists."""
        data = asdict(self)
        for name in _TIMES:
            if data[name] is not None:
                data[name] = data[name].isoformat()
        data["evidence"] = [list(pair) for pair in self.evidence]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        """The inverse of `to_dict`."""
        values = dict(data)
        for name in _TIMES:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        values["evidence"] = tuple((str(m), float(v)) for m, v in values.get("evidence", ()))
        values["top_drift"] = tuple(Drifted(**d) for d in values.get("top_drift", ()))
        return cls(**values)
