"""Seeded traffic for the reliability scenarios: predictions with labels, some of it bad.

``labelled_traffic`` builds what a serving system and a labeller would produce: predictions
of several models and versions over consecutive 5-minute windows (a volume burst in some of
them, so a volume rule fires one episode per model and version), late stragglers, records that
are unusable in the ways the contract names, and labels minutes later (some for unknown ids,
some without an id, some carrying their prediction). What a correct monitor stores is not
computed here: the oracle (``oracle.expect``) derives it from the bytes alone.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

WINDOW_MS = 300_000
JITTER_MS = 20_000  # disorder within a partition, well inside the 1 min allowed lateness
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the Standard Webhooks test key
BAD_KINDS = (
    "not_json",
    "binary",
    "no_model",
    "not_object",
    "ts_words",
    "ts_1970",
    "ts_2999",
    "version_list",
    "features_list",
    "empty",
)


@dataclass
class Traffic:
    """Records per topic, in production order: (partition, value)."""

    predictions: list[tuple[int | None, bytes]] = field(default_factory=list)
    labels: list[tuple[int | None, bytes]] = field(default_factory=list)
    per_window: int = 0  # predictions per model version in an ordinary window

    @property
    def produced(self) -> int:
        return len(self.predictions) + len(self.labels)

    def burst_threshold(self) -> int:
        """An ``events`` threshold only burst windows reach (bursts are three times busier)."""
        return 2 * self.per_window


def labelled_traffic(
    windows: int,
    per_window: int,
    *,
    start_ms: int,
    models: tuple[str, ...] = ("fraud", "churn"),
    versions: tuple[str, ...] = ("1", "2"),
    partitions: int = 4,
    burst: range = range(0),
    seed: int = 7,
    bad_every: int = 100,
    late_every: int = 250,
    label_share: float = 0.5,
    too_large: bool = False,
) -> Traffic:
    """``per_window`` predictions per model version in each of ``windows`` windows from
    ``start_ms`` (three times as many in the ``burst`` windows), in time order over random
    partitions; then labels for ``label_share`` of them, 1 to 20 minutes later.

    Every ``bad_every``-th record is followed by an unusable one, every ``late_every``-th by a
    straggler minutes behind its partition; with ``too_large`` one record exceeds 1 MiB.
    """
    rng = random.Random(seed)
    traffic = Traffic(per_window=per_window)
    events = []
    serial = 0
    for w in range(windows):
        begin = start_ms + w * WINDOW_MS
        count = per_window * (3 if w in burst else 1)
        for model in models:
            for version in versions:
                for _ in range(count):
                    events.append((begin + rng.randrange(WINDOW_MS), model, version, serial))
                    serial += 1
    events.sort()  # in time order, then jittered: a little disorder, never lateness
    newest: dict[int, int] = {}
    labelled = []
    for i, (base, model, version, serial) in enumerate(events):
        ts = base + rng.randrange(-JITTER_MS, JITTER_MS)
        partition = rng.randrange(partitions)
        event = _prediction(rng, f"{model}-{serial}", model, version, ts)
        traffic.predictions.append((partition, _encode(event, rng)))
        newest[partition] = max(newest.get(partition, ts), ts)
        if rng.random() < label_share:
            labelled.append(event)
        if i % bad_every == bad_every // 2:
            kind = BAD_KINDS[(i // bad_every) % len(BAD_KINDS)]
            bad = bad_record(kind, model, ts, rng)
            traffic.predictions.append((rng.randrange(partitions), bad))
        if i % late_every == late_every // 3:  # 1.5 to 4 minutes behind: late
            behind = newest[partition] - rng.randrange(90_000, 240_000)
            straggler = _prediction(rng, f"{model}-late-{i}", model, version, behind)
            traffic.predictions.append((partition, _encode(straggler, rng)))
    if too_large:
        huge = {"model": models[0], "ts": start_ms, "features": {"blob": "x" * (1 << 20)}}
        traffic.predictions.append((0, orjson.dumps(huge)))
    traffic.labels = _labels(labelled, rng, partitions, models[0])
    return traffic


def _prediction(rng: random.Random, id_: str, model: str, version: str, ts: int) -> dict[str, Any]:
    score = round(rng.random(), 4)
    return {
        "id": id_,
        "model": model,
        "version": version,
        "ts": ts,
        "features": {
            "amount": round(rng.lognormvariate(3, 1), 2),
            "age_days": rng.randrange(3000),
            "country": rng.choice(["DE", "FR", "US", "BR"]),
        },
        "prediction": int(score > 0.5),
        "score": score,
        "segment": {"channel": rng.choice(["web", "app"])},
    }


def _encode(event: dict[str, Any], rng: random.Random) -> bytes:
    """orjson mostly; now and then the stdlib's NaN token (a data-quality issue, not an error)."""
    if rng.random() < 0.01:
        event = {**event, "features": {**event["features"], "amount": float("nan")}}
        return json.dumps(event).encode()
    return orjson.dumps(event)


def _labels(
    predictions: list[dict[str, Any]], rng: random.Random, partitions: int, model: str
) -> list[tuple[int | None, bytes]]:
    """Labels 1 to 20 minutes after their predictions, in label-time order, plus a few that
    name no known id, carry no id, carry their prediction, or are unusable."""
    rows = []
    for p in predictions:
        truth = int(rng.random() < p["score"])
        rows.append({"id": p["id"], "model": p["model"], "label": truth,
                     "ts": p["ts"] + rng.randrange(60_000, 1_200_000)})  # fmt: skip
    last = max((r["ts"] for r in rows), default=0)
    extra = max(1, len(rows) // 200)
    for i in range(extra):
        ts = last - rng.randrange(600_000)
        rows.append({"id": f"unknown-{i}", "model": model, "label": 1, "ts": ts})
        rows.append({"model": model, "label": 0, "ts": ts})  # no id: an orphan at once
        rows.append({"id": f"upstream-{i}", "model": model, "label": i % 2,
                     "prediction": 1, "score": 0.7, "ts": ts})  # fmt: skip
    rows.sort(key=lambda r: r["ts"])
    out: list[tuple[int | None, bytes]] = [
        (rng.randrange(partitions), orjson.dumps(r)) for r in rows
    ]
    for i in range(extra):
        at = rng.randrange(len(out) + 1)
        bad = orjson.dumps({"id": f"nolabel-{i}", "model": model, "ts": last})
        out.insert(at, (rng.randrange(partitions), bad if i % 2 else b'{"label": 1, "model": '))
    return out


def bad_record(kind: str, model: str, ts: int, rng: random.Random) -> bytes:
    """One record unusable in the way ``kind`` names."""
    records: dict[str, Any] = {
        "no_model": {"id": "x", "ts": ts, "features": {"amount": 1.0}},
        "not_object": [model, ts],
        "ts_words": {"model": model, "ts": "yesterday", "features": {}},
        "ts_1970": {"model": model, "ts": 86_400, "features": {}},
        "ts_2999": {"model": model, "ts": "2999-01-01T00:00:00Z", "features": {}},
        "version_list": {"model": model, "version": ["1"], "ts": ts},
        "features_list": {"model": model, "ts": ts, "features": [1, 2]},
    }
    if kind in records:
        return orjson.dumps(records[kind])
    if kind == "not_json":
        return b'{"model": "' + model.encode() + b'", "ts": '
    if kind == "binary":
        return bytes(rng.randrange(14, 256) for _ in range(rng.randrange(1, 200))) + b"\xff\xfe"
    if kind == "empty":
        return b""
    raise ValueError(kind)


def alerting_config(receiver_port: int, threshold: int, models: tuple[str, ...]) -> dict[str, Any]:
    """Config sections: the models, a chat channel, a signed retraining trigger, and one rule
    that fires while a model version's window holds ``threshold`` events or more."""
    return {
        "models": [
            {"name": m, "window": "5m", "allowed_lateness": "1m", "early_label_grace": "1h"}
            for m in models
        ],
        "ingest": {"idle_timeout": "10m"},
        "alerting": {"group_wait": "0s", "retry_base": "1s", "retry_cap": "1s"},
        "channels": {"chat": {"urls": [f"json://127.0.0.1:{receiver_port}/chat"]}},
        "triggers": {
            "retrain": {
                "url": f"http://127.0.0.1:{receiver_port}/retrain",
                "secret": SECRET,
                "timeout": "2s",
            }
        },
        "rules": [
            {
                "name": "volume-burst",
                "metric": "events",
                "models": ["*"],
                "features": "-",
                "segments": "-",
                "direction": "above",
                "critical": threshold,
                "notify": ["chat"],
                "trigger": "retrain",
            }
        ],
    }
