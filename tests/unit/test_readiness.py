"""Readiness says 503 while the run loop's checkpoints fail, even when a read still works."""

from __future__ import annotations

from pathlib import Path

from monitor.health import LoopHealth, readiness
from monitor.store import db


def test_failing_checkpoints_make_the_daemon_not_ready(tmp_path: Path) -> None:
    """A SQLite file another process keeps write-locked answers the probe's read; the loop's
    recorded checkpoint failure is what makes /readyz say 503, and its clearing 200 again."""
    engine = db.create_db_engine(f"sqlite:///{tmp_path}/monitor.db")
    db.upgrade(engine)
    health = LoopHealth(30.0)
    health.polled(assigned=2)
    assert readiness(health, engine)[0]
    health.store_failure = "database error: database is locked"
    ready, body = readiness(health, engine)
    assert not ready
    assert body["reasons"] == [
        "checkpoints failing, partitions paused: database error: database is locked"
    ]
    health.store_failure = None
    assert readiness(health, engine) == (True, {"status": "ready", "partitions": 2})
