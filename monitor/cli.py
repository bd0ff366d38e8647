"""The ``monitor`` command: thin click commands that parse, call app/store, and print.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration. Every command takes
``--config/-c`` (default: ``$MONITOR_CONFIG``, else ``./monitor.yaml``); read commands take
``--json``.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import click
import orjson
from rich.table import Table

from monitor.cli_alerts import alerts_group, outbox_command, rules_command
from monitor.cli_demo import demo_command
from monitor.cli_support import (
    EXIT_RUNTIME,
    EXIT_USAGE,
    check_channels,
    config_option,
    fail,
    json_option,
    open_database,
    print_json,
    settings_from,
    wide_console,
)
from monitor.errors import MonitorError, StoreError
from monitor.logs import register_secrets, secrets_of, setup_logging
from monitor.reference.service import ActiveReference, build_and_store, load_active
from monitor.settings import mask_url, parse_duration, parse_moment
from monitor.status import metric_rows, status_report
from monitor.store import db


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="monitor")
def main() -> None:
    """Streaming production monitoring for machine-learning models."""


main.add_command(alerts_group)
main.add_command(outbox_command)
main.add_command(rules_command)
main.add_command(demo_command)


@main.command("check-config")
@config_option
def check_config(config_path: Path) -> None:
    """Validate the configuration and summarise it (exit 2 when invalid)."""
    settings = settings_from(config_path)
    check_channels(config_path, settings)
    click.echo(f"{config_path}: ok")
    for line in settings.summary():
        click.echo(f"  {line}")


@main.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@config_option
def db_upgrade(config_path: Path) -> None:
    """Create or migrate the database schema to this version of monitor."""
    settings = settings_from(config_path)
    url = settings.database.url.get_secret_value()
    try:
        before, after = db.upgrade(db.create_db_engine(url))
    except StoreError as exc:
        fail(str(exc), EXIT_RUNTIME)
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    click.echo(f"{mask_url(url)}: {state} revision {after}")


@main.command("run")
@config_option
@click.option(
    "--exit-when-idle",
    "idle",
    metavar="DURATION",
    help="Exit 0 once no record arrived for DURATION and everything is checkpointed.",
)
@click.option("--flush", is_flag=True, help="Close and evaluate the open windows on exit.")
@click.option("--upgrade-db", is_flag=True, help="Migrate the database schema first.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="Overrides logging.level.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"], case_sensitive=False),
    default=None,
    help="Overrides logging.format (auto: console on a terminal, JSON lines otherwise).",
)
def run(
    config_path: Path,
    idle: str | None,
    flush: bool,
    upgrade_db: bool,
    log_level: str | None,
    log_format: Literal["auto", "console", "json"] | None,
) -> None:
    """Consume predictions and labels from Kafka until stopped (SIGTERM or Ctrl-C)."""
    settings = settings_from(config_path)
    check_channels(config_path, settings)
    idle_s = _duration_seconds(idle, "--exit-when-idle")
    register_secrets(secrets_of(settings))
    setup_logging(log_level or settings.logging.level, log_format or settings.logging.format)
    engine = open_database(settings, upgrade_db)
    try:
        from monitor import app  # the whole daemon: imported by the commands that run it

        loop = app.build_run_loop(settings, engine)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    _stop_on_signals(loop.stop.set)
    try:
        loop.run(exit_when_idle=idle_s, flush=flush)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    rate = loop.throughput()
    logging.getLogger("monitor").info(
        "stopped after %d records%s",
        loop.consumed,
        f" ({rate:,.0f} records/s from first to last)" if rate else "",
    )


def _duration_seconds(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        fail(f"{option}: {exc}", EXIT_USAGE)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: finish the batch, checkpoint, exit 0. Second SIGINT: exit now."""
    interrupted = False

    def handle(signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        if signum == signal.SIGINT and interrupted:
            os._exit(130)
        interrupted = True
        stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@main.command("replay")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["predictions", "labels"]),
    default="predictions",
    show_default=True,
    help="What the file's lines are.",
)
@click.option("--flush", is_flag=True, help="Close and evaluate the open windows at the end.")
def replay(config_path: Path, file: Path, kind: str, flush: bool) -> None:
    """Feed a JSON Lines file through the pipeline; a second replay resumes, never recounts."""
    settings = settings_from(config_path)
    register_secrets(secrets_of(settings))
    setup_logging(settings.logging.level, settings.logging.format)
    engine = open_database(settings, False)
    try:
        from monitor import app

        result = app.replay(
            settings, engine, file, "labels" if kind == "labels" else "predictions", flush=flush
        )
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    where = "from the start" if result.first_line == 1 else f"from line {result.first_line}"
    click.echo(
        f"{file}: {result.records} records replayed {where}, {result.windows_closed} windows closed"
    )


@main.group("reference")
def reference_group() -> None:
    """Reference profiles: what each model's data looked like while it was trusted."""


@reference_group.command("build")
@config_option
@click.option("--model", "-m", required=True, help="Model name, as in the events.")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV, Parquet or JSON Lines file with the same field names as the events.",
)
@click.option("--version", "-v", "version", default=None, help="Only for this model version.")
def reference_build(config_path: Path, model: str, data: Path, version: str | None) -> None:
    """Profile a training or validation file and store it as the active reference."""
    settings = settings_from(config_path)
    engine = open_database(settings, False)
    try:
        now = datetime.now(UTC)
        revision, profile = build_and_store(settings, engine, model, data, version, now)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    scope = f"{model} version {version}" if version else f"{model} (every version)"
    click.echo(
        f"reference revision {revision} for {scope}: {profile.rows} rows, "
        f"{len(profile.features)} features from {data}"
    )


@reference_group.command("show")
@config_option
@json_option
@click.option("--model", "-m", required=True, help="Model name.")
@click.option("--version", "-v", "version", default=None, help="Model version.")
def reference_show(config_path: Path, as_json: bool, model: str, version: str | None) -> None:
    """Show the active reference profile of a model (version)."""
    settings = settings_from(config_path)
    engine = open_database(settings, False)
    try:
        active = load_active(engine, model, version)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    if active is None:
        fail(f"no reference for {model}: build one with `monitor reference build`", EXIT_RUNTIME)
    if as_json:
        print_json({"revision": active.revision} | orjson.loads(active.profile.to_json()))
        return
    _print_reference(active)


def _print_reference(active: ActiveReference) -> None:
    profile = active.profile
    scope = "every version" if active.version is None else f"version {active.version}"
    console = wide_console()
    console.print(
        f"{profile.model} ({scope}), revision {active.revision}: {profile.rows} rows "
        f"from {profile.created_from}"
    )
    table = Table(title="features", title_justify="left")
    for column in ("feature", "type", "missing", "summary"):
        table.add_column(column)
    for name, feature in sorted(profile.features.items()):
        if feature.type == "numeric":
            summary = (
                f"mean {feature.mean:.4g}, std {feature.std:.4g}, "
                f"range [{feature.min:.4g}, {feature.max:.4g}], {len(feature.edges) - 1} bins"
                if feature.mean is not None
                and feature.std is not None
                and feature.min is not None
                and feature.max is not None
                else "no valid values"
            )
        else:
            top = ", ".join(f"{k} {v}" for k, v in list(feature.counts.items())[:4])
            summary = f"{len(feature.counts)} categories: {top}"
        table.add_row(name, feature.type, f"{feature.missing_rate:.1%}", summary)
    console.print(table)
    if profile.baseline:
        console.print(
            "baseline: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(profile.baseline.items()))
        )


@main.command("metrics")
@config_option
@json_option
@click.option("--model", "-m", required=True, help="Model name.")
@click.option("--feature", "-f", default=None, help="Feature, @score, @prediction, or - for none.")
@click.option("--metric", default=None, help="Metric name, e.g. psi, missing_rate, events.")
@click.option(
    "--segment", "-s", default=None, help="Slice such as channel=web (default: the whole model)."
)
@click.option("--since", default=None, help="ISO 8601 time, or a duration back from now (2h).")
def metrics(
    config_path: Path,
    as_json: bool,
    model: str,
    feature: str | None,
    metric: str | None,
    segment: str | None,
    since: str | None,
) -> None:
    """The time series of a model's closed-window metrics."""
    settings = settings_from(config_path)
    since_at = _since(since)
    engine = open_database(settings, False)
    try:
        rows = metric_rows(engine, model, feature, metric, segment, since_at)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{model} metrics", title_justify="left")
    for column in ("window", "version", "segment", "feature", "metric", "value", "n", "decision"):
        table.add_column(column, justify="right" if column in {"value", "n"} else "left")
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:.4g}"
        table.add_row(
            r["window_start"],
            r["version"],
            r["segment"] or "-",
            r["feature"] or "-",
            r["metric"],
            value,
            str(r["n"]),
            r["decision"] or "-",
        )
    wide_console().print(table if rows else f"no closed windows of {model} match")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value, datetime.now(UTC))
    except ValueError as exc:
        fail(f"--since: {exc}", EXIT_USAGE)


@main.command("status")
@config_option
@json_option
def status(config_path: Path, as_json: bool) -> None:
    """Per model and version: events, labels, rejects, last event; lag per partition."""
    settings = settings_from(config_path)
    engine = open_database(settings, False)
    try:
        report = status_report(settings, engine)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    if as_json:
        print_json(report)
        return
    _print_status(report)


def _performance_summary(performance: dict[str, Any] | None) -> str:
    """``accuracy 0.91, coverage 80%, delay p50 1.2h`` for the newest labelled window."""
    if performance is None:
        return "-"
    metrics = performance["metrics"]
    parts = [
        f"{name} {metrics[name]:.3g}"
        for name in ("accuracy", "roc_auc", "mae", "r2")
        if metrics.get(name) is not None
    ]
    if metrics.get("label_coverage") is not None:
        parts.append(f"coverage {metrics['label_coverage']:.0%}")
    if metrics.get("label_delay_p50") is not None:
        parts.append(f"delay p50 {_span(metrics['label_delay_p50'])}")
    if performance["insufficient_data"]:
        parts.append(f"(only {performance['labelled']} labels)")
    return ", ".join(parts) or "-"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _reference_state(model: dict[str, Any]) -> str:
    if model["reference"]:
        return "yes"
    warmup = model["warmup"]
    return f"warming up {warmup['events']}/{warmup['of']}" if warmup else "no"


def _print_status(report: dict[str, Any]) -> None:
    console = wide_console()
    models = Table(title="models", title_justify="left")
    numbers = ("events", "labels", "rejected", "late", "open", "closed")
    columns = ("model", "version", *numbers, "last event", "reference", "top drift", "performance")
    for column in columns:
        models.add_column(column, justify="right" if column in numbers else "left")
    for m in report["models"]:
        drift = ", ".join(
            f"{d['feature']} {d['psi']:.2f}{' (drift)' if d['decision'] == 'drift' else ''}"
            for d in m["top_drift"]
        )
        counts = (m[k] for k in ("events", "labels", "rejected", "late"))
        models.add_row(
            m["model"],
            m["version"],
            *map(str, counts),
            str(m["open_windows"]),
            str(m["closed_windows"]),
            m["last_event_time"] or "-",
            _reference_state(m),
            drift or "-",
            _performance_summary(m["performance"]),
        )
    console.print(models if report["models"] else "no events stored yet")
    if not report["partitions"]:
        console.print("no Kafka partitions consumed yet")
        console.print(f"dead letters: {report['dead_letters']}")
        return
    partitions = Table(title="partitions", title_justify="left")
    for column in ("topic", "partition", "next offset", "lag"):
        partitions.add_column(column)
    for p in report["partitions"]:
        lag = "?" if p["lag"] is None else str(p["lag"])
        partitions.add_row(p["topic"], str(p["partition"]), str(p["offset"]), lag)
    console.print(partitions)
    for p in report["partitions"]:
        if p["log_reset"] is not None:
            reset = p["log_reset"]
            console.print(
                f"{p['topic']}[{p['partition']}]: the broker's log restarted below offset "
                f"{reset['expected_offset']} at {reset['at']} (did it lose its data?)"
            )
    console.print(f"dead letters: {report['dead_letters']}")
