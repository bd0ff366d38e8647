"""The pipeline's routing: windows, lateness per partition, rejections, redeliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from monitor.checkpoint import Ledger
from monitor.pipeline import Pipeline
from monitor.settings import Settings
from monitor.windows.manager import WindowManager
from monitor.windows.schema import schema_from_reference

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()
BASE = int(datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000
WINDOW = 5 * MINUTE


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes
    timestamp: int | None = None


def records(minutes: list[float], first_offset: int = 0) -> list[Record]:
    return [
        Record(first_offset + i, orjson.dumps({"model": "m", "ts": BASE + int(m * MINUTE)}))
        for i, m in enumerate(minutes)
    ]


def new_pipeline() -> Pipeline:
    """A pipeline with no reference: windows laid out without one."""
    windows = WindowManager(lambda m, v: schema_from_reference(None, None, {}), lambda m: [])
    return Pipeline(Settings.from_mapping({}), lambda: NOW, windows)


def run(batches: list[list[Record]], partition: int = 0, ledger: Ledger | None = None) -> Pipeline:
    pipeline = new_pipeline()
    ledger = ledger or Ledger()
    for batch in batches:
        pipeline.ingest("predictions", "predictions", partition, batch, ledger)
    return pipeline


def test_events_below_their_partition_watermark_are_late() -> None:
    """An event older than the partition's newest minus allowed lateness (1 min) is late."""
    counts = run([records([0, 5.5, 4.0, 4.6, 9.0])]).pending.counts
    assert counts.events == {
        ("m", "default", BASE, BASE + WINDOW): 2,  # 0 and 4.6 (not below 5.5 - 1)
        ("m", "default", BASE + WINDOW, BASE + 2 * WINDOW): 2,  # 5.5 and 9
    }
    assert counts.late == {("m", "default", BASE, BASE + WINDOW): 1}  # 4.0 < 5.5 - 1


@pytest.mark.parametrize("split", [1, 2, 3, 4])
def test_lateness_does_not_depend_on_batching(split: int) -> None:
    """A partition decides lateness by its own order, so any batching (a replay) agrees."""
    stream = records([0, 3, 1.5, 2.5, 8, 6.9, 7.2, 2])
    whole = run([stream]).pending.counts
    parts = run([stream[i : i + split] for i in range(0, len(stream), split)]).pending.counts
    assert (parts.events, parts.late) == (whole.events, whole.late)


def test_each_partition_has_its_own_watermark() -> None:
    """A slow partition's events are not late because another partition ran ahead."""
    pipeline = new_pipeline()
    ledger = Ledger()
    pipeline.ingest("predictions", "predictions", 0, records([30]), ledger)
    pipeline.ingest("predictions", "predictions", 1, records([1, 2]), ledger)
    assert not pipeline.pending.counts.late


def test_redelivered_records_are_not_counted_twice() -> None:
    """Records below the partition's consumed position (after a seek) are skipped."""
    ledger = Ledger()
    pipeline = run([records([0, 1, 2])], ledger=ledger)
    pipeline.ingest("predictions", "predictions", 0, records([0, 1, 2, 3]), ledger)
    assert sum(pipeline.pending.counts.events.values()) == 4
    assert ledger.position[("predictions", 0)].offset == 4


def test_only_timely_events_enter_the_windows() -> None:
    """Open windows hold the non-late events of their partition, late ones stay out."""
    pipeline = run([records([0, 5.5, 4.0, 4.6])])
    held = {key[2]: w.state.events for key, w in pipeline.windows.open.items()}
    assert held == {BASE: 2, BASE + WINDOW: 1}


def test_score_change_points_land_in_their_window() -> None:
    """A jump of the score mean is detected in the window where it happened, not before."""
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(0.2, 0.05, 3000), rng.normal(0.7, 0.05, 3000)])
    minutes = np.arange(6000) * (30 / 6000)  # half an hour: the jump at minute 15, window 3
    batch = [
        Record(i, orjson.dumps({"model": "m", "ts": BASE + int(m * MINUTE), "score": float(s)}))
        for i, (m, s) in enumerate(zip(minutes, scores, strict=True))
    ]
    pipeline = run([batch[:2500], batch[2500:]])
    changes = {key[2]: w.state.score_changes for key, w in pipeline.windows.open.items()}
    assert all(changes[BASE + k * WINDOW] == 0 for k in range(3))
    assert changes[BASE + 3 * WINDOW] >= 1
