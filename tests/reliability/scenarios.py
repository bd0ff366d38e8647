"""The life of one reliability scenario: fresh topics holding produced traffic, a deployment
of ``monitor run``, its kills and restarts, the last run, and the comparison with the oracle."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.oracle import (
    Differences,
    Expected,
    Terms,
    check,
    check_deliveries,
    expect,
    expected_episodes,
    now_ms,
)
from tests.support import reliability
from tests.support.daemon import Deployment, deployment, kill, wait
from tests.support.kafka import TopicFactory, produce
from tests.support.receiver import Receiver

Report = Callable[[reliability.Figures], None]


@dataclass
class Scenario:
    """One deployment of ``monitor run`` over produced traffic, killed and restarted."""

    dep: Deployment
    predictions: list[tuple[int | None, bytes]]
    labels: list[tuple[int | None, bytes]]
    log: Path
    faults: int = 0
    record_ts_ms: int | None = None
    migrated: bool = True  # False: the first run migrates (one process start fewer)
    notes: list[str] = field(default_factory=list)

    @property
    def produced(self) -> int:
        return len(self.predictions) + len(self.labels)

    def killed_at(self, spec: str, timeout: float = 120) -> None:
        """Run until the fault point ``spec`` (``point[:n]``) kills the daemon."""
        process = self.dep.start(
            *self._run("--exit-when-idle", "10s", "--flush"),
            log=self.log,
            env={"MONITOR_FAULT": spec},
        )
        try:
            code = wait(process, self.log, timeout)
        finally:
            kill(process)
        assert code == -signal.SIGKILL, f"{spec} was never reached:\n{self.tail()}"
        self.faults += 1

    def finish(self, idle: str = "2s") -> None:
        """The last, uninterrupted run: consume what is left, flush the windows, deliver."""
        process = self.dep.start(*self._run("--exit-when-idle", idle, "--flush"), log=self.log)
        assert wait(process, self.log, 300) == 0, self.tail()

    def _run(self, *args: str) -> list[str]:
        upgrade = [] if self.migrated else ["--upgrade-db"]
        self.migrated = True
        return ["run", *upgrade, *args]

    def compare(self, terms: Terms | None = None) -> tuple[Differences, Expected]:
        """The oracle's differences with the database, and the oracle itself."""
        terms = terms or Terms.of(self.dep.config)
        expected = expect(
            terms, self.predictions, self.labels, now_ms=now_ms(), record_ts_ms=self.record_ts_ms
        )
        assert sum(expected.fates().values()) == self.produced  # every record has one fate
        return check(self.dep, expected, terms), expected

    def assert_equal(self, *differences: list[str]) -> None:
        """No difference at all (else every one, then the end of the daemon's log)."""
        problems = [line for found in differences for line in found]
        assert not problems, "\n".join([*problems[:50], "--- monitor log ---", self.tail(2000)])

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


def scenario(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    database_url: str,
    predictions: list[tuple[int | None, bytes]],
    labels: list[tuple[int | None, bytes]],
    *,
    partitions: int = 4,
    record_ts_ms: int | None = None,
    migrate: bool = True,
    **config: Any,
) -> Scenario:
    """Fresh topics holding the traffic, and a migrated database for a new consumer group.

    ``config`` sections merge into the deployment's (``ingest`` keys into its defaults).
    ``migrate=False`` leaves the migration to the scenario's first ``run`` (``killed_at``
    or ``finish``), saving a process start; the database is empty until then.
    """
    topics = topic_factory(partitions)
    produce(kafka_bootstrap, topics.predictions, predictions, timestamp_ms=record_ts_ms)
    produce(kafka_bootstrap, topics.labels, labels, timestamp_ms=record_ts_ms)
    ingest = {"commit_interval": "200ms", "commit_every": 1500, **config.pop("ingest", {})}
    dep = deployment(
        tmp_path, kafka_bootstrap, database_url, topics.predictions, topics.labels,
        ingest=ingest, **config,
    )  # fmt: skip
    if migrate:
        upgraded = dep.run("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
    log = tmp_path / "run.log"
    return Scenario(dep, predictions, labels, log, record_ts_ms=record_ts_ms, migrated=migrate)


def deliveries(
    s: Scenario, receiver: Receiver, expected: Expected, threshold: int, **options: Any
) -> Differences:
    """check_deliveries for the volume rule of ``traffic.alerting_config``."""
    if "trigger_requests" in options:  # the first spelling: None (at least once) only
        options["resent"] = options.pop("trigger_requests")
    episodes = expected_episodes(expected.counted, threshold)
    return check_deliveries(s.dep, receiver.requests(), episodes, **options)
