"""Delayed labels through Kafka, with SIGKILLs between predictions and their labels."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from sklearn.metrics import accuracy_score, log_loss  # type: ignore[import-untyped]

from tests.support.daemon import deployment, epoch_ms, kill_when
from tests.support.kafka import produce

START_MS = 1_794_999_900_000  # 2026-11-18T11:05:00Z, a five-minute boundary
WINDOW_MS = 300_000


def stream(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions every 150 ms and their labels an hour later, shuffled within ±10 minutes."""
    rng = random.Random(41)
    predictions, labels = [], []
    for i in range(count):
        score = rng.random()
        ts = START_MS + i * 150
        predictions.append(
            {"id": f"k{i}", "model": "m", "ts": ts, "features": {"x": rng.gauss(0, 1)}}
            | {"prediction": int(score > 0.5), "score": score}
        )
        labels.append({"id": f"k{i}", "model": "m", "label": int(rng.random() < score)})
        labels[-1]["ts"] = ts + 3_600_000 + int(rng.uniform(-600_000, 600_000))
    labels.sort(key=lambda label: label["ts"])
    return predictions, labels


def test_sigkill_between_predictions_and_labels_loses_and_doubles_no_join(
    tmp_path: Path, kafka_bootstrap: str, topic_factory: Any, database_url: str
) -> None:
    """Two SIGKILLs while labels join, then a restart: every window equals sklearn's."""
    predictions, labels = stream(12_000)
    topics = topic_factory(4)
    produce(
        kafka_bootstrap,
        topics.predictions,
        [(i % 4, orjson.dumps(p)) for i, p in enumerate(predictions)],
    )
    produce(
        kafka_bootstrap, topics.labels, [(i % 4, orjson.dumps(x)) for i, x in enumerate(labels)]
    )
    dep = deployment(
        tmp_path,
        kafka_bootstrap,
        database_url,
        topics.predictions,
        topics.labels,
        ingest={"commit_interval": "200ms", "commit_every": 1500},
        models=[{"name": "m", "window": "5m"}],
    )
    assert dep.run("db", "upgrade").returncode == 0
    total = len(predictions) + len(labels)
    rng = random.Random(42)
    log = tmp_path / "run.log"
    for target in sorted(rng.uniform(0.15, 0.8) * total for _ in range(2)):
        kill_when(dep, lambda t=target: dep.stored_offsets() >= t, log, rng)
        assert dep.stored_offsets() < total, "killed too late to matter"
    result = dep.run("run", "--exit-when-idle", "3s", "--flush")
    assert result.returncode == 0, result.stderr[-3000:]

    truth = {label["id"]: label["label"] for label in labels}
    windows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for p in predictions:
        windows[p["ts"] - p["ts"] % WINDOW_MS].append(p)
    rows = dep.query(
        "SELECT window_start, metric, value, n FROM window_metrics "
        "WHERE segment = '' AND feature = '' AND metric IN ('accuracy', 'log_loss')"
    )
    found = {(epoch_ms(start), metric): (value, n) for start, metric, value, n in rows}
    assert len(found) == 2 * len(windows) == 12
    for start, members in windows.items():
        y = [truth[p["id"]] for p in members]
        accuracy, n = found[(start, "accuracy")]
        assert n == len(members)  # every label joined, none twice
        assert accuracy == pytest.approx(
            accuracy_score(y, [p["prediction"] for p in members]), abs=1e-9
        )
        loss, _ = found[(start, "log_loss")]
        assert loss == pytest.approx(log_loss(y, [p["score"] for p in members]), abs=1e-9)
    assert dep.query("SELECT COUNT(*) FROM early_labels")[0][0] == 0
