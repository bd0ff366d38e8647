"""The README stays true: every fenced block is exercised, and its tables match the code.

The ``bash`` blocks and their output samples run in ``tests/e2e/test_readme_commands.py``
(they need a broker); this file covers the rest without one: configs through the real
settings loader, events through the real parser, the reference sample through the real
profiler, the receiver code executed against what monitor signs, and the command and endpoint
tables against the CLI and the HTTP app. ``tests/support/readme.py`` says which block is what.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine

from monitor.actions.notify import Notifier
from monitor.actions.webhook import sign
from monitor.alert_views import rules_report
from monitor.api.http import build_app
from monitor.cli import main
from monitor.health import LoopHealth
from monitor.ingest.consumer import consumer_options
from monitor.ingest.events import EventParser, LabelEvent, PredictionEvent
from monitor.reference.profile import build_profile
from monitor.reference.readers import read_rows
from monitor.settings import ModelConfig, Settings, load_settings
from tests.support import readme
from tests.support.readme import Block

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's test key
# A value for every ${VAR} the README's configs use, valid where the config checks it.
SAMPLE_ENV = {
    "SLACK_WEBHOOK_URL": "slack://T000/B000/XXXX",
    "SMTP_USER": "alerts",
    "SMTP_PASSWORD": "pw",
    "AIRFLOW_TOKEN": "token",
    "RETRAIN_SECRET": SECRET,
    "KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092",
    "MONITOR_DATABASE_URL": "postgresql+psycopg://monitor:secret@db:5432/monitor",
    "MONITOR_HTTP_TOKEN": "change-me",
    "KAFKA_PASSWORD": "pw",
}

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")
BLOCKS = readme.blocks()


def of_kind(kind: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind == kind]


def ids(blocks: list[Block]) -> list[str]:
    return [f"line{b.line}" for b in blocks]


# --- every block is exercised -----------------------------------------------------------------


def test_every_block_is_exercised_by_a_test() -> None:
    """Each fenced block has an info string some test handles; none is left unchecked."""
    assert BLOCKS, "no fenced blocks found"
    problems = readme.check_plan(BLOCKS)
    assert not problems, "\n".join(problems)


def test_exempt_lines_are_few_used_and_run_elsewhere_where_promised() -> None:
    """The exemption list is tiny and current; each delegated command is run by its test."""
    lines = [line for b in of_kind("bash") for line in readme.command_lines(b)]
    skipped = [line for line in lines if readme.exemption(line)]
    assert len(skipped) <= 6, skipped
    for prefix in (*readme.EXEMPT, *readme.ELSEWHERE):
        assert any(line.startswith(prefix) for line in lines), f"unused exemption {prefix!r}"
    for prefix, test in readme.ELSEWHERE.items():
        assert prefix in (readme.ROOT / test).read_text(encoding="utf-8"), (prefix, test)


def test_quickstart_has_exactly_two_setup_commands() -> None:
    """The Quickstart asks for two commands: the demo and the tests."""
    (block,) = [b for b in BLOCKS if b.section == "Quickstart"]
    commands = [line.split()[0] for line in readme.command_lines(block)]
    assert commands == ["scripts/demo", "scripts/test"]


def test_readme_sections_come_in_the_order_a_reader_needs() -> None:
    """What and why, Quickstart, events, reference, windows, metrics, rules, channels and
    triggers, production, operations, troubleshooting; the Performance section is kept."""
    wanted = [
        "Quickstart",
        "Events: the contract, and your own format",
        "Reference profiles",
        "Windows and lateness",
        "Metrics, and how decisions are made",
        "Rules and alerts",
        "Channels and retraining triggers",
        "Running in production",
        "Operating it",
        "Troubleshooting",
    ]
    found = readme.sections()
    assert found[: len(wanted)] == wanted
    assert "Performance" in found


# --- yaml: configs load through the real loader --------------------------------------------------


def channels_and_triggers() -> dict[str, Any]:
    """The channels and triggers every README config may refer to by name."""
    merged: dict[str, Any] = {"channels": {}, "triggers": {}}
    for block in of_kind("yaml"):
        data = yaml.safe_load(block.text) or {}
        for section in merged:
            merged[section].update(data.get(section) or {})
    return merged


def load(block: Block, tmp_path: Path) -> Settings:
    """``block`` as a config file (merged into the README's channels and triggers, which its
    rules name), read by ``load_settings`` with `SAMPLE_ENV`."""
    data = yaml.safe_load(block.text)
    assert isinstance(data, dict), f"{block.where}: a config snippet has top-level sections"
    text = yaml.safe_dump({**channels_and_triggers(), **data}) if "rules" in data else block.text
    file = tmp_path / "snippet.yaml"
    file.write_text(text, encoding="utf-8")
    return load_settings(file, SAMPLE_ENV)


@pytest.mark.parametrize("block", of_kind("yaml"), ids=ids(of_kind("yaml")))
def test_yaml_block_is_a_valid_config_that_does_what_it_says(block: Block, tmp_path: Path) -> None:
    """Each config snippet loads, and its channels, rules and Kafka options take effect."""
    settings = load(block, tmp_path)
    data = yaml.safe_load(block.text)
    if settings.channels:
        Notifier(settings.channels)  # apprise accepts every URL (check-config asks the same)
    if settings.rules:
        listed = {r["name"] for r in rules_report(settings)}
        assert {r.name for r in settings.rules} <= listed
    security = (data.get("kafka") or {}).get("security")
    if security:
        assert set(security) <= set(KafkaConsumer.DEFAULT_CONFIG)  # kafka-python's names
        assert set(security) <= set(KafkaProducer.DEFAULT_CONFIG)  # the dead-letter producer
        options = consumer_options(settings)
        assert options["sasl_plain_password"] == SAMPLE_ENV["KAFKA_PASSWORD"]
        assert options["security_protocol"] == security["security_protocol"]
    if readme.file_name(block):  # a file the commands use: secrets from the environment
        assert settings.database.url.get_secret_value() == SAMPLE_ENV["MONITOR_DATABASE_URL"]


# --- json: events parse with the real parser -----------------------------------------------------


@pytest.mark.parametrize("block", of_kind("json"), ids=ids(of_kind("json")))
def test_json_block_is_an_event_monitor_accepts(block: Block, tmp_path: Path) -> None:
    """Each example event (one JSON document) parses into the prediction or label it shows,
    read with the field mapping that follows it, if any."""
    mapping = readme.mapping_for(block, BLOCKS)
    settings = load(mapping, tmp_path) if mapping else Settings()
    parser = EventParser(settings, time.time)
    doc = json.loads(block.text)
    kind = "labels" if "label" in doc else "predictions"
    event = parser.parse(_Record(block.text.encode()), kind, "t", 0, parser.latest_usable_ms())
    assert isinstance(event, PredictionEvent | LabelEvent), (block.where, event)
    assert event.model and event.id
    if isinstance(event, LabelEvent):
        assert event.label is not None
        return
    assert event.features and event.prediction is not None and event.score is not None
    if mapping:  # the mapped paths found the values
        assert (event.model, event.version, event.id) == ("fraud", "3", "a1")
        assert event.features == doc["inputs"] and event.score == pytest.approx(0.87)


class _Record:
    offset = 0
    timestamp = None

    def __init__(self, value: bytes) -> None:
        self.value = value


# --- csv: the reference sample profiles as described ---------------------------------------------


def test_csv_block_is_a_reference_file_monitor_profiles(tmp_path: Path) -> None:
    """The reference sample's flat columns are features; ts, prediction, score, label are not."""
    (block,) = of_kind("csv")
    file = tmp_path / "train.csv"
    file.write_text(block.text, encoding="utf-8")
    profile = build_profile(read_rows(file), ModelConfig(name="fraud"), None, str(file))
    assert set(profile.features) == {"amount", "country"}
    assert profile.features["country"].type == "categorical"
    assert profile.rows == 2 and "accuracy" in profile.baseline


# --- python: the receiver check verifies what monitor signs --------------------------------------


def test_readme_receiver_check_accepts_our_signature_and_rejects_tampering() -> None:
    """The receiver code a user copies from the README verifies what monitor signs, and
    rejects a tampered body and a replayed (stale) message."""
    (block,) = of_kind("python")
    namespace: dict[str, Any] = {}
    exec(block.text, namespace)  # noqa: S102 - our own documentation, run to keep it honest
    body, stamp = b'{"model": "churn"}', int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(SECRET, "msg_1", stamp, body),
    }
    assert namespace["verify"](SECRET, headers, body)
    assert not namespace["verify"](SECRET, headers, body + b" ")
    stale = stamp - 600  # correctly signed, but ten minutes old: outside the 5-minute tolerance
    old = {**headers, "webhook-timestamp": str(stale),
           "webhook-signature": sign(SECRET, "msg_1", stale, body)}  # fmt: skip
    assert namespace["verify"](SECRET, old, body, tolerance=900)
    assert not namespace["verify"](SECRET, old, body)


# --- tables: commands and endpoints match the code -----------------------------------------------


def table(section: str) -> list[list[str]]:
    """The rows (cells) of the first table in ``section``, header excluded."""
    text = readme.README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]


def leaf(words: list[str]) -> tuple[str, click.Command]:
    """The command a synopsis names (``reference build``) and its click object."""
    command: click.Command = main
    path = []
    for word in words:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
        path.append(word)
    return " ".join(path), command


COMMON = {"--config", "--json", "--help"}  # said once above the table


def options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in p.opts if o.startswith("--")} - COMMON


def test_commands_table_lists_every_command_and_option_of_the_cli() -> None:
    """Each synopsis names a real command with its real options, and none is missing."""
    seen: dict[str, set[str]] = {}
    for cells in table("Commands"):
        for synopsis in re.findall(r"`([^`]+)`", cells[0]):
            words = synopsis.replace("\\|", "|").split()
            words = words[1:] if words[0] == "monitor" else words
            name, command = leaf(words)
            assert name, synopsis
            seen[name] = set(re.findall(r"--[\w-]+", synopsis)) - COMMON
            assert seen[name] <= options(command), (synopsis, options(command))
    leaves = {
        " ".join(p)
        for p, c in _walk(main, [])
        if not isinstance(c, click.Group) or c.name in ("alerts",)
    }
    leaves -= {"alerts silence", "alerts unsilence", "alerts silences"}  # in the alerts row
    assert leaves <= set(seen), sorted(leaves - set(seen))
    for name, given in seen.items():
        _, command = leaf(name.split())
        assert options(command) <= given, (name, options(command) - given)


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)] if path else []
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _walk(sub, [*path, name])
    return found


def test_http_table_lists_exactly_the_served_endpoints() -> None:
    """The endpoint table names every route of the HTTP app and no other."""
    app = build_app(Settings(), create_engine("sqlite://"), LoopHealth(30.0), CollectorRegistry())
    served = {getattr(r, "path", None) for r in app.routes}
    documented = {re.sub(r"\?.*", "", re.findall(r"`([^`]+)`", cells[0])[0])
                  for cells in table("Operating it")}  # fmt: skip
    assert documented == served


def test_sample_matching_needs_every_line_in_order() -> None:
    """The output-sample comparison ignores spacing, honours ``...`` and order."""
    output = "a  b\nnoise\nc 12 d\n"
    assert readme.sample_matches("a b\n...\nc ... d", output) is None
    assert readme.sample_matches("c ... d\na b", output) is not None
    assert readme.sample_matches("x", output) is not None
