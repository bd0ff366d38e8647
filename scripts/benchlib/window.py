"""Time to evaluate one closed window (6,000 events x 23 features) against its reference.

The window is filled the way the daemon fills it: the seeded event lines go through
``Pipeline.ingest`` (built by ``monitor.app.build_pipeline`` with the reference stored in a
scratch SQLite file), so this follows the window code as it changes. Then
``monitor.windows.evaluation.evaluate`` (what closing a window calls on the merged state) is
timed over several repetitions.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib.storage import fresh_database, prepare
from benchlib.streams import WINDOW_MS, event_lines
from monitor.app import build_pipeline
from monitor.checkpoint import Ledger
from monitor.ingest.replay import LineRecord
from monitor.reference.service import ReferenceCache, load_active
from monitor.settings import Settings
from monitor.store import db
from monitor.windows.evaluation import evaluate

TOPIC = "bench-window"


def time_evaluation(reference: Path, events: int = 6_000, repeats: int = 50) -> dict[str, Any]:
    """Median and p90 milliseconds of ``evaluate`` on one full window, and its metric count."""
    with tempfile.TemporaryDirectory() as name, fresh_database(None, Path(name)) as database:
        model = "bench"
        settings = Settings.from_mapping(
            {"database": {"url": database.url}, "models": [{"name": model, "window": "5m"}]}
        )
        prepare(database, settings, reference)
        references = ReferenceCache(db.create_db_engine(database.url))
        active = load_active(references.engine, model, None)
        if active is None:
            raise RuntimeError("the reference was not stored")
        pipeline = build_pipeline(settings, references)
        ledger = Ledger()
        ledger.start((TOPIC, 0), None)
        lines = event_lines(events, [model], per_window=events)
        records = [LineRecord(i, line) for i, line in enumerate(lines)]
        began = time.perf_counter()
        pipeline.ingest("predictions", TOPIC, 0, records, ledger)
        pending = pipeline.pending  # settled as a checkpoint does
        pending.settle(pending.settlement(pipeline.windows, set()), pipeline.windows)
        filled_ms = (time.perf_counter() - began) * 1000
        states = [w.state for w in pipeline.windows.open.values()]
        if len(states) != 1 or states[0].events != events:
            raise RuntimeError(f"expected one window of {events} events, got {states}")
        state = states[0]
        timings, metrics = [], 0
        for _ in range(repeats):
            began = time.perf_counter()
            rows = evaluate(state, active.profile, min_samples=200, window_seconds=WINDOW_MS / 1000)
            timings.append((time.perf_counter() - began) * 1000)
            metrics = len(rows)
        references.engine.dispose()
    timings.sort()
    return {
        "events": events,
        "features": 23,
        "repeats": repeats,
        "median_ms": statistics.median(timings),
        "p90_ms": timings[int(0.9 * (len(timings) - 1))],
        "metrics": metrics,
        "fill_ms": filled_ms,
    }
