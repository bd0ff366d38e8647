#!/usr/bin/env python
"""Synthetic prediction and label traffic, so `monitor` can be tried against any Kafka.

    python scripts/produce_events.py --bootstrap kafka:9092 --models churn,fraud \\
        --rate 200 --label-delay 2m --drift f03:+1sd@10m

Prediction events (DESIGN.md §3) go to ``--predictions-topic``; for ``--label-fraction`` of
them a label follows on ``--labels-topic`` once its delay (±20% jitter) has passed. Each model
has its own seeded feature space (f00..f19 normal, c0..c2 with 3-6 categories) and a fixed
seeded logistic model: ``score`` is that model's P(1) and the label is drawn from it, so
accuracy is meaningful and a ``concept`` drift, which inverts the relation, visibly lowers it.

Clocks: ``--rate``, ``--duration`` and the progress line count wall time. Event time (``ts``)
starts at ``--start`` and runs ``--speed`` times as fast; drift times (``@T``) and
``--label-delay`` count event time from ``--start``, as monitor's windows do. Event time never
runs ahead of the wall clock (monitor dead-letters future events): with ``--speed`` above 1 the
default start is ``now - duration * speed``, so the stream ends about where it was launched,
and event time that catches up with the wall clock is held there.

Keys: records on both topics are keyed by model name. The partitioner then keeps one model's
events in one partition, in send order, so monitor's per-partition watermarks see an ordered
stream (keying by id would spread load but interleave a model's events across partitions).
With fewer models than partitions some partitions stay empty; monitor's ``idle_timeout`` stops
those from holding windows open.

``parse_drift`` and ``Generator`` are pure (no Kafka, no clock) so tests drive them directly;
``main`` does the I/O. Only kafka-python and orjson are needed, not the monitor package.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

NUMERIC = tuple(f"f{i:02d}" for i in range(20))
CATEGORICAL = ("c0", "c1", "c2")
MALFORMED_KINDS = ("not_json", "no_model", "string_feature", "bad_ts")
LABEL_JITTER = 0.2  # label delays vary by ±20%
LOGIT_SCALE = 4.0  # sd of the true logit: about 85% accuracy before any concept drift
PROGRESS_EVERY_S = 5.0
MIN_TICK_S, MAX_TICK_S = 0.01, 0.1  # batch a few events per wake-up; stay responsive
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_ITEM = re.compile(r"(?P<what>[^@]*)(?:@(?P<start>[^-]*)(?:-(?P<end>.*))?)?")
_GRAMMAR = "FEATURE:+Ksd@T, FEATURE:missing=SHARE@T, FEATURE:new=SHARE@T or concept@T"


class ScheduleError(ValueError):
    """A drift item, duration or start time the user wrote that cannot be understood."""


def parse_duration_ms(text: str) -> int:
    """``250ms``, ``90s``, ``10m``, ``1h30m`` or bare seconds, as milliseconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return round(float(text) * 1000)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ScheduleError(f"bad duration {text!r}: use e.g. 250ms, 90s, 10m, 1h30m")
    return round(sum(float(n) * _UNIT_MS[u] for n, u in parts))


def _fmt_duration(ms: int) -> str:
    """The shortest exact unit, for messages and the schedule."""
    if ms == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True, slots=True)
class Drift:
    """One scheduled change, active from ``start_ms`` to ``end_ms`` after the time origin."""

    kind: Literal["shift", "missing", "new", "concept"]
    feature: str | None
    amount: float  # standard deviations for a shift, a share for missing/new, 0 for concept
    start_ms: int
    end_ms: int | None = None

    def active(self, offset_ms: int) -> bool:
        """Whether an event ``offset_ms`` after the origin is affected."""
        return self.start_ms <= offset_ms and (self.end_ms is None or offset_ms < self.end_ms)

    def __str__(self) -> str:
        """The canonical ``--drift`` text, for progress lines and the schedule."""
        what = {
            "shift": f"{self.feature}:{self.amount:+g}sd",
            "missing": f"{self.feature}:missing={self.amount:g}",
            "new": f"{self.feature}:new={self.amount:g}",
            "concept": "concept",
        }[self.kind]
        end = "" if self.end_ms is None else f"-{_fmt_duration(self.end_ms)}"
        return f"{what}@{_fmt_duration(self.start_ms)}{end}"


def _share(text: str, item: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:
        raise ScheduleError(f"drift {item!r}: share {text!r} must be a number from 0 to 1")
    return share


def parse_drift(text: str) -> Drift:
    """Parse one ``--drift`` item; ``@T`` may be omitted (from the start) or be ``@T1-T2``."""
    item = text.strip()
    match = _ITEM.fullmatch(item)
    if not item or match is None or not match["what"]:
        raise ScheduleError(f"drift {text!r}: expected {_GRAMMAR} (optionally @T1-T2)")
    try:
        start = parse_duration_ms(match["start"]) if match["start"] is not None else 0
        end = parse_duration_ms(match["end"]) if match["end"] is not None else None
    except ScheduleError as exc:
        raise ScheduleError(f"drift {text!r}: {exc}") from None
    if end is not None and end <= start:
        raise ScheduleError(f"drift {text!r}: its end must come after its start")
    what = match["what"]
    if what == "concept":
        return Drift("concept", None, 0.0, start, end)
    feature, colon, change = what.partition(":")
    if not colon:
        raise ScheduleError(f"drift {text!r}: expected {_GRAMMAR} (optionally @T1-T2)")
    if feature not in NUMERIC + CATEGORICAL:
        raise ScheduleError(
            f"drift {text!r}: unknown feature {feature!r} (numeric f00..f19, categorical c0..c2)"
        )
    if shift := re.fullmatch(r"([+-]?\d+(?:\.\d+)?)sd", change):
        if feature not in NUMERIC:
            raise ScheduleError(f"drift {text!r}: a mean shift needs a numeric feature f00..f19")
        return Drift("shift", feature, float(shift[1]), start, end)
    if change.startswith("missing="):
        return Drift("missing", feature, _share(change[8:], text), start, end)
    if change.startswith("new="):
        if feature not in CATEGORICAL:
            raise ScheduleError(f"drift {text!r}: new=SHARE needs a categorical feature c0..c2")
        return Drift("new", feature, _share(change[4:], text), start, end)
    raise ScheduleError(f"drift {text!r}: {change!r} is not +Ksd, missing=SHARE or new=SHARE")


def parse_start(text: str | None, now_ms: int, duration_ms: int | None, speed: float) -> int:
    """The event-time origin in epoch ms: ISO 8601, ``now``, ``-2h``, or far enough back."""
    if text is None:
        if speed <= 1:
            return now_ms
        if duration_ms is None:
            raise ScheduleError("--speed above 1 needs --duration (or an explicit --start)")
        return now_ms - round(duration_ms * speed)
    if text == "now":
        return now_ms
    if text.startswith("-"):
        return now_ms - parse_duration_ms(text[1:])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ScheduleError(f"bad --start {text!r}: use ISO 8601, 'now' or e.g. -2h") from None
    start = round((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
    if start > now_ms:
        raise ScheduleError(f"--start {text!r} is in the future: monitor rejects future events")
    return start


def iso(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC with ``Z``, as monitor prints times."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


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
        rng = random.Random(f"{seed}:{model}")
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
        self.models, self.version, self.drifts = tuple(models), version, tuple(drifts)
        self.origin_ms = origin_ms
        self.spaces = {m: FeatureSpace.seeded(seed, m) for m in self.models}
        self._rng = random.Random(seed)
        self._malformed, self._label_fraction = malformed, label_fraction
        self._label_delay_ms = label_delay_ms
        self._serial = dict.fromkeys(self.models, 0)
        self._turn = 0
        self._pending: list[tuple[int, int, str, str, int]] = []  # due, tie-break, model, id, y

    @property
    def pending_labels(self) -> int:
        """Labels drawn but not yet due."""
        return len(self._pending)

    def active_drifts(self, now_ms: int) -> list[Drift]:
        """The drifts affecting an event at ``now_ms``."""
        return [d for d in self.drifts if d.active(now_ms - self.origin_ms)]

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
        active = self.active_drifts(ts)
        features, served, true = self._draw(self.spaces[model], active)
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

    def _draw(
        self, space: FeatureSpace, active: Sequence[Drift]
    ) -> tuple[dict[str, Any], float, float]:
        """Features as served, the served model's logit (missing = mean) and the true logit."""
        rng = self._rng
        shift = {d.feature: 0.0 for d in active if d.kind == "shift"}
        for d in active:
            if d.kind == "shift":
                shift[d.feature] += d.amount
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
    """What ``--print-schedule`` shows: each drift in event time and in wall time."""
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


def _arg(parse: Any) -> Any:
    """Wrap a parser so argparse shows its message instead of a generic 'invalid value'."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _bounded(low: float, high: float, *, low_open: bool = False) -> Any:
    def number(text: str) -> float:
        value = float(text)
        if not (low < value if low_open else low <= value) or value > high:
            raise ValueError(f"{text} is outside {'(' if low_open else '['}{low:g}, {high:g}]")
        return value

    return _arg(number)


def build_parser() -> argparse.ArgumentParser:
    """The CLI; durations accept 250ms, 90s, 10m, 1h30m or bare seconds."""
    p = argparse.ArgumentParser(
        description="Send synthetic prediction and label events to Kafka for monitor.",
        epilog="Drift times and --label-delay count event time from --start. Records are "
        "keyed by model name, so each model's events stay ordered in one partition.",
    )
    add = p.add_argument
    add("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    add("--predictions-topic", default="predictions")
    add("--labels-topic", default="labels")
    add("--models", default="churn", type=lambda s: [m.strip() for m in s.split(",")],
        help="comma-separated model names (default churn)")  # fmt: skip
    add("--version", dest="model_version", default="v1", help="model version in events")
    add("--rate", type=_bounded(0, 1e6, low_open=True), default=100.0,
        help="prediction records per wall second over all models (default 100)")  # fmt: skip
    add("--duration", type=_arg(parse_duration_ms), default=None,
        help="wall time to run, e.g. 90s or 10m (default: until Ctrl-C)")  # fmt: skip
    add("--label-delay", type=_arg(parse_duration_ms), default=60_000,
        help="event time until a label is sent, ±20%% (default 1m; 0 disables labels)")  # fmt: skip
    add("--label-fraction", type=_bounded(0, 1), default=0.9,
        help="share of predictions that get a label (default 0.9)")  # fmt: skip
    add("--malformed", type=_bounded(0, 1), default=0.0,
        help="share of bad records: truncated JSON, no model, text feature, bad ts")  # fmt: skip
    add("--drift", type=_arg(parse_drift), action="append", default=[], metavar="ITEM",
        help=f"repeatable: {_GRAMMAR}, each optionally @T1-T2 to stop at T2")  # fmt: skip
    add("--seed", type=int, default=0)
    add("--start", default=None,
        help="event-time origin: ISO 8601, 'now' or e.g. -2h (default: now, or with "
        "--speed > 1 now - duration*speed so event time never passes the wall clock)")  # fmt: skip
    add("--speed", type=_bounded(0, 1e6, low_open=True), default=1.0,
        help="event-time acceleration: 60 = one wall second is one event minute")  # fmt: skip
    add("--print-schedule", action="store_true", help="print the drift schedule and exit")
    return p


class _Totals:
    """Counters shared with the producer's I/O thread (delivery failures arrive there)."""

    def __init__(self) -> None:
        self.events = self.malformed = self.labels = self.failed = 0
        self.first_error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            self.first_error = self.first_error or exc


def run(args: argparse.Namespace, gen: Generator) -> int:
    """Pace, send and report until the duration ends or SIGINT/SIGTERM; 1 on lost records."""
    from kafka import KafkaProducer  # here: --help and --print-schedule work without Kafka
    from kafka.errors import KafkaError

    try:
        producer = KafkaProducer(
            bootstrap_servers=args.bootstrap,
            client_id="produce-events",
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
        )
    except KafkaError as exc:
        print(f"cannot reach Kafka at {args.bootstrap}: {exc!r}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()  # finish the tick, flush, print totals; a second Ctrl-C kills at once
        signal.signal(signum, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    totals, credit = _Totals(), 0.0
    began = last = time.monotonic()
    last_ms, next_progress = gen.origin_ms, began + PROGRESS_EVERY_S

    def send(topic: str, record: Record) -> None:
        producer.send(topic, key=record.key, value=record.value).add_errback(totals.fail)

    try:
        while not stop.is_set():
            now = time.monotonic()
            done = args.duration is not None and (now - began) * 1000 >= args.duration
            if done:
                now = began + args.duration / 1000
            # Token bucket holding at most one second of events: a stall is not made up.
            credit = min(credit + (now - last) * args.rate, max(args.rate, 1.0))
            last, n = now, int(credit)
            credit -= n
            now_ms = gen.origin_ms + round((now - began) * 1000 * args.speed)
            now_ms = max(last_ms, min(now_ms, round(time.time() * 1000)))
            for record in gen.events(n, now_ms, since_ms=last_ms):
                send(args.predictions_topic, record)
                totals.events += 1
                totals.malformed += record.malformed is not None
            for record in gen.due_labels(now_ms):
                send(args.labels_topic, record)
                totals.labels += 1
            last_ms = now_ms
            if done:
                break
            if now >= next_progress:
                next_progress += PROGRESS_EVERY_S
                drifts = ", ".join(map(str, gen.active_drifts(now_ms))) or "none"
                print(
                    f"[{now - began:6.0f}s] events {totals.events} (malformed "
                    f"{totals.malformed}) labels {totals.labels} (pending {gen.pending_labels})"
                    f"  event time {iso(now_ms)}  drifts: {drifts}",
                    flush=True,
                )
            stop.wait(min(MAX_TICK_S, max(MIN_TICK_S, (1 - credit) / args.rate)))
    except KafkaError as exc:
        totals.fail(exc)
        print(f"stopping: {exc!r}", file=sys.stderr)
    finally:
        try:
            producer.flush(timeout=30)
        except KafkaError as exc:  # unacknowledged records are lost: say so, exit 1
            totals.fail(exc)
        producer.close(timeout=10)
    print(
        f"done after {time.monotonic() - began:.1f}s: {totals.events} predictions "
        f"({totals.malformed} malformed), {totals.labels} labels; {gen.pending_labels} labels "
        f"not yet due were not sent; {totals.failed} failed",
        flush=True,
    )
    if totals.failed:
        print(f"first failure: {totals.first_error!r}", file=sys.stderr)
    return 1 if totals.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the CLI, build the generator, then print the schedule or run."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        origin_ms = parse_start(args.start, round(time.time() * 1000), args.duration, args.speed)
        gen = Generator(
            args.models,
            origin_ms=origin_ms,
            version=args.model_version,
            drifts=args.drift,
            seed=args.seed,
            malformed=args.malformed,
            label_delay_ms=args.label_delay,
            label_fraction=args.label_fraction,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.print_schedule:
        print(schedule_text(gen, args.speed))
        return 0
    return run(args, gen)


if __name__ == "__main__":
    sys.exit(main())
