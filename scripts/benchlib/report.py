"""The machine, the targets of issue 8, and the Markdown table."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

LIBRARIES = ("kafka-python", "crc32c", "orjson", "numpy", "scipy", "river", "SQLAlchemy", "psycopg")
RUN_SHARE = 0.75  # monitor run >= 75% of the ceiling
REPLAY_FACTOR = 2.0  # replay >= 2x the Kafka path
MODELS_SHARE = 0.80  # 10 models >= 80% of 1 model
WINDOW_MS = 20.0  # one window evaluated in under 20 ms
RSS_GROWTH = 0.10  # peak RSS after 2M within 10% of after 200k


@dataclass(slots=True)
class Row:
    """One measurement of the table; None where it does not apply or was not measured."""

    name: str
    events_per_s: float | None = None
    ratio: float | None = None
    ceiling: float | None = None  # what ``ratio`` divides by, when not the ceiling row's
    checkpoint_p50_ms: float | None = None
    checkpoint_p99_ms: float | None = None
    checkpoints: int = 0
    peak_rss_mb: float | None = None
    db_bytes_per_m: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    cpu_busy: dict[str, float] = field(default_factory=dict)  # per process: share of a core

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and library versions."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu": model[1].strip() if model else platform.processor() or None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": versions,
    }


def percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    p50, p99 = np.percentile(np.asarray(values), [50, 99])
    return float(p50), float(p99)


def judge(rows: dict[str, Row]) -> None:
    """Fill each row's ratio to the ceiling (its own, measured around it, when it has one),
    its target and whether it is met."""
    run = rows.get("run_sqlite")
    run_rate = run.events_per_s if run is not None else None
    for key, row in rows.items():
        ceiling = row.ceiling or rows["ceiling"].events_per_s
        if ceiling and row.events_per_s is not None:
            row.ratio = row.events_per_s / ceiling
        if key.startswith("run_") and key != "run_10_models_sqlite":
            row.target = f">= {RUN_SHARE:.0%} of ceiling"
            row.met = None if row.ratio is None else row.ratio >= RUN_SHARE
        elif key == "replay":
            row.target = f">= {REPLAY_FACTOR:g}x run SQLite"
            if row.events_per_s is not None and run_rate:
                row.met = row.events_per_s >= REPLAY_FACTOR * run_rate
                row.target += f" ({row.events_per_s / run_rate:.2f}x)"
        elif key == "run_10_models_sqlite":
            row.target = f">= {MODELS_SHARE:.0%} of run SQLite (1 model)"
            if row.events_per_s is not None and run_rate:
                row.met = row.events_per_s >= MODELS_SHARE * run_rate
                row.target += f" ({row.events_per_s / run_rate:.0%})"
        elif key == "ceiling":
            row.target = "issue: ~64-69k on its machine"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "NOT met")


def table(rows: dict[str, Row]) -> str:
    head = (
        "| measurement | events/s | ratio to ceiling | checkpoint p50 / p99 ms "
        "| peak RSS MB | DB bytes / M events | target | |"
    )
    lines = [head, "|" + "---|" * 8]
    for row in rows.values():
        ratio = "-" if row.ratio is None else f"{row.ratio:.0%}"
        if row.ratio is not None and row.ceiling:
            ratio += f" of {row.ceiling:,.0f}"
        checkpoint = f"{_num(row.checkpoint_p50_ms, 1)} / {_num(row.checkpoint_p99_ms, 1)}"
        if row.checkpoints:
            checkpoint += f" (n={row.checkpoints})"
        rate = _num(row.events_per_s) + (f" ({row.note})" if row.note else "")
        lines.append(
            f"| {row.name} | {rate} | {ratio} | {checkpoint} | {_num(row.peak_rss_mb)} "
            f"| {_num(row.db_bytes_per_m)} | {row.target} | {_verdict(row.met)} |"
        )
    return "\n".join(lines)


def window_line(window: dict[str, Any] | None) -> str:
    if window is None:
        return "window evaluation: not measured"
    met = window["median_ms"] < WINDOW_MS
    return (
        f"window evaluation ({window['events']:,} events x {window['features']} features, "
        f"{window['metrics']} metrics): median {window['median_ms']:.2f} ms, "
        f"p90 {window['p90_ms']:.2f} ms over {window['repeats']} runs; "
        f"target < {WINDOW_MS:g} ms: {_verdict(met)}"
    )


def cpu_line(rows: dict[str, Row]) -> str:
    """Each run's processes, how much of one core each used while the run consumed."""
    runs = [
        f"{row.name}: " + ", ".join(f"{role} {share:.0%}" for role, share in row.cpu_busy.items())
        for row in rows.values()
        if row.cpu_busy
    ]
    if not runs:
        return "CPU per process: not measured"
    return "CPU per process, share of one core while consuming: " + "; ".join(runs)


def rss_line(rss: dict[str, Any] | None) -> str:
    if rss is None:
        return "RSS check: not run (--rss-check)"
    if rss["growth"] is None:
        return "RSS check: no VmHWM reading"
    small, large = rss["small"], rss["large"]
    return (
        f"RSS check (replay): peak {small['peak_rss_mb']:.0f} MB after {small['events']:,} "
        f"events, {large['peak_rss_mb']:.0f} MB after {large['events']:,} "
        f"({rss['growth']:+.1%}); target within {RSS_GROWTH:.0%}: {_verdict(rss['met'])}"
    )
