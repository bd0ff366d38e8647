"""Run ``monitor`` as a user does, a subprocess with a config file, and read what it stored."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

from tests.support.kafka import kafka_consumer_fast_options

MONITOR = [sys.executable, "-m", "monitor"]


@dataclass
class Deployment:
    """A config file for one consumer group against one database and topic pair."""

    config: Path
    database_url: str
    group_id: str

    def command(self, *args: str) -> list[str]:
        return [*MONITOR, *args, "--config", str(self.config)]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a monitor command to completion, output captured."""
        return subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(
        self, *args: str, log: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``monitor run`` (or another command) in the background; ``env`` adds
        variables to this process's environment."""
        out = log.open("ab") if log else subprocess.DEVNULL
        environment = {**os.environ, **env} if env else None
        return subprocess.Popen(
            self.command(*args), stdout=out, stderr=subprocess.STDOUT, env=environment
        )

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a read-only SQL query on the deployment's database."""
        return query(self.database_url, sql, **params)

    def counts(self) -> Counter[tuple[str, str, int]]:
        """Stored events per (model, version, window start in epoch ms)."""
        result: Counter[tuple[str, str, int]] = Counter()
        for model, version, start, events in self.query(
            "SELECT model, version, window_start, events FROM window_counts"
        ):
            result[(model, version, epoch_ms(start))] += events
        return +result

    def stored_offsets(self) -> int:
        """Sum of the next offsets stored for this group: how far it has checkpointed."""
        ((total,),) = self.query(
            "SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets WHERE group_id = :g",
            g=self.group_id,
        )
        return int(total)

    def dead_letters(self) -> list[tuple[str, int, int, str]]:
        """Stored dead letters as (topic, partition, offset, reason)."""
        rows = self.query('SELECT topic, "partition", "offset", reason FROM dead_letters')
        return [(t, p, o, r) for t, p, o, r in rows]


def query(url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of one read-only SQL query on the database at ``url`` (a short-lived engine)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def epoch_ms(value: Any) -> int:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def deployment(
    tmp_path: Path,
    bootstrap: str,
    database_url: str,
    predictions: str,
    labels: str,
    **overrides: Any,
) -> Deployment:
    """Write a config for a fresh consumer group; ``overrides`` merge into its sections."""
    group_id = f"monitor-{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "predictions_topic": predictions,
            "labels_topic": labels,
            "consumer": kafka_consumer_fast_options(),
        },
        "database": {"url": database_url},
        "ingest": {"commit_interval": "1s", "commit_every": 5000},
        "http": {"enabled": False},
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path = tmp_path / f"{group_id}.yaml"
    path.write_text(yaml.safe_dump(config))
    return Deployment(path, database_url, group_id)


def wait(process: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The exit code; a process still running after ``timeout`` is killed and its log shown."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        raise AssertionError(
            f"still running after {timeout} s:\n{log.read_text()[-3000:]}"
        ) from None


def kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` and reap the process."""
    if process.poll() is None:
        os.kill(process.pid, sig)
    process.wait(timeout=30)


def wait_until(
    process: subprocess.Popen[bytes], reached: Callable[[], bool], log: Path, timeout: float = 120
) -> None:
    """Poll ``reached`` until true; fail with the log if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while not reached():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)


def kill_when(dep: Deployment, reached: Callable[[], bool], log: Path, rng: random.Random) -> None:
    """Start ``monitor run``, and SIGKILL it 0 to 200 ms after ``reached()`` turns true.

    The random delay lands the kill mid-batch, mid-checkpoint or between them.
    """
    process = dep.start("run", log=log)
    wait_until(process, reached, log)
    time.sleep(rng.uniform(0.0, 0.2))
    kill(process, signal.SIGKILL)


def listening_port(log: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """The port ``monitor run`` logged it listens on (http.listen port 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"http: listening on [\d.]+:(\d+)", log.read_text(errors="replace"))
        if found:
            return int(found[1])
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"no listening line:\n{log.read_text()[-3000:]}")
