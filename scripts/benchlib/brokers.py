"""The broker side: the embedded Tansu broker (or a real Kafka), topics and bulk producing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from benchlib.streams import read_events
from monitor.demo.broker import EmbeddedBroker, create_topics

PARTITIONS = 4


@contextmanager
def broker(kafka: str | None) -> Iterator[str]:
    """The bootstrap address: ``kafka`` as given, else a fresh embedded Tansu broker."""
    if kafka is not None:
        yield kafka
        return
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap


def make_topics(bootstrap: str, topics: Mapping[str, int]) -> None:
    create_topics(bootstrap, topics)


def produce_file(bootstrap: str, topic: str, path: Path, partitions: int = PARTITIONS) -> int:
    """Send every line of ``path`` to ``topic``, line ``i`` to partition ``i mod partitions``.

    Round robin keeps each partition in event-time order (the file is), so every partition's
    watermark advances and windows close as the stream is consumed. Blocks until the broker
    acknowledged everything and raises if any record failed.
    """
    producer: Any = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    failures: list[BaseException] = []
    sent = 0
    try:
        for i, line in enumerate(read_events(path)):
            future = producer.send(topic, value=line, partition=i % partitions)
            future.add_errback(failures.append)  # no list of 500k futures kept
            sent += 1
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise RuntimeError(
            f"produce to {topic}: {len(failures)} of {sent} records failed: {failures[0]!r}"
        )
    return sent
