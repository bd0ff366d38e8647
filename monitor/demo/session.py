"""One demo session's moving parts: config, database, references, daemon, traffic, display.

`runner` decides the order and owns the shutdown; this module builds each part and registers
its cleanup on the runner's `ExitStack`, so whatever was started is stopped, in reverse, even
when a Ctrl-C lands halfway through the start. The daemon runs in-process (`build_run_loop`
in a thread, stopped through ``loop.stop`` as SIGTERM stops ``monitor run``); its log goes to
``monitor.log`` in the demo directory, because the terminal belongs to the live view.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console

from monitor.alert_views import outbox_report
from monitor.demo.broker import create_topics
from monitor.demo.probe import Probe
from monitor.demo.receiver import Delivery
from monitor.demo.scenario import MODELS, Scenario
from monitor.demo.serving import Serving, Totals, kafka_producer
from monitor.demo.traffic import FeatureSpace, Generator
from monitor.demo.view import Display
from monitor.demo.workspace import (
    TEMPLATE,
    Workspace,
    free_port,
    new_secret,
    render_config,
    write_training_data,
)
from monitor.errors import MonitorError
from monitor.logs import register_secrets, secrets_of, setup_logging
from monitor.reference.service import build_and_store
from monitor.settings import Settings, load_settings
from monitor.store import db

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.app import RunLoop

__all__ = ["Session"]

log = logging.getLogger(__name__)

TRAINING_ROWS = 20_000
LABEL_DELAY_MS = 2 * 60_000  # event time: about 1.2 s of wall time at the demo's speed
LABEL_FRACTION = 0.9
MALFORMED = 0.002  # a trickle of broken records, to show the dead letters
DRAIN_TIMEOUT_S = 60.0  # only reached when the daemon fell behind (a busy machine)
TICK_S = 0.25


class Session:
    """The parts of one demo run (see the module docstring)."""

    def __init__(
        self, rate: float, seed: int, scenario: Scenario, ws: Workspace, console: Console
    ) -> None:
        """Nothing starts here; `setup` and `run_traffic` do, registering their cleanup."""
        self.rate, self.seed, self.scenario, self.ws = rate, seed, scenario, ws
        self.console = console
        self.secret = new_secret()
        self.received: list[Delivery] = []  # appended by the receiver's threads
        self.settings: Settings | None = None
        self.totals: Totals | None = None
        self.bootstrap = ""
        self.http_port = 0
        self._engine: Engine | None = None
        self._loop: RunLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_error: BaseException | None = None

    # -- start ------------------------------------------------------------------------------

    def setup(self, stack: ExitStack, bootstrap: str, receiver_port: int) -> None:
        """Topics, config, schema, references, then the daemon."""
        self.bootstrap = bootstrap
        create_topics(bootstrap, {"predictions": len(MODELS), "labels": len(MODELS)})
        self.http_port = free_port()
        values = {
            "bootstrap": bootstrap,
            "database": str(self.ws.database),
            "http_port": str(self.http_port),
            "receiver_port": str(receiver_port),
            "webhook_secret": self.secret,
        }
        if not TEMPLATE.is_file():
            raise MonitorError(f"{TEMPLATE} not found: run the demo from a checkout (scripts/demo)")
        self.ws.config.write_text(render_config(TEMPLATE.read_text(encoding="utf-8"), values))
        settings = self.settings = load_settings(self.ws.config)
        register_secrets(secrets_of(settings))
        log_file = self.ws.log.open("a", encoding="utf-8")
        stack.callback(log_file.close)
        setup_logging(settings.logging.level, "console", log_file)
        engine = db.open_checked(settings.database.url.get_secret_value(), migrate=True)
        stack.callback(engine.dispose)
        self._engine = engine
        self._build_references(engine)
        from monitor.app import build_run_loop  # the whole daemon: only once it is needed

        self._loop = build_run_loop(settings, engine)
        self._loop_thread = threading.Thread(target=self._run_loop, name="monitor-run", daemon=True)
        stack.callback(self._stop_loop)
        self._loop_thread.start()
        self.console.print(
            f"daemon: monitor run in-process, HTTP API http://127.0.0.1:{self.http_port}, "
            f"log {self.ws.log}"
        )

    def _build_references(self, engine: Engine) -> None:
        """Simulated training data per model (in the temp dir), profiled and stored."""
        assert self.settings is not None  # noqa: S101 - setup() loads it first
        for model in MODELS:
            space = FeatureSpace.seeded(self.seed, model)
            path = self.ws.temp / f"{model}-training.jsonl"
            write_training_data(path, space, TRAINING_ROWS, self.seed)
            revision, profile = build_and_store(
                self.settings, engine, model, path, None, datetime.now(UTC)
            )
            accuracy = profile.baseline.get("accuracy")
            self.console.print(
                f"reference: {model} revision {revision} from {profile.rows:,} simulated "
                f"training rows" + ("" if accuracy is None else f", accuracy {accuracy:.3f}")
            )

    def _run_loop(self) -> None:
        assert self._loop is not None  # noqa: S101 - set before the thread starts
        try:
            self._loop.run()
        except BaseException as exc:  # reported by _check_loop in the main thread
            self._loop_error = exc
            log.exception("the daemon stopped")

    def _stop_loop(self) -> None:
        if self._loop is not None and self._loop_thread is not None:
            self._loop.stop.set()
            self._loop_thread.join(timeout=30)

    def _check_loop(self) -> None:
        """Raise if the daemon thread died: the demo would only show stale numbers."""
        if self._loop_thread is not None and not self._loop_thread.is_alive():
            raise MonitorError(f"the daemon stopped ({self._loop_error!r}); see {self.ws.log}")

    # -- traffic ----------------------------------------------------------------------------

    def run_traffic(self, stack: ExitStack) -> None:
        """Send for the scenario's length while the live view follows, then drain."""
        settings, loop = self.settings, self._loop
        assert settings is not None and loop is not None  # noqa: S101 - setup() ran
        producer = kafka_producer(self.bootstrap, "monitor-demo")
        stack.callback(producer.close, timeout=5)
        gen = Generator(
            MODELS, origin_ms=self.scenario.origin_ms, drifts=self.scenario.drifts,
            seed=self.seed, malformed=MALFORMED, label_delay_ms=LABEL_DELAY_MS,
            label_fraction=LABEL_FRACTION,
        )  # fmt: skip
        serving = Serving(
            producer, gen, predictions_topic=settings.kafka.predictions_topic,
            labels_topic=settings.kafka.labels_topic, rate=self.rate, speed=self.scenario.speed,
            partitions={model: i for i, model in enumerate(MODELS)},
        )  # fmt: skip
        self.totals = serving.totals
        stop = threading.Event()
        sender = threading.Thread(
            target=serving.run, args=(stop, self.scenario.seconds), name="serving", daemon=True
        )
        stack.callback(_stop_thread, stop, sender)
        reader = db.create_db_engine(settings.database.url.get_secret_value())
        stack.callback(reader.dispose)
        probe = Probe(settings, reader, self.scenario, serving.totals, lambda: loop.consumed)
        self.console.print(
            f"serving: {', '.join(MODELS)} at {self.rate:,.0f} predictions/s in total, "
            f"labels ~{LABEL_DELAY_MS // 60_000} min (event time) later\n"
        )
        probe.started = time.monotonic()
        sender.start()
        with Display(self.console) as display:
            while sender.is_alive():
                self._check_loop()
                display.show(probe.frame(self.received, "traffic"))
                time.sleep(TICK_S)
            self._drain(display, probe, reader)

    def _drain(self, display: Display, probe: Probe, reader: Engine) -> None:
        """Until the daemon consumed everything sent and the outbox delivered what is due."""
        assert self.totals is not None and self._loop is not None  # noqa: S101
        sent = self.totals.events + self.totals.labels
        settle = 2 * (self.settings.ingest.commit_interval.total_seconds() if self.settings else 1)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        caught_up: float | None = None
        while time.monotonic() < deadline:
            self._check_loop()
            display.show(probe.frame(self.received, "draining"))
            now = time.monotonic()
            if self._loop.consumed >= sent:
                caught_up = caught_up or now
                if now - caught_up >= settle and not _outbox_pending(reader):
                    break
            time.sleep(TICK_S)
        display.show(probe.frame(self.received, "done"))


def _outbox_pending(engine: Engine) -> bool:
    try:
        return any(row["state"] == "pending" for row in outbox_report(engine))
    except MonitorError:
        return True


def _stop_thread(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    if thread.is_alive():
        thread.join(timeout=30)
