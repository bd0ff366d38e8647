"""The reliability report: each scenario's figures, and one table of them at the end of a run.

A scenario records its figures on its test item (``record``, through ``record_property``), so
they travel with the test report, through pytest-xdist too, to the process that prints the
summary; ``summary`` is called from ``tests/conftest.py``'s ``pytest_terminal_summary``, the
conftest every process (the xdist controller included) loads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pytest

PROPERTY = "reliability"
COLUMNS = (
    ("produced", "events produced"),
    ("faults", "faults injected"),
    ("lost", "events lost"),
    ("doubled", "counted twice"),
    ("triggers_lost", "triggers lost"),
)


@dataclass
class Figures:
    """What one scenario did and found."""

    produced: int = 0
    faults: int = 0
    lost: int = 0
    doubled: int = 0
    triggers_lost: int = 0


def record(record_property: Callable[[str, object], None], figures: Figures) -> None:
    """Attach ``figures`` to the running test's report (call before asserting)."""
    record_property(PROPERTY, asdict(figures))


def _rows(reports: Iterable[Any]) -> list[tuple[str, str, dict[str, int]]]:
    rows: dict[str, tuple[str, dict[str, int]]] = {}
    for report in reports:
        for name, value in getattr(report, "user_properties", ()):
            if name == PROPERTY and getattr(report, "when", "call") == "call":
                outcome = "passed" if report.passed else report.outcome
                if hasattr(report, "wasxfail"):
                    outcome = "xfailed" if report.skipped else "xpassed"
                rows[report.nodeid] = (outcome, value)
    return [(nodeid, outcome, value) for nodeid, (outcome, value) in sorted(rows.items())]


def summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One table of every scenario that recorded figures (nothing when none did)."""
    reports = [r for kind in terminalreporter.stats.values() for r in kind]
    rows = _rows(reports)
    if not rows:
        return
    terminalreporter.write_sep("=", "reliability scenarios")
    names = [nodeid.split("::", 1)[-1] for nodeid, _, _ in rows]
    width = max(len("scenario"), *(len(n) for n in names))
    header = f"{'scenario':<{width}}  " + "  ".join(title for _, title in COLUMNS) + "  result"
    terminalreporter.write_line(header)
    for name, (_, outcome, value) in zip(names, rows, strict=True):
        cells = "  ".join(f"{value.get(key, 0):>{len(title)}}" for key, title in COLUMNS)
        terminalreporter.write_line(f"{name:<{width}}  {cells}  {outcome}")
