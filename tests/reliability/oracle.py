"""The oracle: what ``monitor`` must have stored, computed from the produced records alone.

A re-statement of the event contract (DESIGN.md §3-§6), written from the contract and not from
the daemon's code, so a test can run the real daemon through faults and compare everything it
stored with what the full input implies. ``expect`` reads the produced records (bytes, as the
broker holds them) and decides, for each one, exactly one fate; ``check`` reads the database
after the run and returns every difference, as sentences (an empty list: equal).

The rules stated here, and where the daemon states them:

- Decoding (``monitor/ingest/events.py``: ``EventParser.parse``, ``decode_json``): an empty
  record, one above ``ingest.max_event_bytes``, bytes that are not JSON (orjson first, the
  stdlib only for what orjson refuses: the tokens NaN/Infinity and numbers beyond 64 bits,
  which read as floats as orjson reads them; text that is not UTF-8, or carries unpaired
  surrogates, is not JSON) and JSON that is not an object are dead letters.
- Names (``events.py``: ``_name``, ``EventParser._model``): ``model`` is required (no
  ``ingest.default_model`` here); ``model``, ``version`` and ``id`` are strings of 1 to 255
  characters, not only blanks and without NUL, or integers; anything else is a dead letter,
  as is a model missing from the config under ``ingest.unknown_models: reject``. ``version``
  defaults to ``"default"``; without ``id`` a prediction counts but never joins.
- Event time (``events.py``: ``parse_event_time``, ``EventParser._event_time``): ISO 8601
  (UTC when no zone) or epoch numbers (above 1e11 milliseconds, else seconds); a missing
  ``ts`` is the record's timestamp; a time that is no finite number, before 2000-01-01 or more
  than ``max_clock_skew`` ahead of the wall clock is a dead letter.
- Shapes (``events.py``: ``EventParser._features``, ``_slices``, ``_label``): ``features``
  and ``segment``, when present and not null, are objects; feature names, and the slices
  ``key=value`` of the model's configured segment keys, are at most 255 characters without
  NUL (stored names); a label event has a ``label`` key (null is a value). Feature values of
  any type count (a data-quality issue at worst, never a dead letter).
- Windows (``monitor/windows/ranges.py``: ``window_start``): tumbling, aligned to the epoch,
  of the model's ``window`` (5 min for a model missing from the config); a label counts in
  the window of its own time.
- Lateness (``monitor/pipeline.py``: ``Pipeline.ingest``): per predictions partition, in
  offset order, a prediction is late when its time is below the newest time of the usable
  predictions the partition delivered before it, minus the model's ``allowed_lateness``
  (DESIGN.md §4); late predictions count in ``late_events`` only. Labels never move it.
- Duplicates (``monitor/joining.py``: ``Joiner._store_predictions``): a prediction whose
  (model, id) came before (within the label horizon) is accounted once, as a duplicate of the
  window it falls in, and not again as an event or a late event (the issue: "counted once
  and reported as duplicates"). The first by arrival is the one labels join; a stream whose
  order between partitions would decide anything is refused as ambiguous.
- Labels (``joining.py``: ``Joiner._join_labels``, ``_carried``, ``_settle_waiting``): a label
  carrying a non-null ``prediction`` joins as it is, in its own window; one without ``id``
  is an orphan at once; one whose prediction (model, id) was stored at any time joins it,
  the first label only; the others wait in ``early_labels`` (for ``early_label_grace``, which
  the scenarios set longer than a run).
- Performance (``monitor/windows/performance.py``, ``columns.category_key``, ``labelled.binary``):
  a join counts in the PREDICTION's window; classes are strings (booleans as 1/0 for binary
  models, integral numbers as integers, other finite numbers as ``repr``); a join whose label
  or prediction is no class (null, NaN, ±inf, a container) counts as invalid, outside the
  confusion counts.
- Offsets (``monitor/checkpoint.py``): every partition's stored next offset is its record
  count; a window with counted events is closed once (after ``--flush``) with those events.
- Alerts (``monitor/rules/lifecycle.py``): with ``for: 1``, a window whose value is at or above
  the critical threshold fires an inactive alert, and ``resolve_after`` sufficient windows
  below it resolve it; ``expected_episodes`` counts those episodes per (model, version).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.support.chat import notices_by_kind
from tests.support.daemon import Deployment, epoch_ms

MIN_EVENT_MS = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)
EPOCH_MS_ABOVE = 1e11
NAME_LIMIT = 255  # characters the database keeps of a model, version, id or feature name
INT_RANGE = (-(2**63), 2**64 - 1)  # integers orjson reads as integers; the rest as floats

Window = tuple[str, str, int]  # model, version, window start (epoch ms)
Key = tuple[str, str]  # model, id
Coordinates = tuple[str, int, int]  # topic, partition, offset
Cell = tuple[str | None, str | None]  # (label class, prediction class); None: not a class

# How the differences in event counts begin (``check``'s sentences), to tell them apart.
EVENT_COUNTS = (
    "events of window",
    "late events of window",
    "closed windows differ",
    "metric events of",
    "metric late_events of",
)

# Words that identify the family of a dead letter's reason.
FAMILIES = {
    "empty": "empty record",
    "too_large": "exceeds max_event_bytes",
    "not_json": "not valid JSON",
    "not_object": "not a JSON object",
    "no_model": "missing model",
    "model": "model",
    "unknown_model": "unknown model",
    "version": "version",
    "id": "id",
    "ts": "ts",
    "features": "feature",
    "segment": "segment",
    "no_label": "without a label",
}


# --- the terms of a deployment ------------------------------------------------------------


def duration_ms(text: str | int | float) -> int:
    """``5m``, ``200ms``, ``1h 30m``, ``7d`` or a number of seconds, in milliseconds."""
    if isinstance(text, int | float):
        return int(text * 1000)
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", text)
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    return int(sum(float(n) * units[u] for n, u in parts))


@dataclass(frozen=True)
class ModelTerms:
    """What the contract needs of one model's config (the defaults: a model not configured)."""

    window_ms: int = 300_000
    lateness_ms: int = 60_000
    task: str = "binary_classification"
    positive: str = "1"
    segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Terms:
    """What the contract needs of a deployment's config file."""

    predictions_topic: str
    labels_topic: str
    models: Mapping[str, ModelTerms]
    unknown_models: str = "accept"
    max_event_bytes: int = 1024 * 1024
    max_clock_skew_ms: int = 600_000

    @classmethod
    def of(cls, config: Path) -> Terms:
        """Read the config file a scenario wrote (field paths must be the defaults)."""
        data = yaml.safe_load(config.read_text())
        ingest = data.get("ingest", {})
        if ingest.get("default_model") or ingest.get("fields"):
            raise NotImplementedError("the oracle states the contract for default field paths")
        models = {}
        for m in data.get("models", []):
            if m.get("fields"):
                raise NotImplementedError("the oracle states the contract for default fields")
            models[m["name"]] = ModelTerms(
                window_ms=duration_ms(m.get("window", "5m")),
                lateness_ms=duration_ms(m.get("allowed_lateness", "1m")),
                task=m.get("task", "binary_classification"),
                positive=str(m.get("positive_class", "1")),
                segments=tuple([m["segments"]] if isinstance(m.get("segments"), str) else
                               m.get("segments", ())),
            )  # fmt: skip
        return cls(
            predictions_topic=data["kafka"]["predictions_topic"],
            labels_topic=data["kafka"]["labels_topic"],
            models=models,
            unknown_models=ingest.get("unknown_models", "accept"),
            max_event_bytes=int(ingest.get("max_event_bytes", 1024 * 1024)),
            max_clock_skew_ms=duration_ms(ingest.get("max_clock_skew", "10m")),
        )

    def model(self, name: str) -> ModelTerms:
        return self.models.get(name, ModelTerms())


# --- one record's fate ------------------------------------------------------------------------


class Unusable(Exception):
    """The record is a dead letter; ``families`` are the reasons that apply (any may be named)."""

    def __init__(self, *families: str) -> None:
        super().__init__(", ".join(families))
        self.families = frozenset(families)


@dataclass(frozen=True)
class Parsed:
    """A usable event: its coordinates in the contract's terms."""

    model: str
    version: str | None  # None: not given (a prediction's is then "default")
    ts_ms: int
    id: str | None
    doc: dict[str, Any]


def decode(raw: bytes) -> Any:
    """JSON as the contract reads it: orjson; for what it refuses, the stdlib (NaN, Infinity,
    numbers beyond orjson's range read as floats); otherwise not JSON (text that is not
    UTF-8, or whose escapes leave unpaired surrogates, included)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        doc = json.loads(raw.decode("utf-8"), parse_int=_as_orjson_reads)
    except (ValueError, RecursionError):
        raise Unusable("not_json") from None
    if _has_surrogates(doc):
        raise Unusable("not_json")
    return doc


def _has_surrogates(doc: Any) -> bool:
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
            return True
    return False


def _as_orjson_reads(digits: str) -> int | float:
    value = int(digits)
    return value if INT_RANGE[0] <= value <= INT_RANGE[1] else float(digits)


def _name(value: Any, family: str) -> str:
    if isinstance(value, bool):
        raise Unusable(family)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and _storable(value):
        return value
    raise Unusable(family)


def _storable(text: str) -> bool:
    return len(text) <= NAME_LIMIT and "\x00" not in text


def _usable_segment(segment: Any, keys: Sequence[str]) -> bool:
    """An object whose configured keys make storable slices ``key=value`` (value as text)."""
    if not isinstance(segment, dict):
        return False
    return all(_storable(f"{key}={segment[key]}") for key in keys if key in segment)


def event_time(value: Any, record_ts_ms: int | None, latest_ms: int) -> int:
    """Epoch milliseconds of a ``ts`` value (contract §3), or Unusable("ts")."""
    if value is None:
        if record_ts_ms is None or record_ts_ms < 0:
            raise Unusable("ts")
        ms = record_ts_ms
    elif isinstance(value, bool):
        raise Unusable("ts")
    elif isinstance(value, int | float):
        scaled = value if value > EPOCH_MS_ABOVE else value * 1000
        if not math.isfinite(scaled):
            raise Unusable("ts")
        ms = int(scaled)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise Unusable("ts") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = int(moment.timestamp() * 1000)
    else:
        raise Unusable("ts")
    if ms < MIN_EVENT_MS or ms > latest_ms:
        raise Unusable("ts")
    return ms


def parse(
    raw: bytes | None, kind: str, terms: Terms, record_ts_ms: int | None, latest_ms: int
) -> Parsed:
    """The usable event of one record, or Unusable with every reason that applies."""
    raw = raw or b""
    if not raw:
        raise Unusable("empty")
    if len(raw) > terms.max_event_bytes:
        raise Unusable("too_large")
    doc = decode(raw)
    if not isinstance(doc, dict):
        raise Unusable("not_object")
    if doc.get("model") is None:
        raise Unusable("no_model")
    model = _name(doc["model"], "model")
    if terms.unknown_models == "reject" and model not in terms.models:
        raise Unusable("unknown_model")
    problems = []
    version = event_id = None
    ts_ms = 0
    try:
        version = None if doc.get("version") is None else _name(doc["version"], "version")
    except Unusable as u:
        problems += u.families
    try:
        ts_ms = event_time(doc.get("ts"), record_ts_ms, latest_ms)
    except Unusable as u:
        problems += u.families
    try:
        event_id = None if doc.get("id") is None else _name(doc["id"], "id")
    except Unusable as u:
        problems += u.families
    if kind == "predictions":  # a label's features and segment are not read
        features, segment = doc.get("features"), doc.get("segment")
        if features is not None and (
            not isinstance(features, dict) or not all(_storable(k) for k in features)
        ):
            problems.append("features")
        if segment is not None and not _usable_segment(segment, terms.model(model).segments):
            problems.append("segment")
    elif "label" not in doc:
        problems.append("no_label")
    if problems:
        raise Unusable(*problems)
    return Parsed(model, version, ts_ms, event_id, doc)


def klass(value: Any, task: str) -> str | None:
    """The class a label or prediction names (None: none, a row outside the confusion)."""
    if task == "binary_classification" and isinstance(value, bool):
        value = int(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


# --- the whole input --------------------------------------------------------------------------


def with_offsets(records: Sequence[tuple[int | None, bytes]]) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of records produced in this order to a fresh topic."""
    next_offset: Counter[int] = Counter()
    placed = []
    for partition, value in records:
        if partition is None:
            raise ValueError("the oracle needs each record's partition")
        placed.append((partition, next_offset[partition], value))
        next_offset[partition] += 1
    return placed


@dataclass
class Expected:
    """Every record's fate, and what the database must hold after the run."""

    produced: int = 0
    counted: Counter[Window] = field(default_factory=Counter)
    late: Counter[Window] = field(default_factory=Counter)
    labels: Counter[Window] = field(default_factory=Counter)
    duplicates: Counter[Window] = field(default_factory=Counter)
    orphans: Counter[Window] = field(default_factory=Counter)
    dead: dict[Coordinates, frozenset[str]] = field(default_factory=dict)
    dead_sizes: dict[Coordinates, int] = field(default_factory=dict)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    confusion: dict[Window, Counter[Cell]] = field(default_factory=lambda: defaultdict(Counter))
    joined: Counter[Window] = field(default_factory=Counter)  # joins, invalid ones included
    stored: dict[Key, bool] = field(default_factory=dict)  # predictions kept: labelled?
    waiting: set[Key] = field(default_factory=set)  # labels still waiting for a prediction

    def fates(self) -> Counter[str]:
        """How many records ended in each fate (each record in exactly one)."""
        return Counter(
            counted=sum(self.counted.values()),
            late=sum(self.late.values()),
            duplicate=sum(self.duplicates.values()),
            label=sum(self.labels.values()),
            dead_letter=len(self.dead),
        )


def expect(
    terms: Terms,
    predictions: Sequence[tuple[int | None, bytes]],
    labels: Sequence[tuple[int | None, bytes]] = (),
    *,
    now_ms: int,
    record_ts_ms: int | None = None,
) -> Expected:
    """What the records, produced in this order to fresh topics, must leave in the database.

    ``now_ms`` is the wall clock of the run (events further ahead than the clock skew are
    dead letters: scenarios keep their times far from that edge); ``record_ts_ms`` is the
    timestamp every record was produced with (the time of events without ``ts``).
    """
    oracle = _Oracle(terms, Expected(produced=len(predictions) + len(labels)))
    latest_ms = now_ms + terms.max_clock_skew_ms
    for kind, topic, records in (
        ("predictions", terms.predictions_topic, predictions),
        ("labels", terms.labels_topic, labels),
    ):
        # Per partition in offset order: lateness and "first" are per-partition notions.
        for partition, offset, raw in sorted(with_offsets(records)):
            where = (topic, partition, offset)
            oracle.out.offsets[(topic, partition)] = offset + 1
            try:
                event = parse(raw, kind, terms, record_ts_ms, latest_ms)
            except Unusable as u:
                oracle.out.dead[where], oracle.out.dead_sizes[where] = u.families, len(raw or b"")
                continue
            if kind == "predictions":
                oracle.prediction(partition, event)
            else:
                oracle.label(partition, event)
    oracle.join()
    return oracle.out


@dataclass
class _First:
    """The first prediction of a (model, id): the one its label joins."""

    partition: int
    window: Window
    prediction: Any
    task: str
    late: bool


@dataclass
class _Oracle:
    terms: Terms
    out: Expected
    first: dict[Key, _First] = field(default_factory=dict)
    newest: dict[int, int] = field(default_factory=dict)  # per partition: newest event time
    labels: dict[Key, tuple[int, Any]] = field(default_factory=dict)  # the first label per key

    def prediction(self, partition: int, event: Parsed) -> None:
        model = self.terms.model(event.model)
        window = (event.model, event.version or "default", _start(event.ts_ms, model.window_ms))
        newest = self.newest.get(partition)
        late = newest is not None and event.ts_ms < newest - model.lateness_ms
        self.newest[partition] = event.ts_ms if newest is None else max(newest, event.ts_ms)
        if event.id is not None:
            key = (event.model, event.id)
            seen = self.first.get(key)
            if seen is not None:
                if seen.partition != partition and (
                    (seen.window, seen.prediction, seen.late)
                    != (window, event.doc.get("prediction"), late)
                ):
                    raise ValueError(
                        f"ambiguous stream: {key} repeats in partitions {seen.partition} and "
                        f"{partition} with another window, prediction or lateness (which is "
                        "first?)"
                    )
                self.out.duplicates[window] += 1  # before late: it is the same prediction
                return
            first = _First(partition, window, event.doc.get("prediction"), model.task, late)
            self.first[key] = first
            self.out.stored[key] = False
        if late:
            self.out.late[window] += 1
        else:
            self.out.counted[window] += 1

    def label(self, partition: int, event: Parsed) -> None:
        model = self.terms.model(event.model)
        own = (event.model, event.version or "default", _start(event.ts_ms, model.window_ms))
        self.out.labels[own] += 1
        label = event.doc["label"]
        if event.doc.get("prediction") is not None:  # joined upstream: counts as it is
            self._join(own, label, event.doc["prediction"], model.task)
            return
        if event.id is None:
            self.out.orphans[own] += 1
            return
        key = (event.model, event.id)
        seen = self.labels.get(key)
        if seen is None:
            self.labels[key] = (partition, label)
        elif seen[0] != partition and klass(seen[1], model.task) != klass(label, model.task):
            raise ValueError(f"ambiguous stream: labels of {key} in two partitions differ")

    def join(self) -> None:
        """Each prediction meets its first label; labels of no prediction keep waiting."""
        for key, (_, label) in self.labels.items():
            first = self.first.get(key)
            if first is None:
                self.out.waiting.add(key)
                continue
            self.out.stored[key] = True
            self._join(first.window, label, first.prediction, first.task)

    def _join(self, window: Window, label: Any, prediction: Any, task: str) -> None:
        self.out.joined[window] += 1
        cell = (klass(label, task), klass(prediction, task))
        if None not in cell:
            self.out.confusion[window][cell] += 1


def _start(ts_ms: int, size_ms: int) -> int:
    return ts_ms - ts_ms % size_ms


# --- alerts -----------------------------------------------------------------------------------


def expected_episodes(
    counts: Mapping[Window, int], critical: float, resolve_after: int = 2
) -> dict[tuple[str, str], tuple[int, int]]:
    """(episodes fired, episodes resolved) per (model, version) of a rule ``events >=
    critical`` with ``for: 1``, over the closed windows in time order."""
    by_version: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for (model, version, start), n in counts.items():
        if n > 0:
            by_version[(model, version)].append((start, n))
    episodes = {}
    for key, windows in by_version.items():
        fired = resolved = clear = 0
        firing = False
        for _, n in sorted(windows):
            holds = n >= critical
            if holds and not firing:
                firing, fired, clear = True, fired + 1, 0
            elif firing:
                clear = 0 if holds else clear + 1
                if clear >= resolve_after:
                    firing, resolved = False, resolved + 1
        episodes[key] = (fired, resolved)
    return episodes


# --- the comparison ---------------------------------------------------------------------------


class Differences(list[str]):
    """Every difference as a sentence; ``lost`` and ``doubled`` count records whose fate is
    missing from, or stored more often than, the oracle's; ``triggers_lost`` retraining
    triggers never delivered."""

    lost: int = 0
    doubled: int = 0
    triggers_lost: int = 0

    def counter(self, what: str, expected: Counter[Any], actual: Counter[Any]) -> None:
        for key in sorted(set(expected) | set(actual), key=repr):
            e, a = expected.get(key, 0), actual.get(key, 0)
            if e != a:
                self.append(f"{what} {key}: expected {e}, stored {a}")
                self.lost += max(0, e - a)
                self.doubled += max(0, a - e)


def check(dep: Deployment, expected: Expected, terms: Terms) -> Differences:
    """Compare the deployment's database with the oracle; every difference, as sentences."""
    found = Differences()
    counts = _stored_counts(dep)
    found.counter("events of window", +expected.counted, counts["events"])
    found.counter("late events of window", +expected.late, counts["late_events"])
    found.counter("labels of window", +expected.labels, counts["labels"])
    found.counter("duplicates of window", +expected.duplicates, counts["duplicates"])
    found.counter("orphan labels of window", +expected.orphans, counts["orphan_labels"])
    unlabelled = +counts["unlabelled"]
    if unlabelled:
        found.append(f"unlabelled predictions (no horizon passed): {dict(unlabelled)}")
    _check_dead_letters(dep, expected, found)
    _check_offsets(dep, expected, found)
    _check_closed(dep, expected, found)
    _check_joins(dep, expected, found)
    return found


def _stored_counts(dep: Deployment) -> dict[str, Counter[Window]]:
    names = ("events", "late_events", "labels", "duplicates", "orphan_labels", "unlabelled")
    rows = dep.query(
        "SELECT model, version, window_start, events, late_events, labels, duplicates, "
        "orphan_labels, unlabelled FROM window_counts"
    )
    counts: dict[str, Counter[Window]] = {name: Counter() for name in names}
    for model, version, start, *values in rows:
        for name, value in zip(names, values, strict=True):
            if value:
                counts[name][(model, version, epoch_ms(start))] += value
    return counts


def _check_dead_letters(dep: Deployment, expected: Expected, found: Differences) -> None:
    rows = dep.query('SELECT topic, "partition", "offset", reason, size FROM dead_letters')
    stored: dict[Coordinates, list[tuple[str, int]]] = defaultdict(list)
    for topic, partition, offset, reason, size in rows:
        stored[(topic, partition, offset)].append((reason, size))
    for where in sorted(set(expected.dead) | set(stored)):
        letters = stored.get(where, [])
        if where not in expected.dead:
            found.append(f"dead letter {where} not expected: {letters[0][0]!r}")
            found.doubled += len(letters)
            continue
        if not letters:
            found.append(f"dead letter {where} missing ({', '.join(sorted(expected.dead[where]))})")
            found.lost += 1
            continue
        if len(letters) > 1:
            found.append(f"dead letter {where} stored {len(letters)} times")
            found.doubled += len(letters) - 1
        reason, size = letters[0]
        words = [FAMILIES[f] for f in expected.dead[where]]
        if not any(w.lower() in reason.lower() for w in words):
            found.append(f"dead letter {where}: reason {reason!r} names none of {words}")
        if size != expected.dead_sizes[where]:
            found.append(f"dead letter {where}: size {size}, expected {expected.dead_sizes[where]}")


def _check_offsets(dep: Deployment, expected: Expected, found: Differences) -> None:
    rows = dep.query(
        'SELECT topic, "partition", next_offset FROM consumer_offsets WHERE group_id = :g',
        g=dep.group_id,
    )
    stored = {(topic, partition): offset for topic, partition, offset in rows}
    for tp in sorted(set(expected.offsets) | set(stored)):
        if stored.get(tp) != expected.offsets.get(tp):
            found.append(
                f"next offset of {tp}: expected {expected.offsets.get(tp)}, stored {stored.get(tp)}"
            )


def _check_closed(dep: Deployment, expected: Expected, found: Differences) -> None:
    """Each window with counted events closed once, with its events, late events and
    duplicates in its metrics."""
    closed = {
        (m, v, epoch_ms(s)): n
        for m, v, s, n in dep.query(
            "SELECT model, version, window_start, events FROM closed_windows"
        )
    }
    if closed != +expected.counted:
        missing = sorted(set(expected.counted) - set(closed))
        extra = sorted(set(closed) - set(expected.counted))
        wrong = sorted(
            w for w in closed if w in expected.counted and closed[w] != expected.counted[w]
        )
        found.append(
            f"closed windows differ: not closed {missing[:5]}, not expected {extra[:5]}, "
            f"other event counts {[(w, closed[w], expected.counted[w]) for w in wrong[:5]]}"
        )
    rows = dep.query(
        "SELECT model, version, window_start, metric, value FROM window_metrics "
        "WHERE segment = '' AND feature = '' AND metric IN ('events', 'late_events', 'duplicates')"
    )
    metrics = {(m, v, epoch_ms(s), metric): value for m, v, s, metric, value in rows}
    wanted = {
        "events": expected.counted,
        "late_events": expected.late,
        "duplicates": expected.duplicates,
    }
    for window in closed:
        for metric, counter in wanted.items():
            value = metrics.get((*window, metric))
            if value != counter.get(window, 0):
                found.append(
                    f"metric {metric} of closed window {window}: {value}, expected "
                    f"{counter.get(window, 0)}"
                )


def _check_joins(dep: Deployment, expected: Expected, found: Differences) -> None:
    """Joins per window (the stored performance shares, whole model) and their confusion
    counts; which predictions are kept labelled; which labels still wait."""
    rows = dep.query("SELECT model, version, window_start, state FROM window_performance")
    confusion: dict[Window, Counter[Cell]] = defaultdict(Counter)
    joined: Counter[Window] = Counter()
    for model, version, start, state in rows:
        whole = orjson.loads(state)["slices"].get("")
        if whole is None:
            continue
        window = (model, version, epoch_ms(start))
        performance = whole["performance"]
        for label, prediction, n in performance.get("confusion", []):
            confusion[window][(label, prediction)] += n
            joined[window] += n
        joined[window] += performance.get("invalid", 0)
    found.counter("label joins of window", +expected.joined, +joined)
    for window in sorted(set(expected.confusion) | set(confusion)):
        e, a = +expected.confusion.get(window, Counter()), +confusion.get(window, Counter())
        if e != a:
            found.append(
                f"confusion counts of window {window}: expected {dict(e)}, stored {dict(a)}"
            )
    stored = {
        (m, i): labelled is not None
        for m, i, labelled in dep.query("SELECT model, id, label_ms FROM pending_predictions")
    }
    if stored != expected.stored:
        missing = sorted(set(expected.stored) - set(stored))
        extra = sorted(set(stored) - set(expected.stored))
        flags = sorted(
            k for k in stored if k in expected.stored and stored[k] != expected.stored[k]
        )
        found.append(
            f"stored predictions differ: missing {missing[:5]} ({len(missing)}), not expected "
            f"{extra[:5]} ({len(extra)}), labelled flag wrong for {flags[:5]} ({len(flags)})"
        )
    waiting = {(m, i) for m, i in dep.query("SELECT model, id FROM early_labels")}
    if waiting != expected.waiting:
        found.append(
            f"waiting labels differ: missing {sorted(expected.waiting - waiting)[:5]}, not "
            f"expected {sorted(waiting - expected.waiting)[:5]}"
        )


def check_deliveries(
    dep: Deployment,
    requests: Sequence[Any],
    episodes: Mapping[tuple[str, str], tuple[int, int]],
    *,
    exact: bool,
    resent: int | None = 0,
) -> Differences:
    """Notifications and retraining triggers against the alert episodes the oracle expects.

    ``requests`` are what the receiver got (``path``, ``headers``, ``body``). Each model with
    an episode owes one trigger (the cooldown makes it one per model), queued once, delivered,
    and received under its own webhook id only: once, except for ``resent`` triggers received
    twice (a kill between the target's 2xx and the outbox's record); None: at least once.
    Each episode owes one FIRING and, once resolved, one RESOLVED item in the chat messages:
    exactly once with ``exact``, at least once without (a kill between a 2xx and its record
    may resend a notification).
    """
    found = Differences()
    fired: Counter[str] = Counter()
    told: Counter[tuple[str, str]] = Counter()
    for (model, _), (firing, resolved) in episodes.items():
        fired[model] += firing
        told[(model, "FIRING")] += firing
        told[(model, "RESOLVED")] += resolved
    rows = dep.query("SELECT key, model, state FROM outbox WHERE kind = 'trigger'")
    received = Counter(
        r.headers.get("webhook-id") for r in requests if r.path.startswith("/retrain")
    )
    by_model: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key, model, state in rows:
        by_model[model].append((key, state))
    for model in sorted(set(by_model) | {m for m, n in fired.items() if n}):
        queued = by_model.get(model, [])
        if not queued:
            found.append(f"no retraining trigger queued for {model}")
            found.triggers_lost += 1
            continue
        if len(queued) > 1 or not fired[model]:
            found.append(
                f"{len(queued)} triggers queued for {model}, expected {min(1, fired[model])}"
            )
        for key, state in queued:
            times = received.get(key, 0)
            if state != "delivered" or not times:
                found.append(f"trigger {key} of {model}: {state}, received {times} times")
                found.triggers_lost += 1
    if resent is not None:
        times = Counter(received[key] for key, _, _ in rows if received.get(key))
        if set(times) - {1, 2} or times[2] != resent:
            found.append(f"triggers by times received: {dict(times)}, expected {resent} twice")
    strays = set(received) - {key for key, _, _ in rows}
    if strays:
        found.append(
            f"triggers received under webhook ids the outbox never had: {sorted(map(str, strays))}"
        )
    items: Counter[tuple[str, str]] = Counter()
    for r in requests:
        if r.path.startswith("/chat"):
            message = orjson.loads(r.body)
            model = re.match(r"\*\*(\S+) ", message["message"])
            counted = notices_by_kind(message)  # a digest lists ten, counts the rest
            for kind in ("FIRING", "RESOLVED"):
                items[(model[1] if model else "?", kind)] += counted[kind]
    for key in sorted(set(told) | set(items)):
        e, a = told.get(key, 0), items.get(key, 0)
        if a < e or (exact and a != e):
            found.append(f"{key[1]} notifications for {key[0]}: expected {e}, received {a}")
    pending = dep.query("SELECT key, state FROM outbox WHERE state <> 'delivered'")
    if pending:
        found.append(f"outbox rows not delivered: {pending[:5]}")
    return found


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def hours_ago(hours: float) -> int:
    """Epoch ms ``hours`` before now, on a window boundary of 5 minutes."""
    moment = datetime.now(UTC) - timedelta(hours=hours)
    ms = int(moment.timestamp() * 1000)
    return ms - ms % 300_000
