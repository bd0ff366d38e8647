"""Pace a traffic `Generator` onto Kafka: so many records per wall second, event time sped up.

Shared by ``scripts/produce_events.py`` and ``monitor demo`` so both send alike. Clocks:
``rate`` and ``duration_s`` count wall time; event time starts at the generator's origin and
runs ``speed`` times as fast, but never ahead of the wall clock (monitor dead-letters events
from the future): event time that catches up with it is held there. A token bucket holding at
most one second of events paces the sends, so a stall (a slow broker, a busy machine) is not
made up later in a burst that would distort the windows.

Records are keyed by model name and, with ``partitions``, sent to that model's partition, so
one model's events stay in one partition in send order and monitor's per-partition watermarks
see an ordered stream.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.demo.traffic import Generator, Record

__all__ = ["Producer", "Serving", "Totals", "kafka_producer"]

MIN_TICK_S, MAX_TICK_S = 0.01, 0.1  # batch a few events per wake-up; stay responsive


class Producer(Protocol):
    """The part of kafka-python's ``KafkaProducer`` that serving uses."""

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...


def kafka_producer(bootstrap: str, client_id: str = "produce-events") -> Any:
    """A producer that batches (throughput) and waits for every replica (nothing lost)."""
    from kafka import KafkaProducer  # here: a CLI's --help needs no Kafka client loaded

    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
    )


def _wall_ms() -> int:
    return round(time.time() * 1000)


@dataclass
class Totals:
    """What was sent so far; failures arrive on the producer's I/O thread, hence the lock."""

    events: int = 0
    malformed: int = 0
    labels: int = 0
    failed: int = 0
    first_error: BaseException | None = None
    per_model: Counter[str] = field(default_factory=Counter)
    event_time_ms: int = 0
    elapsed_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, exc: BaseException) -> None:
        """Count one record the broker did not acknowledge."""
        with self._lock:
            self.failed += 1
            self.first_error = self.first_error or exc


class Serving:
    """Sends a generator's events and due labels at ``rate`` per wall second."""

    def __init__(
        self,
        producer: Producer,
        gen: Generator,
        *,
        predictions_topic: str,
        labels_topic: str,
        rate: float,
        speed: float = 1.0,
        partitions: Mapping[str, int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        """Check the pace up front: a zero rate would never send and never finish a tick."""
        if rate <= 0 or speed <= 0:
            raise ValueError("rate and speed must be positive")
        self.gen, self.rate, self.speed = gen, rate, speed
        self.totals = Totals(event_time_ms=gen.origin_ms)
        self._producer = producer
        self._topics = (predictions_topic, labels_topic)
        self._partitions = dict(partitions or {})
        self._monotonic, self._wall_ms = monotonic, wall_ms

    def run(
        self,
        stop: threading.Event,
        duration_s: float | None = None,
        progress: Callable[[Totals], None] | None = None,
        progress_every_s: float = 5.0,
    ) -> Totals:
        """Send until ``duration_s`` of wall time passed or ``stop`` is set; then flush.

        Kafka errors end the run and are counted in ``failed`` (the caller decides the exit
        code); records still unacknowledged after the flush are lost and counted too.
        """
        from kafka.errors import KafkaError

        totals, credit = self.totals, 0.0
        began = last = self._monotonic()
        last_ms, next_progress = self.gen.origin_ms, began + progress_every_s
        try:
            while not stop.is_set():
                now = self._monotonic()
                done = duration_s is not None and now - began >= duration_s
                if done and duration_s is not None:
                    now = began + duration_s
                credit = min(credit + (now - last) * self.rate, max(self.rate, 1.0))
                last, n = now, int(credit)
                credit -= n
                now_ms = self.gen.origin_ms + round((now - began) * 1000 * self.speed)
                now_ms = max(last_ms, min(now_ms, self._wall_ms()))
                self._send(n, now_ms, last_ms)
                totals.event_time_ms, totals.elapsed_s, last_ms = now_ms, now - began, now_ms
                if done:
                    break
                if progress is not None and now >= next_progress:
                    next_progress += progress_every_s
                    progress(totals)
                stop.wait(min(MAX_TICK_S, max(MIN_TICK_S, (1 - credit) / self.rate)))
        except KafkaError as exc:
            totals.fail(exc)
        finally:
            try:
                self._producer.flush(timeout=30)
            except KafkaError as exc:  # unacknowledged records are lost: say so
                totals.fail(exc)
        return totals

    def _send(self, n: int, now_ms: int, since_ms: int) -> None:
        """This tick's events spread over (since_ms, now_ms], then the labels now due."""
        totals = self.totals
        predictions, labels = self._topics
        for record in self.gen.events(n, now_ms, since_ms=since_ms):
            self._emit(predictions, record)
            totals.events += 1
            totals.malformed += record.malformed is not None
            totals.per_model[record.key.decode()] += 1
        for record in self.gen.due_labels(now_ms):
            self._emit(labels, record)
            totals.labels += 1

    def _emit(self, topic: str, record: Record) -> None:
        partition = self._partitions.get(record.key.decode())
        future = self._producer.send(topic, value=record.value, key=record.key, partition=partition)
        future.add_errback(self.totals.fail)
