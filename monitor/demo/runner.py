"""``monitor demo``: a broker, the daemon, a simulated serving system and a receiver, in one go.

The order is the order of a real deployment, so the demo proves the real path: the embedded
Tansu broker and the topics; the config (from ``config/demo.yaml``) and the database schema; a
reference profile from simulated training data; the daemon (`build_run_loop`, the same loop
``monitor run`` drives, in a thread); then the serving system sends predictions and delayed
labels at thousands of events per second while its schedule injects the incidents, and the
receiver shows the alerts and signed retraining triggers as they arrive.

Shutdown is an `ExitStack` unwound in reverse: traffic, daemon (final checkpoint), database,
broker, receiver, temporary directory. The first Ctrl-C (or SIGTERM) raises KeyboardInterrupt in
the main thread so that unwinding runs; a second one kills the broker and exits at once, still
removing the temporary directory (the broker runs in its own session, so the terminal's Ctrl-C
never reaches it: only the demo stops it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from monitor.demo import summary as closing
from monitor.demo.broker import EmbeddedBroker
from monitor.demo.receiver import Receiver
from monitor.demo.scenario import Scenario, build_scenario
from monitor.demo.session import Session
from monitor.demo.workspace import Workspace, prepare

__all__ = ["DemoOptions", "run_demo"]

EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the user chose on the command line."""

    directory: Path
    seconds: float
    keep_running: bool = False
    rate: float = 2000.0
    seed: int = 0


class _Signals:
    """First SIGINT/SIGTERM: KeyboardInterrupt (clean shutdown). Second: stop now."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.broker: EmbeddedBroker | None = None
        self.count = 0

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        if self.broker is not None:
            with contextlib.suppress(RuntimeError, OSError):
                pid = self.broker.pid
                os.kill(pid, signal.SIGKILL)
                _reap(pid)
        self.ws.remove_temp()
        os._exit(EXIT_INTERRUPTED)


def _reap(pid: int, timeout_s: float = 2.0) -> None:
    """Collect a killed child, so no defunct broker entry outlives the demo."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
        time.sleep(0.01)


def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo; the exit code (0, or 130 after Ctrl-C). ValueError: bad options."""
    scenario = build_scenario(options.seconds, round(time.time() * 1000))
    ws = prepare(options.directory)
    signals = _Signals(ws)
    signals.install()
    session: Session | None = None
    interrupted = summarised = False
    console.print(f"[bold]monitor demo[/]: files kept in {closing.shown_path(ws.dir)}")
    console.print(f"temporary files: {ws.temp} (removed on exit)")
    try:
        with ExitStack() as stack:
            stack.callback(ws.remove_temp)
            session = Session(options.rate, options.seed, scenario, ws, console)
            _start(session, stack, signals, scenario, console)
            session.run_traffic(stack)  # and drain: everything sent consumed and delivered
            if options.keep_running:
                _print_summary(session, ws, console, running=True)
                summarised = True
                console.print(
                    f"\nstill running: broker {session.bootstrap}, API "
                    f"http://127.0.0.1:{session.http_port}/api/alerts and /metrics; "
                    "Ctrl-C stops everything"
                )
                threading.Event().wait()
    except KeyboardInterrupt:
        interrupted = True
    signals.count = max(signals.count, 1)  # all stopped: another Ctrl-C just exits
    console.print(f"stopped: broker stopped, {ws.temp} removed")
    if summarised:  # --keep-running, ended by Ctrl-C as intended
        return 0
    _print_summary(session, ws, console, interrupted)
    return EXIT_INTERRUPTED if interrupted else 0


def _start(
    session: Session,
    stack: ExitStack,
    signals: _Signals,
    scenario: Scenario,
    console: Console,
) -> None:
    """Receiver, broker, config, database, references, daemon: each registered for cleanup."""
    console.print("schedule:")
    for line in scenario.lines():
        console.print(f"  {line}", highlight=False)
    receiver = Receiver(session.secret, session.ws.received, session.received.append)
    stack.callback(receiver.stop)
    receiver.start()
    broker = EmbeddedBroker(tmp_dir=session.ws.temp)
    signals.broker = broker
    stack.callback(broker.stop)
    broker.start()
    console.print(
        f"broker: Tansu pid {broker.pid} on {broker.bootstrap} (started in "
        f"{broker.start_seconds or 0:.1f} s)"
    )
    session.setup(stack, broker.bootstrap, receiver.port)


def _print_summary(
    session: Session | None,
    ws: Workspace,
    console: Console,
    interrupted: bool = False,
    running: bool = False,
) -> None:
    """The closing summary (after an interrupt: what happened until then)."""
    settings = session.settings if session is not None else None
    deliveries: list[Any] = session.received if session is not None else []
    totals = session.totals if session is not None else None
    facts = closing.gather(settings, ws, deliveries, totals)
    if interrupted:
        console.print("\ninterrupted: the summary covers what happened until then")
    for line in closing.render_lines(facts, ws, running):
        console.print(line, highlight=False, soft_wrap=True)
