"""Kafka helpers for tests: bulk raw-bytes producing and consumer options tuned for Tansu.

Tests import these (``from tests.support.kafka import produce``) instead of each building its own
producer, so batching, acknowledgement and error handling are right once: a test that
silently lost records at produce time would otherwise pass or fail for the wrong reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaProducer

__all__ = ["TopicFactory", "TopicNames", "kafka_consumer_fast_options", "produce"]


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The topics one test owns, named uniquely so tests never see each other's records."""

    predictions: str
    labels: str
    dead_letters: str


class TopicFactory(Protocol):
    """Type of the ``topic_factory`` fixture, so tests can annotate the parameter."""

    def __call__(self, partitions: int = 4) -> TopicNames:
        """Create fresh predictions/labels topics (and a 1-partition dead-letter topic)."""
        ...


def kafka_consumer_fast_options() -> dict[str, int]:
    """Consumer group timings that make joins take ~3 s instead of ~23 s on Tansu.

    With kafka-python's defaults (45 s session timeout, 5 min poll interval) every group join
    or rebalance on the test broker waits out long timers; these keep the timers short while
    leaving enough slack that a busy CI machine does not get kicked out of the group.
    """
    return {
        "session_timeout_ms": 6000,
        "max_poll_interval_ms": 30000,
        "heartbeat_interval_ms": 1000,
    }


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[int | None, bytes]],
    max_request_size: int = 4 * 1024 * 1024,
    timestamp_ms: int | None = None,
) -> None:
    """Send raw values to ``topic``, each to its given partition (``None``: the partitioner).

    Blocks until everything is acknowledged by the broker (``acks="all"``) and raises if any
    record failed, so a test's expectations rest on records that are really there.
    ``max_request_size`` bounds one record's size (kafka-python's 1 MiB default would refuse
    the multi-MiB records some tests send on purpose). ``timestamp_ms`` stamps every record
    (default: the producer's clock), so a test knows the time of events without ``ts``.
    """
    producer: Any = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        # Idempotence (the default in kafka-python 3) keeps per-partition order across
        # retries, which the tests assert on.
        enable_idempotence=True,
        linger_ms=5,
        # Large batches: 100k small records go out in a few hundred requests, not 100k.
        batch_size=min(512 * 1024, max_request_size),
        max_request_size=max_request_size,
    )
    futures: list[Any] = []
    try:
        for partition, value in records:
            futures.append(
                producer.send(topic, value=value, partition=partition, timestamp_ms=timestamp_ms)
            )
        producer.flush()
    finally:
        producer.close()
    failures = [f.exception for f in futures if f.failed()]
    unfinished = sum(1 for f in futures if not f.is_done)
    if failures or unfinished:
        first = failures[0] if failures else None
        raise RuntimeError(
            f"produce to {topic!r}: {len(failures)} of {len(futures)} records failed, "
            f"{unfinished} unacknowledged; first error: {first!r}"
        ) from first
