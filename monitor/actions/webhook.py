"""Retraining triggers: HTTP POSTs signed as in the Standard Webhooks spec.

Why this shape:

- **Standard Webhooks** (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<HMAC>``)
  is a published, multi-language convention, so a receiver verifies us with an off-the-shelf
  library (or `verify` below) instead of a bespoke scheme. The timestamp is signed, so a
  captured request cannot be replayed outside the receiver's tolerance.
- **One deterministic id per trigger** (`trigger_id`: model, rule, window start) is sent on
  every attempt, even across restarts, so a receiver that saw the first attempt deduplicates
  the retries. The Airflow preset uses it as ``dag_run_id``: a repeat answers 409, which
  means "already triggered" and therefore counts as delivered.
- **Retry only where it can help**: connection errors, timeouts, 408, 429 and 5xx may succeed
  later (``Retry-After`` honoured); any other 4xx, an unfollowed redirect, or a request httpx
  refuses to build (invalid URL or header value) needs a person to fix the configuration.
  `WebhookSender.send` never raises for a failed delivery: it returns an `Outcome` and the
  outbox schedules the next attempt (DESIGN.md §8).
- Error texts name only ``host:port``: the URL path, query and user-info, and header values,
  may carry tokens, so they never reach an `Outcome` or a log line.

httpx is imported in this module only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from monitor import __version__
from monitor.actions.delivery import Outcome
from monitor.settings import TriggerConfig

__all__ = [
    "WebhookRequest",
    "WebhookSender",
    "build_request",
    "sign",
    "trigger_id",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
_PROTOCOL_HEADERS = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")
_RETRY_STATUSES = frozenset({408, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# Our own request is malformed (bad URL, header value with CR/LF or non-ASCII): retrying the
# same configuration cannot help, although httpx files some of these under TransportError.
_UNSENDABLE = (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL, UnicodeError)


# --- signing ----------------------------------------------------------------------------------


def _key(secret: str) -> bytes:
    """The HMAC key: the base64 after ``whsec_`` (raises ValueError on bad base64)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}." + body)>`` (Standard Webhooks)."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: int, tolerance: int = 300
) -> bool:
    """What a receiver does: True if one ``v1`` signature matches and the timestamp is fresh.

    Header names are case-insensitive; ``webhook-signature`` may list several space-separated
    ``v1,<sig>`` entries (key rotation). ``now`` and ``tolerance`` are unix seconds.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp", "").strip()
    signatures = lowered.get("webhook-signature")
    if not webhook_id or not signatures or not stamp.isascii() or not stamp.isdigit():
        return False
    if abs(now - int(stamp)) > tolerance:
        return False
    expected = sign(secret, webhook_id, int(stamp), body).encode("ascii")
    return any(
        hmac.compare_digest(expected, entry.encode("utf-8"))
        for entry in signatures.split()
        if entry.startswith("v1,")
    )


def trigger_id(model: str, rule: str, window_start_iso: str) -> str:
    """``msg_`` + 32 hex of sha256 over the parts joined by NUL: the same on every attempt."""
    digest = hashlib.sha256("\0".join((model, rule, window_start_iso)).encode()).hexdigest()
    return "msg_" + digest[:32]


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One POST, ready to send: target URL, lower-cased headers and the exact signed body."""

    url: str
    headers: dict[str, str]
    body: bytes


def _target(trigger: TriggerConfig, webhook_id: str, payload: dict[str, Any]) -> tuple[str, Any]:
    """The preset's URL and JSON document."""
    url = trigger.target_url
    if trigger.preset == "airflow":
        url = f"{url.rstrip('/')}/api/v2/dags/{trigger.dag_id}/dagRuns"
        return url, {"dag_run_id": webhook_id, "logical_date": None, "conf": payload}
    if trigger.preset == "github":
        return url, {"event_type": trigger.event_type, "client_payload": payload}
    return url, payload


def build_request(
    trigger: TriggerConfig, webhook_id: str, payload: dict[str, Any], timestamp: int
) -> WebhookRequest:
    """The request for ``trigger`` (pure). Configured headers may not replace signed ones."""
    url, document = _target(trigger, webhook_id, payload)
    body = orjson.dumps(document)
    headers = {"user-agent": f"monitor/{__version__}"}
    if trigger.preset == "github":
        headers["accept"] = "application/vnd.github+json"
    for name, value in trigger.headers.items():
        if name.lower() not in _PROTOCOL_HEADERS:
            headers[name.lower()] = value.get_secret_value()
    headers |= {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
    }
    if trigger.secret is not None:
        secret = trigger.secret.get_secret_value()
        headers["webhook-signature"] = sign(secret, webhook_id, timestamp, body)
    return WebhookRequest(url, headers, body)


# --- classification ---------------------------------------------------------------------------


def _where(url: str) -> str:
    """``host:port`` of ``url`` and nothing else (no user-info, path or query)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "the configured host"
    port = parsed.port or {"https": 443, "http": 80}.get(parsed.scheme)
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{host}:{port}" if port else host


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from ``Retry-After`` (delay-seconds or an HTTP-date), None if absent or bad."""
    text = (value or "").strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _from_response(response: httpx.Response, where: str, now: datetime) -> Outcome:
    status = response.status_code
    error = f"HTTP {status} from {where}"
    if 200 <= status < 300 or status == 409:
        return Outcome("delivered", http_status=status)
    if status in _RETRY_STATUSES or 500 <= status < 600:
        after = None
        if status in _RETRY_AFTER_STATUSES:
            after = _retry_after(response.headers.get("retry-after"), now)
        return Outcome("retry", error, status, after)
    if 300 <= status < 400:
        error += " (redirects are not followed)"
    return Outcome("permanent", error, status)


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError under an httpx exception, if any (refused, DNS failure, reset)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _from_error(exc: httpx.HTTPError, where: str, read_timeout: float) -> Outcome:
    """A retry outcome whose text is built from the class and errno, never ``str(exc)``."""
    if isinstance(exc, httpx.ConnectTimeout):
        return Outcome("retry", f"connect timeout to {where}")
    if isinstance(exc, httpx.ReadTimeout):
        return Outcome("retry", f"no response within {read_timeout:g}s from {where}")
    if isinstance(exc, httpx.TimeoutException):
        return Outcome("retry", f"{type(exc).__name__} with {where}")
    cause = _os_error(exc)
    if isinstance(cause, ConnectionRefusedError):
        return Outcome("retry", f"connection refused to {where}")
    if isinstance(exc, httpx.ConnectError):
        reason = cause.strerror if cause is not None and cause.strerror else type(exc).__name__
        return Outcome("retry", f"cannot connect to {where} ({reason})")
    return Outcome("retry", f"{type(exc).__name__} with {where}")


# --- sending ----------------------------------------------------------------------------------


class WebhookSender:
    """Sends triggers over one httpx client (its own, created on first use, unless given)."""

    def __init__(self, client: httpx.Client | None = None, connect_timeout: float = 5.0) -> None:
        self._client = client
        self._owns_client = client is None
        self.connect_timeout = connect_timeout

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False)
        return self._client

    def send(
        self, trigger: TriggerConfig, webhook_id: str, payload: dict[str, Any], now: datetime
    ) -> Outcome:
        """POST one attempt; ``delivered``, ``retry`` or ``permanent``, never an exception."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        try:
            request = build_request(trigger, webhook_id, payload, int(now.timestamp()))
        except orjson.JSONEncodeError as exc:
            return Outcome("permanent", f"payload is not JSON-serialisable: {exc}")
        where = _where(request.url)
        read_timeout = trigger.timeout.total_seconds()
        timeout = httpx.Timeout(read_timeout, connect=self.connect_timeout)
        try:
            response = self._http().post(
                request.url,
                content=request.body,
                headers=request.headers,
                timeout=timeout,
                follow_redirects=False,
            )
        except _UNSENDABLE as exc:
            return Outcome("permanent", f"cannot build a request to {where} ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return _from_error(exc, where, read_timeout)
        return _from_response(response, where, now)

    def close(self) -> None:
        """Close the client if this sender created it (a given client stays the caller's)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
