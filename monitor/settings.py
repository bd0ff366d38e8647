"""One frozen Settings object, loaded from one YAML file (DESIGN.md §9).

Loading is three steps: read the YAML (``safe_load`` semantics, duplicate keys refused),
interpolate ``${VAR}`` / ``${VAR:-default}`` in string values (never re-parsed as YAML), then
validate with pydantic. Every problem of every step becomes one line ``path: message`` of a
single :class:`~monitor.errors.ConfigError`, so a user fixes the whole file in one pass.

Durations are ``timedelta`` (``"500ms"``, ``"30s"``, ``"1h30m"``, plain numbers are seconds);
secrets are ``SecretStr`` so that ``repr`` and logs never show them.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import math
import os
import re
import types
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from monitor.errors import ConfigError

__all__ = [
    "AlertingConfig",
    "ChannelConfig",
    "DatabaseConfig",
    "Duration",
    "HttpConfig",
    "IngestConfig",
    "IngestFields",
    "KafkaConfig",
    "LoggingConfig",
    "ModelConfig",
    "ModelFields",
    "ReferenceConfig",
    "Rule",
    "Settings",
    "TriggerConfig",
    "default_settings",
    "format_duration",
    "format_path",
    "interpolate",
    "load_settings",
    "mask_url",
    "parse_duration",
]

# --- durations -------------------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+")
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """``"500ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"``, ``"1w"``, ``"1h30m"``; numbers are
    seconds. Raises ``ValueError("'5x' is not a duration")`` for anything else."""
    if isinstance(value, timedelta):
        return value
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            if not math.isfinite(value) or value < 0:
                raise ValueError
            return timedelta(seconds=value)
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            return timedelta(seconds=float(value))
        if isinstance(value, str) and _DURATION.fullmatch(value):
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value))
            return timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        pass
    raise ValueError(f"'{value}' is not a duration")


def parse_moment(value: str, now: datetime) -> datetime:
    """A point in time: ISO 8601 (UTC when no zone is given) or a duration back from ``now``.

    ``2h`` means two hours before ``now``; raises ValueError naming the value otherwise.
    """
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is neither ISO 8601 nor a duration") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_duration(value: timedelta) -> str:
    """The shortest unit string for ``value``: ``5m``, ``1h30m``, ``7d``, ``500ms``, ``0s``."""
    total_ms = round(value.total_seconds() * 1000)
    sign, total_ms = ("-", -total_ms) if total_ms < 0 else ("", total_ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if total_ms:
        parts.append(f"{total_ms}ms")
    return sign + ("".join(parts) or "0s")


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, str | int | float | timedelta):
        return parse_duration(value)
    raise ValueError(f"'{value}' is not a duration")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be greater than 0")
    return value


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


Duration = Annotated[timedelta, BeforeValidator(_to_duration)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
NonNegativeDuration = Annotated[Duration, AfterValidator(_non_negative)]

# --- small field types ------------------------------------------------------------------------


def _reject_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    return value


def _reject_bool_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    return value


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _secret_not_empty(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


def _http_url(value: SecretStr | str | None) -> Any:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text is not None and not re.match(r"https?://[^/\s]", text):
        raise ValueError("must be an http:// or https:// URL")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Count = Annotated[int, BeforeValidator(_reject_bool), Field(gt=0)]
Patterns = Annotated[list[Name], BeforeValidator(_listify), Field(min_length=1)]
Secret = Annotated[SecretStr, AfterValidator(_secret_not_empty)]
Threshold = Annotated[float, BeforeValidator(_reject_bool_number), Field(allow_inf_nan=False)]
FeatureType = Literal["numeric", "categorical", "boolean"]


def _all() -> list[str]:
    return ["*"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- kafka, database, ingest, http, logging, alerting -----------------------------------------

_SENSITIVE_KEY = re.compile(r"password|secret|key|token", re.IGNORECASE)
_CONSUMER_DEFAULTS: dict[str, Any] = {"auto_offset_reset": "earliest"}


def _join_servers(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return value


def _mask_security(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    return {
        k: SecretStr(v) if isinstance(v, str) and _SENSITIVE_KEY.search(str(k)) else v
        for k, v in value.items()
    }


def _with_consumer_defaults(value: Any) -> Any:
    return {**_CONSUMER_DEFAULTS, **value} if isinstance(value, Mapping) else value


class KafkaConfig(_Section):
    """Broker, consumer group and topics; ``security`` and ``consumer`` go to kafka-python."""

    bootstrap_servers: Annotated[Name, BeforeValidator(_join_servers)] = "127.0.0.1:9092"
    group_id: Name = "monitor"
    predictions_topic: Name = "predictions"
    labels_topic: Name = "labels"
    dead_letter_topic: Name | None = None
    security: Annotated[dict[str, Any], BeforeValidator(_mask_security)] = Field(
        default_factory=dict
    )
    consumer: Annotated[dict[str, Any], BeforeValidator(_with_consumer_defaults)] = Field(
        default_factory=lambda: dict(_CONSUMER_DEFAULTS)
    )
    fetcher: Literal["process", "inline"] = "process"
    """Where kafka-python parses records: in a helper process, beside the pipeline (a second
    core's worth of throughput), or ``inline`` in the daemon's own process."""

    @model_validator(mode="after")
    def _distinct_topics(self) -> KafkaConfig:
        if self.predictions_topic == self.labels_topic:
            raise ValueError("predictions_topic and labels_topic must differ")
        return self

    def security_options(self) -> dict[str, Any]:
        """The TLS / SASL options with their real values, for kafka-python only."""
        return {
            k: v.get_secret_value() if isinstance(v, SecretStr) else v
            for k, v in self.security.items()
        }


class DatabaseConfig(_Section):
    """SQLAlchemy URL of the database that holds state, offsets and the outbox."""

    url: Secret = SecretStr("sqlite:///monitor.db")


class IngestFields(_Section):
    """Global dotted paths of the model name and version in every event."""

    model: Name = "model"
    version: Name = "version"


class IngestConfig(_Section):
    """Decoding limits and the consumer's commit cadence."""

    fields: IngestFields = Field(default_factory=IngestFields)
    default_model: Name | None = None
    commit_interval: PositiveDuration = timedelta(seconds=5)
    commit_every: Count = 20_000
    max_event_bytes: Count = 1_048_576
    max_clock_skew: NonNegativeDuration = timedelta(minutes=10)
    idle_timeout: PositiveDuration = timedelta(minutes=1)
    unknown_models: Literal["accept", "reject"] = "accept"
    closer: Literal["process", "inline"] = "process"
    """Where windows are closed and evaluated: in a helper process, beside the pipeline, or
    ``inline`` in the daemon's own process, after each checkpoint."""


_LISTEN = re.compile(
    r"\[(?P<v6>[0-9A-Za-z:.%]+)\]:(?P<p6>\d{1,5})|(?P<host>[^:\s\[\]]+):(?P<port>\d{1,5})"
)


def _split_listen(value: str) -> tuple[str, int]:
    match = _LISTEN.fullmatch(value)
    if match is None:
        raise ValueError(f"'{value}' is not host:port (IPv6 as [::1]:9108)")
    host = match["v6"] or match["host"]
    port = int(match["p6"] or match["port"])
    if port > 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return host, port


def _check_listen(value: str) -> str:
    _split_listen(value)
    return value


class HttpConfig(_Section):
    """The HTTP server: health, readiness, Prometheus metrics and the JSON API."""

    enabled: bool = True
    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:9108"
    token: Secret | None = None
    public_url: Annotated[str | None, AfterValidator(_http_url)] = None
    metrics_max_features: Count = 50
    metrics_segments: bool = False

    @property
    def host(self) -> str:
        """The host part of ``listen``, without IPv6 brackets."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen`` (0 picks a free port)."""
        return _split_listen(self.listen)[1]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class LoggingConfig(_Section):
    """Log level and format (auto = console on a terminal, json otherwise)."""

    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"
    format: Annotated[Literal["auto", "console", "json"], BeforeValidator(_lower)] = "auto"


class AlertingConfig(_Section):
    """Wall-clock pacing of notifications, and how the outbox retries a failed delivery.

    Failed deliveries wait ``uniform(0, min(retry_cap, retry_base * 2**attempt))`` (full
    jitter); a notification still undelivered after ``max_age`` is given up (a trigger has
    its own ``max_age``).
    """

    group_wait: NonNegativeDuration = timedelta(seconds=30)
    repeat_interval: PositiveDuration = timedelta(hours=4)
    retry_base: PositiveDuration = timedelta(seconds=1)
    retry_cap: PositiveDuration = timedelta(hours=1)
    max_age: PositiveDuration = timedelta(days=1)


# --- models -----------------------------------------------------------------------------------


class ReferenceConfig(_Section):
    """Where a model's reference profile comes from: a file, or the first N events."""

    path: Name | None = None
    warmup: Count | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ReferenceConfig:
        if (self.path is None) == (self.warmup is None):
            raise ValueError("give exactly one of path or warmup")
        return self


class ModelFields(_Section):
    """Dotted paths of each event-contract field inside a model's events."""

    id: Name = "id"
    ts: Name = "ts"
    features: Name = "features"
    prediction: Name = "prediction"
    score: Name = "score"
    scores: Name = "scores"
    label: Name = "label"
    segment: Name = "segment"


def _category(value: Any) -> Any:
    """The positive class as labels are read: true/false and 1/1.0 alike (columns rules)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float) and float(value).is_integer():
        return str(int(value))
    return value


class ModelConfig(_Section):
    """One monitored model; a model missing from the config gets these defaults."""

    name: Name
    window: PositiveDuration = timedelta(minutes=5)
    allowed_lateness: NonNegativeDuration = timedelta(minutes=1)
    reference: ReferenceConfig | None = None
    fields: ModelFields = Field(default_factory=ModelFields)
    features: dict[Name, FeatureType] = Field(default_factory=dict)
    segments: Annotated[list[Name], BeforeValidator(_listify)] = Field(default_factory=list)
    task: Literal["binary_classification", "multiclass_classification", "regression"] = (
        "binary_classification"
    )
    positive_class: Annotated[Name, BeforeValidator(_category)] = "1"
    min_samples: Count = 200
    min_labels: Count = 100
    label_horizon: PositiveDuration = timedelta(days=7)
    early_label_grace: NonNegativeDuration = timedelta(minutes=10)


# --- channels, triggers, rules ----------------------------------------------------------------


class ChannelConfig(_Section):
    """A named group of apprise URLs."""

    urls: Annotated[list[Secret], BeforeValidator(_listify), Field(min_length=1)]
    send_resolved: bool = True


def _webhook_secret(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    text = value.get_secret_value()
    try:
        ok = text.startswith("whsec_") and bool(base64.b64decode(text[6:], validate=True))
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ValueError("must be 'whsec_' followed by base64 (a Standard Webhooks secret)")
    return value


def _github_repo(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", value):
        raise ValueError("must be owner/name")
    return value


_PRESET_FIELDS = {"generic": (), "airflow": ("dag_id",), "github": ("repo", "event_type")}


class TriggerConfig(_Section):
    """A retraining webhook, signed as in the Standard Webhooks spec.

    ``url`` is the target (generic), the Airflow API base URL (airflow) or, for github,
    defaults to ``https://api.github.com/repos/{repo}/dispatches``.
    """

    preset: Literal["generic", "airflow", "github"] = "generic"
    url: Annotated[Secret | None, AfterValidator(_http_url)] = None
    secret: Annotated[Secret | None, AfterValidator(_webhook_secret)] = None
    headers: dict[str, Secret] = Field(default_factory=dict)
    cooldown: NonNegativeDuration = timedelta(hours=24)
    timeout: PositiveDuration = timedelta(seconds=20)
    max_age: PositiveDuration = timedelta(days=3)
    dag_id: Name | None = None
    repo: Annotated[Name | None, AfterValidator(_github_repo)] = None
    event_type: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _github_url(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("preset") == "github" and "url" not in data:
            repo = data.get("repo")
            if isinstance(repo, str):
                return {**data, "url": f"https://api.github.com/repos/{repo.strip()}/dispatches"}
        return data

    @model_validator(mode="after")
    def _preset_fields(self) -> TriggerConfig:
        problems = [
            f"{name} is required for preset {self.preset}"
            for name in ("url", *_PRESET_FIELDS[self.preset])
            if getattr(self, name) is None
        ]
        problems += [
            f"{name} applies only to preset {preset}"
            for preset, names in _PRESET_FIELDS.items()
            for name in names
            if preset != self.preset and getattr(self, name) is not None
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def target_url(self) -> str:
        """The real target URL (validation guarantees one)."""
        assert self.url is not None  # noqa: S101 - guaranteed by _preset_fields
        return self.url.get_secret_value()


class Rule(_Section):
    """A threshold rule on one metric, scoped by model/version/segment/feature globs."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    name: Name
    metric: Name
    models: Patterns = Field(default_factory=_all)
    versions: Patterns = Field(default_factory=_all)
    segments: Patterns = Field(default_factory=_all)
    features: Patterns = Field(default_factory=_all)
    direction: Literal["above", "below"] = "above"
    warn: Threshold | None = None
    critical: Threshold | None = None
    clear: Threshold | None = None
    relative_to_reference: bool = False
    for_: Count = Field(default=1, alias="for")
    resolve_after: Count = 2
    min_samples: Count | None = None
    notify: Annotated[list[Name], BeforeValidator(_listify)] = Field(default_factory=list)
    trigger: Name | None = None

    @model_validator(mode="after")
    def _thresholds(self) -> Rule:
        given = {
            k: v for k, v in (("warn", self.warn), ("critical", self.critical)) if v is not None
        }
        if not given:
            raise ValueError("at least one of warn / critical is required")
        above = self.direction == "above"
        if self.warn is not None and self.critical is not None:
            if above and self.critical < self.warn:
                raise ValueError("critical must not be below warn for direction above")
            if not above and self.critical > self.warn:
                raise ValueError("critical must not be above warn for direction below")
        if self.clear is not None:
            # hysteresis: clear sits on the safe side of the nearest threshold
            name = sorted(given, key=given.__getitem__, reverse=not above)[0]
            if (self.clear > given[name]) if above else (self.clear < given[name]):
                side = "above" if above else "below"
                raise ValueError(f"clear must not be {side} {name} for direction {self.direction}")
        return self


# --- settings ---------------------------------------------------------------------------------

_SECTIONS = ("kafka", "database", "ingest", "http", "logging", "alerting", "channels", "triggers")
_LIST_SECTIONS = ("models", "rules")


class _ReferenceError(ValueError):
    """Names that do not resolve: duplicates, unknown channels or triggers."""


class Settings(_Section):
    """The whole configuration; frozen, built by :func:`load_settings`."""

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    models: list[ModelConfig] = Field(default_factory=list)
    channels: dict[Name, ChannelConfig] = Field(default_factory=dict)
    triggers: dict[Name, TriggerConfig] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)

    _model_cache: dict[str, ModelConfig] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """A section written as ``kafka:`` with nothing under it means its defaults."""
        if not isinstance(data, Mapping):
            return data

        def empty(key: str) -> Any:
            return [] if key in _LIST_SECTIONS else {}

        sections = {*_SECTIONS, *_LIST_SECTIONS}
        return {k: empty(k) if v is None and k in sections else v for k, v in data.items()}

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems = _reference_problems(self.model_dump(by_alias=True))
        if problems:
            raise _ReferenceError("; ".join(problems))
        return self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Settings:
        """Validate already-loaded data (no interpolation); problems raise ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError("the top level must be a mapping of sections")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            # ``from None``: pydantic's own message shows input values, secrets included.
            raise ConfigError(_describe_errors(exc, data)) from None

    def model(self, name: str) -> ModelConfig:
        """The configured model ``name``, or the defaults for a model missing from the config."""
        found = self._model_cache.get(name)
        if found is None:
            found = next((m for m in self.models if m.name == name), None) or ModelConfig(name=name)
            self._model_cache[name] = found
        return found

    def summary(self) -> list[str]:
        """Human lines for ``monitor check-config``; never a secret."""
        k = self.kafka
        lines = [
            f"kafka: {k.bootstrap_servers} (group {k.group_id})",
            f"topics: predictions={k.predictions_topic} labels={k.labels_topic} "
            f"dead letters={k.dead_letter_topic or '(database only)'}",
            f"database: {mask_url(self.database.url.get_secret_value())}",
            f"http: {self.http.listen}" if self.http.enabled else "http: disabled",
            f"models: {len(self.models)}"
            + ("" if self.models else " (every model is monitored with the defaults)"),
        ]
        for m in self.models:
            ref = m.reference
            source = "none" if ref is None else ref.path or f"warm-up of {ref.warmup} events"
            lines.append(
                f"  {m.name}: window {format_duration(m.window)}, lateness "
                f"{format_duration(m.allowed_lateness)}, {m.task}, reference {source}"
            )
        rules = f"{len(self.rules)}" if self.rules else "0 (built-in default rules apply)"
        lines.append(
            f"channels: {len(self.channels)}, triggers: {len(self.triggers)}, rules: {rules}"
        )
        return lines


def default_settings() -> Settings:
    """Every option at its default (DESIGN.md §9)."""
    return Settings()


def _names(items: Any) -> list[tuple[int, str]]:
    if not isinstance(items, list):
        return []
    return [
        (i, item["name"])
        for i, item in enumerate(items)
        if isinstance(item, Mapping) and isinstance(item.get("name"), str)
    ]


def _reference_problems(data: Mapping[str, Any]) -> list[str]:
    """Duplicate names and references to unknown channels / triggers, on raw or dumped data."""
    problems = []
    for section, what in (("models", "model"), ("rules", "rule")):
        seen: set[str] = set()
        for i, name in _names(data.get(section)):
            if name.strip() in seen:
                problems.append(f"{section}[{i}].name: duplicate {what} name '{name}'")
            seen.add(name.strip())
    known = {s: data.get(s) or {} for s in ("channels", "triggers")}
    rules = data.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, Mapping):
            continue
        label = rule.get("name")
        where = f"rules[{i}] ({label})" if isinstance(label, str) else f"rules[{i}]"
        notify, trigger = _listify(rule.get("notify") or []), rule.get("trigger")
        if isinstance(known["channels"], Mapping) and isinstance(notify, list):
            problems += [
                f"{where}.notify: unknown channel '{c}'"
                for c in notify
                if isinstance(c, str) and c.strip() not in known["channels"]
            ]
        triggers = known["triggers"]
        if (
            isinstance(triggers, Mapping)
            and isinstance(trigger, str)
            and trigger.strip() not in triggers
        ):
            problems.append(f"{where}.trigger: unknown trigger '{trigger}'")
    return problems


# --- error translation ------------------------------------------------------------------------

_PLAIN = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": "has the wrong format",
}


def format_path(loc: tuple[str | int, ...]) -> str:
    """``('models', 1, 'window')`` → ``models[1].window``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return "must be one of: " + ", ".join(re.findall(r"'([^']*)'", ctx.get("expected", "")))
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must have at least {n} items"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {"greater_than": "greater than", "greater_than_equal": "at least"}
        words |= {"less_than": "less than", "less_than_equal": "at most"}
        return f"must be {words[kind]} {next(iter(ctx.values()), '')}"
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


def _unwrap(node: Any) -> Any:
    if get_origin(node) in (Union, types.UnionType):
        args = [a for a in get_args(node) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return node


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class validating the mapping at ``loc`` (for did-you-mean hints)."""
    node: Any = Settings
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = {(f.alias or n): f for n, f in node.model_fields.items()}
            node = fields[part].annotation if part in fields else None
        elif get_origin(node) in (list, dict):
            node = get_args(node)[-1]
        else:
            return None
    node = _unwrap(node)
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


def _hint(loc: tuple[str | int, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return ""
    known = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(loc[-1], known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(error: Any, data: Mapping[str, Any]) -> str:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    path = format_path(loc) or "(top level)"
    if len(loc) >= 2 and loc[0] in ("models", "rules") and isinstance(loc[1], int):
        names = dict(_names(data.get(str(loc[0]))))
        if loc[1] in names:  # rules[0] (feature-drift).direction: name the item too
            head = format_path(loc[:2])
            path = f"{head} ({names[loc[1]]}){path[len(head) :]}"
    message = _message(error)
    if error["type"] == "extra_forbidden":
        message += _hint(loc)
    return f"{path}: {message}"


def _describe_errors(exc: ValidationError, data: Mapping[str, Any]) -> list[str]:
    problems = [
        _describe(e, data)
        for e in exc.errors(include_url=False)
        if not isinstance((e.get("ctx") or {}).get("error"), _ReferenceError)
    ]
    problems += _reference_problems(data)
    return problems or [str(exc.errors()[0]["msg"])]


# --- ${VAR} interpolation ---------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


def _expand(text: str, env: Mapping[str, str], path: str, problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        body = _BODY.fullmatch(match["body"] or "")
        if body is None or "${" in (body["default"] or ""):
            problems.append(
                f"{path}: invalid reference '{match[0]}' (use ${{VAR}} or ${{VAR:-default}}, "
                "$${ for a literal ${)"
            )
            return ""
        value = env.get(body["name"])
        if body["default"] is not None and not value:
            return str(body["default"])
        if value is None:
            problems.append(f"{path}: environment variable {body['name']} is not set")
            return ""
        return value

    return _REFERENCE.sub(replace, text)


def _walk(
    node: Any, env: Mapping[str, str], loc: tuple[str | int, ...], problems: list[str]
) -> Any:
    if isinstance(node, str):
        return _expand(node, env, format_path(loc), problems)
    if isinstance(node, dict):
        return {k: _walk(v, env, (*loc, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, env, (*loc, i), problems) for i, v in enumerate(node)]
    return node


def interpolate(data: Any, env: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string value (keys are left alone).

    The default applies when the variable is unset or empty; ``$${`` is a literal ``${``.
    Results stay strings: a secret is never re-parsed as YAML. Unset variables without a
    default raise one ConfigError naming each variable and where it occurs.
    """
    problems: list[str] = []
    result = _walk(data, env, (), problems)
    if problems:
        raise ConfigError(problems)
    return result


# --- loading ----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{file}: {where}YAML syntax error: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: YAML syntax error: {exc}") from None
    finally:
        loader.dispose()


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate (``env`` defaults to ``os.environ``) and validate one YAML file."""
    file = Path(path)
    data = _read_yaml(file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"{file}: the top level must be a mapping of sections, not {kind}")
    return Settings.from_mapping(interpolate(data, os.environ if env is None else env))


# --- masking ----------------------------------------------------------------------------------

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&][^=&#\s]*(?:password|passwd|pwd|secret|token|key)[^=&#\s]*=)[^&#\s]*",
    re.IGNORECASE,
)


def mask_url(url: str) -> str:
    """Hide credentials in URLs (also inside longer text): ``scheme://user:pw@host`` becomes
    ``scheme://***@host`` and ``?password=x`` becomes ``?password=***``."""
    return _QUERY_SECRET.sub(r"\g<key>***", _USERINFO.sub(r"\g<scheme>***@", url))
