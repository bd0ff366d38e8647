"""Upstream duplicates: a producer that resends a prediction (the same id at another offset,
within the label horizon) must not inflate anything: the prediction counts once, the resend
is reported in its window's ``duplicates``, and the label joins the first copy only."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from tests.reliability.oracle import hours_ago
from tests.reliability.scenarios import Report, scenario
from tests.support.kafka import TopicFactory
from tests.support.reliability import Figures

WINDOW_MS = 300_000
PARTITIONS = 2


def resent_traffic(n: int, seed: int = 5) -> tuple[list[tuple[int | None, bytes]], ...]:
    """``n`` predictions over six windows; every 20th is sent again: in the same partition
    with other outputs (seconds or minutes later, late once in a while), or identically to
    the other partition at once. Every prediction gets a label, half before the resend."""
    rng = random.Random(seed)
    start = hours_ago(2)
    predictions: list[tuple[int | None, bytes]] = []
    labels: list[tuple[int | None, bytes]] = []
    later: list[tuple[int, int, dict[str, Any]]] = []  # (due index, partition, resend)
    for i in range(n):
        ts = start + i * (6 * WINDOW_MS) // n
        partition = i % PARTITIONS
        event = {"id": f"p{i}", "model": "m", "ts": ts, "prediction": rng.randrange(2),
                 "score": round(rng.random(), 3), "features": {"x": rng.gauss(0, 1)}}  # fmt: skip
        predictions.append((partition, orjson.dumps(event)))
        while later and later[0][0] <= i:
            _, where, resend = later.pop(0)
            predictions.append((where, orjson.dumps(resend)))
        if i % 20 == 0:
            if i % 60 == 0:  # identical, to the other partition, right away
                predictions.append((1 - partition, orjson.dumps(event)))
            else:  # same partition, other outputs, 3 to 400 events later (late sometimes)
                resend = {**event, "prediction": 1 - event["prediction"], "score": 0.5}
                later.append((i + rng.randrange(3, 400), partition, resend))
                later.sort(key=lambda item: item[0])
        labels.append((0, orjson.dumps({"id": f"p{i}", "model": "m", "label": rng.randrange(2),
                                         "ts": ts + 60_000})))  # fmt: skip
    for _, where, resend in later:
        predictions.append((where, orjson.dumps(resend)))
    return predictions, labels


def test_an_upstream_duplicate_counts_once_and_is_reported_as_a_duplicate(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    database_url: str,
    report: Report,
) -> None:
    """Resent predictions: the oracle's duplicates per window, joins to the first copy only,
    and each event counted once (a resend is a duplicate, neither an event nor late)."""
    predictions, labels = resent_traffic(3000)
    s = scenario(
        tmp_path, kafka_bootstrap, topic_factory, database_url, predictions, labels,
        partitions=PARTITIONS, migrate=False, models=[{"name": "m", "early_label_grace": "1h"}],
        ingest={"idle_timeout": "10m"},
    )  # fmt: skip
    s.finish()
    found, expected = s.compare()
    assert sum(expected.duplicates.values()) == 150
    report(Figures(s.produced, 0, found.lost, found.doubled))
    s.assert_equal(found)
