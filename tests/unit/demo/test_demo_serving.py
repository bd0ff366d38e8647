"""Serving paces a generator onto a producer: rate, event-time speed, partitions, failures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson

from monitor.demo.serving import Serving
from monitor.demo.traffic import Generator

ORIGIN_MS = 1_700_000_000_000


class Future:
    """kafka-python's future, as far as Serving uses it: an errback, maybe called."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def add_errback(self, callback: Callable[[BaseException], Any]) -> Future:
        if self.error is not None:
            callback(self.error)
        return self


class FakeProducer:
    """Records every send; ``fail_every`` makes every n-th send fail."""

    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int | None]] = []
        self.fail_every = fail_every
        self.flushed = False

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> Future:
        self.sent.append((topic, value, key, partition))
        failing = self.fail_every and len(self.sent) % self.fail_every == 0
        return Future(RuntimeError("not acknowledged") if failing else None)

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True


def stepping_clock(step: float) -> Callable[[], float]:
    """A monotonic clock that moves ``step`` seconds per reading: runs take no real time."""
    now = [0.0]

    def read() -> float:
        now[0] += step
        return now[0]

    return read


def serve(
    producer: FakeProducer, *, rate: float, speed: float, seconds: float, wall_ms: int
) -> tuple[Serving, list[dict[str, Any]], list[dict[str, Any]]]:
    gen = Generator(["churn", "fraud"], origin_ms=ORIGIN_MS, label_delay_ms=60_000, seed=2)
    serving = Serving(
        producer, gen, predictions_topic="p", labels_topic="l", rate=rate, speed=speed,
        partitions={"churn": 0, "fraud": 1}, monotonic=stepping_clock(0.05),
        wall_ms=lambda: wall_ms,
    )  # fmt: skip
    serving.run(threading.Event(), seconds)
    events = [orjson.loads(v) | {"_p": p} for t, v, _, p in producer.sent if t == "p"]
    labels = [orjson.loads(v) | {"_p": p} for t, v, _, p in producer.sent if t == "l"]
    return serving, events, labels


def test_rate_speed_and_partitions_are_honoured() -> None:
    """Serving sends rate x duration events at speed x event time, each model to its partition."""
    producer = FakeProducer()
    serving, events, labels = serve(
        producer, rate=1000, speed=60, seconds=2, wall_ms=ORIGIN_MS + 10**9
    )
    assert abs(len(events) - 2000) <= 1 and serving.totals.events == len(events)
    assert serving.totals.per_model["churn"] == sum(e["model"] == "churn" for e in events)
    assert {(e["model"], e["_p"]) for e in events} == {("churn", 0), ("fraud", 1)}
    assert all(ORIGIN_MS < e["ts"] <= ORIGIN_MS + 120_000 for e in events)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert serving.totals.event_time_ms == ORIGIN_MS + 120_000
    assert labels and all(label["ts"] <= ORIGIN_MS + 120_000 for label in labels)
    assert {(x["model"], x["_p"]) for x in labels} == {("churn", 0), ("fraud", 1)}
    assert producer.flushed and serving.totals.failed == 0


def test_event_time_is_held_at_the_wall_clock() -> None:
    """At 1000x event time would pass the wall clock after 10 ms: it is held there instead."""
    _, events, _ = serve(FakeProducer(), rate=500, speed=1000, seconds=1, wall_ms=ORIGIN_MS + 10)
    assert events and max(e["ts"] for e in events) == ORIGIN_MS + 10


def test_unacknowledged_records_are_counted_as_failed() -> None:
    """A send whose future fails counts in ``failed`` with the first error kept."""
    serving, _, _ = serve(
        FakeProducer(fail_every=100), rate=1000, speed=1, seconds=1, wall_ms=ORIGIN_MS + 10**9
    )
    assert serving.totals.failed >= 9
    assert isinstance(serving.totals.first_error, RuntimeError)
