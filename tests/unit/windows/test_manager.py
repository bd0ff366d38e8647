"""Open windows: adds made on copies change nothing until installed, then equal adds in place.

A PostgreSQL checkpoint adds the staged predictions to copies of their windows while the label
join runs, and drops the copies when the join finds a resend; the open windows must not see
those adds until then.
"""

from __future__ import annotations

from monitor.ingest.events import PredictionEvent
from monitor.windows.manager import OpenWindow, PartialKey, WindowManager
from monitor.windows.schema import WindowSchema
from monitor.windows.state import WHOLE_MODEL

TP = ("predictions", 0)
WINDOW = (0, 300_000)


def _events(first: int, count: int) -> list[PredictionEvent]:
    def event(i: int) -> PredictionEvent:
        features = {"x": float(i), "c": "ab"[i % 2]}
        return PredictionEvent("m", "1", 1_000 + i, f"id-{i}", features, i % 2, 0.5, None, {}, 0, i)

    return [event(i) for i in range(first, first + count)]


def _manager() -> WindowManager:
    return WindowManager(lambda model, version: WindowSchema(None), lambda model: [])


def _summary(window: OpenWindow) -> tuple[int, int, float, dict[str, int], bytes]:
    accumulators = window.state.slices[WHOLE_MODEL].accumulators
    x, c = accumulators["x"], accumulators["c"]
    return window.unsaved, x.valid, x.mean, dict(c.counts), window.state.to_bytes()


def test_adds_to_copies_show_only_once_installed_and_equal_adds_in_place() -> None:
    in_place, copied = _manager(), _manager()
    for manager in (in_place, copied):
        manager.add(TP, "m", "1", WINDOW, _events(0, 40))
    key: PartialKey = ("m", "1", 0, *TP)
    before = _summary(copied.open[key])

    in_place.add(TP, "m", "1", WINDOW, _events(40, 25))
    changed: dict[PartialKey, OpenWindow] = {}
    copied.add_to(changed, TP, "m", "1", WINDOW, _events(40, 25))
    copied.add_to(changed, TP, "m", "1", (300_000, 600_000), _events(65, 5))  # a new window

    assert _summary(copied.open[key]) == before  # the open window is untouched
    assert set(copied.open) == {key}
    copied.install(changed)
    assert _summary(copied.open[key]) == _summary(in_place.open[key])
    assert copied.open[("m", "1", 300_000, *TP)].state.events == 5


def test_dropped_copies_leave_the_windows_as_they_were() -> None:
    manager = _manager()
    manager.add(TP, "m", "1", WINDOW, _events(0, 30))
    key: PartialKey = ("m", "1", 0, *TP)
    before = _summary(manager.open[key])
    changed: dict[PartialKey, OpenWindow] = {}
    manager.add_to(changed, TP, "m", "1", WINDOW, _events(30, 30))
    assert changed[key].state.events == 60
    del changed  # a resend found: the checkpoint adds again without it
    assert _summary(manager.open[key]) == before
