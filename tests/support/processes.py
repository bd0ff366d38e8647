"""Reading a child's output, waiting for its log, asking whether a process still runs (demo
tests)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path


def found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in ``text``; fails showing the output's end."""
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in output:\n{text[-5000:]}"
    return match[1]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def wait_for(log: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    """The log once ``pattern`` appears in it; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        assert process.poll() is None, text[-5000:]
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not seen in {timeout} s:\n{log.read_text()[-5000:]}")
