"""The Kafka edge: a consumer-group member whose positions come from the database.

kafka-python stays in this package. Auto-commit is off; the rebalance listener only records
what changed (its callbacks may run on kafka-python's I/O thread, where blocking work delays
heartbeats); the run loop then loads the stored offsets and seeks. Values are raw bytes:
decoding is ours, since a deserializer's exception would escape ``poll()``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from monitor.errors import IngestError

if TYPE_CHECKING:  # a fetcher process imports this module: no settings, no parser
    from monitor.ingest.events import RawRecord
    from monitor.settings import Settings

log = logging.getLogger(__name__)

TP = tuple[str, int]
FETCH_HEADROOM_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Rebalance:
    """Partitions taken away (``revoked``) or handed over (``assigned``) by the group."""

    revoked: frozenset[TP]
    assigned: frozenset[TP]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, changes: queue.SimpleQueue[Rebalance]) -> None:
        self._changes = changes

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._changes.put(
            Rebalance(frozenset((t.topic, t.partition) for t in revoked), frozenset())
        )

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._changes.put(
            Rebalance(frozenset(), frozenset((t.topic, t.partition) for t in assigned))
        )


def consumer_options(settings: Settings) -> dict[str, Any]:
    """kafka-python options: our defaults, then TLS/SASL, then the user's overrides."""
    # A record larger than the fetch limit must arrive (to be dead-lettered), not stall.
    fetch_bytes = max(settings.ingest.max_event_bytes * 4, 8 * 1024 * 1024) + FETCH_HEADROOM_BYTES
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka.bootstrap_servers.split(","),
        "group_id": settings.kafka.group_id,
        "client_id": "monitor",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": fetch_bytes,
        "fetch_max_bytes": max(fetch_bytes, 64 * 1024 * 1024),
    }
    options.update(settings.kafka.security_options())
    options.update(settings.kafka.consumer)
    return options


class RecordSource(Protocol):
    """What the run loop needs of a consumer-group member: `KafkaSource` in this process,
    or `monitor.ingest.fetcher.FetcherProcess` in a helper process."""

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[RawRecord]]: ...
    def rebalances(self) -> list[Rebalance]: ...
    def partitions(self, topic: str) -> set[int]: ...
    def highwaters(self) -> dict[TP, int]: ...
    def assignment(self) -> set[TP]: ...
    def seek(self, positions: Mapping[TP, int | None]) -> None: ...
    def pause(self, tps: Iterable[TP]) -> None: ...
    def resume_all(self) -> None: ...
    def commit(self, offsets: Mapping[TP, int]) -> None: ...
    def close(self, timeout_s: float = 5.0) -> None: ...


def subscription(settings: Settings) -> tuple[dict[str, Any], tuple[str, str]]:
    """The consumer's options and its topics (predictions, labels)."""
    return consumer_options(settings), (
        settings.kafka.predictions_topic,
        settings.kafka.labels_topic,
    )


class KafkaSource:
    """One member of the monitor consumer group, subscribed to predictions and labels.

    The run loop calls it in its own process (``kafka.fetcher: inline``), or through
    `monitor.ingest.fetcher.FetcherProcess`, whose helper process runs one, so that
    kafka-python's record parsing runs beside the pipeline.
    """

    def __init__(self, options: dict[str, Any], topics: tuple[str, ...]) -> None:
        self.topics = topics
        self._changes: queue.SimpleQueue[Rebalance] = queue.SimpleQueue()
        try:
            self._consumer = KafkaConsumer(**options)
            self._consumer.subscribe(topics=list(self.topics), listener=_Listener(self._changes))
        except KafkaError as exc:
            raise IngestError(f"cannot connect to Kafka: {exc}") from exc

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[RawRecord]]:
        """The next records per partition (possibly none); keeps the member in the group."""
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return {(tp.topic, tp.partition): records for tp, records in batches.items()}

    def rebalances(self) -> list[Rebalance]:
        """Changes of assignment since the last call, oldest first."""
        changes = []
        while True:
            try:
                changes.append(self._changes.get_nowait())
            except queue.Empty:
                return changes

    def partitions(self, topic: str) -> set[int]:
        """Every partition of ``topic`` the cluster knows (empty until metadata arrives)."""
        return set(self._consumer.partitions_for_topic(topic) or ())

    def highwaters(self) -> dict[TP, int]:
        """Each assigned partition's high watermark as the last fetch saw it (no request).

        Unlike ``end_offsets()``, this is exact on the test broker: the log end a fetch at
        the partition's current position reported (kafka-python ignores other fetches).
        """
        found = {}
        for tp in self._consumer.assignment():
            mark = self._consumer.highwater(tp)
            if mark is not None:
                found[(tp.topic, tp.partition)] = int(mark)
        return found

    def assignment(self) -> set[TP]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def seek(self, positions: Mapping[TP, int | None]) -> None:
        """Move each partition to its stored offset, or to the log start when none is stored.

        The high watermark kafka-python keeps came from a fetch at the old position; it is
        forgotten, so that ``highwaters()`` only reports fetches at or after the new one.
        """
        assigned = self._consumer._subscription.assignment  # no public way to forget it
        for (topic, partition), offset in positions.items():
            tp = TopicPartition(topic, partition)
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
            if tp in assigned:
                assigned[tp].highwater = None

    def pause(self, tps: Iterable[TP]) -> None:
        self._consumer.pause(*[TopicPartition(t, p) for t, p in tps])

    def resume_all(self) -> None:
        paused = self._consumer.paused()
        if paused:
            self._consumer.resume(*paused)

    def commit(self, offsets: Mapping[TP, int]) -> None:
        """Tell Kafka the stored offsets too, so lag tools see them; best effort only."""
        if not offsets:
            return
        try:
            self._consumer.commit(
                offsets={
                    TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                    for (t, p), o in offsets.items()
                }
            )
        except KafkaError as exc:
            log.info("kafka offset commit skipped: %s", exc)

    def close(self, timeout_s: float = 5.0) -> None:
        """Leave the group within ``timeout_s``; past it, go anyway (offsets are stored).

        A member that cannot say goodbye only makes the group wait for its session timeout,
        while a close that hangs would break the promise to exit promptly on SIGTERM.
        """
        # kafka-python 3.0 logs a spurious traceback when its I/O thread reads a closed socket.
        transport = logging.getLogger("kafka.net.transport")
        level = transport.level
        transport.setLevel(logging.CRITICAL)
        closer = threading.Thread(target=self._close, name="kafka-close", daemon=True)
        closer.start()
        closer.join(timeout_s)
        if closer.is_alive():
            log.warning("the Kafka consumer did not close in %.0f s: leaving anyway", timeout_s)
        else:
            transport.setLevel(level)

    def _close(self) -> None:
        try:
            self._consumer.close(autocommit=False, timeout_ms=4000)
        except KafkaError as exc:
            log.warning("closing the Kafka consumer failed: %s", exc)


def end_offsets(settings: Settings, tps: Iterable[TP], timeout_s: float = 5.0) -> dict[TP, int]:
    """Log-end offsets for lag display only (the test broker under-reports them slightly).

    Raises IngestError when the broker cannot be reached within ``timeout_s``.
    """
    wanted = [TopicPartition(t, p) for t, p in tps]
    if not wanted:
        return {}
    options = consumer_options(settings)
    options.update(
        group_id=None,
        request_timeout_ms=int(timeout_s * 1000) + 1000,
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )
    options.pop("session_timeout_ms", None)
    options.pop("max_poll_interval_ms", None)
    options.pop("heartbeat_interval_ms", None)
    try:
        consumer = KafkaConsumer(**options)
    except KafkaError as exc:
        raise IngestError(f"cannot reach Kafka: {exc}") from exc
    try:
        ends = consumer.end_offsets(wanted)
    except KafkaError as exc:
        raise IngestError(f"cannot read end offsets: {exc}") from exc
    finally:
        consumer.close(autocommit=False)
    return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}
