"""A window's share of one batch: features read across events whatever their key order."""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.ingest.events import PredictionEvent
from monitor.windows.hashing import event_keys
from monitor.windows.schema import WindowSchema
from monitor.windows.state import WHOLE_MODEL, WindowState


def _events(features: list[dict[str, Any]]) -> list[PredictionEvent]:
    return [
        PredictionEvent("m", "1", 0, f"id-{i}", f, 1, 0.5, None, {}, 0, i)
        for i, f in enumerate(features)
    ]


def _state(features: list[dict[str, Any]]) -> WindowState:
    events = _events(features)
    keys = event_keys([e.id for e in events], [0] * len(events), [e.offset for e in events])
    return WindowState(None).update(WindowSchema(None), events, keys, [])


def test_key_order_does_not_matter() -> None:
    """The same features in another order are the same columns."""
    state = _state([{"x": 1.0, "c": "a"}, {"c": "b", "x": 2.0}, {"x": 3.0, "c": "a"}])
    accumulators = state.slices[WHOLE_MODEL].accumulators
    assert (accumulators["x"].valid, accumulators["x"].missing) == (3, 0)
    assert (accumulators["c"].valid, accumulators["c"].missing) == (3, 0)


def test_a_missing_or_extra_feature_counts_as_missing_elsewhere() -> None:
    """An event without ``x`` is a missing ``x``; a feature only one event has is missing in
    the others, whichever event comes first."""
    for rows in (
        [{"x": 1.0, "y": 1.0}, {"x": 2.0}, {"x": 3.0, "z": 5.0}],
        [{"x": 2.0}, {"x": 1.0, "y": 1.0}, {"x": 3.0, "z": 5.0}],
    ):
        accumulators = _state(rows).slices[WHOLE_MODEL].accumulators
        counts = {name: (a.valid, a.missing) for name, a in accumulators.items()}
        assert counts["x"] == (3, 0)
        assert counts["y"] == (1, 2)
        assert counts["z"] == (1, 2)
        assert np.isclose(accumulators["x"].mean, 2.0)
