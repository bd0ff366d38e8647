"""Fault points: armed by MONITOR_FAULT, a no-op otherwise, loud about unknown names."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = (
    "from monitor.faults import fault\n"
    "for i in range(3):\n"
    "    fault('mid_batch')\n"
    "    print(i, flush=True)\n"
)


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=False
    )


@pytest.mark.parametrize(
    ("value", "code", "printed"),
    [
        ("", 0, "0\n1\n2\n"),  # unset: nothing happens
        ("mid_batch", -signal.SIGKILL, ""),  # the first pass kills
        ("mid_batch:3", -signal.SIGKILL, "0\n1\n"),  # the third pass kills
        ("during_window_close", 0, "0\n1\n2\n"),  # another point armed: this one passes
    ],
)
def test_an_armed_point_kills_the_process_on_its_nth_pass(
    value: str, code: int, printed: str
) -> None:
    """MONITOR_FAULT=point[:n] sends SIGKILL on the n-th pass of that point, only that one."""
    result = run({"MONITOR_FAULT": value, "PATH": ""})
    assert (result.returncode, result.stdout) == (code, printed), result.stderr


def test_an_unknown_point_is_refused_with_the_known_ones() -> None:
    """A misspelt point fails at its first check instead of silently never firing."""
    result = run({"MONITOR_FAULT": "mid-batch"})
    assert result.returncode == 1
    assert "unknown fault point" in result.stderr and "mid_batch" in result.stderr
