"""Outages the reliability scenarios inflict on `monitor run`, and waiting them out.

A scenario that freezes or restarts the broker gets a private one (``private_broker``): the
session broker is shared by every test of the run. A SQLite file is taken away by another
process holding its write lock (``SqliteLock``); PostgreSQL by a cut or held TCP proxy
(tests/support/proxy.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import yaml

from monitor.demo.broker import EmbeddedBroker, create_topics
from tests.support import KAFKA_ENV
from tests.support.daemon import Deployment, query
from tests.support.kafka import TopicFactory, TopicNames

__all__ = [
    "SqliteLock",
    "log_text",
    "member",
    "private_broker",
    "private_topics",
    "recreate",
    "skip_with_external_kafka",
    "stored_offsets",
    "tail",
    "wait_for",
]


def skip_with_external_kafka() -> None:
    """Skip a scenario that must freeze or restart the broker when the tests run against an
    external Kafka (``MONITOR_TEST_KAFKA``): that broker is not this test's to stop."""
    if os.environ.get(KAFKA_ENV):
        pytest.skip(
            f"{KAFKA_ENV} points to an external Kafka, which this scenario cannot freeze or "
            "restart (it needs its own embedded broker)"
        )


@contextmanager
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Tansu broker for this test alone (skipped against an external Kafka)."""
    skip_with_external_kafka()
    with EmbeddedBroker(tmp_dir=tmp_path) as broker:
        yield broker


def private_topics(broker: EmbeddedBroker) -> TopicFactory:
    """The ``topic_factory`` fixture's twin for a private broker: the same names, created
    again by ``recreate`` after the broker came back empty."""

    def make(partitions: int = 4) -> TopicNames:
        suffix = uuid.uuid4().hex[:8]
        names = TopicNames(f"predictions-{suffix}", f"labels-{suffix}", f"dead-letters-{suffix}")
        recreate(broker, names, partitions)
        return names

    return make


def recreate(broker: EmbeddedBroker, names: TopicNames, partitions: int) -> None:
    create_topics(
        broker.bootstrap,
        {names.predictions: partitions, names.labels: partitions, names.dead_letters: 1},
    )


def member(
    dep: Deployment, name: str, database_url: str | None = None, **sections: Any
) -> Deployment:
    """Another member of ``dep``'s consumer group: its config, written to a file of its own,
    with another ``database_url`` (the same database, reached another way) and ``sections``
    merged in (``kafka.consumer`` options merge into the fast defaults)."""
    config = yaml.safe_load(dep.config.read_text())
    url = database_url or dep.database_url
    config["database"]["url"] = url
    for section, values in sections.items():
        if section == "kafka" and "consumer" in values:
            values = {**values, "consumer": {**config["kafka"]["consumer"], **values["consumer"]}}
        config.setdefault(section, {}).update(values)
    path = dep.config.with_name(f"{dep.config.stem}-{name}.yaml")
    path.write_text(yaml.safe_dump(config))
    return Deployment(path, url, dep.group_id)


def log_text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def tail(log: Path, chars: int = 4000) -> str:
    return log_text(log)[-chars:] or "(no log)"


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    process: subprocess.Popen[bytes],
    log: Path,
    what: str = "the condition",
) -> float:
    """Poll ``condition`` until true; returns when (monotonic). Fails early if the daemon died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        if process.poll() is not None:
            pytest.fail(f"monitor run exited {process.returncode} waiting for {what}:\n{tail(log)}")
        time.sleep(0.1)
    pytest.fail(f"{what}: not reached within {timeout:.0f} s:\n{tail(log)}")


def stored_offsets(dep: Deployment, database_url: str | None = None) -> int:
    """Sum of the group's stored next offsets, read at ``database_url`` (default: the
    deployment's), so a scenario can read around the proxy it cut."""
    ((total,),) = query(
        database_url or dep.database_url,
        "SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets WHERE group_id = :g",
        g=dep.group_id,
    )
    return int(total)


_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class SqliteLock:
    """Another process holding a SQLite file's write lock (``BEGIN EXCLUSIVE``) until
    ``release()``: every writer of the file waits, then fails with "database is locked"."""

    def __init__(self, path: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # waits its turn behind the daemon's writer
        if line.strip() != b"locked":
            self._process.kill()
            raise RuntimeError(f"could not lock {path}: {line!r}")

    def release(self) -> None:
        """Roll back and let go; idempotent."""
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=30)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
