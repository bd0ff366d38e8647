"""The demo's receiver over real HTTP: chat messages and signed triggers, recorded and checked."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from monitor.actions.webhook import build_request, verify
from monitor.demo.receiver import Delivery, Receiver
from monitor.demo.workspace import new_secret
from monitor.settings import TriggerConfig


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    seen: list[Delivery] = []
    server = Receiver(new_secret(), tmp_path / "received.jsonl", seen.append).start()
    yield server
    server.stop()


def test_signed_trigger_is_accepted_and_a_forged_one_refused(receiver: Receiver) -> None:
    """A trigger signed with the demo's secret gets 200; one signed with another gets 401."""
    url = f"http://127.0.0.1:{receiver.port}/retrain"
    payload = {"model": "churn", "rule": "accuracy-drop", "alert": {"metric": "accuracy"}}
    good = build_request(
        TriggerConfig.model_validate({"url": url, "secret": receiver.secret}),
        "msg_1", payload, int(time.time()),
    )  # fmt: skip
    forged = build_request(
        TriggerConfig.model_validate({"url": url, "secret": new_secret()}),
        "msg_2", payload, int(time.time()),
    )  # fmt: skip
    assert post(url, good.body, good.headers) == 200
    assert post(url, forged.body, forged.headers) == 401
    first, second = receiver.deliveries()
    assert (first.kind, first.signature_valid, first.model) == ("trigger", True, "churn")
    assert first.title == "retrain churn: accuracy-drop accuracy"
    assert second.signature_valid is False


def test_chat_messages_and_triggers_are_written_to_received_jsonl(receiver: Receiver) -> None:
    """Every request is one line of received.jsonl, from which its signature re-verifies."""
    chat = {"version": "1.0", "title": "[FIRING critical] churn", "message": "m", "type": "failure"}
    assert post(f"http://127.0.0.1:{receiver.port}/chat", orjson.dumps(chat),
                {"content-type": "application/json"}) == 200  # fmt: skip
    url = f"http://127.0.0.1:{receiver.port}/retrain"
    request = build_request(
        TriggerConfig.model_validate({"url": url, "secret": receiver.secret}),
        "msg_3", {"model": "fraud", "rule": "r"}, int(time.time()),
    )  # fmt: skip
    assert post(url, request.body, request.headers) == 200
    lines = [orjson.loads(line) for line in receiver.log_path.read_bytes().splitlines()]
    assert [(x["kind"], x["title"]) for x in lines] == [
        ("notification", "[FIRING critical] churn"), ("trigger", "retrain fraud: r"),
    ]  # fmt: skip
    trigger = lines[1]
    assert set(trigger["headers"]) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert verify(receiver.secret, trigger["headers"], trigger["body"].encode(), int(time.time()))
