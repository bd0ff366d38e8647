"""Standard Webhooks signing and verification, trigger ids and per-preset request building."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import __version__
from monitor.actions.webhook import build_request, sign, trigger_id, verify
from monitor.settings import TriggerConfig

# The Standard Webhooks spec's own example (also recomputed independently with hmac).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - public test key
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OTHER_SECRET = "whsec_" + base64.b64encode(b"another key of 24 bytes!").decode()
PAYLOAD = {"model": "churn", "rule": "psi_high", "window_start": "2026-01-05T10:00:00+00:00"}


def headers_for(
    webhook_id: str = SPEC_ID, timestamp: int = SPEC_TS, signature: str = SPEC_SIGNATURE
) -> dict[str, str]:
    """The three Standard Webhooks headers."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def trigger(**fields: Any) -> TriggerConfig:
    """A validated trigger, generic to example.com unless told otherwise."""
    return TriggerConfig.model_validate({"url": "https://hooks.example.com/retrain", **fields})


def test_sign_matches_the_spec_test_vector() -> None:
    """sign() reproduces the Standard Webhooks spec example byte for byte."""
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


def test_verify_accepts_the_spec_test_vector() -> None:
    """verify() accepts the spec example, header names in any case."""
    upper = {k.upper(): v for k, v in headers_for().items()}
    assert verify(SPEC_SECRET, headers_for(), SPEC_BODY, now=SPEC_TS)
    assert verify(SPEC_SECRET, upper, SPEC_BODY, now=SPEC_TS)


def test_verify_accepts_any_of_several_signatures() -> None:
    """A signature header listing several v1 entries (key rotation) passes if one matches."""
    other = sign(OTHER_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
    listed = headers_for(signature=f"{other} v1a,ignored {SPEC_SIGNATURE}")
    assert verify(SPEC_SECRET, listed, SPEC_BODY, now=SPEC_TS)


@pytest.mark.parametrize(
    ("headers", "body", "secret"),
    [
        (headers_for(), b'{"test": 2432232315}', SPEC_SECRET),
        (headers_for(webhook_id="msg_other"), SPEC_BODY, SPEC_SECRET),
        (headers_for(timestamp=SPEC_TS + 1), SPEC_BODY, SPEC_SECRET),
        (headers_for(), SPEC_BODY, OTHER_SECRET),
        (headers_for(signature="v2," + SPEC_SIGNATURE[3:]), SPEC_BODY, SPEC_SECRET),
        (headers_for(signature=SPEC_SIGNATURE[:-2]), SPEC_BODY, SPEC_SECRET),
    ],
    ids=["body", "id", "timestamp", "secret", "version", "truncated"],
)
def test_verify_rejects_tampering(headers: dict[str, str], body: bytes, secret: str) -> None:
    """A changed body, id, timestamp, secret or signature fails verification."""
    assert not verify(secret, headers, body, now=SPEC_TS)


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_rejects_missing_headers(drop: str) -> None:
    """A request without one of the three headers is rejected, not an error."""
    headers = {k: v for k, v in headers_for().items() if k != drop}
    assert not verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TS)


def test_verify_rejects_a_non_numeric_timestamp() -> None:
    """A timestamp that is not unix seconds is rejected."""
    headers = headers_for() | {"webhook-timestamp": "2021-02-26T10:22:10Z"}
    assert not verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TS)


@pytest.mark.parametrize(("offset", "ok"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_verify_enforces_timestamp_tolerance(offset: int, ok: bool) -> None:
    """Timestamps more than the tolerance away from now (past or future) are replays."""
    assert verify(SPEC_SECRET, headers_for(), SPEC_BODY, now=SPEC_TS + offset) is ok


@given(
    body=st.binary(max_size=2048),
    webhook_id=st.text(min_size=1, max_size=40).filter(
        lambda s: s == s.strip() and s.isprintable()
    ),
    timestamp=st.integers(0, 2**40),
    key=st.binary(min_size=1, max_size=64),
)
def test_verify_of_sign_holds_for_any_input(
    body: bytes, webhook_id: str, timestamp: int, key: bytes
) -> None:
    """verify(sign(...)) holds for arbitrary bodies, ids, timestamps and keys."""
    secret = "whsec_" + base64.b64encode(key).decode()
    signature = sign(secret, webhook_id, timestamp, body)
    headers = headers_for(webhook_id, timestamp, signature)
    assert verify(secret, headers, body, now=timestamp)


def test_trigger_id_is_deterministic_and_input_sensitive() -> None:
    """The same trigger gets the same id every time; any changed part gives another id."""
    base = ("churn", "psi_high", "2026-01-05T10:00:00+00:00")
    first = trigger_id(*base)
    assert first == trigger_id(*base)
    assert first.startswith("msg_")
    assert len(first) == 36
    variants = {
        trigger_id("fraud", *base[1:]),
        trigger_id(base[0], "f1_low", base[2]),
        trigger_id(*base[:2], "2026-01-05T10:05:00+00:00"),
        trigger_id("churn\0psi", "high", base[2]),
    }
    assert first not in variants
    assert len(variants) == 4


def test_trigger_id_is_stable_across_processes() -> None:
    """The id is a fixed function of its inputs (no process-salted hash): pinned value."""
    pinned = (
        "msg_34687fa7453a03d7154f98c456970a65"  # "msg_" + sha256(b"m\0r\0<iso>").hexdigest()[:32]
    )
    assert trigger_id("m", "r", "2026-01-01T00:00:00+00:00") == pinned


def test_generic_request_posts_the_payload_signed() -> None:
    """Generic: the payload is the body, at the configured URL, with all protocol headers."""
    request = build_request(
        trigger(secret=SPEC_SECRET, headers={"Authorization": "Bearer t0k"}),
        "msg_1",
        PAYLOAD,
        SPEC_TS,
    )
    assert request.url == "https://hooks.example.com/retrain"
    assert orjson.loads(request.body) == PAYLOAD
    assert request.headers == {
        "user-agent": f"monitor/{__version__}",
        "authorization": "Bearer t0k",
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": str(SPEC_TS),
        "webhook-signature": sign(SPEC_SECRET, "msg_1", SPEC_TS, request.body),
    }
    assert verify(SPEC_SECRET, request.headers, request.body, now=SPEC_TS)


def test_request_without_secret_has_no_signature() -> None:
    """Without a configured secret the id and timestamp are still sent, unsigned."""
    request = build_request(trigger(), "msg_1", PAYLOAD, SPEC_TS)
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"] == "msg_1"


def test_configured_headers_cannot_replace_signed_ones() -> None:
    """A configured header cannot override content-type or the webhook-* headers."""
    request = build_request(
        trigger(
            secret=SPEC_SECRET,
            headers={"Webhook-Id": "forged", "Content-Type": "text/plain", "User-Agent": "ua/2"},
        ),
        "msg_1",
        PAYLOAD,
        SPEC_TS,
    )
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "ua/2"
    assert verify(SPEC_SECRET, request.headers, request.body, now=SPEC_TS)


def test_airflow_request_creates_a_dag_run_named_by_the_id() -> None:
    """Airflow: POST .../api/v2/dags/<dag>/dagRuns with dag_run_id = webhook id, conf = payload."""
    request = build_request(
        trigger(preset="airflow", url="https://airflow.example.com/", dag_id="retrain_churn"),
        "msg_abc",
        PAYLOAD,
        SPEC_TS,
    )
    assert request.url == "https://airflow.example.com/api/v2/dags/retrain_churn/dagRuns"
    assert orjson.loads(request.body) == {
        "dag_run_id": "msg_abc",
        "logical_date": None,
        "conf": PAYLOAD,
    }
    assert request.headers["webhook-id"] == "msg_abc"


def test_github_request_is_a_repository_dispatch() -> None:
    """GitHub: POST to the dispatches URL with event_type, client_payload and the v3 Accept."""
    github = TriggerConfig.model_validate(
        {
            "preset": "github",
            "repo": "acme/models",
            "event_type": "retrain",
            "headers": {"Authorization": "Bearer ghp_x"},
        }
    )
    request = build_request(
        github,
        "msg_1",
        PAYLOAD,
        SPEC_TS,
    )
    assert request.url == "https://api.github.com/repos/acme/models/dispatches"
    assert orjson.loads(request.body) == {"event_type": "retrain", "client_payload": PAYLOAD}
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["authorization"] == "Bearer ghp_x"
