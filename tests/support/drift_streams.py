"""Seeded streams for the drift acceptance tests: a reference, then windows that may drift.

One ``FeatureSpace`` (20 normal numeric features ``f00``..``f19`` with varied means and
standard deviations, 3 categorical ``c0``..``c2`` with unequal category frequencies) serves
both the reference rows and the window events, so without a change the windows are drawn from
the reference's own distribution. Changes apply to events at or after their onset time: a mean
shift of ``k`` standard deviations, a new category taking a share of a feature's values, a
feature going missing for a share of events.

Window events are JSON Lines (built with orjson) in time order: window ``w`` gets exactly
``counts[w]`` events, spread evenly over it with a few seconds of jitter that never leaves the
window, so with the default allowed lateness (1 min) no event is late. ``late_stream`` adds
events that arrive minutes behind the stream, with the counts a correct monitor must report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

WINDOW_MS = 5 * 60 * 1000
START_MS = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)  # a window boundary
NUMERIC = tuple(f"f{i:02d}" for i in range(20))
CATEGORICAL = ("c0", "c1", "c2")
FEATURES = NUMERIC + CATEGORICAL
JITTER_MS = 2_000  # far inside the allowed lateness: disorder, never lateness
DECIMALS = 4  # values are rounded in the files (smaller lines, same distribution)


@dataclass(frozen=True)
class FeatureSpace:
    """The distribution of every feature: normal numerics, categoricals with fixed shares."""

    means: np.ndarray
    stds: np.ndarray
    categories: Mapping[str, tuple[tuple[str, ...], tuple[float, ...]]]

    def std_of(self, feature: str) -> float:
        return float(self.stds[NUMERIC.index(feature)])


def feature_space(seed: int = 0) -> FeatureSpace:
    """Means in [-50, 50], standard deviations in [0.5, 20]; 4, 3 and 5 uneven categories."""
    rng = np.random.default_rng(seed)
    shares = {
        "c0": (0.5, 0.25, 0.15, 0.1),
        "c1": (0.6, 0.3, 0.1),
        "c2": (0.35, 0.25, 0.2, 0.12, 0.08),
    }
    return FeatureSpace(
        means=rng.uniform(-50.0, 50.0, len(NUMERIC)),
        stds=rng.uniform(0.5, 20.0, len(NUMERIC)),
        categories={
            name: (tuple(f"{name}_{chr(ord('a') + i)}" for i in range(len(p))), p)
            for name, p in shares.items()
        },
    )


@dataclass(frozen=True)
class MeanShift:
    """From ``onset_ms`` on, ``features`` move by ``k`` of their standard deviations."""

    features: tuple[str, ...]
    k: float
    onset_ms: int


@dataclass(frozen=True)
class NewCategory:
    """From ``onset_ms`` on, ``share`` of ``feature``'s values are the unseen ``category``."""

    feature: str
    category: str
    share: float
    onset_ms: int


@dataclass(frozen=True)
class GoingMissing:
    """From ``onset_ms`` on, ``feature`` is null in ``share`` of the events."""

    feature: str
    share: float
    onset_ms: int


Change = MeanShift | NewCategory | GoingMissing


def window_start(w: int, start_ms: int = START_MS) -> int:
    """Epoch ms at which window ``w`` (0-based, from ``start_ms``) starts."""
    return start_ms + w * WINDOW_MS


def iso(ms: int) -> str:
    """The ISO 8601 UTC form ``monitor.status`` prints window boundaries in."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _draw(
    space: FeatureSpace,
    n: int,
    rng: np.random.Generator,
    ts: np.ndarray | None = None,
    changes: Sequence[Change] = (),
) -> tuple[list[list[Any]], dict[str, list[Any]], list[int], list[float]]:
    """``n`` rows: numeric rows (lists), categorical columns, predictions and scores."""
    x = space.means + space.stds * rng.standard_normal((n, len(NUMERIC)))
    cats: dict[str, np.ndarray] = {}
    for name in CATEGORICAL:
        values, p = space.categories[name]
        cats[name] = np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p)]
    missing: list[tuple[int, np.ndarray]] = []
    for change in changes:
        after = np.ones(n, dtype=bool) if ts is None else ts >= change.onset_ms
        if isinstance(change, MeanShift):
            for name in change.features:
                j = NUMERIC.index(name)
                x[after, j] += change.k * space.stds[j]
        elif isinstance(change, NewCategory):
            hit = after & (rng.random(n) < change.share)
            cats[change.feature][hit] = change.category
        else:
            hit = after & (rng.random(n) < change.share)
            if change.feature in cats:
                cats[change.feature][hit] = None
            else:
                missing.append((NUMERIC.index(change.feature), np.flatnonzero(hit)))
    rows = np.round(x, DECIMALS).tolist()
    for j, where in missing:
        for i in where.tolist():
            rows[i][j] = None
    score = rng.beta(2.0, 5.0, n)
    prediction = (score >= 0.5).astype(np.int64).tolist()
    return rows, {k: v.tolist() for k, v in cats.items()}, prediction, np.round(score, 4).tolist()


def reference_rows(space: FeatureSpace, n: int = 20_000, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` training-like rows: ``features`` nested, plus ``prediction`` and ``score``."""
    rows, cats, prediction, score = _draw(space, n, np.random.default_rng(seed))
    c0, c1, c2 = (cats[name] for name in CATEGORICAL)
    out = []
    for row, a, b, c, pred, s in zip(rows, c0, c1, c2, prediction, score, strict=True):
        features = dict(zip(NUMERIC, row, strict=True))
        features["c0"], features["c1"], features["c2"] = a, b, c
        out.append({"features": features, "prediction": pred, "score": s})
    return out


def write_reference(path: Path, space: FeatureSpace, n: int = 20_000, seed: int = 1) -> Path:
    """The reference rows as a JSON Lines file at ``path``."""
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in reference_rows(space, n, seed)))
    return path


@dataclass(frozen=True)
class Segments:
    """Each event gets ``segment: {key: value}``, the value drawn with ``shares``."""

    key: str
    values: tuple[str, ...]
    shares: tuple[float, ...]


def _times(count: int, w: int, start_ms: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` event times spread evenly over window ``w``, jittered, never leaving it."""
    begin = window_start(w, start_ms)
    even = begin + (np.arange(count) + 0.5) * (WINDOW_MS / count)
    jitter = rng.integers(-JITTER_MS, JITTER_MS + 1, count)
    return np.clip(even.astype(np.int64) + jitter, begin, begin + WINDOW_MS - 1)


def window_events(
    space: FeatureSpace,
    counts: Sequence[int],
    *,
    seed: int,
    model: str = "m",
    start_ms: int = START_MS,
    changes: Sequence[Change] = (),
    segments: Segments | None = None,
    id_prefix: str = "e",
) -> Iterator[bytes]:
    """Event lines (each ending in a newline), one window at a time, in time order."""
    rng = np.random.default_rng(seed)
    serial = 0
    for w, count in enumerate(counts):
        if count == 0:
            continue
        ts = _times(count, w, start_ms, rng)
        rows, cats, prediction, score = _draw(space, count, rng, ts, changes)
        c0, c1, c2 = (cats[name] for name in CATEGORICAL)
        segment_values: list[Any] = [None] * count
        if segments is not None:
            pick = rng.choice(len(segments.values), size=count, p=segments.shares)
            segment_values = [{segments.key: segments.values[i]} for i in pick.tolist()]
        lines = []
        for t, row, a, b, c, pred, s, seg in zip(
            ts.tolist(), rows, c0, c1, c2, prediction, score, segment_values, strict=True
        ):
            features = dict(zip(NUMERIC, row, strict=True))
            features["c0"], features["c1"], features["c2"] = a, b, c
            event = {
                "id": f"{id_prefix}{serial}",
                "model": model,
                "ts": t,
                "features": features,
                "prediction": pred,
                "score": s,
            }
            if seg is not None:
                event["segment"] = seg
            lines.append(orjson.dumps(event))
            serial += 1
        yield b"\n".join(lines) + b"\n"


def write_events(path: Path, chunks: Iterator[bytes]) -> Path:
    """Write ``window_events`` (or any line chunks) to ``path``."""
    with path.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    return path


@dataclass
class LateStream:
    """Lines with late events among them, and what monitor must count per window start."""

    lines: list[bytes] = field(default_factory=list)
    on_time: Counter[int] = field(default_factory=Counter)
    late: Counter[int] = field(default_factory=Counter)


def late_stream(
    space: FeatureSpace,
    counts: Sequence[int],
    *,
    late_every: int,
    behind_ms: tuple[int, int] = (180_000, 240_000),
    seed: int,
    start_ms: int = START_MS,
) -> LateStream:
    """Time-ordered events with, after every ``late_every``-th one, an event whose time is
    ``behind_ms`` (3 to 4 minutes by default) behind it: late under any allowed lateness below
    3 minutes, counted for the window its own time falls in."""
    rng = np.random.default_rng(seed + 1)
    stream = LateStream()
    on_time = b"".join(window_events(space, counts, seed=seed, start_ms=start_ms)).splitlines()
    behind = rng.integers(behind_ms[0], behind_ms[1] + 1, len(on_time) // late_every + 1)
    newest = None
    late_lines = iter(b"".join(window_events(space, [len(behind)], seed=seed + 2)).splitlines())
    for i, line in enumerate(on_time):
        event = orjson.loads(line)
        ts = event["ts"]
        stream.lines.append(line)
        stream.on_time[ts - (ts - start_ms) % WINDOW_MS] += 1
        newest = ts if newest is None else max(newest, ts)
        if (i + 1) % late_every == 0:
            late_ts = newest - int(behind[i // late_every])
            if late_ts < start_ms:
                continue
            extra = orjson.loads(next(late_lines))
            extra.update(id=f"late{i}", ts=late_ts)
            stream.lines.append(orjson.dumps(extra))
            stream.late[late_ts - (late_ts - start_ms) % WINDOW_MS] += 1
    return stream
