"""Named fault points: places where a test can make the process kill itself.

``MONITOR_FAULT=<point>`` arms one point; ``MONITOR_FAULT=<point>:<n>`` fires on its n-th
pass (default the first). Reaching the armed point sends SIGKILL to this very process, the
crash no handler can soften, so a test can check that what the daemon stored is exactly what
an uninterrupted run stores. Unset, a point costs one comparison.
"""

from __future__ import annotations

import os
import signal
from typing import Final

POINTS: Final = (
    "mid_batch",  # a partition's records taken in, their checkpoint not yet written
    "after_db_commit_before_kafka_commit",  # checkpoint stored, Kafka not yet told
    "after_outbox_insert",  # alert transition queued, its transaction not yet committed
    "after_webhook_2xx_before_delivered",  # the target has it, the outbox does not know
    "during_window_close",  # the window claimed and evaluated, not yet committed
    "during_rebalance",  # partitions revoked, before the assignment is followed
)
ENV: Final = "MONITOR_FAULT"

_armed: tuple[str, int] | None = None
_also: list[int] = []  # processes killed with this one
_passes = 0
_read = False


def _arm() -> tuple[str, int] | None:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    name, _, nth = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown fault point (known: {', '.join(POINTS)})")
    return name, int(nth) if nth else 1


def fault(point: str) -> None:
    """Die here (SIGKILL) when ``point`` is the armed one and its pass has come."""
    global _armed, _passes, _read
    if not _read:
        _armed, _read = _arm(), True
    if _armed is None or _armed[0] != point:
        return
    _passes += 1
    if _passes >= _armed[1]:
        for pid in _also:
            os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def kill_with(pid: int) -> None:
    """In a helper process: a point reached here kills ``pid`` (the daemon) first, as a
    replica dies whole when its container is killed."""
    _also.append(pid)
