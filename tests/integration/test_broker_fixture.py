"""End-to-end checks of the Kafka and database fixtures the integration tests build on.

If these fail, every other integration test's failure is suspect, so they test the fixtures'
promises directly: exact delivery, large records, and per-test database isolation.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from sqlalchemy.engine import make_url

from tests.support.kafka import TopicFactory, kafka_consumer_fast_options, produce

RECORDS = 1000
PARTITIONS = 4
TWO_MIB = 2 * 1024 * 1024
# Above the 2 MiB value plus its record-batch framing (2,097,240 bytes on the wire).
RAISED_FETCH_BYTES = 4 * 1024 * 1024


class _RecordingListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers when and on which thread partitions were assigned."""

    def __init__(self) -> None:
        self.assigned_at: float | None = None
        self.threads: set[str] = set()
        self.on_main_thread = False

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing to release in this test."""

    def on_partitions_assigned(self, assigned: Any) -> None:
        """Record the join time and the calling thread."""
        if assigned and self.assigned_at is None:
            self.assigned_at = time.monotonic()
        self.threads.add(threading.current_thread().name)
        self.on_main_thread |= threading.current_thread() is threading.main_thread()


def test_group_consumer_receives_every_record_exactly_once(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    """1,000 records over 4 partitions reach a group consumer exactly once, in order."""
    topics = topic_factory(PARTITIONS)
    sent = [(i % PARTITIONS, f"record-{i}".encode()) for i in range(RECORDS)]
    produce(kafka_bootstrap, topics.predictions, sent)

    listener = _RecordingListener()
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_consumer_fast_options(),
    )
    seen: list[tuple[int, int, bytes]] = []
    subscribed_at = time.monotonic()
    try:
        consumer.subscribe([topics.predictions], listener=listener)
        deadline = subscribed_at + 60
        # Stop on the record count: end offsets under-report on Tansu.
        while len(seen) < RECORDS and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                seen.extend((tp.partition, r.offset, r.value) for r in batch)
        # One more short poll so duplicates or strays past the expected count show up.
        for tp, batch in consumer.poll(timeout_ms=500).items():
            seen.extend((tp.partition, r.offset, r.value) for r in batch)
    finally:
        consumer.close()

    assert listener.assigned_at is not None, "never joined the group"
    print(
        f"group join took {listener.assigned_at - subscribed_at:.2f} s; "
        f"listener threads: {sorted(listener.threads)}"
    )
    # kafka-python 3 runs rebalance callbacks on its I/O thread, not the polling thread.
    assert not listener.on_main_thread
    duplicates = [key for key, n in Counter(seen).items() if n > 1]
    assert not duplicates
    expected = {
        (p, offset, value)
        for p in range(PARTITIONS)
        for offset, value in enumerate(v for q, v in sent if q == p)
    }
    assert set(seen) == expected


@pytest.mark.parametrize(
    "fetch_options",
    [
        pytest.param(
            {
                "max_partition_fetch_bytes": RAISED_FETCH_BYTES,
                "fetch_max_bytes": RAISED_FETCH_BYTES,
            },
            id="raised-fetch-limits",
        ),
        # Since KIP-74 (fetch v3) a broker returns an oversized first batch whole, so the
        # 1 MiB / 50 MiB defaults only slow such records down; this documents that.
        pytest.param({}, id="default-fetch-limits"),
    ],
)
def test_two_mib_record_round_trips(
    kafka_bootstrap: str, topic_factory: TopicFactory, fetch_options: dict[str, int]
) -> None:
    """A 2 MiB record can be produced and consumed, and the partition moves past it."""
    topics = topic_factory(1)
    big = os.urandom(TWO_MIB)
    produce(kafka_bootstrap, topics.predictions, [(0, b"before"), (0, big), (0, b"after")])

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **fetch_options,
    )
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topics.predictions, 0)])
        deadline = time.monotonic() + 30
        while len(values) < 3 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in batch)
    finally:
        consumer.close()

    assert values == [b"before", big, b"after"]


def test_seek_discards_records_fetched_before_it(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    """After seek(), poll() returns records from the new position, none buffered earlier."""
    topics = topic_factory(1)
    produce(kafka_bootstrap, topics.predictions, [(0, str(i).encode()) for i in range(200)])
    tp = TopicPartition(topics.predictions, 0)
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=10,  # the first fetch buffers far more than one poll returns
    )
    try:
        consumer.assign([tp])
        first: list[int] = []
        deadline = time.monotonic() + 30
        while not first and time.monotonic() < deadline:
            first = [r.offset for r in consumer.poll(timeout_ms=500).get(tp, [])]
        consumer.seek(tp, 150)
        after: list[int] = []
        while not after and time.monotonic() < deadline:
            after = [r.offset for r in consumer.poll(timeout_ms=500).get(tp, [])]
    finally:
        consumer.close()

    assert first == list(range(10))
    assert after == list(range(150, 160))


def test_database_url_is_fresh_and_isolated(database_url: str) -> None:
    """The URL points at an empty database that only this test sees."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        path = Path(url.database)
        if path.exists():
            with contextlib.closing(sqlite3.connect(path)) as db:
                assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
        return

    options = url.query["options"]
    assert isinstance(options, str)
    schema = options.rpartition("search_path=")[2].split()[0]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT current_schema()")).scalar_one() == schema
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("CREATE TABLE isolation_probe (id integer PRIMARY KEY)"))
    finally:
        engine.dispose()

    # Seen from a connection without the search_path, the table lives in the test schema.
    plain = sa.create_engine(url.difference_update_query(["options"]))
    try:
        with plain.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT table_schema FROM information_schema.tables"
                    " WHERE table_name = 'isolation_probe'"
                )
            ).scalars()
            assert schema in set(found)
            assert conn.execute(sa.text("SELECT current_schema()")).scalar_one() != schema
    finally:
        plain.dispose()
