"""scripts/produce_events.py against a real broker: what it sends is what monitor can read,
and what `monitor run` then counts, exactly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from monitor.ingest.events import EventParser, LabelEvent, PredictionEvent, Rejected
from monitor.settings import Settings
from tests.support.daemon import deployment, wait
from tests.support.kafka import TopicFactory

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "produce_events.py"
RATE, DURATION_S, SPEED, DELAY_MS = 500, 3, 60, 1000
TOTALS = re.compile(r"(\d+) predictions \((\d+) malformed\), (\d+) labels;")


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 15) -> list[Any]:
    """Every record of ``topic`` (all partitions, from the start), in offset order per partition.

    Stops on the count the script reported, not on end offsets (they under-report on Tansu).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions or ())])
        consumer.seek_to_beginning()
        records: list[Any] = []
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        records.extend(r for b in consumer.poll(timeout_ms=300).values() for r in b)  # strays
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def has_text_in_numeric(event: PredictionEvent | LabelEvent) -> bool:
    """The generator's ``string_feature`` defect: monitor counts it as a type error."""
    features = getattr(event, "features", {})
    return any(isinstance(v, str) for k, v in features.items() if k.startswith("f"))


def test_generated_traffic_reaches_kafka_and_parses_as_monitor_events(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    """3 s at 500/s: ~1500 predictions, ~1% malformed, ~90% labelled, all readable by monitor."""
    topics = topic_factory(2)
    launched_ms = time.time() * 1000
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--bootstrap", kafka_bootstrap,
         "--predictions-topic", topics.predictions, "--labels-topic", topics.labels,
         "--models", "churn,fraud", "--rate", str(RATE), "--duration", f"{DURATION_S}s",
         "--label-delay", f"{DELAY_MS}ms", "--speed", str(SPEED), "--malformed", "0.01",
         "--seed", "7"],
        capture_output=True, text=True, timeout=40, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    totals = TOTALS.search(result.stdout)
    assert totals is not None, result.stdout
    sent, malformed_sent, labels_sent = map(int, totals.groups())
    assert abs(sent - RATE * DURATION_S) <= 0.2 * RATE * DURATION_S

    predictions = consume(kafka_bootstrap, topics.predictions, sent)
    labels = consume(kafka_bootstrap, topics.labels, labels_sent)
    assert (len(predictions), len(labels)) == (sent, labels_sent)

    settings = Settings.from_mapping({"models": [{"name": "churn"}, {"name": "fraud"}]})
    parser = EventParser(settings, clock=time.time)
    latest = parser.latest_usable_ms()
    valid: dict[str, PredictionEvent] = {}
    partitions_of: dict[str, set[int]] = defaultdict(set)
    malformed = 0
    for record in predictions:
        event = parser.parse(record, "predictions", record.topic, record.partition, latest)
        partitions_of[record.key.decode()].add(record.partition)
        if isinstance(event, Rejected) or has_text_in_numeric(event):
            malformed += 1
            continue
        assert isinstance(event, PredictionEvent), event
        assert event.model in {"churn", "fraud"} and event.version == "v1"
        assert event.id is not None and event.prediction in (0, 1)
        valid[event.id] = event
    assert malformed == malformed_sent
    assert 0.002 <= malformed / sent <= 0.025
    # Keyed by model: one partition per model, event time never decreasing within it.
    assert all(len(p) == 1 for p in partitions_of.values()) and len(partitions_of) == 2
    for model in ("churn", "fraud"):
        times = [e.ts_ms for e in valid.values() if e.model == model]
        assert times == sorted(times)
    # Event time started speed * duration back and never passed the wall clock.
    first, last = min(e.ts_ms for e in valid.values()), max(e.ts_ms for e in valid.values())
    assert launched_ms - SPEED * DURATION_S * 1000 - 1000 <= first
    assert last <= time.time() * 1000

    for record in labels:
        label = parser.parse(record, "labels", record.topic, record.partition, latest)
        assert isinstance(label, LabelEvent), label
        assert label.id in valid and label.label in (0, 1)
        delay = label.ts_ms - valid[label.id].ts_ms
        assert 0.8 * DELAY_MS - 1 <= delay <= 1.2 * DELAY_MS + 1
    due = sum(1 for e in valid.values() if e.ts_ms + 1.2 * DELAY_MS <= last)
    assert 0.85 * due <= len(labels) <= 0.95 * len(valid)


def dead_letter_kind(value: bytes) -> str | None:
    """Which generator defect makes a record a dead letter (a text feature does not: it is a
    data-quality finding, DESIGN.md §3)."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "not_json"
    if "model" not in doc:
        return "no_model"
    return "bad_ts" if doc.get("ts") == "yesterday" else None


def test_monitor_run_counts_exactly_what_the_generator_produced(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """monitor run counts events + late + dead letters == sent; dead letters = undecodable."""
    topics = topic_factory(2)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--bootstrap", kafka_bootstrap,
         "--predictions-topic", topics.predictions, "--labels-topic", topics.labels,
         "--models", "churn,fraud", "--rate", "1000", "--duration", "3s",
         "--label-delay", "1s", "--speed", "60", "--malformed", "0.03", "--seed", "11"],
        capture_output=True, text=True, timeout=40, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    totals = TOTALS.search(result.stdout)
    assert totals is not None, result.stdout
    sent, malformed_sent, labels_sent = map(int, totals.groups())
    records = consume(kafka_bootstrap, topics.predictions, sent)
    assert len(records) == sent
    expected_dead = {
        (r.partition, r.offset): kind for r in records if (kind := dead_letter_kind(r.value))
    }
    assert 0.5 * malformed_sent <= len(expected_dead) <= malformed_sent

    dep = deployment(
        tmp_path, kafka_bootstrap, f"sqlite:///{tmp_path}/monitor.db", topics.predictions,
        topics.labels, models=[{"name": "churn"}, {"name": "fraud"}],
    )  # fmt: skip
    assert dep.run("db", "upgrade").returncode == 0
    log = tmp_path / "run.log"
    daemon = dep.start("run", "--exit-when-idle", "5s", log=log)
    assert wait(daemon, log, 180) == 0, log.read_text()[-3000:]

    status = json.loads(dep.run("status", "--json").stdout)
    counted = sum(m["events"] + m["late"] for m in status["models"])
    assert counted + status["dead_letters"] == sent
    assert sum(m["labels"] for m in status["models"]) == labels_sent
    dead = dep.dead_letters()
    assert {(p, o) for t, p, o, _ in dead if t == topics.predictions} == set(expected_dead)
    assert len(dead) == status["dead_letters"] == len(expected_dead)
    assert status["dead_letters"] / sent == pytest.approx(0.03 * 3 / 4, abs=0.012)
