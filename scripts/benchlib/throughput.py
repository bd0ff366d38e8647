"""``bench.py throughput``: every measurement of issue 8 in one run, so the ratios hold.

Order: write the streams, time one window's evaluation, start the broker and produce, then
the ceiling, ``monitor run`` on SQLite, on PostgreSQL, with 10 models, each followed by the
ceiling again (a run's ratio is to the mean of the ceilings around it), and the replay; the
optional RSS check last. Each measurement gets a fresh consumer group and a fresh database.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchlib import children, report
from benchlib.brokers import PARTITIONS, broker, make_topics, produce_file
from benchlib.report import Row
from benchlib.storage import database_bytes, fresh_database, prepare
from benchlib.streams import EventFile, Ids, write_events, write_reference
from benchlib.window import time_evaluation
from monitor.ingest.consumer import consumer_options
from monitor.settings import Settings, mask_url

FAST_GROUP = {
    "session_timeout_ms": 6000,
    "max_poll_interval_ms": 30000,
    "heartbeat_interval_ms": 1000,
}
RSS_SMALL, RSS_LARGE = 200_000, 2_000_000


@dataclass(frozen=True, slots=True)
class Options:
    events: int
    quick: bool
    kafka: str | None
    postgres: str | None  # None: no PostgreSQL row
    rss_check: bool
    idle: str = "5s"
    ids: Ids = "random"


@dataclass(frozen=True, slots=True)
class Kafka:
    bootstrap: str
    labels_topic: str


def config(
    kafka: Kafka | None, topic: str | None, database: str, models: tuple[str, ...]
) -> dict[str, Any]:
    """A monitor config: fresh group, the given topic, HTTP off, every model 5-minute windows."""
    doc: dict[str, Any] = {
        "database": {"url": database},
        "http": {"enabled": False},
        "logging": {"level": "info", "format": "json"},
        "models": [{"name": m, "window": "5m"} for m in models],
    }
    if kafka is not None and topic is not None:
        doc["kafka"] = {
            "bootstrap_servers": kafka.bootstrap,
            "group_id": f"bench-{uuid.uuid4().hex[:8]}",
            "predictions_topic": topic,
            "labels_topic": kafka.labels_topic,
            "consumer": dict(FAST_GROUP),
        }
    return doc


def measure_ceiling(kafka: Kafka, topic: str, stream: EventFile, tmp: Path) -> tuple[Row, Any]:
    settings = Settings.from_mapping(config(kafka, topic, "sqlite://", stream.models))
    options = consumer_options(settings)
    child, out = children.ceiling(options, topic, stream.events, tmp / "ceiling.out")
    note = "" if out["records"] == stream.events else f"read {out['records']:,}"
    row = Row("ceiling (kafka-python + orjson)", out["events_per_s"], note=note)
    row.peak_rss_mb = child.peak_rss_mb
    return row, out


def _mean_rate(rows: list[Row]) -> float | None:
    rates = [row.events_per_s for row in rows if row.events_per_s]
    return sum(rates) / len(rates) if rates else None


def _ceiling_row(measured: list[tuple[Row, Any]]) -> tuple[Row, list[Any]]:
    """The ceilings measured before and after each run as one row: their median, their range.

    A shared machine's speed drifts within minutes (the ceiling measured 60k to 105k events/s
    within two hours on one), so each run is compared with the mean of the ceilings measured
    just before and just after it (`Row.ceiling`), not with one measured minutes earlier.
    """
    rows = [row for row, _ in measured]
    rates = sorted(row.events_per_s for row in rows if row.events_per_s)
    row = Row("ceiling (kafka-python + orjson)", float(np.median(rates)) if rates else None)
    row.note = "; ".join(r.note for r in rows if r.note)
    if len(rates) > 1:
        spread = f"median of {len(rates)}: {rates[0]:,.0f} to {rates[-1]:,.0f}"
        row.note = f"{spread}; {row.note}" if row.note else spread
    row.peak_rss_mb = max((r.peak_rss_mb for r in rows if r.peak_rss_mb), default=None)
    return row, [out for _, out in measured]


def measure_run(
    name: str,
    kafka: Kafka,
    topic: str,
    stream: EventFile,
    url: str | None,
    tmp: Path,
    opts: Options,
) -> tuple[Row, dict[str, Any]]:
    """``monitor run --exit-when-idle`` over the whole topic, on a fresh database."""
    with fresh_database(url, tmp, name.replace(" ", "_")) as database:
        doc = config(kafka, topic, database.url, stream.models)
        prepare(database, Settings.from_mapping(doc), stream_reference(tmp))
        baseline = database_bytes(database)
        path = tmp / f"{name.replace(' ', '_')}.json"
        path.write_bytes(orjson.dumps(doc))
        child, facts = children.monitor_run(path, tmp / f"{path.stem}.log", opts.idle)
        if child.returncode != 0:
            raise RuntimeError(f"monitor run ({name}) exited {child.returncode}:\n{child.output}")
        size = database_bytes(database)
    p50, p99 = report.percentiles(facts.checkpoint_ms)
    records = facts.records or 0
    row = Row(name, facts.events_per_s, checkpoint_p50_ms=p50, checkpoint_p99_ms=p99)
    row.checkpoints, row.peak_rss_mb = len(facts.checkpoint_ms), child.peak_rss_mb
    row.db_bytes_per_m = (size - baseline) / records * 1e6 if records else None
    if records != stream.events:
        row.note = f"consumed {records:,} of {stream.events:,}"
    if facts.consuming is not None:
        row.cpu_busy = children.cpu_busy(child.cpu, *facts.consuming)
    details = {
        "records": facts.records,
        "wall_s": child.seconds,
        "consuming": facts.consuming,
        "db_bytes": size,
        "db_baseline_bytes": baseline,
        "checkpoint_ms": facts.checkpoint_ms,
        "log_lines_by_logger": dict(facts.loggers),
        "warnings": dict(facts.warnings.most_common(10)),
    }
    return row, details


def measure_replay(
    stream: EventFile, tmp: Path, name: str = "replay (SQLite)"
) -> tuple[Row, dict[str, Any]]:
    """``monitor.app.replay`` of the file in a child process, on a fresh SQLite file."""
    stem = f"replay_{stream.events}"
    with fresh_database(None, tmp, stem) as database:
        doc = config(None, None, database.url, stream.models)
        prepare(database, Settings.from_mapping(doc), stream_reference(tmp))
        baseline = database_bytes(database)
        path = tmp / f"{stem}.json"
        path.write_bytes(orjson.dumps(doc))
        child, out = children.monitor_replay(path, stream.path, tmp / f"{stem}.out")
        size = database_bytes(database)
    p50, p99 = report.percentiles(out["checkpoint_ms"])
    row = Row(name, out["events_per_s"], checkpoint_p50_ms=p50, checkpoint_p99_ms=p99)
    row.checkpoints, row.peak_rss_mb = len(out["checkpoint_ms"]), child.peak_rss_mb
    row.db_bytes_per_m = (size - baseline) / out["records"] * 1e6 if out["records"] else None
    return row, out | {"db_bytes": size, "db_baseline_bytes": baseline}


def rss_check(tmp: Path, ids: Ids) -> dict[str, Any]:
    """Peak RSS of a replay of 200k events against one of 2M (same stream, fresh files)."""
    found: dict[str, Any] = {}
    for key, count in (("small", RSS_SMALL), ("large", RSS_LARGE)):
        stream = write_events(tmp / f"rss-{count}.jsonl", count, ("bench",), ids=ids)
        row, _ = measure_replay(stream, tmp, f"replay {count:,}")
        found[key] = {
            "events": count,
            "peak_rss_mb": row.peak_rss_mb,
            "events_per_s": row.events_per_s,
        }
        stream.path.unlink()
    small, large = found["small"]["peak_rss_mb"], found["large"]["peak_rss_mb"]
    if small is None or large is None:
        return found | {"growth": None, "met": None}
    growth = (large - small) / small
    return found | {"growth": growth, "met": growth <= report.RSS_GROWTH}


def stream_reference(tmp: Path) -> Path:
    path = tmp / "reference.jsonl"
    return path if path.exists() else write_reference(path)


ORDER = ("ceiling", "run_sqlite", "run_postgresql", "run_10_models_sqlite", "replay")


def run(opts: Options, tmp: Path) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.monotonic()
    stages: dict[str, float] = {}

    def stage(name: str, since: float) -> float:
        now = time.monotonic()
        stages[name] = round(now - since, 1)
        print(f"  {name}: {now - since:.1f} s", flush=True)
        return now

    mark = began
    reference = stream_reference(tmp)
    one = write_events(tmp / "events-1.jsonl", opts.events, ("bench",), ids=opts.ids)
    ten = None
    if not opts.quick:
        models = tuple(f"bench{i}" for i in range(10))
        ten = write_events(tmp / "events-10.jsonl", opts.events, models, ids=opts.ids)
    mark = stage("write streams", mark)
    window = time_evaluation(reference)
    mark = stage("window evaluation", mark)
    rows: dict[str, Row] = {}
    details: dict[str, Any] = {}
    with broker(opts.kafka) as bootstrap:
        suffix = uuid.uuid4().hex[:8]
        kafka = Kafka(bootstrap, f"bench-labels-{suffix}")
        topics = {f"bench-1-{suffix}": one}
        if ten is not None:
            topics[f"bench-10-{suffix}"] = ten
        make_topics(bootstrap, {kafka.labels_topic: PARTITIONS} | dict.fromkeys(topics, PARTITIONS))
        for topic, stream in topics.items():
            produce_file(bootstrap, topic, stream.path)
        mark = stage("produce", mark)
        topic_one = f"bench-1-{suffix}"
        ceilings = [measure_ceiling(kafka, topic_one, one, tmp)]
        mark = stage("ceiling", mark)
        runs: list[tuple[str, str, str, EventFile, str | None]] = [
            ("run_sqlite", "monitor run (SQLite)", topic_one, one, None)
        ]
        if opts.postgres and not opts.quick:
            runs.append(
                ("run_postgresql", "monitor run (PostgreSQL)", topic_one, one, opts.postgres)
            )
        if ten is not None:
            runs.append(("run_10_models_sqlite", "monitor run, 10 models (SQLite)",
                         f"bench-10-{suffix}", ten, None))  # fmt: skip
        for key, name, topic, stream, url in runs:
            rows[key], details[key] = measure_run(name, kafka, topic, stream, url, tmp, opts)
            mark = stage(name, mark)
            ceilings.append(measure_ceiling(kafka, topic_one, one, tmp))
            mark = stage("ceiling", mark)
            rows[key].ceiling = _mean_rate([row for row, _ in ceilings[-2:]])
        rows["ceiling"], details["ceiling"] = _ceiling_row(ceilings)
    if not opts.quick and not opts.postgres:
        rows["run_postgresql"] = Row("monitor run (PostgreSQL)", note="skipped: no --database")
    rows["replay"], details["replay"] = measure_replay(one, tmp)
    mark = stage("replay", mark)
    rss = rss_check(tmp, opts.ids) if opts.rss_check else None
    if rss is not None:
        stage("RSS check", mark)
    rows = {key: rows[key] for key in ORDER if key in rows}
    report.judge(rows)
    return {
        "started_at": started_at,
        "seconds": round(time.monotonic() - began, 1),
        "stages_s": stages,
        "options": {
            "events": opts.events,
            "quick": opts.quick,
            "kafka": opts.kafka,
            "database": mask_url(opts.postgres) if opts.postgres else None,
            "rss_check": opts.rss_check,
            "exit_when_idle": opts.idle,
            "ids": opts.ids,
        },
        "events": opts.events,
        "partitions": PARTITIONS,
        "broker": "external" if opts.kafka else "embedded tansu",
        "machine": report.machine(),
        "rows": {k: r.as_dict() for k, r in rows.items()},
        "window_evaluation": window,
        "rss_check": rss,
        "details": details,
        "table": report.table(rows),
        "cpu": report.cpu_line(rows),
    }
