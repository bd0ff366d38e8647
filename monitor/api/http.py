"""The HTTP server: probes, Prometheus metrics and a read-only JSON API.

Starlette, served by uvicorn in a background thread of ``monitor run`` on ``http.listen``
(127.0.0.1:9108 by default; port 0 picks a free port). Endpoints:

- ``/healthz``: the run loop polled within ``max_poll_interval``; 200, else 503 with a reason.
- ``/readyz``: partitions assigned, database reachable, schema current; 200, else 503.
- ``/metrics``: Prometheus text format from the injected registry.
- ``/api/models``, ``/api/models/{model}/metrics``, ``/api/models/{model}/windows``,
  ``/api/alerts``: JSON read straight from the database, in the shapes the CLI prints with
  ``--json``. With ``http.token`` set, ``/api/...`` needs ``Authorization: Bearer <token>``.

Endpoints are plain functions (Starlette runs them in its thread pool), since every one of
them is a blocking database read.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.alert_views import alerts_report
from monitor.errors import MonitorError
from monitor.health import LoopHealth, readiness
from monitor.settings import Settings, parse_moment
from monitor.status import metric_rows, status_report, windows_report

log = logging.getLogger(__name__)
STATES = ("pending", "firing", "resolved")


class HttpError(Exception):
    """A client error: its status and message become the JSON response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build_app(
    settings: Settings, engine: Engine, health: LoopHealth, registry: CollectorRegistry
) -> Starlette:
    """The Starlette application (no server: tests may drive it directly)."""

    def healthz(_: Request) -> Response:
        alive, body = health.liveness()
        return JSONResponse(body, status_code=200 if alive else 503)

    def readyz(_: Request) -> Response:
        ready, body = readiness(health, engine)
        return JSONResponse(body, status_code=200 if ready else 503)

    def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def models(_: Request) -> Response:
        return _json(lambda: status_report(settings, engine, with_lag=False)["models"])

    def model_metrics(request: Request) -> Response:
        query = request.query_params
        model = request.path_params["model"]
        since, until = _moment(query.get("since")), _moment(query.get("until"))
        return _json(
            lambda: metric_rows(
                engine,
                model,
                query.get("feature"),
                query.get("metric"),
                query.get("segment"),
                since,
                until,
            )
        )

    def model_windows(request: Request) -> Response:
        since = _moment(request.query_params.get("since"))
        return _json(lambda: windows_report(engine, request.path_params["model"], since))

    def alerts(request: Request) -> Response:
        state = request.query_params.get("state")
        if state is not None and state not in STATES:
            raise HttpError(400, f"state must be one of: {', '.join(STATES)}")
        return _json(lambda: alerts_report(engine, datetime.now(UTC), state))

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/models", models),
        Route("/api/models/{model}/metrics", model_metrics),
        Route("/api/models/{model}/windows", model_windows),
        Route("/api/alerts", alerts),
    ]
    token = settings.http.token.get_secret_value() if settings.http.token else None
    middleware = [Middleware(BaseHTTPMiddleware, dispatch=_guard(token))]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HttpError: _client_error},  # type: ignore[dict-item]
    )


def _guard(
    token: str | None,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Bearer-token check for ``/api/...`` (probes and metrics stay open to the scraper)."""

    async def dispatch(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if token is not None and request.url.path.startswith("/api/"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse(
                    {"error": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    return dispatch


async def _client_error(_: Request, exc: HttpError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value, datetime.now(UTC))
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None


def _json(read: Callable[[], Any]) -> Response:
    """The read's JSON; 503 when the database cannot answer."""
    try:
        return JSONResponse(read())
    except MonitorError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)


class HttpServer:
    """uvicorn in a daemon thread; `start` returns once it listens (``port`` then known)."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(  # log_config None: uvicorn logs through our formatters
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MonitorError(f"HTTP server could not listen on {self.host}:{self.port}")
            time.sleep(0.02)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        log.info("http: listening on %s:%d", self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
