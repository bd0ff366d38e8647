"""The event contract (DESIGN.md §3): raw Kafka or file records become typed events.

``EventParser.parse`` turns one record's bytes into a ``PredictionEvent``, a ``LabelEvent`` or
a ``Rejected`` value. Rejection is data, not an exception: the caller routes it to the dead
letters and goes on, so one bad event never stops the loop. Event time is kept as integer
epoch milliseconds, which window arithmetic uses directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import orjson

from monitor.ingest.mapping import MISSING, FieldGetters, compile_path
from monitor.settings import Settings

Kind = Literal["predictions", "labels"]
PAYLOAD_KEEP_BYTES: Final = 64 * 1024
EPOCH_MS_THRESHOLD: Final = 1e11  # above: milliseconds, below: seconds
MIN_EVENT_TIME_MS: Final = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)
DEFAULT_VERSION: Final = "default"
FEATURE_NAMES_KEPT: Final = 100_000  # storable feature names remembered (hostile streams)
NAME_MAX_CHARS: Final = 255  # what the database keeps of a model, version, id or feature name
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # integers orjson reads as integers; the rest as floats


class RawRecord(Protocol):
    """What parsing needs of a record: kafka-python's ConsumerRecord fits, so does a line."""

    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int | None: ...


@dataclass(slots=True)
class PredictionEvent:
    """One prediction a model served, with its features, at event time ``ts_ms``."""

    model: str
    version: str
    ts_ms: int
    id: str | None
    features: dict[str, Any]
    prediction: Any
    score: Any
    scores: Any
    segment: dict[str, str]
    partition: int
    offset: int


@dataclass(slots=True)
class LabelEvent:
    """Ground truth for the prediction with the same ``id``, possibly days later."""

    model: str
    version: str | None
    ts_ms: int
    id: str | None
    label: Any
    prediction: Any  # set by pipelines that join upstream: then no lookup is needed
    score: Any
    scores: Any
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """An unusable record: kept in the dead letters with where it came from and why."""

    reason: str
    topic: str
    partition: int
    offset: int
    size: int
    payload: bytes = field(repr=False)
    model: str | None = None
    version: str | None = None


Event = PredictionEvent | LabelEvent


class _Reject(Exception):
    def __init__(self, reason: str, model: str | None = None) -> None:
        self.reason = reason
        self.model = model
        self.version: str | None = None


def decode_json(raw: bytes) -> Any:
    """orjson, falling back to the stdlib only for what orjson refuses (NaN, Infinity, bigints).

    The fallback reads integers beyond 64 bits as floats (±inf past the double range), as
    orjson reads them, so no number downstream overflows a float. Raises ValueError ``not
    valid JSON: ...`` for anything neither accepts, and for escapes that leave unpaired
    surrogates (text no database, log or orjson can encode).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as first:
        try:
            text = raw.decode("utf-8")
            doc = json.loads(text, parse_int=_int_as_orjson_reads)
            if "\\u" in text:
                json.dumps(doc, ensure_ascii=False).encode("utf-8")  # unpaired surrogates?
            return doc
        except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
            raise ValueError(f"not valid JSON: {first}") from None


def _int_as_orjson_reads(digits: str) -> int | float:
    value = int(digits)
    return value if INT_MIN <= value <= INT_MAX else float(digits)


def parse_event_time(value: Any) -> int:
    """Epoch milliseconds from ISO 8601 (UTC when no zone) or epoch seconds/milliseconds."""
    if isinstance(value, bool):
        raise _Reject(f"unusable ts {value!r}: not a time")
    if isinstance(value, int | float):
        ms = value if value > EPOCH_MS_THRESHOLD else value * 1000
        if not math.isfinite(ms):
            raise _Reject(f"unusable ts {value!r}: not a finite number")
        return int(ms)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Reject(f"unusable ts {value[:64]!r}: not ISO 8601 or epoch") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    raise _Reject(f"unusable ts of type {type(value).__name__}")


def _name(value: Any, what: str) -> str:
    """A model/version/id value as text: strings and integers are names, nothing else is.

    A string must be storable as a name: not only blanks, at most ``NAME_MAX_CHARS``
    characters, no NUL (PostgreSQL text cannot hold one).
    """
    if isinstance(value, str) and _storable(value) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Reject(
        f"{what} must be a non-blank string of at most {NAME_MAX_CHARS} characters without "
        f"NUL, or an integer, got {value!r:.64}"
    )


def _storable(name: str) -> bool:
    return len(name) <= NAME_MAX_CHARS and "\x00" not in name


class EventParser:
    """Parses records of one consumer: field paths, size and clock limits from Settings."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._model_of = compile_path(settings.ingest.fields.model)
        self._version_of = compile_path(settings.ingest.fields.version)
        self._getters: dict[str, FieldGetters] = {}
        self._segment_keys: dict[str, list[str]] = {}
        self._configured = {m.name for m in settings.models}
        self._max_bytes = settings.ingest.max_event_bytes
        self._skew_ms = int(settings.ingest.max_clock_skew.total_seconds() * 1000)
        self._feature_names: set[str] = set()  # checked storable, so the check runs once each
        self._names: set[str] = set()  # model and version names checked storable
        self._reject_unknown = settings.ingest.unknown_models == "reject"
        # parse_batch's short way: top-level model and version fields only
        model_path, version_path = settings.ingest.fields.model, settings.ingest.fields.version
        plain = "." not in model_path and "." not in version_path
        self._model_key = model_path if plain else None
        self._version_key = version_path
        self._top_level_keys: dict[str, tuple[str, ...] | None] = {}

    def latest_usable_ms(self) -> int:
        """The newest event time accepted now; computed once per batch by callers."""
        return int(self._clock() * 1000) + self._skew_ms

    def parse_batch(
        self,
        records: Sequence[RawRecord],
        kind: Kind,
        topic: str,
        partition: int,
        latest_ms: int,
    ) -> list[Event | Rejected]:
        """``parse`` of each record, in order, the usual prediction taking a shorter way.

        The daemon's hot path. A prediction of the usual shape (top-level fields, a model and
        version seen before, epoch milliseconds, a plain id, features with known names, no
        segment or one of plain strings) is read here in one pass with no call per field;
        any other record goes through ``parse``, which decides every case. Both decide
        alike: a usual record is one whose every check ``parse`` would pass at once.
        """
        if kind != "predictions" or self._model_key is None:
            return [self.parse(r, kind, topic, partition, latest_ms) for r in records]
        model_key, version_key = self._model_key, self._version_key
        names, feature_names, configured = self._names, self._feature_names, self._configured
        every_model = not self._reject_unknown
        max_bytes, loads, decode_error = self._max_bytes, orjson.loads, orjson.JSONDecodeError
        keys_of, keys_for = self._top_level_keys, self._top_level_keys_for
        out: list[Event | Rejected] = []
        append = out.append
        for record in records:
            raw = record.value
            try:
                doc = loads(raw) if raw and len(raw) <= max_bytes else None
            except decode_error:
                doc = None
            if type(doc) is not dict:
                append(self.parse(record, kind, topic, partition, latest_ms))
                continue
            model = doc.get(model_key)
            version = doc.get(version_key)  # absent or null: the default version
            if (
                type(model) is not str
                or model not in names
                or not (every_model or model in configured)
                or not ((type(version) is str and version in names) or version is None)
            ):
                append(self.parse(record, kind, topic, partition, latest_ms))
                continue
            keys = keys_of[model] if model in keys_of else keys_for(model)
            if keys is None:  # a dotted field path: read by ``parse``
                append(self.parse(record, kind, topic, partition, latest_ms))
                continue
            k_ts, k_id, k_features, k_prediction, k_score, k_scores, k_segment = keys
            ts = doc.get(k_ts)
            event_id = doc.get(k_id)
            features = doc.get(k_features)
            segment = doc.get(k_segment)
            if (
                type(ts) is not int
                or not MIN_EVENT_TIME_MS <= ts <= latest_ms
                or not (
                    event_id is None
                    or (
                        type(event_id) is str
                        and len(event_id) <= NAME_MAX_CHARS
                        and "\x00" not in event_id
                        and event_id.strip()
                    )
                )
                or type(features) is not dict
                or not feature_names.issuperset(features)
                or not (segment is None or self._plain_segment(model, segment))
            ):
                append(self.parse(record, kind, topic, partition, latest_ms))
                continue
            append(
                PredictionEvent(
                    model,
                    version or DEFAULT_VERSION,
                    ts,
                    event_id,
                    features,
                    doc.get(k_prediction),
                    doc.get(k_score),
                    doc.get(k_scores),
                    {} if segment is None else segment,
                    partition,
                    record.offset,
                )
            )
        return out

    def _top_level_keys_for(self, model: str) -> tuple[str, ...] | None:
        """A model's prediction field names when every path is top-level (the default)."""
        fields = self._settings.model(model).fields
        paths = (fields.ts, fields.id, fields.features, fields.prediction, fields.score,
                 fields.scores, fields.segment)  # fmt: skip
        keys = None if any("." in path for path in paths) else paths
        self._top_level_keys[model] = keys
        return keys

    def _plain_segment(self, model: str, segment: Any) -> bool:
        """A segment ``parse`` takes as it is: an object of strings, storable as slices."""
        if type(segment) is not dict or not all(type(v) is str for v in segment.values()):
            return False
        try:
            self._slices(model, segment)
        except _Reject:
            return False
        return True

    def parse(
        self,
        record: RawRecord,
        kind: Kind,
        topic: str,
        partition: int,
        latest_ms: int,
    ) -> Event | Rejected:
        """The typed event of ``record``, or why it cannot be used."""
        raw = record.value or b""
        try:
            if not raw:
                raise _Reject("empty record")
            if len(raw) > self._max_bytes:
                raise _Reject(f"event of {len(raw)} bytes exceeds max_event_bytes")
            try:
                doc = decode_json(raw)
            except ValueError as exc:
                raise _Reject(str(exc)) from None
            if not isinstance(doc, dict):
                raise _Reject(f"not a JSON object but {type(doc).__name__}")
            return self._event(doc, record, kind, partition, latest_ms)
        except _Reject as rejected:
            return Rejected(
                rejected.reason,
                topic,
                partition,
                record.offset,
                len(raw),
                raw[:PAYLOAD_KEEP_BYTES],
                rejected.model,
                rejected.version if rejected.model is not None else None,
            )

    def _event(
        self, doc: dict[str, Any], record: RawRecord, kind: Kind, partition: int, latest_ms: int
    ) -> Event:
        # The hot path of the daemon: each field takes its common shape (a name seen before,
        # epoch milliseconds, a features object) in one check, and only other shapes go
        # through the general readers. Both paths decide alike.
        model = self._model(doc)
        version: str | None = None
        try:
            version_value = self._version_of(doc)
            if type(version_value) is str and version_value in self._names:
                version = version_value
            elif version_value is not MISSING and version_value is not None:
                version = self._remember(_name(version_value, "version"))
            getters = self._getters.get(model) or self._getters_for(model)
            if kind == "labels":
                ts_value, id_value = getters.ts(doc), getters.id(doc)
            else:
                fields = getters.prediction_fields(doc)
                ts_value, id_value, features, prediction, score, scores, segment = fields
            if type(ts_value) is int and MIN_EVENT_TIME_MS <= ts_value <= latest_ms:
                ts_ms = ts_value  # epoch milliseconds: MIN_EVENT_TIME_MS > EPOCH_MS_THRESHOLD
            else:
                ts_ms = self._event_time(ts_value, record.timestamp, latest_ms)
            event_id = None if id_value is MISSING or id_value is None else _name(id_value, "id")
            if kind == "labels":
                return self._label(doc, getters, model, version, ts_ms, event_id, record, partition)
            if type(features) is not dict or not self._feature_names.issuperset(features):
                features = self._features(features)
            return PredictionEvent(
                model,
                version or DEFAULT_VERSION,
                ts_ms,
                event_id,
                features,
                None if prediction is MISSING else prediction,
                None if score is MISSING else score,
                None if scores is MISSING else scores,
                self._slices(model, _segment(segment)),
                partition,
                record.offset,
            )
        except _Reject as rejected:
            rejected.model, rejected.version = model, version or DEFAULT_VERSION
            raise

    def _label(
        self,
        doc: dict[str, Any],
        getters: FieldGetters,
        model: str,
        version: str | None,
        ts_ms: int,
        event_id: str | None,
        record: RawRecord,
        partition: int,
    ) -> LabelEvent:
        label = getters.label(doc)
        if label is MISSING:
            raise _Reject("label event without a label")
        return LabelEvent(
            model=model,
            version=version,
            ts_ms=ts_ms,
            id=event_id,
            label=label,
            prediction=_value(getters.prediction(doc)),
            score=_value(getters.score(doc)),
            scores=_value(getters.scores(doc)),
            partition=partition,
            offset=record.offset,
        )

    def _model(self, doc: dict[str, Any]) -> str:
        value = self._model_of(doc)
        if value is MISSING or value is None:
            default = self._settings.ingest.default_model
            if default is None:
                raise _Reject(f"missing model field '{self._settings.ingest.fields.model}'")
            return default
        if type(value) is str and value in self._names:
            model = value
        else:
            model = self._remember(_name(value, "model"))
        if self._reject_unknown and model not in self._configured:
            raise _Reject(f"unknown model '{model:.200}'")
        return model

    def _remember(self, name: str) -> str:
        """A model or version name found storable: the next event with it skips the check."""
        if len(self._names) < FEATURE_NAMES_KEPT:
            self._names.add(name)
        return name

    def _slices(self, model: str, segment: dict[str, str]) -> dict[str, str]:
        """``segment``, once the slices its configured keys make can be stored."""
        keys = self._segment_keys.get(model)
        if keys is None:
            keys = self._segment_keys[model] = self._settings.model(model).segments
        for key in keys:
            value = segment.get(key)
            if value is not None and not _storable(f"{key}={value}"):
                raise _Reject(f"segment {key}={value!r:.64} is not storable (too long or NUL)")
        return segment

    def _getters_for(self, model: str) -> FieldGetters:
        getters = self._getters.get(model)
        if getters is None:
            getters = FieldGetters.from_config(self._settings.model(model).fields)
            self._getters[model] = getters
        return getters

    @staticmethod
    def _event_time(value: Any, record_ts_ms: int | None, latest_ms: int) -> int:
        if value is MISSING or value is None:
            if record_ts_ms is None or record_ts_ms < 0:
                raise _Reject("missing ts and no record timestamp")
            ts_ms = record_ts_ms
        else:
            ts_ms = parse_event_time(value)
        if ts_ms < MIN_EVENT_TIME_MS:
            raise _Reject("unusable ts: before 2000-01-01")
        if ts_ms > latest_ms:
            raise _Reject("unusable ts: further ahead of the wall clock than max_clock_skew")
        return ts_ms

    def _features(self, value: Any) -> dict[str, Any]:
        if value is MISSING or value is None:
            return {}
        if not isinstance(value, dict):
            raise _Reject(f"features must be an object, got {type(value).__name__}")
        if not self._feature_names.issuperset(value):  # the usual case: names seen before
            for name in value:
                if not _storable(name):
                    raise _Reject(f"feature name {name!r:.64} is not storable (too long or NUL)")
            if len(self._feature_names) < FEATURE_NAMES_KEPT:
                self._feature_names.update(value)
        return value


def _value(value: Any) -> Any:
    return None if value is MISSING else value


def _segment(value: Any) -> dict[str, str]:
    if value is MISSING or value is None:
        return {}
    if type(value) is dict and all(type(v) is str for v in value.values()):
        return value  # JSON object keys are strings already
    if not isinstance(value, dict):
        raise _Reject(f"segment must be an object, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}
