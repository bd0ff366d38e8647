"""Delayed labels join their predictions; each window's performance equals scikit-learn's."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from sqlalchemy import Engine

from monitor.app import replay
from monitor.ingest.events import LabelEvent, PredictionEvent
from monitor.joining import Joiner, PendingLabelWork
from monitor.reference.service import build_and_store
from monitor.settings import Settings
from monitor.status import iso, metric_rows, status_report
from monitor.store import db
from monitor.store import labels as stored_labels
from monitor.store.db import transaction
from monitor.windows.labelled import LabelledState
from monitor.windows.ranges import to_datetime

START_MS = 1_794_999_900_000  # 2026-11-18T11:05:00Z, a five-minute boundary
WINDOW_MS = 300_000
HOUR_MS = 3_600_000


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def setup(database_url: str, **model: Any) -> tuple[Settings, Engine]:
    settings = Settings.from_mapping(
        {"database": {"url": database_url}, "models": [{"name": "m", "window": "5m", **model}]}
    )
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    return settings, engine


def delayed_labels(
    predictions: list[dict[str, Any]], truth: list[Any], rng: random.Random
) -> list[dict[str, Any]]:
    """Labels one hour of event time after their prediction, shuffled within ±10 minutes."""
    labels = [
        {"id": p["id"], "model": "m", "label": y, "ts": p["ts"] + HOUR_MS}
        for p, y in zip(predictions, truth, strict=True)
    ]
    jitter = {label["id"]: rng.uniform(-600_000, 600_000) for label in labels}
    return sorted(labels, key=lambda label: label["ts"] + jitter[label["id"]])


def by_window(rows: list[dict[str, Any]]) -> dict[int, list[int]]:
    windows: dict[int, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        windows[row["ts"] - row["ts"] % WINDOW_MS].append(i)
    return windows


def metrics(engine: Engine, **query: Any) -> dict[tuple[str, str | None, str | None], Any]:
    """(window start, feature, metric) → row, for the whole model."""
    return {
        (r["window_start"], r["feature"], r["metric"]): r
        for r in metric_rows(engine, "m", **query)
        if r["segment"] is None
    }


def merged_state(engine: Engine, start_ms: int) -> LabelledState:
    with transaction(engine) as conn:
        shares = stored_labels.window_performance(conn, "m", "default", to_datetime(start_ms))
    state = LabelledState.from_bytes(shares[0])
    for raw in shares[1:]:
        state.merge(LabelledState.from_bytes(raw))
    return state


@pytest.fixture
def binary_stream() -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    rng = random.Random(11)
    predictions, truth = [], []
    for i in range(6000):  # one hour: 12 windows of 500
        score = rng.random()
        predictions.append(
            {
                "id": f"p{i}",
                "model": "m",
                "ts": START_MS + i * 600,
                "features": {"x": rng.gauss(0, 1)},
                "prediction": int(score > 0.5),
                "score": score,
                "segment": {"channel": rng.choice(["web", "app"])},
            }
        )
        truth.append(int(rng.random() < score))
    yield predictions, truth


def test_binary_performance_per_window_equals_sklearn(
    tmp_path: Path, database_url: str, binary_stream: tuple[list[dict[str, Any]], list[int]]
) -> None:
    """Labels an hour late and shuffled: confusion counts and every metric match sklearn."""
    predictions, truth = binary_stream
    settings, engine = setup(database_url, segments=["channel"])
    training = [dict(p, label=y) for p, y in zip(predictions[:2000], truth, strict=False)]
    reference = write(tmp_path / "reference.jsonl", training)
    build_and_store(settings, engine, "m", reference, None, datetime.now(UTC))
    labels = delayed_labels(predictions, truth, random.Random(12))
    replay(settings, engine, write(tmp_path / "p.jsonl", predictions), "predictions", flush=True)
    replay(settings, engine, write(tmp_path / "l.jsonl", labels), "labels", batch_size=700)
    found = metrics(engine)
    windows = by_window(predictions)
    assert len(windows) == 12
    for start, rows in windows.items():
        y = [truth[i] for i in rows]
        pred = [predictions[i]["prediction"] for i in rows]
        score = [predictions[i]["score"] for i in rows]
        when = iso(to_datetime(start))
        expected_confusion = Counter((str(a), str(b)) for a, b in zip(y, pred, strict=True))
        state = merged_state(engine, start)
        assert state.slices[""].performance.confusion == expected_confusion
        expected = {
            "accuracy": accuracy_score(y, pred),
            "precision": precision_score(y, pred, average="macro", zero_division=0),
            "recall": recall_score(y, pred, average="macro", zero_division=0),
            "f1": f1_score(y, pred, average="macro", zero_division=0),
            "log_loss": log_loss(y, score, labels=[0, 1]),
        }
        for metric, value in expected.items():
            row = found[(when, None, metric)]
            assert row["value"] == pytest.approx(value, abs=1e-9), metric
            assert (row["n"], row["decision"]) == (len(rows), None)
        assert found[(when, None, "roc_auc")]["value"] == pytest.approx(
            roc_auc_score(y, score), abs=1e-3
        )
        positive = found[(when, "@class:1", "precision")]["value"]
        assert positive == pytest.approx(precision_score(y, pred, zero_division=0), abs=1e-9)
        assert found[(when, None, "label_coverage")]["value"] == 1.0
        baseline = accuracy_score(truth[:2000], [p["prediction"] for p in predictions[:2000]])
        assert found[(when, "@reference", "accuracy")]["value"] == pytest.approx(baseline)
        delay = found[(when, None, "label_delay_p50")]["value"]
        assert delay == pytest.approx(3600, rel=0.2)
    web = [r for r in metric_rows(engine, "m", metric="accuracy", segment="channel=web")]
    assert len(web) == 12
    performance = status_report(settings, engine, with_lag=False)["models"][0]["performance"]
    last = iso(to_datetime(max(windows)))
    assert performance["window_start"] == last
    assert performance["metrics"]["accuracy"] == found[(last, None, "accuracy")]["value"]
    assert performance["metrics"]["label_coverage"] == 1.0
    assert performance["labelled"] == 500


def test_early_labels_join_within_the_grace_and_orphan_after(
    tmp_path: Path, database_url: str, binary_stream: tuple[list[dict[str, Any]], list[int]]
) -> None:
    """Labels before their predictions: joined within the grace; with none, orphans."""
    predictions, truth = binary_stream
    predictions, truth = predictions[:1000], truth[:1000]
    labels = delayed_labels(predictions, truth, random.Random(13))
    labels.append({"id": "nobody", "model": "m", "label": 1, "ts": START_MS})
    settings, engine = setup(database_url)
    replay(settings, engine, write(tmp_path / "l.jsonl", labels), "labels")
    replay(settings, engine, write(tmp_path / "p.jsonl", predictions), "predictions", flush=True)
    accuracy = metric_rows(engine, "m", metric="accuracy")
    assert sum(r["n"] for r in accuracy) == 1000
    with transaction(engine) as conn:
        assert [label.id for label in stored_labels.early_labels_waiting(conn, None)] == ["nobody"]


def test_labels_past_the_grace_are_orphans(
    tmp_path: Path, database_url: str, binary_stream: tuple[list[dict[str, Any]], list[int]]
) -> None:
    """With no grace, labels with no stored prediction are orphans, counted in their window."""
    predictions, truth = binary_stream
    predictions, truth = predictions[:1000], truth[:1000]
    labels = delayed_labels(predictions, truth, random.Random(14))
    labels.append({"id": "nobody", "model": "m", "label": 1, "ts": START_MS})
    settings, engine = setup(database_url, early_label_grace="0s")
    replay(settings, engine, write(tmp_path / "l.jsonl", labels), "labels")
    replay(settings, engine, write(tmp_path / "p.jsonl", predictions), "predictions", flush=True)
    assert metric_rows(engine, "m", metric="accuracy") == []
    with transaction(engine) as conn:
        assert stored_labels.early_labels_waiting(conn, None) == []
    report = status_report(settings, engine, with_lag=False)
    assert report["models"][0]["orphan_labels"] == 1001
    # Counted in the window of the label's own time: the closed one shows it as a metric.
    orphans = metric_rows(engine, "m", metric="orphan_labels")
    assert {r["window_start"]: r["value"] for r in orphans} == {
        iso(to_datetime(START_MS)): 1.0,
        iso(to_datetime(START_MS + WINDOW_MS)): 0.0,
    }


def test_regression_and_multiclass_equal_sklearn(tmp_path: Path, database_url: str) -> None:
    """MAE, RMSE, MAPE, R² and multiclass log loss / macro AUC per window, as sklearn says."""
    rng = random.Random(21)
    rows, truth = [], []
    for i in range(1500):
        y = rng.uniform(1, 100)
        rows.append(
            {
                "id": f"r{i}",
                "model": "m",
                "ts": START_MS + i * 600,
                "prediction": y + rng.gauss(0, 5),
            }
        )
        truth.append(y)
    settings, engine = setup(database_url, task="regression")
    replay(settings, engine, write(tmp_path / "p.jsonl", rows), "predictions", flush=True)
    labels = delayed_labels(rows, truth, random.Random(22))
    replay(settings, engine, write(tmp_path / "l.jsonl", labels), "labels")
    found = metrics(engine)
    for start, index in by_window(rows).items():
        y = [truth[i] for i in index]
        pred = [rows[i]["prediction"] for i in index]
        when = iso(to_datetime(start))
        expected = {
            "mae": mean_absolute_error(y, pred),
            "rmse": float(np.sqrt(mean_squared_error(y, pred))),
            "mape": mean_absolute_percentage_error(y, pred),
            "r2": r2_score(y, pred),
        }
        for metric, value in expected.items():
            assert found[(when, None, metric)]["value"] == pytest.approx(value, abs=1e-9)

    classes = ["a", "b", "c"]
    rows, truth = [], []
    for i in range(1500):
        weights = [rng.random() for _ in classes]
        scores = {c: w / sum(weights) for c, w in zip(classes, weights, strict=True)}
        rows.append(
            {
                "id": f"c{i}",
                "model": "k",
                "ts": START_MS + i * 600,
                "prediction": max(scores, key=scores.__getitem__),
                "scores": scores,
            }
        )
        truth.append(rng.choices(classes, weights=weights)[0])
    settings = Settings.from_mapping(
        {
            "database": {"url": database_url},
            "models": [{"name": "k", "window": "5m", "task": "multiclass_classification"}],
        }
    )
    replay(settings, engine, write(tmp_path / "cp.jsonl", rows), "predictions", flush=True)
    labels = [dict(label, model="k") for label in delayed_labels(rows, truth, random.Random(23))]
    replay(settings, engine, write(tmp_path / "cl.jsonl", labels), "labels")
    found = {
        (r["window_start"], r["feature"], r["metric"]): r
        for r in metric_rows(engine, "k")
        if r["segment"] is None
    }
    for start, index in by_window(rows).items():
        y = [truth[i] for i in index]
        matrix = [[rows[i]["scores"][c] for c in classes] for i in index]
        when = iso(to_datetime(start))
        assert found[(when, None, "log_loss")]["value"] == pytest.approx(
            log_loss(y, matrix, labels=classes), abs=1e-9
        )
        auc = roc_auc_score(y, matrix, multi_class="ovr", average="macro", labels=classes)
        assert found[(when, None, "roc_auc")]["value"] == pytest.approx(auc, abs=1e-3)
        pred = [rows[i]["prediction"] for i in index]
        assert found[(when, None, "f1")]["value"] == pytest.approx(
            f1_score(y, pred, average="macro", zero_division=0), abs=1e-9
        )


def test_horizon_bounds_the_pending_table_and_counts_the_unlabelled(
    tmp_path: Path, database_url: str, binary_stream: tuple[list[dict[str, Any]], list[int]]
) -> None:
    """After label_horizon no older prediction is kept; never-labelled ones are counted."""
    predictions, truth = binary_stream
    settings, engine = setup(database_url, label_horizon="10m")
    windows = by_window(predictions)
    # Window by window: its predictions, then a label for two in three of them.
    for k, (start, index) in enumerate(sorted(windows.items())):
        labels = [
            {"id": predictions[i]["id"], "model": "m", "label": truth[i], "ts": start + WINDOW_MS}
            for i in index
            if i % 3
        ]
        chunk = [predictions[i] for i in index]
        replay(settings, engine, write(tmp_path / f"p{k}.jsonl", chunk), "predictions")
        replay(settings, engine, write(tmp_path / f"l{k}.jsonl", labels), "labels")
    watermark = predictions[-1]["ts"]
    cutoff = watermark - 600_000
    with transaction(engine) as conn:
        kept = stored_labels.pending_count(conn)
    assert kept == sum(1 for p in predictions if p["ts"] >= cutoff)
    pruned_unlabelled = sum(1 for i, p in enumerate(predictions) if i % 3 == 0 and p["ts"] < cutoff)
    report = status_report(settings, engine, with_lag=False)
    assert report["models"][0]["unlabelled"] == pruned_unlabelled > 0
    replay(settings, engine, write(tmp_path / "none.jsonl", []), "predictions", flush=True)
    accuracy = metric_rows(engine, "m", metric="accuracy")
    assert sum(r["n"] for r in accuracy) == sum(1 for i in range(len(predictions)) if i % 3)


def test_duplicates_and_labels_that_carry_their_prediction(
    tmp_path: Path, database_url: str
) -> None:
    """A repeated id counts once, as a duplicate; labels joined upstream need no lookup."""
    settings, engine = setup(database_url)
    base = {"model": "m", "features": {"x": 1.0}, "score": 0.9, "prediction": 1}
    predictions = [dict(base, id=f"d{i}", ts=START_MS + i * 1000) for i in range(200)]
    predictions.append(dict(base, id="d0", ts=START_MS + 250_000, prediction=0))
    replay(settings, engine, write(tmp_path / "p.jsonl", predictions), "predictions", flush=True)
    labels = [
        {"id": f"d{i}", "model": "m", "label": 1, "ts": START_MS + HOUR_MS} for i in range(200)
    ]
    carried = [
        {
            "id": f"u{i}",
            "model": "m",
            "label": i % 2,
            "prediction": 1,
            "score": 0.8,
            "ts": START_MS + 1000 * i,
        }
        for i in range(100)
    ]
    replay(settings, engine, write(tmp_path / "l.jsonl", labels + carried), "labels")
    when = iso(to_datetime(START_MS))
    found = metrics(engine)
    assert found[(when, None, "duplicates")]["value"] == 1.0
    # 200 joined by id (all correct) + 100 carried (half correct), one window.
    assert found[(when, None, "accuracy")]["n"] == 300
    assert found[(when, None, "accuracy")]["value"] == pytest.approx(250 / 300)


def test_inverted_label_relationship_drops_accuracy_and_fires_the_error_detector(
    tmp_path: Path, database_url: str
) -> None:
    """Halfway the truth inverts (features unchanged): accuracy drops, a change point follows."""
    rng = random.Random(31)
    predictions, truth = [], []
    for i in range(6000):  # 12 windows; the relationship inverts at window 6
        score = rng.random()
        predictions.append(
            {"id": f"q{i}", "model": "m", "ts": START_MS + i * 600, "prediction": int(score > 0.5)}
            | {"score": score, "features": {"x": rng.gauss(0, 1)}}
        )
        p_true = score if i < 3000 else 1 - score
        truth.append(int(rng.random() < p_true))
    settings, engine = setup(database_url)
    replay(settings, engine, write(tmp_path / "p.jsonl", predictions), "predictions", flush=True)
    labels = delayed_labels(predictions, truth, random.Random(32))
    replay(settings, engine, write(tmp_path / "l.jsonl", labels), "labels", batch_size=500)
    found = metrics(engine)
    starts = sorted(by_window(predictions))
    accuracy = [found[(iso(to_datetime(s)), None, "accuracy")]["value"] for s in starts]
    assert min(accuracy[:6]) > 0.65
    assert max(accuracy[6:]) < 0.35
    changes = [found[(iso(to_datetime(s)), None, "error_change")]["value"] for s in starts]
    # Labels arrive shuffled within ±10 minutes (two windows), so the label that completes
    # the change may belong to a prediction up to two windows before the onset.
    assert changes[:4] == [0.0] * 4
    assert 1.0 in changes[4:9]


def test_a_prediction_joins_once_when_two_labels_meet_it_in_one_checkpoint(
    database_url: str,
) -> None:
    """A waiting label and a second label for the same id, both meeting the prediction now."""
    settings, engine = setup(database_url)
    joiner = Joiner(settings, "g", "predictions")
    now = datetime.now(UTC)

    def label(value: int, offset: int) -> LabelEvent:
        return LabelEvent("m", None, START_MS + HOUR_MS, "x", value, None, None, None, 0, offset)

    with transaction(engine, write=True) as conn:
        joiner.apply(conn, PendingLabelWork(labels=[(("labels", 0), label(1, 0))]), now)
    prediction = PredictionEvent("m", "default", START_MS, "x", {"f": 1.0}, 1, 0.9, None, {}, 0, 0)
    window = ("m", "default", START_MS, START_MS + WINDOW_MS)
    work = PendingLabelWork(
        predictions=[(("predictions", 0), window, prediction)],
        labels=[(("labels", 0), label(0, 1))],
    )
    with transaction(engine, write=True) as conn:
        joiner.apply(conn, work, now)
    state = merged_state(engine, START_MS)
    assert state.slices[""].performance.confusion == {("1", "1"): 1}  # the first label only
