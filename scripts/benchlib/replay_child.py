"""``monitor replay`` timed in-process: ``python replay_child.py CONFIG FILE``.

Run as a child process so its peak memory is its own. The clock runs around
``monitor.app.replay`` only (the call ``monitor replay`` makes), so interpreter start-up and
imports are not counted; each ``Checkpointer.commit`` is timed too, the replay's checkpoints.
Prints one JSON object.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson

from monitor import app
from monitor.checkpoint import Checkpointer
from monitor.settings import load_settings

CHECKPOINT_MS: list[float] = []


def _timed_commit() -> None:
    original = Checkpointer.commit

    def commit(self: Checkpointer, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            CHECKPOINT_MS.append((time.perf_counter() - began) * 1000)

    Checkpointer.commit = commit  # type: ignore[method-assign]


def main() -> None:
    config, file = Path(sys.argv[1]), Path(sys.argv[2])
    settings = load_settings(config)
    engine = app.open_database(settings)
    _timed_commit()
    began = time.perf_counter()
    result = app.replay(settings, engine, file, "predictions")
    seconds = time.perf_counter() - began
    engine.dispose()
    out = {
        "records": result.records,
        "seconds": seconds,
        "events_per_s": result.records / seconds if seconds > 0 else None,
        "windows_closed": result.windows_closed,
        "checkpoint_ms": CHECKPOINT_MS,
    }
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
