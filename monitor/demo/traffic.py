"""A simulated serving system: seeded prediction events, delayed labels, and drift on cue.

Each model has its own seeded feature space (f00..f19 normal, c0..c2 with 3-6 categories) and
a fixed seeded logistic model: ``score`` is that model's P(1) and the label is drawn from it,
so accuracy is meaningful and a ``concept`` drift, which inverts the relation, visibly lowers
it. A drift (`monitor.demo.drift`) shifts a feature, blanks a share of it, brings in an unseen
category, or flips the labels while it is active.

Pure on purpose (no Kafka, no clock): ``scripts/produce_events.py`` and ``monitor demo`` pace
it onto Kafka (`monitor.demo.serving`), tests drive it directly with chosen event times, and
`training_rows` draws the same world without drift as the reference a model was trained on.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.demo.drift import CATEGORICAL, NUMERIC, Drift, iso

__all__ = [
    "MALFORMED_KINDS",
    "FeatureSpace",
    "Generator",
    "Record",
    "draw",
    "schedule_text",
    "training_rows",
]

MALFORMED_KINDS = ("not_json", "no_model", "string_feature", "bad_ts")
LABEL_JITTER = 0.2  # label delays vary by ±20%
LOGIT_SCALE = 4.0  # sd of the true logit: about 85% accuracy before any concept drift


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass(frozen=True, slots=True)
class FeatureSpace:
    """One model's world: feature distributions and the logistic model its labels follow."""

    means: tuple[float, ...]
    sds: tuple[float, ...]
    categories: dict[str, tuple[tuple[str, ...], tuple[float, ...]]]  # values, cumulative
    weights: tuple[float, ...]  # per numeric feature, on standardised values
    effects: dict[str, float]  # logit effect per category value; unseen ones have none
    bias: float

    @classmethod
    def seeded(cls, seed: int, model: str) -> FeatureSpace:
        """Deterministic per (seed, model): string seeds hash the same in every process."""
        rng = random.Random(f"{seed}:{model}")  # noqa: S311 - a simulation, not secrets
        categories: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {}
        effects: dict[str, float] = {}
        for name in CATEGORICAL:
            values = tuple(f"{name}_{chr(97 + i)}" for i in range(rng.randint(3, 6)))
            raw = [rng.uniform(0.5, 3.0) for _ in values]
            total, cumulative = sum(raw), 0.0
            shares = []
            for weight in raw:
                cumulative += weight / total
                shares.append(cumulative)
            categories[name] = (values, tuple(shares))
            effects.update((value, rng.gauss(0.0, 0.5)) for value in values)
        raw_w = [rng.gauss(0.0, 1.0) for _ in NUMERIC]
        norm = math.sqrt(sum(w * w for w in raw_w))
        return cls(
            means=tuple(rng.uniform(-50.0, 50.0) for _ in NUMERIC),
            sds=tuple(rng.uniform(0.5, 20.0) for _ in NUMERIC),
            categories=categories,
            weights=tuple(LOGIT_SCALE * w / norm for w in raw_w),
            effects=effects,
            bias=rng.uniform(-1.0, 0.0),
        )


def draw(
    space: FeatureSpace, active: Sequence[Drift], rng: random.Random
) -> tuple[dict[str, Any], float, float]:
    """Features as served, the served model's logit (missing = mean) and the true logit."""
    shift: dict[str | None, float] = {}
    for d in active:
        if d.kind == "shift":
            shift[d.feature] = shift.get(d.feature, 0.0) + d.amount
    missing = {d.feature: d.amount for d in active if d.kind == "missing"}
    new = {d.feature: d.amount for d in active if d.kind == "new"}
    features: dict[str, Any] = {}
    served = true = space.bias
    for j, name in enumerate(NUMERIC):
        z = rng.gauss(0.0, 1.0) + shift.get(name, 0.0)
        true += space.weights[j] * z
        if name in missing and rng.random() < missing[name]:
            features[name] = None
            continue
        features[name] = round(space.means[j] + space.sds[j] * z, 4)
        served += space.weights[j] * z
    for name in CATEGORICAL:
        values, cumulative = space.categories[name]
        value = rng.choices(values, cum_weights=cumulative)[0]
        if name in new and rng.random() < new[name]:
            value = f"{name}_new"
        true += space.effects.get(value, 0.0)
        if name in missing and rng.random() < missing[name]:
            features[name] = None
            continue
        features[name] = value
        served += space.effects.get(value, 0.0)
    return features, served, true


def training_rows(space: FeatureSpace, n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` labelled rows of the undrifted world: the data the model was trained on.

    The rows look like events (``features``, ``prediction``, ``score``, ``label``), so
    ``monitor reference build`` profiles them with the events' field names, and the label
    column gives the reference its own accuracy to compare windows with.
    """
    rng = random.Random(f"training:{seed}")  # noqa: S311 - a simulation
    for i in range(n):
        features, served, true = draw(space, (), rng)
        score = round(_sigmoid(served), 4)
        label = int(rng.random() < _sigmoid(true))
        yield {
            "id": f"train-{i}",
            "features": features,
            "prediction": int(score >= 0.5),
            "score": score,
            "label": label,
        }


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record to send; ``malformed`` names the defect of a deliberately bad one."""

    key: bytes
    value: bytes
    malformed: str | None = None


class Generator:
    """Seeded events and delayed labels for given event times; knows nothing of Kafka."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        origin_ms: int,
        version: str = "v1",
        drifts: Sequence[Drift] = (),
        seed: int = 0,
        malformed: float = 0.0,
        label_delay_ms: int = 60_000,
        label_fraction: float = 0.9,
    ) -> None:
        """Validate once here so a bad value fails at start, not minutes into a run."""
        if not models or not all(models) or len(set(models)) != len(models):
            raise ValueError(f"models must be distinct non-empty names: {','.join(models)!r}")
        if not (0 <= malformed <= 1 and 0 <= label_fraction <= 1 and label_delay_ms >= 0):
            raise ValueError("malformed and label_fraction are shares; label_delay_ms >= 0")
        strays = sorted({d.model for d in drifts if d.model is not None} - set(models))
        if strays:
            raise ValueError(f"drift for a model not generated: {', '.join(strays)}")
        self.models, self.version, self.drifts = tuple(models), version, tuple(drifts)
        self.origin_ms = origin_ms
        self.spaces = {m: FeatureSpace.seeded(seed, m) for m in self.models}
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not secrets
        self._malformed, self._label_fraction = malformed, label_fraction
        self._label_delay_ms = label_delay_ms
        self._serial = dict.fromkeys(self.models, 0)
        self._turn = 0
        self._pending: list[tuple[int, int, str, str, int]] = []  # due, tie-break, model, id, y

    @property
    def pending_labels(self) -> int:
        """Labels drawn but not yet due."""
        return len(self._pending)

    def active_drifts(self, now_ms: int, model: str | None = None) -> list[Drift]:
        """The drifts affecting an event at ``now_ms`` (of ``model``; None: of any model)."""
        return [d for d in self.drifts if d.active(now_ms - self.origin_ms, model)]

    def events(self, n: int, now_ms: int, since_ms: int | None = None) -> list[Record]:
        """``n`` prediction records at ``now_ms``, or spread evenly over (since_ms, now_ms]."""
        span = 0 if since_ms is None else now_ms - since_ms
        return [self._event(now_ms - span + span * (i + 1) // n) for i in range(n)]

    def due_labels(self, now_ms: int) -> list[Record]:
        """Label records whose delay has passed by ``now_ms``, oldest first."""
        out = []
        while self._pending and self._pending[0][0] <= now_ms:
            due, _, model, event_id, label = heapq.heappop(self._pending)
            doc = {"id": event_id, "model": model, "label": label, "ts": due}
            out.append(Record(model.encode(), orjson.dumps(doc)))
        return out

    def _event(self, ts: int) -> Record:
        model = self.models[self._turn % len(self.models)]
        self._turn += 1
        self._serial[model] += 1
        event_id = f"{model}-{self._serial[model]}"
        active = self.active_drifts(ts, model)
        features, served, true = draw(self.spaces[model], active, self._rng)
        score = round(_sigmoid(served), 4)
        event = {
            "id": event_id,
            "model": model,
            "version": self.version,
            "ts": ts,
            "features": features,
            "prediction": int(score >= 0.5),
            "score": score,
        }
        rng = self._rng
        if self._malformed and rng.random() < self._malformed:
            kind = rng.choice(MALFORMED_KINDS)
            return Record(model.encode(), self._malform(event, kind), kind)
        if self._label_delay_ms and rng.random() < self._label_fraction:
            inverted = any(d.kind == "concept" for d in active)
            label = int(rng.random() < _sigmoid(-true if inverted else true))
            delay = self._label_delay_ms * rng.uniform(1 - LABEL_JITTER, 1 + LABEL_JITTER)
            item = (ts + round(delay), self._turn, model, event_id, label)
            heapq.heappush(self._pending, item)
        return Record(model.encode(), orjson.dumps(event))

    def _malform(self, event: dict[str, Any], kind: str) -> bytes:
        """A realistic bad record: truncated JSON, no model, text for a number, bad ts."""
        if kind == "not_json":
            whole = orjson.dumps(event)
            return whole[: len(whole) // 2]
        if kind == "no_model":
            del event["model"]
        elif kind == "string_feature":
            name = self._rng.choice(NUMERIC)
            value = event["features"][name]
            event["features"][name] = "n/a" if value is None else f"{value:.2f}"
        else:
            event["ts"] = "yesterday"
        return orjson.dumps(event)


def schedule_text(gen: Generator, speed: float) -> str:
    """Each drift in event time and in wall time, for ``--print-schedule`` and progress."""
    lines = [f"event time starts {iso(gen.origin_ms)} and runs at {speed:g}x the wall clock"]
    for drift in gen.drifts:
        until = "the end" if drift.end_ms is None else iso(gen.origin_ms + drift.end_ms)
        wall = f"+{drift.start_ms / speed / 1000:.4g}s"
        if drift.end_ms is not None:
            wall += f" to +{drift.end_ms / speed / 1000:.4g}s"
        lines.append(
            f"  {drift!s:<22} {iso(gen.origin_ms + drift.start_ms)} to {until}  (wall clock {wall})"
        )
    if not gen.drifts:
        lines.append("  no drift scheduled")
    return "\n".join(lines)
