"""Liveness and readiness, as the HTTP probes report them.

The run loop stamps `LoopHealth` as it goes (its thread writes, the server's thread reads
plain values). Alive: the loop polled within ``max_poll_interval`` (a stuck loop would be
evicted from the group anyway). Ready: partitions assigned, the database answers, and its
schema is the one this version needs, and the loop's checkpoints and window closes are not
failing (reasons the loop records: a SQLite file another process keeps locked still answers a
probe's read, and a window closer process that keeps dying shows in no read at all).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from monitor.errors import StoreError
from monitor.store import db


@dataclass(slots=True)
class LoopHealth:
    """What the probes read of the run loop."""

    max_poll_interval_s: float
    monotonic: Callable[[], float] = time.monotonic
    started_at: float = field(default_factory=time.monotonic)
    last_poll_at: float | None = None
    assigned: int = 0
    store_failure: str | None = None  # why checkpoints fail (partitions paused), None: they work
    closing_failure: str | None = None  # why closes keep failing (app.CLOSING_FAILURES_SHOWN)

    def polled(self, assigned: int) -> None:
        self.last_poll_at = self.monotonic()
        self.assigned = assigned

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """(alive, JSON body): polled recently, or still starting within the interval."""
        now = self.monotonic()
        since = now - (self.last_poll_at if self.last_poll_at is not None else self.started_at)
        if since > self.max_poll_interval_s:
            reason = f"no poll for {since:.1f} s (max_poll_interval {self.max_poll_interval_s} s)"
            return False, {"status": "stuck", "reason": reason}
        return True, {"status": "ok", "seconds_since_poll": round(since, 3)}


def readiness(health: LoopHealth, engine: Engine) -> tuple[bool, dict[str, Any]]:
    """(ready, JSON body with every reason it is not)."""
    reasons = []
    if health.assigned == 0:
        reasons.append("no partitions assigned")
    try:
        current = db.current_revision(engine)
    except StoreError as exc:
        reasons.append(f"database unreachable: {exc}")
    else:
        head = db.head_revision()
        if current != head:
            reasons.append(f"database schema at {current or 'empty'}, {head} needed")
    failure = health.store_failure
    if failure is not None:
        reasons.append(f"checkpoints failing, partitions paused: {failure}")
    if health.closing_failure is not None:  # no window closes, no alert fires
        reasons.append(f"closing windows failing: {health.closing_failure}")
    if reasons:
        return False, {"status": "not ready", "reasons": reasons}
    return True, {"status": "ready", "partitions": health.assigned}
