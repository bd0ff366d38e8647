"""Settings: defaults, durations, ${VAR} interpolation, secrets and config error reporting."""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from monitor.errors import ConfigError
from monitor.settings import (
    ModelConfig,
    Settings,
    default_settings,
    format_duration,
    interpolate,
    load_settings,
    mask_url,
    parse_duration,
)

CONFIG_FILE = Path(__file__).resolve().parents[2] / "config" / "monitor.yaml"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - test value


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping(data)
    return info.value.errors


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_match_design() -> None:
    """Every scalar default equals DESIGN.md §9."""
    s = default_settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert (s.kafka.group_id, s.kafka.predictions_topic, s.kafka.labels_topic) == (
        "monitor",
        "predictions",
        "labels",
    )
    assert s.kafka.dead_letter_topic is None
    assert s.kafka.security == {}
    assert s.kafka.consumer == {"auto_offset_reset": "earliest"}
    assert s.database.url.get_secret_value() == "sqlite:///monitor.db"
    assert (s.ingest.fields.model, s.ingest.fields.version) == ("model", "version")
    assert s.ingest.default_model is None
    assert s.ingest.commit_interval == timedelta(seconds=5)
    assert s.ingest.commit_every == 20000
    assert s.ingest.max_event_bytes == 1048576
    assert s.ingest.max_clock_skew == timedelta(minutes=10)
    assert s.ingest.idle_timeout == timedelta(minutes=1)
    assert s.ingest.unknown_models == "accept"
    assert (s.http.enabled, s.http.listen, s.http.token, s.http.public_url) == (
        True,
        "127.0.0.1:9108",
        None,
        None,
    )
    assert (s.logging.level, s.logging.format) == ("info", "auto")
    assert s.alerting.group_wait == timedelta(seconds=30)
    assert s.alerting.repeat_interval == timedelta(hours=4)
    assert (s.models, s.channels, s.triggers, s.rules) == ([], {}, {}, [])


def test_model_defaults_match_design() -> None:
    """A model's defaults (window, lateness, field paths, thresholds) equal DESIGN.md §9."""
    m = ModelConfig(name="churn")
    assert m.window == timedelta(minutes=5)
    assert m.allowed_lateness == timedelta(minutes=1)
    assert m.reference is None
    assert m.fields.model_dump() == {
        "id": "id",
        "ts": "ts",
        "features": "features",
        "prediction": "prediction",
        "score": "score",
        "scores": "scores",
        "label": "label",
        "segment": "segment",
    }
    assert (m.features, m.segments, m.task) == ({}, [], "binary_classification")
    assert (m.min_samples, m.min_labels) == (200, 100)
    assert m.label_horizon == timedelta(days=7)
    assert m.early_label_grace == timedelta(minutes=10)


def test_rule_defaults_match_design() -> None:
    """A rule's optional fields default as in DESIGN.md §9 and single strings become lists."""
    s = Settings.from_mapping(
        {
            "channels": {"c": {"urls": ["json://localhost"]}},
            "rules": [
                {"name": "r", "metric": "psi", "warn": 0.1, "models": "churn", "notify": "c"}
            ],
        }
    )
    r = s.rules[0]
    assert (r.models, r.versions, r.segments, r.features) == (["churn"], ["*"], ["*"], ["*"])
    assert (r.direction, r.critical, r.clear, r.relative_to_reference) == (
        "above",
        None,
        None,
        False,
    )
    assert (r.for_, r.resolve_after, r.min_samples, r.notify, r.trigger) == (
        1,
        2,
        None,
        ["c"],
        None,
    )


def test_config_file_loads_and_equals_defaults() -> None:
    """config/monitor.yaml loads without environment variables and states the defaults."""
    assert load_settings(CONFIG_FILE, env={}) == default_settings()


def test_config_file_examples_are_valid(tmp_path: Path) -> None:
    """The commented-out examples of config/monitor.yaml are valid once uncommented."""
    lines, inside = [], False
    for line in CONFIG_FILE.read_text(encoding="utf-8").splitlines():
        section = re.fullmatch(r"(models|channels|triggers|rules): (\[\]|\{\})", line)
        if section:
            lines.append(f"{section[1]}:")
            inside = True
        elif inside and line.startswith("#  "):
            lines.append(line[1:])
        else:
            inside = False
            lines.append(line)
    env = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/x",
        "SMTP_USER": "u",
        "SMTP_PASSWORD": "p",
        "RETRAIN_URL": "https://ci.example.com/hook",
        "RETRAIN_SECRET": WEBHOOK_SECRET,
    }
    s = load_settings(write(tmp_path, "\n".join(lines)), env=env)
    assert [m.name for m in s.models] == ["churn"]
    assert sorted(s.channels) == ["oncall-email", "team-chat"]
    assert list(s.triggers) == ["retrain-churn"]
    assert [r.name for r in s.rules] == ["feature-drift", "accuracy-drop"]


def test_empty_file_and_empty_sections_mean_defaults(tmp_path: Path) -> None:
    """An empty file, or a section written with nothing under it, gives the defaults."""
    assert load_settings(write(tmp_path, ""), env={}) == default_settings()
    text = "kafka:\nmodels:\nchannels:\nrules:\n"
    assert load_settings(write(tmp_path, text), env={}) == default_settings()


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        ("30", timedelta(seconds=30)),
        (30, timedelta(seconds=30)),
        (2.5, timedelta(seconds=2.5)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_parse_duration_valid(value: Any, expected: timedelta) -> None:
    """Unit strings, their combinations and plain numbers (seconds) parse to a timedelta."""
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value",
    ["5x", "", "m", "5 minutes", "1h30", "-5m", "5M", "h1", "1..5s", "nan", True, -1, float("inf")],
)
def test_parse_duration_invalid(value: Any) -> None:
    """Anything else is refused with "'<value>' is not a duration"."""
    with pytest.raises(ValueError, match=re.escape(f"'{value}' is not a duration")):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "formatted"),
    [("5m", "5m"), ("90m", "1h30m"), ("7d", "7d"), ("500ms", "500ms"), ("0", "0s")],
)
def test_format_duration_round_trips(text: str, formatted: str) -> None:
    """format_duration writes the shortest unit string, which parses back to the same value."""
    assert format_duration(parse_duration(text)) == formatted
    assert parse_duration(formatted) == parse_duration(text)


def test_duration_fields_are_timedeltas() -> None:
    """Every duration field accepts strings and numbers and holds a timedelta."""
    s = Settings.from_mapping(
        {
            "models": [{"name": "m", "window": 90, "label_horizon": "1w"}],
            "alerting": {"group_wait": 0},
        }
    )
    assert s.models[0].window == timedelta(seconds=90)
    assert s.models[0].label_horizon == timedelta(weeks=1)
    assert s.alerting.group_wait == timedelta(0)


# --- interpolation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "env", "expected"),
    [
        ("${GROUP}", {"GROUP": "g1"}, "g1"),
        ("pre-${GROUP}-post", {"GROUP": "g1"}, "pre-g1-post"),
        ("${GROUP:-fallback}", {}, "fallback"),
        ("${GROUP:-fallback}", {"GROUP": ""}, "fallback"),
        ("${GROUP:-fallback}", {"GROUP": "set"}, "set"),
        ("${A}${B:-b}", {"A": "a"}, "ab"),
        ("$${GROUP}", {"GROUP": "g1"}, "${GROUP}"),
        ("cost $5 and $$ stay", {}, "cost $5 and $$ stay"),
    ],
)
def test_interpolation(raw: str, env: dict[str, str], expected: str) -> None:
    """${VAR}, ${VAR:-default} (unset or empty) and the $${ escape expand in string values."""
    assert interpolate({"kafka": {"group_id": raw}}, env) == {"kafka": {"group_id": expected}}


@pytest.mark.parametrize("value", ["true", "123", "{a: 1}", "- x", "null", "'quoted'", "a: b"])
def test_interpolated_value_stays_a_string(tmp_path: Path, value: str) -> None:
    """A substituted value that looks like YAML is kept verbatim as a string."""
    path = write(tmp_path, "kafka:\n  consumer: {client_id: '${CLIENT}'}\n")
    s = load_settings(path, env={"CLIENT": value})
    assert s.kafka.consumer["client_id"] == value


def test_unset_variable_names_variable_and_path(tmp_path: Path) -> None:
    """An unset ${VAR} without default is a ConfigError naming the variable and the field path."""
    path = write(
        tmp_path,
        """
        database:
          url: ${MONITOR_DATABASE_URL}
        channels:
          team-chat: {urls: ["${SLACK_WEBHOOK_URL}"]}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.errors == [
        "database.url: environment variable MONITOR_DATABASE_URL is not set",
        "channels.team-chat.urls[0]: environment variable SLACK_WEBHOOK_URL is not set",
    ]


def test_invalid_reference_is_an_error() -> None:
    """A malformed ${...} (unterminated, bad name) is reported instead of passing through."""
    with pytest.raises(ConfigError) as info:
        interpolate({"a": "${OPEN", "b": "${1BAD}"}, {})
    assert [e.split(":")[0] for e in info.value.errors] == ["a", "b"]


def test_keys_are_not_interpolated() -> None:
    """Only values are interpolated; mapping keys are kept as written."""
    assert interpolate({"${K}": "v"}, {}) == {"${K}": "v"}


def test_environment_defaults_to_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_settings reads os.environ when no env mapping is given."""
    monkeypatch.setenv("MONITOR_TEST_GROUP", "from-env")
    path = write(tmp_path, "kafka: {group_id: '${MONITOR_TEST_GROUP}'}\n")
    assert load_settings(path).kafka.group_id == "from-env"


# --- secrets ----------------------------------------------------------------------------------

SECRETS = {
    "db": "db-pass-1",
    "token": "http-token-2",
    "slack": "slack-url-3",
    "trigger_url": "trigger-url-4",
    "header": "header-5",
    "kafka": "kafka-pass-6",
}


def secret_settings() -> Settings:
    return Settings.from_mapping(
        {
            "kafka": {
                "security": {"sasl_plain_username": "user", "sasl_plain_password": SECRETS["kafka"]}
            },
            "database": {"url": f"postgresql+psycopg://monitor:{SECRETS['db']}@db/monitor"},
            "http": {"token": SECRETS["token"]},
            "channels": {"chat": {"urls": [f"slack://{SECRETS['slack']}"]}},
            "triggers": {
                "retrain": {
                    "url": f"https://{SECRETS['trigger_url']}.example.com/hook",
                    "secret": WEBHOOK_SECRET,
                    "headers": {"Authorization": f"Bearer {SECRETS['header']}"},
                }
            },
        }
    )


def test_secrets_never_in_repr_str_dump_or_summary() -> None:
    """No secret value appears in repr, str, the JSON dump or the check-config summary."""
    s = secret_settings()
    shown = "\n".join([repr(s), str(s), s.model_dump_json(), *s.summary()])
    for secret in [*SECRETS.values(), WEBHOOK_SECRET]:
        assert secret not in shown


def test_secret_values_are_reachable() -> None:
    """Secrets keep their real values for the code that needs them."""
    s = secret_settings()
    assert s.database.url.get_secret_value().endswith(f"{SECRETS['db']}@db/monitor")
    assert isinstance(s.kafka.security["sasl_plain_password"], SecretStr)
    assert s.kafka.security_options() == {
        "sasl_plain_username": "user",
        "sasl_plain_password": SECRETS["kafka"],
    }
    assert s.triggers["retrain"].headers["Authorization"].get_secret_value().endswith("header-5")
    assert s.triggers["retrain"].target_url.startswith("https://trigger-url-4")


def test_summary_masks_database_password() -> None:
    """The summary names the database with its password masked, and the main counts."""
    summary = "\n".join(secret_settings().summary())
    assert "postgresql+psycopg://***@db/monitor" in summary
    assert "channels: 1, triggers: 1" in summary


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://u:pw@h/db", "postgresql+psycopg://***@h/db"),
        ("mailtos://user:pw@smtp.example.com", "mailtos://***@smtp.example.com"),
        ("https://p%40ss:w@rd@host:5432/x", "https://***@host:5432/x"),
        ("https://token@github.com/o/r", "https://***@github.com/o/r"),
        ("sqlite:///monitor.db", "sqlite:///monitor.db"),
        ("https://h/x?user=a&password=b&x=1", "https://h/x?user=a&password=***&x=1"),
        ("connect to redis://:pw@cache:6379 now", "connect to redis://***@cache:6379 now"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    """mask_url hides credentials in the user-info part and in secret-named query parameters."""
    assert mask_url(url) == masked


# --- broken configs ---------------------------------------------------------------------------

BROKEN = [
    (
        "models:\n  - {name: a}\n  - {name: b, window: 5x}\n",
        "models[1] (b).window: '5x' is not a duration",
    ),
    ("kafak: {}\n", "kafak: unknown field"),
    ("kafka: {group: x}\n", "kafka.group: unknown field (did you mean 'group_id'?)"),
    (
        "rules:\n  - {name: r, metric: psi, warn: 1, direction: sideways}\n",
        "rules[0] (r).direction: must be one of: above, below",
    ),
    (
        "rules:\n  - {name: feature-drift, metric: psi}\n",
        "rules[0] (feature-drift): at least one of warn / critical is required",
    ),
    (
        "channels: {c: {urls: ['json://h']}}\n"
        "rules:\n  - {name: a, metric: psi, warn: 1, notify: [c]}\n"
        "  - {name: b, metric: psi, warn: 1, notify: [c, x]}\n",
        "rules[1] (b).notify: unknown channel 'x'",
    ),
    (
        "rules:\n  - {name: a, metric: psi, warn: 1, trigger: nope}\n",
        "rules[0] (a).trigger: unknown trigger 'nope'",
    ),
    (
        "rules:\n  - {name: a, metric: psi, warn: 0.5, critical: 0.1}\n",
        "rules[0] (a): critical must not be below warn for direction above",
    ),
    (
        "rules:\n  - {name: a, metric: psi, warn: 1}\n  - {name: a, metric: js, warn: 1}\n",
        "rules[1].name: duplicate rule name 'a'",
    ),
    (
        "rules:\n  - {name: a, metric: psi, warn: 1, for: 0}\n",
        "rules[0] (a).for: must be greater than 0",
    ),
    (
        "models:\n  - {name: churn}\n  - {name: churn}\n",
        "models[1].name: duplicate model name 'churn'",
    ),
    (
        "models:\n  - {name: m, reference: {path: a.csv, warmup: 10}}\n",
        "models[0] (m).reference: give exactly one of path or warmup",
    ),
    (
        "models:\n  - {name: m, features: {plan: text}}\n",
        "models[0] (m).features.plan: must be one of: numeric, categorical, boolean",
    ),
    ("models:\n  - {window: 5m}\n", "models[0].name: is required"),
    ("http: {listen: localhost}\n", "http.listen: 'localhost' is not host:port"),
    ("http: {listen: '::1:9108'}\n", "http.listen: '::1:9108' is not host:port"),
    ("http: {listen: '127.0.0.1:70000'}\n", "http.listen: port 70000 is out of range 0-65535"),
    ("ingest: {unknown_models: maybe}\n", "ingest.unknown_models: must be one of: accept, reject"),
    ("ingest: {commit_every: lots}\n", "ingest.commit_every: must be an integer"),
    ("ingest: {commit_every: 1.5}\n", "ingest.commit_every: must be an integer"),
    ("ingest: {commit_every: true}\n", "ingest.commit_every: must be an integer"),
    ("ingest: {commit_every: 0}\n", "ingest.commit_every: must be greater than 0"),
    ("ingest: {commit_interval: 0s}\n", "ingest.commit_interval: must be greater than 0"),
    ("logging: {level: loud}\n", "logging.level: must be one of: debug, info, warning, error"),
    ("channels: {c: {urls: []}}\n", "channels.c.urls: must not be empty"),
    ("triggers: {t: {url: 'https://h', secret: nope}}\n", "triggers.t.secret: must be 'whsec_'"),
    ("triggers: {t: {preset: airflow, url: 'https://h'}}\n", "triggers.t: dag_id is required"),
    ("triggers: {t: {preset: github, repo: o/r}}\n", "triggers.t: event_type is required"),
    ("triggers: {t: {url: 'ftp://h'}}\n", "triggers.t.url: must be an http:// or https:// URL"),
    ("kafka: {predictions_topic: t, labels_topic: t}\n", "kafka: predictions_topic and labels"),
    ("- kafka\n", "the top level must be a mapping of sections, not list"),
    (
        "kafka:\n  group_id: a\n  group_id: b\n",
        "line 3, column 3: YAML syntax error: duplicate key",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN, ids=[e for _, e in BROKEN])
def test_broken_config_names_the_field(tmp_path: Path, text: str, expected: str) -> None:
    """Each broken config is one ConfigError whose message names the exact field path."""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env={})
    assert any(expected in error for error in info.value.errors), info.value.errors


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming the file."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.errors == [f"{path}: file not found"]


def test_yaml_syntax_error_has_line_number(tmp_path: Path) -> None:
    """A YAML syntax error is a ConfigError with the file and the line of the problem."""
    path = write(tmp_path, "kafka:\n  group_id: monitor\n  consumer: {a: [1, 2}\nhttp: {}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    (error,) = info.value.errors
    assert error.startswith(f"{path}: line 3, column ")
    assert "YAML syntax error" in error


def test_every_problem_is_listed(tmp_path: Path) -> None:
    """Several problems in one file are all reported in one ConfigError."""
    path = write(
        tmp_path,
        """
        kafka: {group_id: ''}
        ingest: {commit_every: many, unknown_models: maybe}
        models:
          - {name: a, window: 5x}
        rules:
          - {name: r, metric: psi, direction: up, warn: 1, notify: [ghost]}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert sorted(info.value.errors) == sorted(
        [
            "kafka.group_id: must not be empty",
            "ingest.commit_every: must be an integer",
            "ingest.unknown_models: must be one of: accept, reject",
            "models[0] (a).window: '5x' is not a duration",
            "rules[0] (r).direction: must be one of: above, below",
            "rules[0] (r).notify: unknown channel 'ghost'",
        ]
    )
    assert str(info.value) == "\n".join(info.value.errors)


def test_validation_error_does_not_leak_secrets() -> None:
    """Error messages never quote a secret value, even an invalid one."""
    errors = config_errors(
        {"triggers": {"t": {"url": "https://h", "secret": "not-a-secret-hunter2"}}}
    )
    assert errors == [
        "triggers.t.secret: must be 'whsec_' followed by base64 (a Standard Webhooks secret)"
    ]


def test_from_mapping_refuses_non_mapping() -> None:
    """from_mapping turns a non-mapping top level into a ConfigError."""
    with pytest.raises(ConfigError):
        Settings.from_mapping(["kafka"])  # type: ignore[arg-type]


# --- behaviour of the loaded object -----------------------------------------------------------


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after loading."""
    s = default_settings()
    with pytest.raises(ValidationError):
        s.kafka = s.kafka


def test_model_lookup_returns_configured_or_cached_default() -> None:
    """model(name) gives the configured model, else a cached default ModelConfig(name)."""
    s = Settings.from_mapping({"models": [{"name": "churn", "window": "1h"}]})
    assert s.model("churn").window == timedelta(hours=1)
    other = s.model("fraud")
    assert other == ModelConfig(name="fraud")
    assert s.model("fraud") is other


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("127.0.0.1:9108", "127.0.0.1", 9108), ("[::1]:0", "::1", 0), ("0.0.0.0:80", "0.0.0.0", 80)],
)
def test_http_listen_host_and_port(listen: str, host: str, port: int) -> None:
    """http.listen splits into host and port, IPv6 in brackets, port 0 allowed."""
    http = Settings.from_mapping({"http": {"listen": listen}}).http
    assert (http.host, http.port) == (host, port)


def test_logging_level_is_case_insensitive() -> None:
    """logging.level accepts any case and is stored lower-case."""
    assert Settings.from_mapping({"logging": {"level": "WARNING"}}).logging.level == "warning"


def test_kafka_consumer_options_merge_over_defaults() -> None:
    """User consumer options are added to the default auto_offset_reset, which they may override."""
    s = Settings.from_mapping({"kafka": {"consumer": {"max_poll_records": 500}}})
    assert s.kafka.consumer == {"auto_offset_reset": "earliest", "max_poll_records": 500}
    s = Settings.from_mapping({"kafka": {"consumer": {"auto_offset_reset": "latest"}}})
    assert s.kafka.consumer == {"auto_offset_reset": "latest"}


def test_github_trigger_url_defaults_to_dispatches() -> None:
    """A github trigger without url targets the repository_dispatch endpoint of its repo."""
    s = Settings.from_mapping(
        {"triggers": {"gh": {"preset": "github", "repo": "acme/models", "event_type": "retrain"}}}
    )
    assert s.triggers["gh"].target_url == "https://api.github.com/repos/acme/models/dispatches"
