"""The Kafka fetcher process against a real broker: what the run loop relies on of it.

It must hand over the same records a consumer in this process would, in order; forget what
it polled ahead when the loop seeks; carry rebalances and high watermarks with their batch;
raise the consumer's errors in the daemon; and leave the group when the daemon goes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer

from monitor.errors import IngestError
from monitor.ingest.consumer import TP, consumer_options
from monitor.ingest.fetcher import FetcherProcess
from monitor.settings import Settings
from tests.support.kafka import TopicFactory, kafka_consumer_fast_options, produce

PER_PARTITION = 300


@pytest.fixture
def topics(kafka_bootstrap: str, topic_factory: TopicFactory) -> tuple[str, str]:
    """Fresh topics of two partitions; PER_PARTITION records in each of the predictions'."""
    names = topic_factory(2)
    records = [(p, f"{p}-{i}".encode()) for p in (0, 1) for i in range(PER_PARTITION)]
    produce(kafka_bootstrap, names.predictions, records, timestamp_ms=1_700_000_000_000)
    return names.predictions, names.labels


def options(bootstrap: str, group: str) -> dict[str, Any]:
    settings = Settings.from_mapping(
        {"kafka": {"bootstrap_servers": bootstrap, "group_id": group,
                   "consumer": kafka_consumer_fast_options()}}
    )  # fmt: skip
    return consumer_options(settings)


@pytest.fixture
def fetcher(kafka_bootstrap: str, topics: tuple[str, str]) -> Iterator[FetcherProcess]:
    member = FetcherProcess(options(kafka_bootstrap, f"fetcher-{uuid.uuid4().hex[:8]}"), topics)
    yield member
    member.close()


def poll_until(
    fetcher: FetcherProcess, done: Any, max_records: int = 5000, timeout_s: float = 60.0
) -> dict[TP, list[Any]]:
    """Records per partition, polled until ``done(records)`` holds."""
    got: dict[TP, list[Any]] = {}
    deadline = time.monotonic() + timeout_s
    while not done(got):
        assert time.monotonic() < deadline, {tp: len(r) for tp, r in got.items()}
        for tp, records in fetcher.poll(200, max_records).items():
            got.setdefault(tp, []).extend(records)
    return got


def test_it_hands_over_every_record_in_order_with_rebalances_and_marks(
    fetcher: FetcherProcess, topics: tuple[str, str]
) -> None:
    predictions = topics[0]
    got = poll_until(fetcher, lambda got: sum(map(len, got.values())) >= 2 * PER_PARTITION)
    for partition in (0, 1):
        records = got[(predictions, partition)]
        assert [r.offset for r in records] == list(range(PER_PARTITION))
        expected = [f"{partition}-{i}".encode() for i in range(PER_PARTITION)]
        assert [r.value for r in records] == expected
        assert {r.timestamp for r in records} == {1_700_000_000_000}
    assigned = set().union(*(change.assigned for change in fetcher.rebalances()))
    assert {(predictions, 0), (predictions, 1)} <= assigned
    assert fetcher.rebalances() == []  # each change is told once
    assert fetcher.highwaters()[(predictions, 0)] == PER_PARTITION
    assert (predictions, 1) in fetcher.assignment()
    assert fetcher.partitions(predictions) == {0, 1}


def test_a_seek_forgets_the_batch_polled_ahead(
    fetcher: FetcherProcess, topics: tuple[str, str]
) -> None:
    """While the loop works on a batch the helper polls the next one; a seek must win."""
    tp = (topics[0], 0)
    first = poll_until(fetcher, lambda got: tp in got, max_records=10)[tp]
    time.sleep(1.0)  # the helper has polled the next ten of the partition by now
    fetcher.seek({tp: 200})
    after = poll_until(fetcher, lambda got: tp in got, max_records=10)[tp]
    assert after[0].offset == 200, (first[-1].offset, after[0].offset)
    assert tp not in fetcher.highwaters() or fetcher.highwaters()[tp] == PER_PARTITION


def test_calls_between_polls_lose_no_batch_asked_for_ahead(
    fetcher: FetcherProcess, topics: tuple[str, str]
) -> None:
    """While the helper polls ahead, the loop's calls between its polls (commit, assignment,
    partitions) answer in turn, and the next poll goes on where the last one stopped:
    every record once, in order."""
    predictions = topics[0]
    first = poll_until(fetcher, bool, max_records=25)  # joined the group
    got = {tp: [r.offset for r in records] for tp, records in first.items()}
    deadline = time.monotonic() + 60.0
    while sum(map(len, got.values())) < 2 * PER_PARTITION:
        assert time.monotonic() < deadline, {tp: len(r) for tp, r in got.items()}
        for tp, records in fetcher.poll(200, 25).items():
            got.setdefault(tp, []).extend(r.offset for r in records)
        fetcher.commit({tp: offsets[-1] + 1 for tp, offsets in got.items()})
        assert (predictions, 0) in fetcher.assignment()
        assert fetcher.partitions(predictions) == {0, 1}
    assert got == {(predictions, p): list(range(PER_PARTITION)) for p in (0, 1)}


def test_an_empty_poll_ahead_is_not_handed_over(
    kafka_bootstrap: str, fetcher: FetcherProcess, topics: tuple[str, str]
) -> None:
    """Nothing was waiting when the helper polled ahead; records came before the loop asked:
    the loop must get them, not the stale "nothing" (it would count the quiet as idleness)."""
    poll_until(fetcher, lambda got: sum(map(len, got.values())) >= 2 * PER_PARTITION)
    time.sleep(1.0)  # the helper's poll ahead finds nothing by now
    produce(kafka_bootstrap, topics[0], [(0, b"late")])
    fresh = fetcher.poll(5000, 10)
    assert [r.value for r in fresh.get((topics[0], 0), [])] == [b"late"]


def test_the_consumers_errors_are_raised_in_the_daemon(
    fetcher: FetcherProcess, topics: tuple[str, str]
) -> None:
    poll_until(fetcher, lambda got: bool(got))
    with pytest.raises(ValueError, match="Offset must be int >= 0"):  # as kafka-python raises
        fetcher.seek({(topics[0], 0): -1})
    assert (topics[0], 0) in fetcher.assignment()  # and it still serves


def test_a_seek_or_pause_of_a_partition_taken_away_meanwhile_is_skipped(
    fetcher: FetcherProcess, topics: tuple[str, str]
) -> None:
    """The helper polls ahead, so kafka-python may have let a partition go before the daemon
    hears of it; the daemon's seek or pause of it must not fail (kafka-python refuses one
    of a partition it does not hold), while those of the partitions it holds still apply."""
    tp = (topics[0], 0)
    poll_until(fetcher, lambda got: tp in got, max_records=10)
    gone = ("taken-away", 0)  # as kafka-python sees a partition the group took away
    fetcher.seek({gone: 5, tp: 200})
    fetcher.pause([gone])
    after = poll_until(fetcher, lambda got: tp in got, max_records=10)[tp]
    assert after[0].offset == 200


def test_when_the_daemon_dies_the_helper_ends_and_its_partitions_move_on(
    kafka_bootstrap: str, topics: tuple[str, str]
) -> None:
    """Its socket closes: the helper ends at once and another member gets the partitions
    (after the session timeout, as for a killed daemon); a later call says it has gone."""
    group = f"fetcher-{uuid.uuid4().hex[:8]}"
    member = FetcherProcess(options(kafka_bootstrap, group), topics)
    poll_until(member, lambda got: bool(got))
    assert member._helper.end(15.0) == 0  # closes the socket, as the daemon's death does
    other = KafkaConsumer(
        topics[0], bootstrap_servers=kafka_bootstrap, group_id=group,
        **kafka_consumer_fast_options(),
    )  # fmt: skip
    try:
        began = time.monotonic()
        while not other.assignment():
            other.poll(200)
            assert time.monotonic() - began < 30
    finally:
        other.close()
    with pytest.raises(IngestError, match="fetcher process ended"):
        member._call("assignment")
