"""``monitor demo``: see monitor catch drift, alert, trigger a retraining and recover.

Thin on purpose: the options, then `monitor.demo.runner.run_demo`. The demo package (broker,
traffic, receiver, view) is imported only when the command runs, so ``monitor --help`` stays
fast and needs none of the demo extra (only the schedule's shortest length is read up front).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from monitor.cli_support import EXIT_RUNTIME, fail
from monitor.demo.scenario import MIN_SECONDS
from monitor.errors import MonitorError


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("monitor-demo"),
    show_default=True,
    help="Where the config, database, daemon log and received messages are kept afterwards.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=MIN_SECONDS),
    default=150.0,
    show_default=True,
    help="How long the simulated traffic runs (one 5-minute window passes every 3 s).",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="Afterwards leave the broker, daemon and HTTP API up until Ctrl-C.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=500, max=50_000),
    default=2000.0,
    show_default=True,
    help="Predictions per second over both models (below 500 windows are too small to judge).",
)
def demo_command(directory: Path, seconds: float, keep_running: bool, rate: float) -> None:
    """Run a broker, the daemon and a simulated serving system with drift, then summarise."""
    from rich.console import Console

    from monitor.demo.broker import BrokerStartError
    from monitor.demo.runner import DemoOptions, run_demo

    options = DemoOptions(directory, seconds, keep_running, rate)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=120)  # a log file: room for the final frame's table
    try:
        code = run_demo(options, console)
    except (MonitorError, BrokerStartError) as exc:
        fail(str(exc), EXIT_RUNTIME)
    sys.exit(code)
