"""Per-window event counts: the first accumulator, additive so any two batches merge."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

WindowKey = tuple[str, str, int, int]  # model, version, window start and end (epoch ms)


@dataclass(slots=True)
class WindowCounts:
    """Events, late events, labels and label outcomes per (model, version, window).

    ``duplicates`` are predictions whose id was already pending, ``unlabelled`` predictions
    whose label horizon passed without a label, ``orphans`` labels that never met their
    prediction (counted in the window of the label's own event time).
    """

    events: Counter[WindowKey] = field(default_factory=Counter)
    labels: Counter[WindowKey] = field(default_factory=Counter)
    late: Counter[WindowKey] = field(default_factory=Counter)
    duplicates: Counter[WindowKey] = field(default_factory=Counter)
    unlabelled: Counter[WindowKey] = field(default_factory=Counter)
    orphans: Counter[WindowKey] = field(default_factory=Counter)
    last_event_ms: dict[WindowKey, int] = field(default_factory=dict)

    def add_events(self, key: WindowKey, n: int, last_ms: int) -> None:
        """``n`` events of one window at once, the newest at ``last_ms``."""
        self.events[key] += n
        if last_ms > self.last_event_ms.get(key, last_ms - 1):
            self.last_event_ms[key] = last_ms

    def merge(self, other: WindowCounts) -> WindowCounts:
        self.events.update(other.events)
        self.labels.update(other.labels)
        self.late.update(other.late)
        self.duplicates.update(other.duplicates)
        self.unlabelled.update(other.unlabelled)
        self.orphans.update(other.orphans)
        for key, ts_ms in other.last_event_ms.items():
            if ts_ms > self.last_event_ms.get(key, ts_ms - 1):
                self.last_event_ms[key] = ts_ms
        return self

    def sorted_keys(self) -> list[WindowKey]:
        """Every window touched, sorted so concurrent writers lock rows in one order."""
        return sorted(set().union(*self._counters()))

    def _counters(self) -> tuple[Counter[WindowKey], ...]:
        return (self.events, self.labels, self.late, self.duplicates, self.unlabelled, self.orphans)

    def __bool__(self) -> bool:
        return any(self._counters())
