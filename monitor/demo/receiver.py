"""The demo's stand-in for a chat service and a retraining pipeline: one real HTTP endpoint.

Alerts reach it the way they reach Slack or Teams in production, through an apprise URL
(``json://127.0.0.1:PORT/chat`` posts ``{"title", "message", "type", ...}``), and retraining
triggers the way they reach Airflow or a CI system, as Standard Webhooks signed with the
trigger's ``whsec_`` secret. So the demo exercises the real delivery path (outbox, retries,
signing) rather than a shortcut, and shows what a receiver must do: check the signature with
`monitor.actions.webhook.verify` and refuse (401) what does not verify.

Every request is appended to ``received.jsonl`` in the demo directory (raw body and the
``webhook-*`` headers, so anyone can re-check a signature later) and handed to
``on_delivery`` for the live view. Standard library HTTP server, loopback only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import orjson

from monitor.actions.webhook import verify

__all__ = ["CHAT_PATH", "TRIGGER_PATH", "Delivery", "Receiver"]

CHAT_PATH = "/chat"
TRIGGER_PATH = "/retrain"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request as the receiver understood it."""

    kind: Literal["notification", "trigger", "other"]
    received_at: float  # unix seconds
    title: str
    level: str  # apprise's type for notifications (failure, warning, success, info)
    model: str | None
    signature_valid: bool | None  # triggers only
    body: bytes
    headers: dict[str, str]

    def record(self) -> dict[str, Any]:
        """The line written to ``received.jsonl``."""
        moment = datetime.fromtimestamp(self.received_at, UTC)
        return {
            "received_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "kind": self.kind,
            "title": self.title,
            "model": self.model,
            "signature_valid": self.signature_valid,
            "headers": self.headers,
            "body": self.body.decode("utf-8", errors="replace"),
        }


def _parse(path: str, headers: dict[str, str], body: bytes, secret: str, now: float) -> Delivery:
    """Classify one request; a body that is not JSON is kept, never fatal."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    kept = {k: v for k, v in headers.items() if k.startswith("webhook-")}
    if path.startswith(TRIGGER_PATH):
        valid = verify(secret, headers, body, int(now))
        alert = doc.get("alert") if isinstance(doc.get("alert"), dict) else {}
        title = f"retrain {doc.get('model', '?')}: {doc.get('rule', '?')} {alert.get('metric', '')}"
        model = doc.get("model")
        return Delivery("trigger", now, title.strip(), "", model, valid, body, kept)
    kind: Literal["notification", "other"] = (
        "notification" if path.startswith(CHAT_PATH) else "other"
    )
    title = str(doc.get("title") or "")
    return Delivery(kind, now, title, str(doc.get("type") or ""), None, None, body, kept)


class Receiver:
    """A recording HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        secret: str,
        log_path: Path,
        on_delivery: Callable[[Delivery], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Nothing listens until `start`; the log file is truncated then."""
        self.secret = secret
        self.log_path = log_path
        self.on_delivery = on_delivery
        self._clock = clock
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (only once started)."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        return int(self._server.server_address[1])

    def deliveries(self) -> list[Delivery]:
        """Everything received so far, in arrival order."""
        with self._lock:
            return list(self._deliveries)

    def start(self) -> Receiver:
        """Listen on a free loopback port, in a daemon thread."""
        self.log_path.write_bytes(b"")
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._accept(self.path, headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the live view shows what arrived."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-receiver", daemon=True
        )
        self._thread.start()
        return self

    def _accept(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """Record the request; 401 for a trigger whose signature does not verify."""
        delivery = _parse(path, headers, body, self.secret, self._clock())
        with self._lock:
            self._deliveries.append(delivery)
            with self.log_path.open("ab") as out:
                out.write(orjson.dumps(delivery.record()) + b"\n")
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        return 401 if delivery.signature_valid is False else 200

    def stop(self) -> None:
        """Stop listening and wait for the serving thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
