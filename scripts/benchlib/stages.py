"""Where a replayed event's CPU goes: process time per stage of the pipeline, per event.

The throughput benchmark says how fast; this says where to look next. It replays the
benchmark's seeded events in this process and times, with ``time.process_time`` (not wall
time: the shared machine's other work does not count), the calls the daemon makes per batch:

- ``ingest``: decode, check and route a batch (``Pipeline.ingest``);
- ``checkpoint``: one transaction per batch (``Checkpointer.commit``), of which
  ``label join`` (predictions kept for their labels; of it ``pending insert``, the database's
  insert), ``window adds`` (the window accumulators) and ``window saves`` (their states);
- ``closing``: closing due windows (``WindowCloser.close_ready``), of which ``evaluate``,
  ``metric storage`` and ``alerts``;
- ``other``: the rest of the replay (reading the file, the relay).

The calls are wrapped per batch or per window, never per event, so the wrapping costs
nothing measurable. Used by ``scripts/bench.py stages``.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchlib.storage import fresh_database, prepare
from benchlib.streams import write_events, write_reference
from benchlib.throughput import config
from monitor import alerting, app, checkpoint, closing, joining, pipeline
from monitor.settings import Settings
from monitor.store import labels
from monitor.store import windows as stored_windows
from monitor.windows import manager

STAGES: tuple[tuple[str, Any, str], ...] = (
    ("ingest", pipeline.Pipeline, "ingest"),
    ("checkpoint", checkpoint.Checkpointer, "commit"),
    ("  label join", joining.Joiner, "apply"),
    ("    pending insert", labels, "insert_predictions"),
    ("  window adds", manager.WindowManager, "add"),
    ("  window saves", checkpoint, "_save_windows"),
    ("closing", closing.WindowCloser, "close_ready"),
    ("  evaluate", closing, "evaluate"),
    ("  metric storage", stored_windows, "save_metrics"),
    ("  alerts", alerting.AlertEvaluator, "on_window"),
)


Spent = dict[str, float]  # process seconds per stage


@contextmanager
def _timed(spent: Spent) -> Iterator[None]:
    """Add each stage's process time to ``spent`` while the block runs."""
    originals = [(owner, name, getattr(owner, name)) for _, owner, name in STAGES]
    for (label, owner, name), (_, _, original) in zip(STAGES, originals, strict=True):
        setattr(owner, name, _clocked(original, label, spent))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _clocked(function: Callable[..., Any], label: str, spent: Spent) -> Callable[..., Any]:
    def clocked(*args: Any, **kwargs: Any) -> Any:
        began = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - began

    return clocked


def measure_stages(events: int, models: int) -> dict[str, Any]:
    """Replay ``events`` seeded events of ``models`` models into a fresh SQLite file."""
    names = ("bench",) if models == 1 else tuple(f"m{i}" for i in range(models))
    with tempfile.TemporaryDirectory(prefix="monitor-stages-") as name:
        tmp = Path(name)
        stream = write_events(tmp / "events.jsonl", events, names)
        reference = write_reference(tmp / "reference.jsonl")
        with fresh_database(None, tmp) as database:
            settings = Settings.from_mapping(config(None, None, database.url, names))
            prepare(database, settings, reference)
            engine = app.open_database(settings)
            spent: Spent = defaultdict(float)
            with _timed(spent):
                began = time.process_time()
                result = app.replay(settings, engine, stream.path, "predictions")
                total = time.process_time() - began
            engine.dispose()
    top = ("ingest", "checkpoint", "closing")
    spent["other"] = total - sum(spent[label] for label in top)
    per_event = {label: spent[label] / result.records * 1e6 for label, _, _ in STAGES}
    per_event["other"] = spent["other"] / result.records * 1e6
    return {
        "events": result.records,
        "models": models,
        "windows_closed": result.windows_closed,
        "cpu_s": total,
        "events_per_cpu_s": result.records / total,
        "us_per_event": per_event,
    }


def stages_table(found: dict[str, Any]) -> str:
    """The stages as a Markdown table, microseconds of CPU per event."""
    lines = [
        f"{found['events']:,} events, {found['models']} model(s), "
        f"{found['windows_closed']} windows closed: {found['cpu_s']:.2f} s of CPU, "
        f"{found['events_per_cpu_s']:,.0f} events per CPU second",
        "",
        "| stage | µs of CPU per event |",
        "|---|---|",
    ]
    for label, value in found["us_per_event"].items():
        lines.append(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {value:.1f} |")
    total = found["cpu_s"] / found["events"] * 1e6
    lines.append(f"| total | {total:.1f} |")
    return "\n".join(lines)
