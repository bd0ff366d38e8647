"""The run loop against a scripted consumer and a real database: what it does when the broker's
log no longer reaches the stored offsets, with records fetched before its own seek, and when
its checkpoint is fenced while partitions are being revoked.

The scripted source answers ``poll`` from a list of steps (rebalance changes, records, high
watermarks) and, like kafka-python, refuses to seek a partition it does not have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import orjson
import pytest
from sqlalchemy import Engine

from monitor.app import RunLoop, Services, build_pipeline, utc_now
from monitor.checkpoint import Checkpointer
from monitor.closing import WindowCloser
from monitor.health import LoopHealth, readiness
from monitor.ingest.consumer import TP, KafkaSource, Rebalance
from monitor.reference.service import ReferenceCache
from monitor.settings import Settings
from monitor.status import status_report
from monitor.store import db, repository
from monitor.store.db import transaction
from monitor.store.repository import Position

GROUP = "g"
P0 = ("p", 0)
RESTARTED = "is beyond the broker's log"
EVENT_MS = int((datetime.now(UTC) - timedelta(hours=2)).timestamp() * 1000)


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes
    timestamp: int | None = None


def records(first: int, n: int) -> list[Record]:
    return [
        Record(o, orjson.dumps({"model": "m", "ts": EVENT_MS + o, "features": {"x": 1.0}}))
        for o in range(first, first + n)
    ]


@dataclass
class Step:
    """One poll: rebalance changes the callbacks queue, records returned, high watermarks."""

    records: dict[TP, list[Record]] = field(default_factory=dict)
    revoked: frozenset[TP] = frozenset()
    assigned: frozenset[TP] = frozenset()
    highwaters: dict[TP, int] = field(default_factory=dict)
    meanwhile: Callable[[], object] | None = None  # what happens elsewhere before this poll


class ScriptedSource:
    """Stands in for KafkaSource; stops the loop when the script is played."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.owned: set[TP] = set()
        self.marks: dict[TP, int] = {}
        self.seeks: list[dict[TP, int | None]] = []
        self.changes: list[Rebalance] = []
        self.loop: RunLoop | None = None

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[Record]]:
        if not self.steps:
            assert self.loop is not None
            self.loop.stop.set()
            return {}
        step = self.steps.pop(0)
        if step.meanwhile is not None:
            step.meanwhile()
        if step.revoked or step.assigned:
            self.owned = (self.owned - step.revoked) | step.assigned
            self.changes = [
                Rebalance(step.revoked, frozenset()),
                Rebalance(frozenset(), step.assigned),
            ]
        self.marks.update(step.highwaters)
        return dict(step.records)

    def rebalances(self) -> list[Rebalance]:
        changes, self.changes = self.changes, []
        return changes

    def partitions(self, topic: str) -> set[int]:
        return {p for t, p in self.owned if t == topic}

    def highwaters(self) -> dict[TP, int]:
        return {tp: mark for tp, mark in self.marks.items() if tp in self.owned}

    def assignment(self) -> set[TP]:
        return set(self.owned)

    def seek(self, positions: Mapping[TP, int | None]) -> None:
        for tp in positions:
            if tp not in self.owned:
                raise ValueError(f"Unassigned partition: {tp}")  # as kafka-python
            self.marks.pop(tp, None)  # as KafkaSource.seek: a new position, no mark yet
        self.seeks.append(dict(positions))

    def pause(self, tps: Iterable[TP]) -> None:
        pass

    def resume_all(self) -> None:
        pass

    def commit(self, offsets: Mapping[TP, int]) -> None:
        pass

    def close(self, timeout_s: float = 5.0) -> None:
        pass


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    return engine


def settings_for(engine: Engine, commit_every: int = 1_000_000) -> Settings:
    """By default, checkpoints only when partitions are revoked and at the end."""
    return Settings.from_mapping(
        {
            "kafka": {"group_id": GROUP, "predictions_topic": "p", "labels_topic": "l"},
            "database": {"url": engine.url.render_as_string(hide_password=False)},
            "ingest": {"commit_interval": "1h", "commit_every": commit_every},
            "http": {"enabled": False},
        }
    )


def play(
    engine: Engine,
    steps: list[Step],
    *,
    commit_every: int = 1_000_000,
    closer_engine: Engine | None = None,
    health: LoopHealth | None = None,
) -> ScriptedSource:
    """Run the loop over ``steps``, then let it exit (final checkpoint included).

    ``closer_engine``: where the window closer looks (the checkpoints store in ``engine``).
    """
    settings = settings_for(engine, commit_every)
    references = ReferenceCache(engine)
    source = ScriptedSource(steps)
    closer = WindowCloser(
        settings,
        closer_engine or engine,
        (GROUP, "p"),
        ReferenceCache(closer_engine) if closer_engine else references,
        utc_now,
        lambda: source.partitions("p"),
    )
    checkpointer = Checkpointer(engine, GROUP, utc_now)
    pipeline = build_pipeline(settings, references)
    services = Services(health=health or LoopHealth(300.0))
    loop = RunLoop(settings, cast(KafkaSource, source), pipeline, checkpointer, closer, services)
    source.loop = loop
    loop.run()
    return source


def store_offset(engine: Engine, tp: TP, expected: int | None, offset: int) -> None:
    """What another member's checkpoint (or an earlier run) left for ``tp``."""
    with transaction(engine, write=True) as conn:
        repository.advance_offsets(
            conn, GROUP, {tp: (expected, Position(offset, EVENT_MS))}, utc_now()
        )


def stored(engine: Engine) -> tuple[dict[TP, int], int]:
    """The group's stored offsets, and the events counted."""
    with transaction(engine) as conn:
        offsets = repository.load_offsets(conn, GROUP)
        events = sum(t.events for t in repository.model_totals(conn))
    return offsets, events


def test_a_log_end_below_the_stored_offset_restarts_the_partition_from_the_log_start(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that answers a fetch beyond its log with an empty response and a lower log end
    (Tansu, restarted empty): warned, sought to the log start, every new record counted, and
    `status` names the offset that was expected."""
    store_offset(engine, P0, None, 100)
    steps = [
        Step(assigned=frozenset({P0})),
        Step(highwaters={P0: 3}),  # the fetch at 100: nothing there, the log ends at 3
        Step(records={P0: records(0, 3)}, highwaters={P0: 3}),
    ]
    with caplog.at_level(logging.WARNING, logger="monitor.app"):
        source = play(engine, steps)
    assert source.seeks == [{P0: 100}, {P0: None}]
    assert stored(engine) == ({P0: 3}, 3)
    assert "p[0]: offset 100 is beyond the broker's log (the log ends at 3)" in caplog.text
    settings = settings_for(engine)
    (partition,) = status_report(settings, engine, with_lag=False)["partitions"]
    assert partition["offset"] == 3
    assert partition["log_reset"]["expected_offset"] == 100


def test_records_below_the_position_after_an_out_of_range_reset_restart_the_partition(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A Kafka broker answers "out of range" and the consumer resets to the new log by itself:
    the records then start below the stored offset; warned, and every one counted."""
    store_offset(engine, P0, None, 100)
    steps = [
        Step(assigned=frozenset({P0})),
        Step(records={P0: records(0, 4)}, highwaters={P0: 4}),
    ]
    with caplog.at_level(logging.WARNING, logger="monitor.app"):
        source = play(engine, steps)
    assert source.seeks == [{P0: 100}]
    assert stored(engine) == ({P0: 4}, 4)
    assert "p[0]: offset 100 is beyond the broker's log (the consumer reset to 0)" in caplog.text


def test_records_fetched_before_the_seek_are_dropped_not_taken_for_a_restart(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Records that arrive in the poll that assigned their partition were fetched before the
    seek to the stored offset: dropped, then read again from there, counted once, and no
    restart is reported when the seek takes the consumer back over them."""
    store_offset(engine, P0, None, 2)
    steps = [
        Step(assigned=frozenset({P0}), records={P0: records(0, 5)}, highwaters={P0: 5}),
        Step(records={P0: records(2, 3)}, highwaters={P0: 5}),
    ]
    with caplog.at_level(logging.WARNING, logger="monitor.app"):
        play(engine, steps)
    assert stored(engine) == ({P0: 5}, 3)
    assert RESTARTED not in caplog.text


def test_a_fenced_checkpoint_while_partitions_are_revoked_lets_them_go(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The revoked partitions' checkpoint is fenced (their new owner stored first): the batch
    is dropped, the revoked partitions are not sought again (kafka-python refuses: no longer
    assigned), and the loop carries on with the one it keeps."""
    p1 = ("p", 1)
    steps = [
        Step(assigned=frozenset({P0, p1})),
        Step(records={P0: records(0, 5), p1: records(0, 2)}, highwaters={P0: 5, p1: 2}),
        Step(
            revoked=frozenset({P0, p1}),
            assigned=frozenset({p1}),
            meanwhile=lambda: store_offset(engine, P0, None, 5),  # P0's new owner stored
        ),
        Step(records={p1: records(0, 2)}, highwaters={p1: 2}),
    ]
    with caplog.at_level(logging.WARNING, logger="monitor.app"):
        source = play(engine, steps)
    assert "checkpoint fenced" in caplog.text
    assert source.seeks == [{P0: None, p1: None}, {p1: None}]
    assert stored(engine) == ({P0: 5, p1: 2}, 2)  # P0's five are the new owner's to count


def test_failing_window_closes_make_the_daemon_not_ready_until_one_runs(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Checkpoints store, but closing due windows fails (here the closer's database has no
    schema yet): no window would close and no alert fire, so readiness says why from the
    second failure in a row (the first may be stale, see CLOSING_FAILURES_SHOWN); the first
    close that runs again clears it."""
    closer_engine = db.create_db_engine(f"sqlite:///{tmp_path}/closer.db")
    health = LoopHealth(300.0)
    seen: list[tuple[bool, list[str]]] = []

    def probe() -> None:
        ready, body = readiness(health, engine)
        seen.append((ready, body.get("reasons", [])))

    steps = [
        Step(assigned=frozenset({P0})),
        Step(records={P0: records(0, 2)}, highwaters={P0: 2}),  # a checkpoint, a close
        Step(records={P0: records(2, 2)}, highwaters={P0: 4}, meanwhile=probe),
        Step(meanwhile=probe),
        Step(meanwhile=lambda: db.upgrade(closer_engine)),
        Step(records={P0: records(4, 2)}, highwaters={P0: 6}),
        Step(meanwhile=probe),
    ]
    with caplog.at_level(logging.WARNING, logger="monitor.app"):
        play(engine, steps, commit_every=2, closer_engine=closer_engine, health=health)
    (ready_once, _), (ready, reasons), (ready_again, _) = seen
    assert ready_once  # one failed close, not yet two
    assert not ready
    (reason,) = reasons
    assert reason.startswith("closing windows failing: database error: ")
    assert reason.endswith("(2 times in a row)")
    assert "closing windows failed, will retry: database error" in caplog.text
    assert ready_again
    assert stored(engine) == ({P0: 6}, 6)
