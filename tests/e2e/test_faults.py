"""Fault points: `monitor run` killed by SIGKILL at a named point, then restarted.

``MONITOR_FAULT=<point>[:n]`` makes the daemon kill itself the n-th time it passes the point
(monitor/faults.py). After the restart, the counts, the dead letters and the closed windows
must be exactly those of the produced stream, as if nothing had happened.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from monitor.faults import POINTS
from tests.support.daemon import deployment, kill, wait
from tests.support.kafka import produce
from tests.support.streams import prediction_stream

STREAM_FAULTS = [
    ("mid_batch:3", "records taken in, not yet checkpointed"),
    ("after_db_commit_before_kafka_commit:2", "stored, Kafka not told"),
    ("during_window_close:2", "a window claimed and evaluated, not committed"),
]


def test_every_fault_point_is_known() -> None:
    """The points the scenarios arm are points monitor knows."""
    assert {spec.split(":")[0] for spec, _ in STREAM_FAULTS} <= set(POINTS)


@pytest.mark.parametrize(("spec", "what"), STREAM_FAULTS, ids=[s for s, _ in STREAM_FAULTS])
def test_sigkill_at_a_fault_point_then_restart_loses_and_doubles_nothing(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Any,
    preferred_database_url: str,
    spec: str,
    what: str,
) -> None:
    """Killed at the point (``what``), restarted: counts, dead letters and closed windows are
    exactly the stream's."""
    stream = prediction_stream(12_000, partitions=2, huge=False)
    topics = topic_factory(2)
    produce(kafka_bootstrap, topics.predictions, stream.records)
    dep = deployment(
        tmp_path, kafka_bootstrap, preferred_database_url, topics.predictions, topics.labels,
        ingest={"commit_interval": "200ms", "commit_every": 1500},
        models=[{"name": m, "window": "5m"} for m in ("fraud", "churn", "ltv")],
    )  # fmt: skip
    assert dep.run("db", "upgrade").returncode == 0
    log = tmp_path / "faulted.log"
    faulted = dep.start(
        "run", "--exit-when-idle", "10s", "--flush", log=log, env={"MONITOR_FAULT": spec}
    )
    try:
        code = wait(faulted, log, 120)
    finally:
        kill(faulted)
    assert code == -signal.SIGKILL, f"the fault point {spec} was never reached:\n{log.read_text()}"
    assert dep.stored_offsets() < len(stream.records), "killed after everything was stored"

    again = dep.run("run", "--exit-when-idle", "4s", "--flush")
    assert again.returncode == 0, again.stderr[-3000:]
    assert dep.stored_offsets() == len(stream.records)
    assert dep.counts() == stream.expected
    dead = {(p, o) for _, p, o, _ in dep.dead_letters()}
    assert sorted(dead) == sorted(stream.bad_coordinates())
    assert len(dep.dead_letters()) == len(dead)  # none stored twice
    windows = {(m, v, s) for m, v, s in stream.expected}
    ((closed,),) = dep.query("SELECT COUNT(*) FROM closed_windows")
    assert closed == len(windows)
