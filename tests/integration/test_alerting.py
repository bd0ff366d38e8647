"""Issue 5 acceptance through the real pipeline: windows close, rules fire, the outbox delivers.

A reference of 20,000 rows, then JSON Lines replayed through ``monitor.app.replay`` (decode,
windows, checkpoint, close, evaluate, alert, deliver), into SQLite and, when configured,
PostgreSQL. Notifications reach a real SMTP server (aiosmtpd, apprise ``mailto://``) and a
real HTTP receiver (apprise ``json://``); retraining triggers reach the same receiver, which
checks their Standard Webhooks signature.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from monitor.actions.webhook import verify
from monitor.alert_views import alerts_report, outbox_report
from monitor.alerting import AlertEvaluator
from monitor.app import build_relay, replay
from monitor.reference.service import build_and_store
from monitor.settings import Settings
from monitor.store import alerts as stored_alerts
from monitor.store import db
from tests.support.drift_streams import (
    MeanShift,
    feature_space,
    window_events,
    window_start,
    write_events,
    write_reference,
)
from tests.support.receiver import Received, Receiver
from tests.support.smtp import smtp_server, text_of

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

SPACE = feature_space(seed=0)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's test key
DRIFTING = tuple(f"f{i:02d}" for i in range(10))  # ten features drift together
WINDOWS = 2_000  # events per window


@contextmanager
def migrated(url: str) -> Iterator[Engine]:
    engine = db.create_db_engine(url)
    db.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    with migrated(database_url) as engine:
        yield engine


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reference(tmp_path_factory.mktemp("reference") / "reference.jsonl", SPACE)


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Windows 0-1 calm, 2-4 with ten features shifted by 1 sd, 5-8 calm again."""
    path = tmp_path_factory.mktemp("episode") / "events.jsonl"
    shifted = window_events(
        SPACE, [WINDOWS] * 5, seed=3, changes=[MeanShift(DRIFTING, 1.0, window_start(2))]
    )
    calm = window_events(SPACE, [WINDOWS] * 4, seed=4, start_ms=window_start(5), id_prefix="calm")
    return write_events(path, itertools.chain(shifted, calm))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def settings_for(
    database_url: str, receiver: Receiver, smtp_port: int | None = None, **extra: Any
) -> Settings:
    """Chat (json://) and optionally email channels, a signed trigger, one psi rule."""
    channels: dict[str, Any] = {"chat": {"urls": [f"json://127.0.0.1:{receiver.port}/chat"]}}
    notify = ["chat"]
    if smtp_port is not None:
        channels["email"] = {
            "urls": [
                f"mailto://127.0.0.1:{smtp_port}?from=monitor@example.com&to=oncall@example.com"
            ]
        }
        notify.append("email")
    rule = {
        "name": "feature-drift",
        "metric": "psi",
        "features": "f*",
        "warn": 0.1,
        "critical": 0.25,
        "notify": notify,
        "trigger": "retrain",
    }
    return Settings.from_mapping(
        {
            "database": {"url": database_url},
            "http": {"public_url": "http://monitor.example:9108"},
            "alerting": {"group_wait": "0s", "retry_base": "50ms", "retry_cap": "500ms"},
            "models": [{"name": "m", "window": "5m", "min_samples": 200}],
            "channels": channels,
            "triggers": {"retrain": {"url": f"{receiver.url}/retrain", "secret": SECRET}},
            "rules": [rule],
            **extra,
        }
    )


def replay_episode(settings: Settings, engine: Engine, reference: Path, events: Path) -> None:
    """Reference, then the events one window per batch (so windows close as they go)."""
    build_and_store(settings, engine, "m", reference, None, datetime.now(UTC))
    replay(settings, engine, events, "predictions", flush=True, batch_size=WINDOWS)


def chat_messages(receiver: Receiver) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.requests("/chat")]


def signature_ok(request: Received) -> bool:
    return verify(SECRET, request.headers, request.body, int(time.time()))


def test_drift_episode_notifies_once_per_transition_and_triggers_once(
    database_url: str, engine: Engine, reference_file: Path, episode: Path, receiver: Receiver
) -> None:
    """Firing and resolved each arrive as ONE grouped email and chat message naming the ten
    features; the retraining webhook arrives once, and its signature verifies."""
    with smtp_server() as (inbox, port):
        settings = settings_for(database_url, receiver, port)
        replay_episode(settings, engine, reference_file, episode)
        mails = inbox.messages()

    chat = chat_messages(receiver)
    assert [m["type"] for m in chat] == ["failure", "success"], chat  # critical firing, resolved
    assert [m["Subject"].startswith("[FIRING") for m in mails] == [True, False]
    assert mails[1]["Subject"].startswith("[RESOLVED")
    firing_mail, firing_chat = text_of(mails[0]), chat[0]["message"]
    for text in (firing_mail, firing_chat, chat[0]["title"]):
        assert "m" in text and "feature-drift" in text
    for feature in DRIFTING:
        assert feature in firing_mail and feature in firing_chat
    assert "0.25" in firing_chat and "psi" in firing_chat  # threshold and metric
    assert "http://monitor.example:9108/api/models/m/metrics" in firing_chat

    (trigger,) = receiver.requests("/retrain")
    assert signature_ok(trigger)
    tampered = Received(trigger.method, trigger.path, trigger.headers, trigger.body + b" ")
    assert not signature_ok(tampered)
    payload = trigger.json()
    assert payload["model"] == "m" and payload["rule"] == "feature-drift"
    assert payload["id"] == trigger.headers["webhook-id"]
    assert payload["window"]["start"] == "2024-03-01T00:10:00+00:00"
    assert {e["feature"] for e in payload["evidence"]["metrics"]} >= set(DRIFTING)

    alerts = alerts_report(engine, datetime.now(UTC))
    assert {a["feature"] for a in alerts} == set(DRIFTING)
    assert {(a["state"], a["severity"], a["silenced"]) for a in alerts} == {
        ("resolved", "critical", False)
    }
    assert outbox_report(engine) == []  # nothing pending or dead
    assert all(r["state"] == "delivered" for r in outbox_report(engine, everything=True))


def test_replaying_again_sends_nothing_new(
    database_url: str, engine: Engine, reference_file: Path, episode: Path, receiver: Receiver
) -> None:
    """Alert state lives in the database: a second replay of the same file re-sends nothing."""
    settings = settings_for(database_url, receiver)
    replay_episode(settings, engine, reference_file, episode)
    before = len(receiver.requests())
    replay(settings, engine, episode, "predictions", flush=True, batch_size=WINDOWS)
    assert len(receiver.requests()) == before == 3  # firing, resolved, one trigger


def test_silenced_alerts_send_nothing_but_are_listed(
    database_url: str, engine: Engine, reference_file: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """A silence on the rule and model suppresses every notification; alerts still fire."""
    events = write_events(
        tmp_path / "drift.jsonl",
        window_events(SPACE, [WINDOWS] * 4, seed=5, changes=[MeanShift(DRIFTING, 1.0, 0)]),
    )
    settings = settings_for(database_url, receiver)
    now = datetime.now(UTC)
    with db.transaction(engine, write=True) as conn:
        stored_alerts.add_silence(
            conn, rule="feature-*", model="m", feature=None, comment="known migration",
            starts_at=now, ends_at=now + timedelta(hours=2),
        )  # fmt: skip
    replay_episode(settings, engine, reference_file, events)

    assert chat_messages(receiver) == []
    alerts = alerts_report(engine, datetime.now(UTC))
    assert len(alerts) == len(DRIFTING)
    assert all(a["state"] == "firing" and a["silenced"] for a in alerts)
    assert {
        r["state"] for r in outbox_report(engine, everything=True) if r["kind"] == "notification"
    } == {"silenced"}


def test_firing_alerts_are_repeated_after_the_repeat_interval(
    database_url: str, engine: Engine, reference_file: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """While firing, the alerts are notified again once per ``repeat_interval`` (wall clock),
    grouped as one "still firing" message, and not before the interval has passed."""
    events = write_events(
        tmp_path / "drift.jsonl",
        window_events(SPACE, [WINDOWS] * 4, seed=5, changes=[MeanShift(DRIFTING, 1.0, 0)]),
    )
    settings = settings_for(
        database_url, receiver, alerting={"group_wait": "0s", "repeat_interval": "2s"}
    )
    replay_episode(settings, engine, reference_file, events)
    relay = build_relay(settings, engine, AlertEvaluator(settings))
    relay.run_once()  # too early: nothing is due yet
    assert [m["title"].split("]")[0] for m in chat_messages(receiver)] == ["[FIRING critical"]
    time.sleep(2.2)
    relay.run_once()
    relay.run_once()  # the second round delivers nothing new: notified_at moved on
    titles = [m["title"] for m in chat_messages(receiver)]
    assert len(titles) == 2 and "still firing" in chat_messages(receiver)[1]["message"].lower()
    for feature in DRIFTING:
        assert feature in chat_messages(receiver)[1]["message"]


def test_flapping_metric_fires_and_resolves_once(
    database_url: str, engine: Engine, reference_file: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """Events per window alternate above and below a rule's threshold, then settle below:
    one firing and one resolved notification (default for / resolve_after)."""
    counts = [1_500, 600, 1_500, 600, 1_500, 600, 600, 600]
    events = write_events(tmp_path / "flap.jsonl", window_events(SPACE, counts, seed=6))
    rule = {"name": "busy", "metric": "events", "features": "-", "warn": 1_000,
            "notify": ["chat"]}  # fmt: skip
    settings = settings_for(database_url, receiver, rules=[rule])
    build_and_store(settings, engine, "m", reference_file, None, datetime.now(UTC))
    replay(settings, engine, events, "predictions", flush=True, batch_size=300)

    chat = chat_messages(receiver)
    assert [m["title"].split("]")[0] for m in chat] == ["[FIRING warn", "[RESOLVED"], chat


def test_trigger_waits_out_a_30s_outage_and_arrives_once(
    preferred_database_url: str, reference_file: Path, episode: Path, receiver: Receiver
) -> None:
    """The webhook endpoint refuses connections for 30 s, then answers: delivered exactly once,
    under the webhook id of its first attempt. (Once, on PostgreSQL when configured: the
    subject is the relay's retrying, which the other tests cover on both backends.)"""
    with migrated(preferred_database_url) as engine:
        outage_then_delivery(preferred_database_url, engine, reference_file, episode, receiver)


def outage_then_delivery(
    url: str, engine: Engine, reference_file: Path, episode: Path, receiver: Receiver
) -> None:
    settings = settings_for(url, receiver)
    receiver.stop()
    replay_episode(settings, engine, reference_file, episode)  # first attempts fail
    relay = build_relay(settings, engine, AlertEvaluator(settings))
    relay.start()
    try:
        down_until = time.monotonic() + 30
        while time.monotonic() < down_until:
            time.sleep(0.5)
        (row,) = [r for r in outbox_report(engine) if r["kind"] == "trigger"]
        assert row["state"] == "pending" and row["attempts"] > 5
        assert "connection refused" in row["last_error"]
        receiver.start()
        (trigger,) = receiver.wait_for(1, timeout=15, path_prefix="/retrain")
    finally:
        relay.stop()
    time.sleep(1.5)  # would-be duplicates have had time to arrive
    assert len(receiver.requests("/retrain")) == 1
    assert trigger.headers["webhook-id"] == row["key"] and signature_ok(trigger)
    (delivered,) = [r for r in outbox_report(engine, everything=True) if r["kind"] == "trigger"]
    assert delivered["state"] == "delivered"


def test_dead_trigger_says_so(
    database_url: str, engine: Engine, reference_file: Path, episode: Path, receiver: Receiver
) -> None:
    """A trigger the target rejects for good (404) is marked dead and the rule's channel hears
    about it."""
    receiver.respond = lambda r: 404 if r.path.startswith("/retrain") else 200
    settings = settings_for(database_url, receiver)
    replay_episode(settings, engine, reference_file, episode)
    relay = build_relay(settings, engine, AlertEvaluator(settings))
    relay.run_once()  # sends the notice the dead trigger queued
    (dead,) = outbox_report(engine)
    assert (dead["kind"], dead["state"], dead["attempts"]) == ("trigger", "dead", 1)
    assert "HTTP 404" in dead["last_error"]
    told = [m for m in chat_messages(receiver) if "retrain" in m["message"]]
    assert told and "404" in told[0]["message"]
