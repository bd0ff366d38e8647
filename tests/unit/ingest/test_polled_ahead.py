"""What the Kafka fetcher polls before the daemon asks: joined, ordered, forgotten on seeks.

The helper polls small batches ahead and hands them over joined into the daemon's batch
size; these check the joining on its own, with polls as kafka-python's would come.
"""

from __future__ import annotations

from typing import Any

from monitor.ingest.consumer import Rebalance
from monitor.ingest.fetcher import AHEAD_BYTES, AHEAD_RECORDS, Packed, Polled, PolledAhead

TOPIC = "predictions"


def poll(
    *parts: tuple[int, range], rebalances: list[Rebalance] | None = None, mark: int = 0
) -> tuple[bool, Polled]:
    """A successful poll: ``(partition, offsets)`` pairs, values naming their offset."""
    records: Packed = []
    for partition, offsets in parts:
        values: list[bytes | None] = [f"{partition}-{o}".encode() for o in offsets]
        records.append(
            (TOPIC, partition, list(offsets), values, [1_700_000_000_000] * len(offsets))
        )
    marks = {(TOPIC, partition): mark for partition, _ in parts} if mark else {}
    return True, Polled(records, rebalances or [], marks)


def offsets(answer: tuple[bool, Any] | None) -> dict[int, list[int]]:
    assert answer is not None and answer[0]
    return {partition: list(found) for _, partition, found, _, _ in answer[1].records}


def test_polls_are_joined_per_partition_in_order_up_to_the_batch_size() -> None:
    ahead = PolledAhead()
    ahead.add(poll((0, range(0, 3)), (1, range(0, 2)), mark=10), max_records=8)
    ahead.add(poll((0, range(3, 5)), mark=12), max_records=8)
    ahead.add(poll((1, range(2, 5))), max_records=8)  # 10 records: starts the next answer
    assert ahead.records == 10
    first = ahead.take()
    assert offsets(first) == {0: [0, 1, 2, 3, 4], 1: [0, 1]}
    assert first is not None and first[1].highwaters == {(TOPIC, 0): 12, (TOPIC, 1): 10}
    values = {p: v for _, p, _, v, _ in first[1].records}
    assert values[0] == [b"0-0", b"0-1", b"0-2", b"0-3", b"0-4"]
    assert offsets(ahead.take()) == {1: [2, 3, 4]}
    assert ahead.take() is None and ahead.records == 0


def test_a_rebalance_comes_with_the_records_after_it_never_with_those_before() -> None:
    ahead = PolledAhead()
    change = Rebalance(frozenset({(TOPIC, 1)}), frozenset())
    ahead.add(poll((0, range(0, 2)), (1, range(0, 2))), max_records=100)
    ahead.add(poll((0, range(2, 4)), rebalances=[change]), max_records=100)
    ahead.add(poll((0, range(4, 6))), max_records=100)
    before = ahead.take()
    assert before is not None and before[1].rebalances == []
    assert offsets(before) == {0: [0, 1], 1: [0, 1]}
    after = ahead.take()
    assert after is not None and after[1].rebalances == [change]
    assert offsets(after) == {0: [2, 3, 4, 5]}


def test_an_error_is_handed_over_in_its_turn_and_nothing_is_polled_after_it() -> None:
    ahead = PolledAhead()
    ahead.add(poll((0, range(0, 2))), max_records=100)
    error = ValueError("Unassigned partition")
    ahead.add((False, error), max_records=100)
    assert not ahead.wanted()
    assert offsets(ahead.take()) == {0: [0, 1]}
    assert ahead.take() == (False, error)
    assert ahead.wanted()


def test_a_seek_forgets_the_sought_partitions_records_and_marks() -> None:
    ahead = PolledAhead()
    ahead.add(poll((0, range(0, 3)), (1, range(0, 3)), mark=9), max_records=4)
    ahead.add(poll((0, range(3, 6))), max_records=4)
    ahead.forget([(TOPIC, 0)])
    assert ahead.records == 3
    only = ahead.take()
    assert offsets(only) == {1: [0, 1, 2]}
    assert only is not None and only[1].highwaters == {(TOPIC, 1): 9}
    assert ahead.take() is None  # the second poll held partition 0 only: nothing left


def test_it_stops_wanting_more_at_its_bound() -> None:
    ahead = PolledAhead()
    step = 5_000
    for start in range(0, AHEAD_RECORDS, step):
        assert ahead.wanted()
        ahead.add(poll((0, range(start, start + step))), max_records=step)
    assert not ahead.wanted()
    ahead.take()
    assert ahead.wanted()


def test_a_mark_gone_down_is_not_handed_over_with_records_from_before() -> None:
    """The broker came back without its log: the run loop must take the old log's records
    first, then see the lower mark (with them, it would start again and drop them)."""
    ahead = PolledAhead()
    ahead.add(poll((0, range(50, 60)), mark=60), max_records=100)
    ahead.add(poll((1, range(0, 5)), mark=5), max_records=100)  # partition 0: mark 60 kept
    restarted = poll((1, range(5, 6)), mark=6)
    restarted[1].highwaters[(TOPIC, 0)] = 20
    ahead.add(restarted, max_records=100)
    old = ahead.take()
    assert offsets(old) == {0: list(range(50, 60)), 1: list(range(5))}
    assert old is not None and old[1].highwaters[(TOPIC, 0)] == 60
    new = ahead.take()
    assert new is not None and new[1].highwaters == {(TOPIC, 0): 20, (TOPIC, 1): 6}


def test_large_events_stop_it_at_its_byte_bound() -> None:
    """Events may be up to ``ingest.max_event_bytes``: a few records can fill the memory
    that 40,000 small ones take."""
    ahead = PolledAhead()
    big = (True, Polled([(TOPIC, 0, [0, 1], [b"x" * (AHEAD_BYTES // 2), b"y"], [0, 0])], [], {}))
    ahead.add(big, max_records=5000)
    assert ahead.wanted()
    ahead.add(
        (True, big[1]._replace(records=[(TOPIC, 0, [2], [b"z" * (AHEAD_BYTES // 2)], [0])])),
        max_records=5000,
    )
    assert ahead.records == 3 and not ahead.wanted()
    ahead.take()
    assert ahead.bytes == 0 and ahead.wanted()


def test_a_seek_leaves_the_other_partitions_records_once_each() -> None:
    ahead = PolledAhead()
    ahead.add(poll((0, range(0, 2)), (1, range(0, 2)), mark=9), max_records=100)
    ahead.add(poll((0, range(2, 4)), (1, range(2, 4)), mark=9), max_records=100)
    ahead.forget([(TOPIC, 1)])
    ahead.add(poll((0, range(4, 6)), mark=9), max_records=100)
    assert offsets(ahead.take()) == {0: list(range(6))}
    assert ahead.records == 0 and ahead.take() is None
