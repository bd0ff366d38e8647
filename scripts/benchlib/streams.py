"""Seeded benchmark events and their reference, as JSON Lines.

The feature space is the drift tests' (tests/support/drift_streams.py): 20 normal numeric
features ``f00``..``f19`` (means in [-50, 50], standard deviations in [0.5, 20]) and 3
categorical ``c0``..``c2`` with unequal shares, plus ``prediction``, ``score``, ``id`` and
``ts``. Events are in event-time order, ``per_window`` per 5-minute window (500k events at the
default 5,000 per window span about 8 hours), so windows close as the stream goes. With
several models, event ``i`` belongs to model ``i mod M``: the same total spread evenly.

Ids are random 32-digit hex, as ``uuid4().hex`` gives, drawn from their own seeded generator:
what serving systems send, and what PostgreSQL's pending-prediction key takes in no order.
``sequential`` ids (``e0``, ``e1``, ...: the stream of the benchmarks before 2026-11-28) come
almost in that key's order; SQLite indexes a hash of the id (migration 0009), which scatters
both kinds alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

WINDOW_MS = 5 * 60 * 1000
START_MS = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)  # a window boundary
NUMERIC = tuple(f"f{i:02d}" for i in range(20))
CATEGORICAL = ("c0", "c1", "c2")
SHARES = {
    "c0": (0.5, 0.25, 0.15, 0.1),
    "c1": (0.6, 0.3, 0.1),
    "c2": (0.35, 0.25, 0.2, 0.12, 0.08),
}
CHUNK = 50_000
Ids = Literal["random", "sequential"]
IDS: tuple[Ids, ...] = ("random", "sequential")


@dataclass(frozen=True, slots=True)
class EventFile:
    """A written stream: where, how many events, which models, the event-time span."""

    path: Path
    events: int
    models: tuple[str, ...]
    first_ms: int
    last_ms: int


def _space(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-50.0, 50.0, len(NUMERIC)), rng.uniform(0.5, 20.0, len(NUMERIC))


def _rows(n: int, rng: np.random.Generator) -> Iterator[tuple[dict[str, Any], int, float]]:
    """``n`` (features, prediction, score) drawn from the feature space."""
    means, stds = _space()
    x = np.round(means + stds * rng.standard_normal((n, len(NUMERIC))), 4).tolist()
    cats = []
    for name in CATEGORICAL:
        p = SHARES[name]
        labels = np.asarray([f"{name}_{chr(ord('a') + i)}" for i in range(len(p))], dtype=object)
        cats.append(labels[rng.choice(len(p), size=n, p=p)].tolist())
    score = rng.beta(2.0, 5.0, n)
    prediction = (score >= 0.5).astype(np.int64).tolist()
    for row, a, b, c, pred, s in zip(
        x, *cats, prediction, np.round(score, 4).tolist(), strict=True
    ):
        features: dict[str, Any] = dict(zip(NUMERIC, row, strict=True))
        features["c0"], features["c1"], features["c2"] = a, b, c
        yield features, pred, s


def write_reference(path: Path, rows: int = 20_000, seed: int = 1) -> Path:
    """Training-like rows (``features`` nested, ``prediction``, ``score``) from the same space."""
    rng = np.random.default_rng(seed)
    lines = (
        orjson.dumps({"features": f, "prediction": p, "score": s}) for f, p, s in _rows(rows, rng)
    )
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def event_lines(
    count: int,
    models: Sequence[str],
    *,
    per_window: int = 5_000,
    start_ms: int = START_MS,
    seed: int = 7,
    ids: Ids = "random",
) -> Iterator[bytes]:
    """Event lines (no newline) in event-time order, ``per_window`` per 5-minute window."""
    rng = np.random.default_rng(seed)
    id_rng = np.random.default_rng(seed + 1)  # the features stay those of either kind of id
    step = WINDOW_MS / per_window
    done = 0
    while done < count:
        n = min(CHUNK, count - done)
        if ids == "random":
            raw = id_rng.bytes(16 * n).hex()
            names = [raw[j : j + 32] for j in range(0, 32 * n, 32)]
        else:
            names = [f"e{i}" for i in range(done, done + n)]
        for i, (features, pred, s) in enumerate(_rows(n, rng), start=done):
            yield orjson.dumps(
                {
                    "id": names[i - done],
                    "model": models[i % len(models)],
                    "ts": start_ms + int(i * step),
                    "features": features,
                    "prediction": pred,
                    "score": s,
                }
            )
        done += n


def write_events(
    path: Path, count: int, models: Sequence[str], *, per_window: int = 5_000, ids: Ids = "random"
) -> EventFile:
    """``count`` events of ``models`` as JSON Lines at ``path``."""
    with path.open("wb") as out:
        batch: list[bytes] = []
        for line in event_lines(count, models, per_window=per_window, ids=ids):
            batch.append(line)
            if len(batch) >= CHUNK:
                out.write(b"\n".join(batch) + b"\n")
                batch = []
        if batch:
            out.write(b"\n".join(batch) + b"\n")
    last = START_MS + int((count - 1) * WINDOW_MS / per_window)
    return EventFile(path, count, tuple(models), START_MS, last)


def read_events(path: Path) -> Iterator[bytes]:
    """The lines of an event file, without their newlines."""
    with path.open("rb") as lines:
        for line in lines:
            yield line.rstrip(b"\n")
