"""Child processes measured from outside: peak RSS, exit status, output.

Peak RSS is the child's ``VmHWM`` from ``/proc/<pid>/status``, polled while it runs (the last
reading before exit is its high-water mark, since the value never decreases), plus that of
each process it started (``monitor run``'s Kafka fetcher and window closer): the sum of their
peaks. Not ``wait4``'s ``ru_maxrss``: Linux carries the pre-``exec`` high-water mark over, so a
child forked from this (large) process would report this process's size.

CPU time is polled alike, per process (``/proc/<pid>/stat``), with the wall clock of each
reading: `cpu_busy` then says how much of one core each process used over a stretch of the
run, which shows whether the daemon itself is the bottleneck or waits for its helpers.

``monitor run`` is started through ``monitor.cli.main``, exactly what the ``monitor`` console
script calls, with one addition: the ``monitor.app`` logger at DEBUG, for its "checkpoint
stored in X ms" lines. ``--log-level debug`` would give those too but also turns on
kafka-python's debug logging, which logs every fetch response (record bytes included) and
would slow the very consumer being measured.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
POLL_S = 0.2
RUN_ENTRY = (
    "import logging, sys\n"
    "from monitor.cli import main\n"
    "logging.getLogger('monitor.app').setLevel(logging.DEBUG)\n"
    "sys.exit(main(prog_name='monitor'))\n"
)
STOPPED = re.compile(r"stopped after (\d+) records(?: \(([\d,.]+) records/s from first to last\))?")
CHECKPOINT = re.compile(r"checkpoint stored in ([\d.]+) ms \((\d+) records\)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROLES = {b"monitor.ingest.fetcher": "fetcher", b"monitor.closing_process": "window closer"}
"""A child's children by their command line; the child itself is the daemon."""

CpuSamples = dict[str, list[tuple[float, float]]]
"""Per process role, (wall clock, CPU seconds so far) at each poll."""


@dataclass(slots=True)
class ChildResult:
    """How a child ended and what it weighed."""

    returncode: int
    seconds: float
    vmhwm_kb: int | None
    output: str = ""
    cpu: CpuSamples = field(default_factory=dict)

    @property
    def peak_rss_mb(self) -> float | None:
        return None if self.vmhwm_kb is None else self.vmhwm_kb / 1024


def _vmhwm_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match[1]) if match else None


def _cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds of ``pid`` so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _role(pid: int, child: int) -> str:
    if pid == child:
        return "daemon"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    return next((role for needle, role in ROLES.items() if needle in cmdline), "other")


def cpu_busy(samples: CpuSamples, start: float, end: float) -> dict[str, float]:
    """Per role, the share of one core it used from wall clock ``start`` to ``end`` (its CPU
    seconds at each end interpolated between the polls around it)."""
    if end <= start:
        return {}
    busy = {}
    for role, readings in samples.items():
        times, spent = zip(*readings, strict=True)
        if times[0] <= start and times[-1] >= end:
            used = float(np.interp(end, times, spent) - np.interp(start, times, spent))
            busy[role] = used / (end - start)
    return busy


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def run_child(argv: list[str], output: Path, *, timeout_s: float = 1800.0) -> ChildResult:
    """Run ``argv`` to its end (stdout and stderr to ``output``), polling its peak RSS."""
    began = time.monotonic()
    with output.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        peaks: dict[int, int] = {}  # high-water marks by pid: the child and its children
        cpu: dict[int, tuple[str, list[tuple[float, float]]]] = {}  # by pid: role, readings
        while True:
            for watched in (proc.pid, *_children(proc.pid)):
                reading = _vmhwm_kb(watched)
                if reading is not None:
                    peaks[watched] = reading
                spent = _cpu_s(watched)
                if spent is not None:
                    role, readings = cpu.get(watched, ("other", []))
                    if role == "other":  # a helper forked but not yet exec'd: ask again
                        cpu[watched] = (_role(watched, proc.pid), readings)
                    readings.append((time.time(), spent))
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() - began > timeout_s:
                proc.kill()
                _, status = os.waitpid(proc.pid, 0)
                break
            time.sleep(POLL_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildResult(
        proc.returncode,
        time.monotonic() - began,
        sum(peaks.values()) if proc.pid in peaks else None,
        _tail(output),
        _by_role(cpu),
    )


def _by_role(cpu: dict[int, tuple[str, list[tuple[float, float]]]]) -> CpuSamples:
    """The readings per role; a helper started again (another pid) continues its role's."""
    by_role: CpuSamples = {}
    for role, readings in cpu.values():
        if role in by_role:  # a later pid of the role: counted after the earlier one's total
            base = by_role[role][-1][1]
            by_role[role] += [(t, base + spent) for t, spent in readings]
        else:
            by_role[role] = list(readings)
    return by_role


def _tail(path: Path, size: int = 20_000) -> str:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode(errors="replace")


@dataclass(slots=True)
class LogFacts:
    """What the daemon's log says: records, its own events/s, checkpoint times, loggers."""

    records: int | None = None
    events_per_s: float | None = None
    checkpoint_ms: list[float] = field(default_factory=list)
    # Wall clock from the end of the first checkpoint that stored records to that of the
    # last but one: the last waits out ``commit_interval`` once the stream has run dry.
    consuming: tuple[float, float] | None = None
    loggers: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)


def parse_log(path: Path) -> LogFacts:
    """Read JSON lines or console lines alike (the daemon writes JSON when not on a terminal)."""
    facts = LogFacts()
    stored_at: list[float] = []  # checkpoints that stored records, when they ended
    for raw in path.read_bytes().splitlines():
        message, logger, level = _message(raw)
        facts.loggers[logger] += 1
        if level in {"warning", "error", "critical"}:
            facts.warnings[_shape(message)] += 1
        if (found := CHECKPOINT.search(message)) is not None:
            facts.checkpoint_ms.append(float(found[1]))
            if int(found[2]) and (at := _moment(raw)) is not None:
                stored_at.append(at)
        elif (found := STOPPED.search(message)) is not None:
            facts.records = int(found[1])
            facts.events_per_s = float(found[2].replace(",", "")) if found[2] else None
    if len(stored_at) > 2:  # the last stores what came after the others, once idle
        facts.consuming = (stored_at[0], stored_at[-2])
    return facts


def _moment(raw: bytes) -> float | None:
    """The wall clock of a JSON log line (its ``ts``), None for other lines."""
    try:
        stamp = orjson.loads(raw)["ts"]
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _shape(message: str) -> str:
    """A warning with its numbers and addresses blanked, so repeats count as one."""
    return re.sub(r"0x[0-9a-f]+|\d+(?:\.\d+)?", "#", message[:300])


def _message(raw: bytes) -> tuple[str, str, str]:
    try:
        doc: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        return str(doc.get("message", "")), str(doc.get("logger", "?")), str(doc.get("level"))
    text = raw.decode(errors="replace")
    parts = text.split(maxsplit=3)  # HH:MM:SS.mmm LEVEL logger: message
    if len(parts) == 4 and parts[2].endswith(":"):
        return parts[3], parts[2][:-1], parts[1].lower()
    return text, "?", "?"


def monitor_run(config: Path, log: Path, idle: str = "5s") -> tuple[ChildResult, LogFacts]:
    """``monitor run --exit-when-idle`` to its end; its log goes to ``log``."""
    argv = [sys.executable, "-c", RUN_ENTRY, "run", "-c", str(config)]
    argv += ["--exit-when-idle", idle, "--log-format", "json"]
    result = run_child(argv, log)
    return result, parse_log(log)


def monitor_replay(config: Path, events: Path, output: Path) -> tuple[ChildResult, dict[str, Any]]:
    """``monitor.app.replay`` of ``events`` in a child process, timed around the call."""
    argv = [sys.executable, str(HERE / "replay_child.py"), str(config), str(events)]
    result = run_child(argv, output)
    return result, _last_json(result)


def ceiling(
    options: dict[str, Any], topic: str, count: int, output: Path, timeout_s: float = 600.0
) -> tuple[ChildResult, dict[str, Any]]:
    """The bare consumer in a child process."""
    argv = [sys.executable, str(HERE / "ceiling.py"), orjson.dumps(options).decode(), topic]
    result = run_child([*argv, str(count), str(timeout_s)], output)
    return result, _last_json(result)


def _last_json(result: ChildResult) -> dict[str, Any]:
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"child failed (exit {result.returncode}): {result.output[-2000:]}")
    doc: dict[str, Any] = orjson.loads(lines[-1])
    return doc
