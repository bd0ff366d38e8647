"""Reading a child's output and asking whether a process still runs (demo tests)."""

from __future__ import annotations

import os
import re
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
