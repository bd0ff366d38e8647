"""Composition root: builds every collaborator from Settings and runs the loop.

``RunLoop`` is the daemon: poll a batch, follow rebalances, feed the pipeline, checkpoint on
time or size, and ride out a database outage by pausing the partitions (the member keeps
polling, so it stays in the group) until a checkpoint succeeds again. ``replay`` drives the
same pipeline and checkpoint from a file.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.actions.notify import Notifier
from monitor.actions.outbox import OutboxRelay, RelayThread
from monitor.actions.webhook import WebhookSender
from monitor.alerting import AlertEvaluator
from monitor.api.http import HttpServer, build_app
from monitor.checkpoint import Checkpointer, Ledger
from monitor.closing import Closer, WindowCloser
from monitor.closing_process import ClosingProcess
from monitor.errors import FencedError, IngestError, StoreError
from monitor.faults import fault
from monitor.health import LoopHealth
from monitor.ingest.consumer import TP, KafkaSource, RecordSource, consumer_options, subscription
from monitor.ingest.deadletter import DeadLetterTopic
from monitor.ingest.events import Kind, RawRecord
from monitor.ingest.fetcher import FetcherProcess
from monitor.ingest.replay import REPLAY_GROUP, read_lines, replay_topic
from monitor.joining import Joiner
from monitor.metrics import LoopMetrics, StoredFigures
from monitor.pipeline import Pipeline
from monitor.reference.service import ReferenceCache, ensure_configured_references
from monitor.reference.warmup import Warmup
from monitor.settings import Settings
from monitor.store import db
from monitor.windows.manager import WindowManager
from monitor.windows.schema import WindowSchema, schema_from_reference

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
POLL_MAX_RECORDS = 5000
CLOSING_FAILURES_SHOWN = 2
"""Failed closes in a row, checkpoints working, that make the daemon not ready. One is not
enough: the window closer process answers an ask at the next checkpoint, so the first close
after a database outage reports the ask made before it, and a helper killed once is started
again by the next ask."""
RETRY_FIRST_S = 0.5
RETRY_CAP_S = 15.0


GC_YOUNG_THRESHOLD = 50_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def relax_garbage_collector() -> None:
    """Let the cycle collector run a hundred times less often, and never over start-up objects.

    Decoding makes dozens of dicts and lists per event and none of them forms a cycle, yet
    CPython's defaults (a young pass every 700 allocations, older passes walking every live
    object) spent a quarter of the loop's CPU on them. ``gc.freeze`` moves what start-up built
    (modules, settings, references) out of the collector's sight. Called by long runs only.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def open_database(settings: Settings, *, upgrade: bool = False) -> Engine:
    """The engine, with the schema checked (or upgraded when asked)."""
    return db.open_checked(settings.database.url.get_secret_value(), migrate=upgrade)


@dataclass(slots=True)
class _Retry:
    """Backoff state while the database refuses checkpoints."""

    failures: int = 0
    next_at: float = 0.0

    def failed(self, now: float) -> float:
        delay = min(RETRY_CAP_S, RETRY_FIRST_S * 2.0**self.failures)
        self.failures += 1
        self.next_at = now + delay
        return delay


@dataclass(slots=True)
class Services:
    """What runs beside the loop: the outbox relay, the HTTP server, probes and metrics."""

    relay: RelayThread | None = None
    http: HttpServer | None = None
    health: LoopHealth = field(default_factory=lambda: LoopHealth(300.0))
    metrics: LoopMetrics | None = None

    def start(self) -> None:
        if self.relay is not None:
            self.relay.start()
        if self.http is not None:
            self.http.start()

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        if self.relay is not None:
            self.relay.stop()


class RunLoop:
    """The consuming daemon: one consumer-group member and its checkpoints."""

    def __init__(
        self,
        settings: Settings,
        source: RecordSource,
        pipeline: Pipeline,
        checkpointer: Checkpointer,
        closer: Closer,
        services: Services | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._services = services or Services()
        self._pipeline = pipeline
        self._checkpointer = checkpointer
        self._closer = closer
        self._monotonic = monotonic
        self._kinds: dict[str, Kind] = {
            settings.kafka.predictions_topic: "predictions",
            settings.kafka.labels_topic: "labels",
        }
        self._interval = settings.ingest.commit_interval.total_seconds()
        self._every = settings.ingest.commit_every
        self._ledger = Ledger()
        self._unloaded: set[TP] = set()  # assigned, stored offset not yet read
        self._sought: set[TP] = set()  # sought since the last poll, whose records predate it
        self._retry = _Retry()
        self._closing_failures = 0  # closes failed in a row
        self.stop = threading.Event()
        self.consumed = 0
        self.first_record_at: float | None = None
        self.last_record_at: float | None = None
        self._last_activity = monotonic()  # a record or an assignment: what idleness counts from

    def run(self, exit_when_idle: float | None = None, flush: bool = False) -> None:
        """Consume until ``stop`` is set or, with ``exit_when_idle``, the stream went quiet.

        ``flush`` closes and evaluates the windows still open before returning (backfills).
        """
        last_checkpoint = self._last_activity = self._monotonic()
        self._services.start()
        relax_garbage_collector()
        health, metrics = self._services.health, self._services.metrics
        try:
            while not self.stop.is_set():
                batches = self._source.poll(POLL_TIMEOUT_MS, POLL_MAX_RECORDS)
                health.polled(len(self._ledger.stored))
                self._sought.clear()
                self._follow_rebalances(batches)
                self._follow_log_restarts(batches)
                fresh = 0
                began = self._monotonic()
                for (topic, partition), records in batches.items():
                    fresh += self._pipeline.ingest(
                        self._kinds[topic], topic, partition, records, self._ledger
                    )
                    fault("mid_batch")  # records taken in, not yet checkpointed
                now = self._monotonic()
                if fresh and metrics is not None:
                    metrics.batch_seconds.observe(now - began)
                if fresh:
                    self.consumed += fresh
                    self._last_activity = self.last_record_at = now
                    if self.first_record_at is None:
                        self.first_record_at = now
                if self._unloaded and now >= self._retry.next_at:
                    self._load_assigned(set())
                due = (
                    self._pipeline.pending.records >= self._every
                    or now - last_checkpoint >= self._interval
                )
                if due and now >= self._retry.next_at and self._checkpoint():
                    last_checkpoint = now
                quiet_for = now - self._last_activity
                if exit_when_idle is not None and self._idle(quiet_for, exit_when_idle):
                    log.info("no record for %.1f s: exiting", exit_when_idle)
                    return
        finally:
            self._final_checkpoint(flush)
            self._closer.stop()
            log.info("leaving the consumer group")
            self._source.close()
            self._services.stop()

    def _idle(self, quiet_for: float, limit: float) -> bool:
        settled = not self._unloaded and not self._pipeline.pending and not self._ledger.moves()
        return settled and bool(self._ledger.stored) and quiet_for >= limit

    def _checkpoint(self, revoking: frozenset[TP] = frozenset()) -> bool:
        """Store what is pending; False (and partitions paused) when the database failed.

        ``revoking``: partitions being let go (a fence drops them instead of reloading them).
        """
        pending = self._pipeline.take_pending()
        began = self._monotonic()
        try:
            stored = self._checkpointer.commit(pending, self._ledger, self._pipeline.windows)
        except FencedError as exc:
            log.warning("checkpoint fenced, re-reading stored offsets: %s", exc)
            self._reset_to_stored(revoking)
            return True
        except (StoreError, IngestError) as exc:
            self._pipeline.restore_pending(pending)
            delay = self._retry.failed(self._monotonic())
            self._source.pause(self._source.assignment())
            self._services.health.store_failure = str(exc)
            # the database is away: closes count again from the first checkpoint back
            self._closing_failures, self._services.health.closing_failure = 0, None
            log.warning("checkpoint failed, partitions paused, retry in %.1f s: %s", delay, exc)
            return False
        if self._retry.failures:
            log.info("database reachable again after %d failed checkpoints", self._retry.failures)
            self._retry = _Retry()
            self._services.health.store_failure = None
            self._source.resume_all()
            self._last_activity = self._monotonic()  # paused is not idle: records may wait
        took = self._monotonic() - began
        log.debug("checkpoint stored in %.1f ms (%d records)", took * 1000, pending.records)
        fault("after_db_commit_before_kafka_commit")
        self._source.commit(stored)
        self._after_checkpoint()
        if self._services.metrics is not None:
            self._services.metrics.checkpointed(took)
            self._services.metrics.set_lags(self._lags())
        return True

    def _lags(self) -> dict[TP, int]:
        """Per owned partition: the high watermark minus the next offset consumed."""
        consumed = {tp: p.offset for tp, p in self._ledger.position.items()}
        return {
            tp: max(0, mark - consumed[tp])
            for tp, mark in self._source.highwaters().items()
            if tp in consumed
        }

    def _after_checkpoint(self) -> None:
        """Forget windows this process's partitions have passed; close what is due anywhere."""
        windows = self._pipeline.windows
        for tp in self._ledger.stored:
            max_ms = self._ledger.max_event_ms(tp)
            if max_ms is not None:
                windows.evict_complete(tp, max_ms, self._pipeline.lateness_ms)
        health = self._services.health
        try:
            closed = self._closer.close_ready()
        except StoreError as exc:
            self._closing_failures += 1
            if self._closing_failures >= CLOSING_FAILURES_SHOWN:
                health.closing_failure = f"{exc} ({self._closing_failures} times in a row)"
            log.warning("closing windows failed, will retry: %s", exc)
            return
        self._closing_failures = 0
        health.closing_failure = None
        if closed and self._services.relay is not None:
            self._services.relay.wake()

    def _reset_to_stored(self, dropped: frozenset[TP] = frozenset()) -> None:
        """Drop everything not stored and go back to the stored state of every partition
        still owned; ``dropped`` ones are let go (kafka-python may have reassigned them: a
        seek there would raise)."""
        self._pipeline.discard_pending()
        self._ledger.forget(dropped)
        self._unloaded -= dropped
        self._ledger.rewind()
        self._load_assigned(set(self._ledger.stored))

    def _follow_rebalances(self, batches: dict[TP, list[RawRecord]]) -> None:
        """Apply assignment changes before any record of this poll is used."""
        for change in self._source.rebalances():
            if change.revoked:
                fault("during_rebalance")
                self._unloaded -= change.revoked
                busy = self._pipeline.pending or self._ledger.moves()
                if busy and not self._checkpoint(change.revoked):
                    self._reset_to_stored(change.revoked)  # no longer ours to store
                self._ledger.forget(change.revoked)
                self._pipeline.windows.forget(change.revoked)
            # A partition already owned was met in a poll before its callback ran: keep it.
            newly = {tp for tp in change.assigned if not self._ledger.owns(tp)}
            if newly:
                self._load_assigned(newly)
        unknown = {tp for tp in batches if not self._ledger.owns(tp)} - self._unloaded
        if unknown:
            self._load_assigned(unknown)
        # Records of a partition sought just now were fetched before the seek: the next poll
        # brings them again from the stored offset, so every record used follows our seek.
        for tp in list(batches):
            if not self._ledger.owns(tp) or tp in self._unloaded or tp in self._sought:
                del batches[tp]

    def _follow_log_restarts(self, batches: dict[TP, list[RawRecord]]) -> None:
        """Partitions whose broker log no longer reaches their position: it lost its data.

        A broker that came back without its data (DESIGN.md §4) shows in one of two ways: a
        Kafka broker answers "offset out of range" and the consumer resets to the new log,
        whose records then start below the position; a broker that answers with an empty
        fetch instead (Tansu) reports a log end below it. Either way: say so, record it for
        ``status`` with the next checkpoint, and consume the new log from its start.
        """
        marks = self._source.highwaters()
        for tp, position in list(self._ledger.position.items()):
            records = batches.get(tp)
            if records and records[0].offset < position.offset:
                self._ledger.restarted(tp, records[0].offset)
                _log_restart(tp, position.offset, f"the consumer reset to {records[0].offset}")
            elif tp in marks and marks[tp] < position.offset:
                self._ledger.restarted(tp, 0)
                self._source.seek({tp: None})
                batches.pop(tp, None)
                _log_restart(tp, position.offset, f"the log ends at {marks[tp]}")

    def _load_assigned(self, tps: set[TP]) -> None:
        """Seek newly owned partitions to their stored offsets (paused while unreadable)."""
        tps |= self._unloaded
        if not tps:
            return
        windows = self._pipeline.windows
        try:
            stored = self._checkpointer.load({topic for topic, _ in tps})
            windows.forget(tps)
            self._checkpointer.load_windows(tps, windows)
        except StoreError as exc:
            self._unloaded = tps
            self._source.pause(tps)
            delay = self._retry.failed(self._monotonic())
            self._services.health.store_failure = str(exc)
            log.warning("cannot read stored offsets, retry in %.1f s: %s", delay, exc)
            return
        for tp in tps:
            self._ledger.start(tp, stored.get(tp))
        positions = {tp: self._ledger.stored_offsets()[tp] for tp in tps}
        self._source.seek(positions)
        self._sought |= positions.keys()
        self._last_activity = self._monotonic()
        if self._unloaded:
            self._unloaded = set()
            self._source.resume_all()
        log.info("partitions assigned: %s", _describe(positions))

    def _final_checkpoint(self, flush: bool) -> None:
        pending = self._pipeline.take_pending()
        try:
            stored = self._checkpointer.commit(pending, self._ledger, self._pipeline.windows)
            self._source.commit(stored)
            self._closer.finish(flush=flush)
        except (StoreError, IngestError) as exc:
            log.warning("final checkpoint failed, uncommitted records will be re-read: %s", exc)

    def throughput(self) -> float | None:
        """Records per second from the first record consumed to the last."""
        if self.first_record_at is None or self.last_record_at is None:
            return None
        elapsed = self.last_record_at - self.first_record_at
        return self.consumed / elapsed if elapsed > 0 else None


def _log_restart(tp: TP, expected: int, found: str) -> None:
    topic, partition = tp
    log.warning(
        "%s[%d]: offset %d is beyond the broker's log (%s): did the broker lose its data? "
        "Consuming the new log from its start",
        topic, partition, expected, found,
        extra={"topic": topic, "partition": partition, "offset": expected},
    )  # fmt: skip


def _describe(positions: dict[TP, int | None]) -> str:
    return ", ".join(
        f"{t}[{p}]@{'start' if o is None else o}" for (t, p), o in sorted(positions.items())
    )


def build_pipeline(
    settings: Settings, references: ReferenceCache, warmup: Warmup | None = None
) -> Pipeline:
    """The pipeline with its window manager, windows laid out by the active references."""

    schemas: dict[tuple[str, str, int | None], WindowSchema] = {}  # revisions never change

    def schema_for(model: str, version: str) -> WindowSchema:
        active = references.get(model, version)
        revision = None if active is None else active.revision
        schema = schemas.get((model, version, revision))
        if schema is None:
            overrides = settings.model(model).features
            profile = None if active is None else active.profile
            schema = schemas[(model, version, revision)] = schema_from_reference(
                profile, revision, overrides
            )
        return schema

    def segments_for(model: str) -> list[str]:
        return settings.model(model).segments

    return Pipeline(settings, time.time, WindowManager(schema_for, segments_for), warmup)


def build_run_loop(settings: Settings, engine: Engine) -> RunLoop:
    """Wire the daemon: Kafka source, pipeline, checkpoint (with the dead-letter topic)."""
    for model, revision in ensure_configured_references(settings, engine, utc_now()):
        log.info("reference revision %d built for %s from its configured path", revision, model)
    sink = None
    if settings.kafka.dead_letter_topic:
        sink = DeadLetterTopic(settings, settings.kafka.dead_letter_topic)
    group = settings.kafka.group_id
    references = ReferenceCache(engine)
    warmup = Warmup(settings, references)
    alerts = AlertEvaluator(settings)
    joiner = Joiner(settings, group, settings.kafka.predictions_topic, alerts)
    checkpointer = Checkpointer(engine, group, utc_now, sink, warmup, joiner)
    relay = build_relay(settings, engine, alerts)
    options, topics = subscription(settings)
    inline = settings.kafka.fetcher == "inline"
    source = KafkaSource(options, topics) if inline else FetcherProcess(options, topics)
    topic = settings.kafka.predictions_topic
    closer: Closer
    if settings.ingest.closer == "process":
        closer = ClosingProcess(settings, (group, topic), lambda: source.partitions(topic))
    else:
        closer = WindowCloser(
            settings, engine, (group, topic), references, utc_now,
            lambda: source.partitions(topic), alerts,
        )  # fmt: skip
    pipeline = build_pipeline(settings, references, warmup)
    return RunLoop(
        settings, source, pipeline, checkpointer, closer, build_services(settings, engine, relay)
    )


def build_services(settings: Settings, engine: Engine, relay: RelayThread) -> Services:
    """The relay, and (unless ``http.enabled`` is off) probes, metrics and the HTTP server."""
    poll_interval_ms = consumer_options(settings).get("max_poll_interval_ms", 300_000)
    health = LoopHealth(float(poll_interval_ms) / 1000)
    services = Services(relay=relay, health=health)
    if not settings.http.enabled:
        return services
    registry = CollectorRegistry()
    services.metrics = LoopMetrics(registry, time.monotonic)
    registry.register(StoredFigures(settings, engine))
    app = build_app(settings, engine, health, registry)
    services.http = HttpServer(app, settings.http.host, settings.http.port)
    return services


def build_relay(settings: Settings, engine: Engine, alerts: AlertEvaluator) -> RelayThread:
    """The outbox relay's thread: free dead relays' leases (once), queue due repeats, then
    deliver what is due."""
    relay = OutboxRelay(settings, engine, utc_now, Notifier(settings.channels), WebhookSender())
    recovered = False

    def recover() -> None:
        nonlocal recovered
        if not recovered:
            relay.recover()
            recovered = True

    def repeats() -> None:
        now = utc_now()
        with db.transaction(engine) as conn:
            due = alerts.repeats_due(conn, now)
        if due:
            with db.transaction(engine, write=True) as conn:
                alerts.queue_repeats(conn, now)

    return RelayThread([recover, repeats, relay.deliver_due], on_stop=relay.close)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one replay read: lines consumed and where it started."""

    records: int
    first_line: int
    windows_closed: int


def replay(
    settings: Settings,
    engine: Engine,
    path: Path,
    kind: Kind,
    *,
    flush: bool = False,
    batch_size: int = 20_000,
) -> ReplayResult:
    """Feed a JSON Lines file through the pipeline, resuming after the last stored line."""
    topic = replay_topic(path)
    ensure_configured_references(settings, engine, utc_now())
    references = ReferenceCache(engine)
    warmup = Warmup(settings, references)
    alerts = AlertEvaluator(settings)
    joiner = Joiner(settings, REPLAY_GROUP, None, alerts)
    checkpointer = Checkpointer(engine, REPLAY_GROUP, utc_now, warmup=warmup, joiner=joiner)
    pipeline = build_pipeline(settings, references, warmup)
    closer = WindowCloser(
        settings, engine, (REPLAY_GROUP, topic), references, utc_now, lambda: {0}, alerts
    )
    ledger = Ledger()
    stored = checkpointer.load([topic]).get((topic, 0))
    ledger.start((topic, 0), stored)
    checkpointer.load_windows([(topic, 0)], pipeline.windows)
    first_line = 1 if stored is None else stored.offset
    records = 0
    relay = build_relay(settings, engine, alerts)  # delivers as windows close, in this thread
    relax_garbage_collector()
    for batch in read_lines(path, first_line, batch_size):
        records += pipeline.ingest(kind, topic, 0, batch, ledger)
        checkpointer.commit(pipeline.take_pending(), ledger, pipeline.windows)
        max_ms = ledger.max_event_ms((topic, 0))
        if max_ms is not None:  # stored windows the file has passed: memory stays flat
            pipeline.windows.evict_complete((topic, 0), max_ms, pipeline.lateness_ms)
        if closer.close_ready():
            relay.run_once()
    if flush and closer.close_ready(flush=True):
        relay.run_once()
    relay.stop()  # never started: closes its clients
    return ReplayResult(records, first_line, closer.closed)
