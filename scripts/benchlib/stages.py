"""Where a replayed event's CPU goes: process time per stage of the pipeline, per event.

The throughput benchmark says how fast; this says where to look next. It replays the
benchmark's seeded events in this process and times, with ``time.process_time`` (the shared
machine's other work does not count), the calls the daemon makes per batch; beside it goes
wall time, whose excess over CPU is mostly the database's own work (PostgreSQL's server,
SQLite's disk), which this process waits for:

- ``ingest``: decode, check and route a batch (``Pipeline.ingest``);
- ``checkpoint``: one transaction per batch (``Checkpointer.commit``), of which
  ``label join`` (predictions kept for their labels; of it ``pending insert``, the database's
  insert), ``window adds`` (the window accumulators) and ``window saves`` (their states);
  on PostgreSQL the label join runs in a thread while the window adds run here, so the CPU
  of both (process time counts every thread) shows in each and the wall times overlap;
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
from benchlib.streams import Ids, write_events, write_reference
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
    ("  window adds", manager.WindowManager, "add_to"),
    ("  window saves", checkpoint, "_save_windows"),
    ("closing", closing.WindowCloser, "close_ready"),
    ("  evaluate", closing, "evaluate"),
    ("  metric storage", stored_windows, "save_metrics"),
    ("  alerts", alerting.AlertEvaluator, "on_window"),
)


Spent = dict[str, list[float]]  # [process seconds, wall seconds] per stage


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
        began, began_wall = time.process_time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label][0] += time.process_time() - began
            spent[label][1] += time.perf_counter() - began_wall

    return clocked


def measure_stages(
    events: int, models: int, url: str | None = None, ids: Ids = "random"
) -> dict[str, Any]:
    """Replay ``events`` seeded events of ``models`` models into a fresh database: a SQLite
    file, or a new schema of the PostgreSQL at ``url``."""
    names = ("bench",) if models == 1 else tuple(f"m{i}" for i in range(models))
    with tempfile.TemporaryDirectory(prefix="monitor-stages-") as name:
        tmp = Path(name)
        stream = write_events(tmp / "events.jsonl", events, names, ids=ids)
        reference = write_reference(tmp / "reference.jsonl")
        with fresh_database(url, tmp) as database:
            settings = Settings.from_mapping(config(None, None, database.url, names))
            prepare(database, settings, reference)
            engine = app.open_database(settings)
            spent: Spent = defaultdict(lambda: [0.0, 0.0])
            with _timed(spent):
                began, began_wall = time.process_time(), time.perf_counter()
                result = app.replay(settings, engine, stream.path, "predictions")
                total = [time.process_time() - began, time.perf_counter() - began_wall]
            engine.dispose()
    top = ("ingest", "checkpoint", "closing")
    spent["other"] = [total[i] - sum(spent[label][i] for label in top) for i in (0, 1)]
    per_event = {
        label: [seconds / result.records * 1e6 for seconds in spent[label]]
        for label in [*(label for label, _, _ in STAGES), "other"]
    }
    return {
        "events": result.records,
        "models": models,
        "ids": ids,
        "database": "sqlite" if url is None or url.startswith("sqlite") else "postgresql",
        "windows_closed": result.windows_closed,
        "cpu_s": total[0],
        "wall_s": total[1],
        "events_per_cpu_s": result.records / total[0],
        "us_per_event": per_event,  # [CPU, wall] per stage
    }


def stages_table(found: dict[str, Any]) -> str:
    """The stages as a Markdown table, microseconds of CPU and of wall time per event."""
    lines = [
        f"{found['events']:,} events ({found['ids']} ids), {found['models']} model(s), "
        f"{found['database']}, "
        f"{found['windows_closed']} windows closed: {found['cpu_s']:.2f} s of CPU "
        f"({found['events_per_cpu_s']:,.0f} events per CPU second), {found['wall_s']:.2f} s",
        "",
        "| stage | µs of CPU per event | µs of wall time per event |",
        "|---|---|---|",
    ]
    for label, (cpu, wall) in found["us_per_event"].items():
        lines.append(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {cpu:.1f} | {wall:.1f} |")
    cpu, wall = (found[key] / found["events"] * 1e6 for key in ("cpu_s", "wall_s"))
    lines.append(f"| total | {cpu:.1f} | {wall:.1f} |")
    return "\n".join(lines)
