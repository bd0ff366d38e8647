"""WebhookSender against a real local HTTP server: signing on the wire and outcome classes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from monitor.actions.webhook import WebhookSender, trigger_id, verify
from monitor.settings import TriggerConfig
from tests.support.receiver import Received, Receiver, Responder, Response

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec example key
NOW = datetime(2026, 1, 5, 10, 7, 30, tzinfo=UTC)
PAYLOAD: dict[str, Any] = {"model": "churn", "rule": "psi_high", "severity": "critical"}
WEBHOOK_ID = trigger_id("churn", "psi_high", "2026-01-05T10:00:00+00:00")


def trigger(url: str, **fields: Any) -> TriggerConfig:
    """A signed generic trigger to ``url`` (extra fields override)."""
    return TriggerConfig.model_validate({"url": url, "secret": SECRET, **fields})


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    """A sender with its own client, closed after the test."""
    with WebhookSender() as sender:
        yield sender


def answer(receiver: Receiver, respond: Responder) -> Receiver:
    """Make ``receiver`` answer with ``respond`` from now on."""
    receiver.respond = respond
    return receiver


def test_delivered_request_verifies_at_the_receiver(
    sender: WebhookSender, receiver: Receiver
) -> None:
    """A 200 is delivered, and the raw body+headers verify; one flipped byte does not."""
    outcome = sender.send(trigger(receiver.url + "/hook"), WEBHOOK_ID, PAYLOAD, NOW)
    (got,) = receiver.wait_for(1)
    assert outcome.delivered
    assert outcome.http_status == 200
    assert (got.method, got.path) == ("POST", "/hook")
    assert got.json() == PAYLOAD
    assert got.headers["webhook-id"] == WEBHOOK_ID
    assert got.headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    now = int(NOW.timestamp())
    assert verify(SECRET, got.headers, got.body, now=now)
    tampered = bytes([got.body[0] ^ 1]) + got.body[1:]
    assert not verify(SECRET, got.headers, tampered, now=now)


@pytest.mark.parametrize("status", [201, 202, 204, 409])
def test_other_success_and_conflict_are_delivered(
    sender: WebhookSender, receiver: Receiver, status: int
) -> None:
    """Any 2xx is delivered; 409 means the idempotent target already has it: delivered too."""
    answer(receiver, lambda _: status)
    outcome = sender.send(trigger(receiver.url), WEBHOOK_ID, PAYLOAD, NOW)
    assert outcome.delivered
    assert outcome.http_status == status


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_and_request_timeout_are_retried(
    sender: WebhookSender, receiver: Receiver, status: int
) -> None:
    """5xx and 408 may succeed later: retry, with a short error naming only host:port."""
    answer(receiver, lambda _: status)
    outcome = sender.send(trigger(receiver.url + "/p?token=s3cr3t"), WEBHOOK_ID, PAYLOAD, NOW)
    assert outcome.status == "retry"
    assert outcome.http_status == status
    assert outcome.retry_after is None
    assert outcome.error == f"HTTP {status} from 127.0.0.1:{receiver.port}"


def test_too_many_requests_honours_retry_after_seconds(
    sender: WebhookSender, receiver: Receiver
) -> None:
    """429 with Retry-After: 7 is retried no sooner than 7 seconds."""
    answer(receiver, lambda _: Response(429, (("Retry-After", "7"),)))
    outcome = sender.send(trigger(receiver.url), WEBHOOK_ID, PAYLOAD, NOW)
    assert (outcome.status, outcome.http_status, outcome.retry_after) == ("retry", 429, 7.0)


def test_unavailable_honours_retry_after_http_date(
    sender: WebhookSender, receiver: Receiver
) -> None:
    """503 with an HTTP-date Retry-After waits until that date, measured from the given now."""
    later = format_datetime(NOW + timedelta(seconds=120), usegmt=True)
    answer(receiver, lambda _: Response(503, (("Retry-After", later),)))
    outcome = sender.send(trigger(receiver.url), WEBHOOK_ID, PAYLOAD, NOW)
    assert (outcome.status, outcome.retry_after) == ("retry", 120.0)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_permanent(
    sender: WebhookSender, receiver: Receiver, status: int
) -> None:
    """Other 4xx cannot be fixed by retrying: permanent."""
    answer(receiver, lambda _: status)
    outcome = sender.send(trigger(receiver.url), WEBHOOK_ID, PAYLOAD, NOW)
    assert (outcome.status, outcome.http_status) == ("permanent", status)


def test_redirects_are_not_followed(sender: WebhookSender, receiver: Receiver) -> None:
    """A redirect is not followed (the signed POST goes nowhere else) and is permanent."""
    redirect = Response(307, (("Location", "/elsewhere"),))
    answer(receiver, lambda r: redirect if r.path == "/hook" else 200)
    outcome = sender.send(trigger(receiver.url + "/hook"), WEBHOOK_ID, PAYLOAD, NOW)
    time.sleep(0.1)
    paths = [r.path for r in receiver.requests()]
    assert (outcome.status, outcome.http_status) == ("permanent", 307)
    assert paths == ["/hook"]


def test_refused_connection_is_retried_without_leaking_secrets(sender: WebhookSender) -> None:
    """A target that is down is retried; the error names host:port, never path/query/headers."""
    down = Receiver().start()
    port = down.port
    down.stop()
    url = f"http://user:pa55word@127.0.0.1:{port}/secret-path?token=qu3ry"
    target = trigger(url, headers={"Authorization": "Bearer h3ader"})
    outcome = sender.send(target, WEBHOOK_ID, PAYLOAD, NOW)
    assert outcome.status == "retry"
    assert outcome.error == f"connection refused to 127.0.0.1:{port}"
    for secret in ("user", "pa55word", "secret-path", "token", "qu3ry", "h3ader"):
        assert secret not in outcome.error


def test_read_timeout_is_retried(sender: WebhookSender, receiver: Receiver) -> None:
    """A target slower than the trigger's timeout is abandoned and retried."""

    def slow(_: Received) -> int:
        time.sleep(1.6)
        return 200

    answer(receiver, slow)
    started = time.monotonic()
    outcome = sender.send(trigger(receiver.url, timeout="1s"), WEBHOOK_ID, PAYLOAD, NOW)
    elapsed = time.monotonic() - started
    assert outcome.status == "retry"
    assert outcome.error == f"no response within 1s from 127.0.0.1:{receiver.port}"
    assert elapsed < 1.5


def test_invalid_header_value_is_permanent(sender: WebhookSender, receiver: Receiver) -> None:
    """A header httpx cannot send (non-ASCII) is a configuration error: permanent, no raise."""
    target = trigger(receiver.url, headers={"X-Team": "Données"})
    outcome = sender.send(target, WEBHOOK_ID, PAYLOAD, NOW)
    assert outcome.status == "permanent"
    assert "Données" not in (outcome.error or "")
    assert receiver.requests() == []


def test_same_webhook_id_on_every_attempt(sender: WebhookSender, receiver: Receiver) -> None:
    """Retries of one trigger carry one webhook-id, each freshly timestamped and signed."""
    answers = iter([503, 503, 200])
    answer(receiver, lambda _: next(answers))
    target = trigger(receiver.url)
    times = [NOW + timedelta(seconds=s) for s in (0, 2, 6)]
    outcomes = [sender.send(target, WEBHOOK_ID, PAYLOAD, t).status for t in times]
    received = receiver.wait_for(3)
    assert outcomes == ["retry", "retry", "delivered"]
    assert {r.headers["webhook-id"] for r in received} == {WEBHOOK_ID}
    for request, at in zip(received, times, strict=True):
        assert verify(SECRET, request.headers, request.body, now=int(at.timestamp()))


def test_airflow_repeat_is_answered_409_and_counts_delivered(
    sender: WebhookSender, receiver: Receiver
) -> None:
    """Airflow: dagRuns POST named by the id; resending the same id (409) is still delivered."""
    seen: set[str] = set()

    def airflow(request: Received) -> int:
        run_id = request.json()["dag_run_id"]
        if run_id in seen:
            return 409
        seen.add(run_id)
        return 200

    answer(receiver, airflow)
    target = trigger(receiver.url + "/", preset="airflow", dag_id="retrain_churn")
    first = sender.send(target, WEBHOOK_ID, PAYLOAD, NOW)
    second = sender.send(target, WEBHOOK_ID, PAYLOAD, NOW + timedelta(minutes=1))
    received = receiver.wait_for(2)
    assert [first.http_status, second.http_status] == [200, 409]
    assert first.delivered and second.delivered
    assert {r.path for r in received} == {"/api/v2/dags/retrain_churn/dagRuns"}
    assert received[0].json() == {"dag_run_id": WEBHOOK_ID, "logical_date": None, "conf": PAYLOAD}
