"""What a checkpoint's prune of waiting predictions costs while predictions wait.

Two models share the pending table: ``long`` (a 7-day label horizon) with ``waiting``
predictions over the last three days, and ``short`` (1 hour) with 2,000 over the last two.
Each checkpoint removes the predictions past their model's horizon, as `monitor.joining`
asks (`monitor.store.labels.prune_predictions`); the watermark moves on a minute per
checkpoint, so ``short`` has a few to remove each time and ``long`` none. Its cost must not
grow with what ``long`` keeps waiting.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib.storage import fresh_database
from monitor.store import db, labels
from monitor.store.labels import PredictionRow

HOUR_MS = 3_600_000
WATERMARK_MS = 1_795_000_000_000
BATCH = 20_000
CHECKPOINTS = 30


def _rows(model: str, count: int, first_ms: int, rng: random.Random) -> list[PredictionRow]:
    span = WATERMARK_MS - first_ms
    return [
        (model, f"{rng.getrandbits(128):032x}", "v1", 0, 1, ("",), 1, 0.5, None,
         first_ms + span * i // count)
        for i in range(count)
    ]  # fmt: skip


def measure_prune(waiting: int, url: str | None) -> dict[str, Any]:
    """Median and p90 milliseconds of a checkpoint's prune (its own transaction)."""
    rng = random.Random(1)
    rows = _rows("long", waiting, WATERMARK_MS - 72 * HOUR_MS, rng)
    rows += _rows("short", 2_000, WATERMARK_MS - 2 * HOUR_MS, rng)
    with tempfile.TemporaryDirectory() as name, fresh_database(url, Path(name)) as database:
        engine = db.create_db_engine(database.url)
        db.upgrade(engine)
        for at in range(0, len(rows), BATCH):
            with db.transaction(engine, write=True) as conn:
                labels.insert_predictions(conn, rows[at : at + BATCH])
        timings, removed = [], 0
        for checkpoint in range(CHECKPOINTS):
            watermark = WATERMARK_MS + checkpoint * 60_000
            cutoffs = {"short": watermark - HOUR_MS, "long": watermark - 168 * HOUR_MS}
            began = time.perf_counter()
            with db.transaction(engine, write=True) as conn:
                removed += len(labels.prune_predictions(conn, cutoffs, cutoffs["long"]))
            timings.append((time.perf_counter() - began) * 1000)
        engine.dispose()
    timings.sort()
    return {
        "backend": database.backend,
        "waiting": waiting,
        "checkpoints": CHECKPOINTS,
        "removed": removed,
        "median_ms": round(statistics.median(timings), 2),
        "p90_ms": round(timings[int(0.9 * (len(timings) - 1))], 2),
    }
