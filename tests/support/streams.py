"""Seeded test streams of prediction events, with the counts a correct monitor must report.

``prediction_stream`` builds the records (partition, bytes) a test produces or writes to a
file, and the oracle of what ``monitor`` must end with: valid events per (model, version,
window start) and the bad records with the reason family expected for each.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

WINDOW_MS = 5 * 60 * 1000
TWO_MIB = 2 * 1024 * 1024


BAD_KINDS = ("not_json", "binary", "no_model", "ts_yesterday", "not_object", "too_large")
REASONS = {  # words the dead letter's reason must contain, per kind of bad record
    "not_json": "not valid JSON",
    "binary": "not valid JSON",
    "no_model": "missing model field",
    "ts_yesterday": "unusable ts",
    "not_object": "not a JSON object",
    "too_large": "exceeds max_event_bytes",
}


@dataclass
class Stream:
    """Records to produce, and what monitor must count from them."""

    records: list[tuple[int, bytes]] = field(default_factory=list)
    expected: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    bad: list[tuple[int, int, str]] = field(default_factory=list)  # partition, index, kind
    nan_events: int = 0

    def bad_coordinates(self) -> dict[tuple[int, int], str]:
        """(partition, offset) of each bad record on a fresh topic, with its reason's words."""
        offsets: Counter[int] = Counter()
        coordinates = []
        for partition, _ in self.records:
            coordinates.append((partition, offsets[partition]))
            offsets[partition] += 1
        return {coordinates[index]: REASONS[kind] for _, index, kind in self.bad}

    def per_model(self) -> dict[tuple[str, str], int]:
        totals: Counter[tuple[str, str]] = Counter()
        for (model, version, _), n in self.expected.items():
            totals[(model, version)] += n
        return dict(totals)


def prediction_stream(
    n: int,
    *,
    models: tuple[str, ...] = ("fraud", "churn", "ltv"),
    partitions: int = 4,
    bad_fraction: float = 0.01,
    nan_fraction: float = 0.01,
    seed: int = 7,
    start: datetime | None = None,
    span: timedelta = timedelta(hours=1),
    huge: bool = True,
) -> Stream:
    """``n`` records over ``partitions``; ``bad_fraction`` of them unusable in varied ways.

    Event times advance over ``span`` (ending two hours before now, safely inside the clock
    skew limit) with a little disorder but no late event; exactly one 2 MiB record when
    ``huge`` is set.
    """
    rng = random.Random(seed)
    start = start or datetime.now(UTC) - timedelta(hours=2) - span
    start_ms = int(start.timestamp() * 1000)
    span_ms = int(span.total_seconds() * 1000)
    stream = Stream()
    n_bad = round(n * bad_fraction)
    bad_at = set(rng.sample(range(n), n_bad))
    huge_at = min(bad_at) if huge and bad_at else None
    for i in range(n):
        partition = rng.randrange(partitions)
        model = models[i % len(models)]
        version = str(1 + (i // len(models)) % 2)
        # Time moves forward with up to 20 s of disorder: within the default allowed
        # lateness (1 min), so no event of this stream is late.
        ts_ms = start_ms + span_ms * i // n + rng.randrange(-20_000, 20_000)
        if i in bad_at:
            kind = "too_large" if i == huge_at else rng.choice(BAD_KINDS[:-1])
            stream.records.append((partition, _bad_record(kind, model, ts_ms, rng)))
            stream.bad.append((partition, len(stream.records) - 1, kind))
            continue
        event = {
            "id": f"req-{i}",
            "model": model,
            "version": version,
            "ts": _format_ts(ts_ms, rng),
            "features": {
                "amount": round(rng.lognormvariate(3, 1), 2),
                "age_days": rng.randrange(3000),
                "country": rng.choice(["DE", "FR", "US", "BR"]),
            },
            "prediction": rng.randrange(2),
            "score": round(rng.random(), 4),
            "segment": {"channel": rng.choice(["web", "app"])},
        }
        if rng.random() < nan_fraction:
            event["features"]["amount"] = float("nan")
            payload = json.dumps(event).encode()  # writes the NaN token orjson refuses
            stream.nan_events += 1
        else:
            payload = orjson.dumps(event)
        stream.records.append((partition, payload))
        stream.expected[(model, version, ts_ms - ts_ms % WINDOW_MS)] += 1
    return stream


def _format_ts(ts_ms: int, rng: random.Random) -> str | int | float:
    """Every accepted form of event time: ISO with Z, epoch ms, epoch seconds."""
    form = rng.randrange(3)
    if form == 0:
        moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if form == 1:
        return ts_ms
    return ts_ms / 1000


def _bad_record(kind: str, model: str, ts_ms: int, rng: random.Random) -> bytes:
    if kind == "not_json":
        return b'{"model": "' + model.encode() + b'", "ts": '
    if kind == "binary":
        garbage = bytes(rng.randrange(14, 256) for _ in range(rng.randrange(1, 200)))
        return garbage + b"\xff\xfe"  # no line breaks, so it also fits a JSON Lines file
    if kind == "no_model":
        return orjson.dumps({"id": "x", "ts": ts_ms, "features": {"amount": 1.0}})
    if kind == "ts_yesterday":
        return orjson.dumps({"model": model, "ts": "yesterday", "features": {}})
    if kind == "not_object":
        return orjson.dumps([model, ts_ms])
    filler = "x" * TWO_MIB
    return orjson.dumps({"model": model, "ts": ts_ms, "features": {"blob": filler}})
