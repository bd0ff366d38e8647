"""Fill the demo's frames: the database as the CLI reads it, plus the live counters.

The figures come from the same reports as ``monitor status`` and ``monitor metrics`` (not from
the daemon's memory), so what the live view shows is what the printed commands show later.
The database is read at most once a second; rates are taken over the last few seconds of
counters, so one slow tick does not make the numbers jump.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor.alert_views import alerts_report
from monitor.demo.drift import iso
from monitor.demo.receiver import Delivery
from monitor.demo.scenario import Scenario
from monitor.demo.serving import Totals
from monitor.demo.view import FeedLine, Frame, ModelLine
from monitor.errors import MonitorError
from monitor.settings import Settings
from monitor.status import metric_rows, status_report

if TYPE_CHECKING:
    from sqlalchemy import Engine  # the store's engine, passed in; only the type is needed

__all__ = ["Probe"]

RATE_SPAN_S = 3.0
READ_EVERY_S = 1.0


class Probe:
    """Builds a `Frame` on demand (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        scenario: Scenario,
        totals: Totals,
        consumed: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``consumed`` reads the daemon's record count; ``clock`` times the rates."""
        self._settings, self._engine, self._scenario = settings, engine, scenario
        self._totals, self._consumed, self._clock = totals, consumed, clock
        self._samples: deque[tuple[float, dict[str, int], int]] = deque()
        self._stored: dict[str, dict[str, Any]] = {}
        self._read_at = -READ_EVERY_S
        self.started: float | None = None  # the clock when traffic started

    def frame(self, deliveries: Sequence[Delivery], phase: str) -> Frame:
        """The current frame; database errors keep the last figures (the daemon may be busy)."""
        now = self._clock()
        elapsed = 0.0 if self.started is None else now - self.started
        per_model, consumed = dict(self._totals.per_model), self._consumed()
        self._samples.append((now, per_model, consumed))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_SPAN_S:
            self._samples.popleft()
        if now - self._read_at >= READ_EVERY_S:
            self._read_at = now
            with contextlib.suppress(MonitorError):  # the daemon may hold a write lock
                self._stored = self._read()
        first_at, first_sent, first_consumed = self._samples[0]
        span = max(now - first_at, 1e-9)
        rates = {m: (n - first_sent.get(m, 0)) / span for m, n in per_model.items()}
        models = tuple(self._line(m, rates.get(m, 0.0)) for m in self._stored or self._models())
        began = time.time() - elapsed
        return Frame(
            elapsed_s=elapsed,
            seconds=self._scenario.seconds,
            event_time=iso(self._totals.event_time_ms)[:16].replace("T", " "),
            served_per_s=sum(rates.values()),
            consumed_per_s=(consumed - first_consumed) / span,
            models=models,
            schedule=tuple(
                (self._scenario.span(s), s.model, s.title, self._scenario.state(s, elapsed))
                for s in self._scenario.steps
            ),
            feed=tuple(
                FeedLine(d.received_at - began, d.kind, d.title, d.level, d.signature_valid)
                for d in deliveries
            ),
            phase=phase,
        )

    def _models(self) -> list[str]:
        return [m.name for m in self._settings.models]

    def _line(self, model: str, rate: float) -> ModelLine:
        stored = self._stored.get(model, {})
        return ModelLine(
            model=model,
            closed=stored.get("closed", 0),
            events_per_s=rate,
            top_drift=stored.get("top_drift", ()),
            accuracy=stored.get("accuracy"),
            reference_accuracy=stored.get("reference_accuracy"),
            firing=stored.get("firing", 0),
        )

    def _read(self) -> dict[str, dict[str, Any]]:
        """Per model: closed windows, top drift, newest decided accuracy, firing alerts."""
        report = status_report(self._settings, self._engine, with_lag=False)
        firing = alerts_report(self._engine, datetime.now(UTC), state="firing")
        out: dict[str, dict[str, Any]] = {name: {} for name in self._models()}
        for m in report["models"]:
            entry = out.setdefault(m["model"], {})
            entry["closed"] = entry.get("closed", 0) + m["closed_windows"]
            entry["top_drift"] = tuple(
                (d["feature"], d["psi"], d["decision"] == "drift") for d in m["top_drift"]
            )
        for name, entry in out.items():
            entry["firing"] = sum(1 for a in firing if a["model"] == name)
            entry.update(self._accuracy(name))
        return out

    def _accuracy(self, model: str) -> dict[str, float | None]:
        """The newest window's accuracy decided on enough labels, and the reference's own."""
        rows = metric_rows(self._engine, model, metric="accuracy")
        decided = [r for r in rows if r["feature"] is None and r["decision"] != "insufficient_data"]
        if not decided:
            return {}
        newest = decided[-1]
        reference = [
            r["value"] for r in rows
            if r["feature"] == "@reference" and r["window_start"] == newest["window_start"]
        ]  # fmt: skip
        return {"accuracy": newest["value"], "reference_accuracy": (reference or [None])[0]}
