"""Alerts as a user meets them: ``monitor run`` killed with deliveries pending, and the CLI.

A drift episode (ten features shift by 1 sd for three windows, then calm returns) goes
through the real daemon or ``monitor replay``; notifications go to a real HTTP receiver
through apprise ``json://``, retraining triggers to the same receiver, signed.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.actions.webhook import verify
from tests.support.chat import notices_by_kind
from tests.support.daemon import Deployment, deployment, kill, wait
from tests.support.drift_streams import (
    MeanShift,
    feature_space,
    window_events,
    window_start,
    write_events,
    write_reference,
)
from tests.support.kafka import produce
from tests.support.receiver import Receiver

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

SPACE = feature_space(seed=0)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's test key
DRIFTING = tuple(f"f{i:02d}" for i in range(10))
PER_WINDOW = 2_000


def episode_lines() -> list[bytes]:
    """Windows 0-1 calm, 2-4 drifted, 5-8 calm: one JSON event per line."""
    shifted = window_events(
        SPACE, [PER_WINDOW] * 5, seed=3, changes=[MeanShift(DRIFTING, 1.0, window_start(2))]
    )
    calm = window_events(
        SPACE, [PER_WINDOW] * 4, seed=4, start_ms=window_start(5), id_prefix="calm"
    )
    return [line for chunk in itertools.chain(shifted, calm) for line in chunk.splitlines()]


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reference(tmp_path_factory.mktemp("reference") / "reference.jsonl", SPACE)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def alerting_config(receiver: Receiver, retry: str = "1s") -> dict[str, Any]:
    """Config sections: one model, a chat channel, a signed trigger, one psi rule."""
    return {
        "models": [{"name": "m", "window": "5m", "min_samples": 200}],
        "alerting": {"group_wait": "0s", "retry_base": retry, "retry_cap": retry},
        "channels": {"chat": {"urls": [f"json://127.0.0.1:{receiver.port}/chat"]}},
        "triggers": {
            "retrain": {"url": f"{receiver.url}/retrain", "secret": SECRET, "timeout": "2s"}
        },
        "rules": [
            {
                "name": "feature-drift",
                "metric": "psi",
                "features": "f*",
                "warn": 0.1,
                "critical": 0.25,
                "notify": ["chat"],
                "trigger": "retrain",
            }
        ],
    }


def prepared(
    dep: Deployment,
    reference_file: Path,
    bootstrap: str | None = None,
    topic: str = "",
    partitions: int = 1,
) -> int:
    """Migrate, build the reference and (with ``bootstrap``) produce the episode round robin
    over ``partitions``; how many records were produced."""
    assert dep.run("db", "upgrade").returncode == 0
    built = dep.run("reference", "build", "--model", "m", "--data", str(reference_file))
    assert built.returncode == 0, built.stderr
    if bootstrap is None:
        return 0
    lines = episode_lines()
    produce(bootstrap, topic, [(i % partitions, line) for i, line in enumerate(lines)])
    return len(lines)


def pending_rows(dep: Deployment) -> list[tuple[str, str, int, Any]]:
    """(key, kind, attempts, claimed_until) of the undelivered outbox rows."""
    rows = dep.query(
        "SELECT key, kind, attempts, claimed_until FROM outbox WHERE state = 'pending'"
    )
    return [(k, kind, a, c) for k, kind, a, c in rows]


def test_sigkill_with_undelivered_outbox_rows_delivers_them_after_restart(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Any,
    preferred_database_url: str,
    reference_file: Path,
    receiver: Receiver,
) -> None:
    """Kill -9 while every delivery is failing (503): after a restart each pending row is
    delivered, the trigger under the webhook id it had before the kill."""
    topics = topic_factory(1)
    receiver.respond = lambda _: 503
    dep = deployment(
        tmp_path, kafka_bootstrap, preferred_database_url, topics.predictions, topics.labels,
        **alerting_config(receiver, retry="3s"),
    )  # fmt: skip
    prepared(dep, reference_file, kafka_bootstrap, topics.predictions)

    log = tmp_path / "first.log"
    daemon = dep.start("run", log=log)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # both kinds tried, failed, and released
            rows = pending_rows(dep) if daemon.poll() is None else []
            kinds = {kind for _, kind, attempts, claimed in rows if attempts and claimed is None}
            if kinds == {"notification", "trigger"} and all(r[3] is None for r in rows):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"no failed deliveries to kill over:\n{log.read_text()[-3000:]}")
    finally:
        kill(daemon)
    before = {key: kind for key, kind, _, _ in pending_rows(dep)}
    (webhook_id,) = [key for key, kind in before.items() if kind == "trigger"]
    refused = {r.headers["webhook-id"] for r in receiver.requests("/retrain")}
    assert refused == {webhook_id}

    receiver.respond = lambda _: 200
    seen = len(receiver.requests())
    second = dep.start("run", "--exit-when-idle", "10s", log=tmp_path / "second.log")
    assert wait(second, tmp_path / "second.log", 120) == 0
    delivered = {key: state for key, state in dep.query("SELECT key, state FROM outbox")}
    assert {key: delivered[key] for key in before} == dict.fromkeys(before, "delivered")
    after = receiver.requests()[seen:]
    triggers = [r for r in after if r.path.startswith("/retrain")]
    assert [t.headers["webhook-id"] for t in triggers] == [webhook_id]
    assert verify(SECRET, triggers[0].headers, triggers[0].body, int(time.time()))
    assert any(r.path.startswith("/chat") for r in after)


def test_two_replicas_deliver_each_notification_and_trigger_once(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Any,
    preferred_database_url: str,
    reference_file: Path,
    receiver: Receiver,
) -> None:
    """Two `monitor run` members of one group against one database (each with its HTTP
    server on a free port): each window is evaluated once, and the episode's firing and
    resolved messages and its trigger arrive once each."""
    topics = topic_factory(2)
    dep = deployment(
        tmp_path, kafka_bootstrap, preferred_database_url, topics.predictions, topics.labels,
        http={"enabled": True, "listen": "127.0.0.1:0"}, **alerting_config(receiver),
    )  # fmt: skip
    produced = prepared(dep, reference_file, kafka_bootstrap, topics.predictions, 2)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    members = [dep.start("run", "--exit-when-idle", "8s", "--flush", log=log) for log in logs]
    for member, log in zip(members, logs, strict=True):
        assert wait(member, log, 180) == 0, log.read_text()[-3000:]

    assert dep.stored_offsets() == produced
    ((closed,),) = dep.query("SELECT COUNT(*) FROM closed_windows")
    assert closed == 9
    # Windows close in either member, so a transition may leave in its own message, or one
    # member's firing and resolved notices in one digest (which lists ten, counts the rest).
    # What must hold: each notice is queued once, delivered once, and told once.
    queued = dep.query("SELECT payload, state FROM outbox WHERE kind = 'notification'")
    assert {state for _, state in queued} == {"delivered"}
    notices = sorted((n["kind"], n["feature"]) for n in (json.loads(p) for p, _ in queued))
    assert notices == sorted(itertools.product(("firing", "resolved"), DRIFTING))
    messages = [r.json() for r in receiver.requests("/chat")]
    told = sum(map(notices_by_kind, messages), Counter())
    assert told == {"FIRING": len(DRIFTING), "RESOLVED": len(DRIFTING)}, messages
    listed = [
        item
        for m in messages
        for item in re.findall(r"\*\*(FIRING|RESOLVED)[^*]*\*\* .* feature (f\d\d):", m["message"])
    ]
    assert len(set(listed)) == len(listed) and {f for _, f in listed} <= set(DRIFTING), listed
    triggers = receiver.requests("/retrain")
    assert len({t.headers["webhook-id"] for t in triggers}) == len(triggers) == 1


def test_alert_commands_list_silence_and_show_the_outbox(
    tmp_path: Path, kafka_bootstrap: str, reference_file: Path, receiver: Receiver
) -> None:
    """`monitor replay` raises the alerts; `monitor alerts|rules|outbox` show them and
    `alerts silence|unsilence` mark them, as a user types the commands."""
    events = write_events(tmp_path / "events.jsonl", iter([b"\n".join(episode_lines()) + b"\n"]))
    dep = deployment(
        tmp_path, kafka_bootstrap, f"sqlite:///{tmp_path}/monitor.db", "p", "l",
        **alerting_config(receiver),
    )  # fmt: skip
    prepared(dep, reference_file)
    replayed = dep.run("replay", str(events), "--flush")
    assert replayed.returncode == 0, replayed.stderr

    listed = json.loads(dep.run("alerts", "--json").stdout)
    assert {a["feature"] for a in listed} == set(DRIFTING)
    assert {(a["state"], a["severity"], a["rule"], a["metric"]) for a in listed} == {
        ("resolved", "critical", "feature-drift", "psi")
    }
    assert set(listed[0]) == {
        "id", "rule", "model", "version", "segment", "feature", "metric", "severity", "state",
        "silenced", "value", "threshold", "started_at", "resolved_at",
    }  # fmt: skip
    assert json.loads(dep.run("alerts", "--state", "firing", "--json").stdout) == []
    table = dep.run("alerts").stdout
    assert "feature-drift" in table and "resolved" in table

    silenced = dep.run("alerts", "silence", "--rule", "feature-drift", "--model", "m",
                       "--feature", "f0*", "--for", "2h", "--comment", "retraining")  # fmt: skip
    assert silenced.returncode == 0 and silenced.stdout.startswith("silence 1 created")
    assert all(a["silenced"] for a in json.loads(dep.run("alerts", "--json").stdout))
    assert "retraining" in dep.run("alerts", "silences").stdout
    assert dep.run("alerts", "unsilence", "1").stdout.strip() == "silence 1 ended"
    assert not any(a["silenced"] for a in json.loads(dep.run("alerts", "--json").stdout))
    assert dep.run("alerts", "unsilence", "1").returncode == 1
    assert dep.run("alerts", "silence", "--rule", "x", "--model", "m", "--for", "soon",
                   "--comment", "c").returncode == 2  # fmt: skip

    assert json.loads(dep.run("outbox", "--json").stdout) == []
    everything = json.loads(dep.run("outbox", "--json", "--all").stdout)
    assert {(r["kind"], r["state"]) for r in everything} == {
        ("notification", "delivered"), ("trigger", "delivered")
    }  # fmt: skip
    assert "nothing pending or failed" in dep.run("outbox").stdout

    rules = json.loads(dep.run("rules", "--json").stdout)
    assert [(r["name"], r["source"]) for r in rules] == [("feature-drift", "config")]
    assert "psi: warn >= 0.1, critical >= 0.25" in dep.run("rules").stdout
