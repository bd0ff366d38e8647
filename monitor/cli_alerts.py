"""``monitor alerts``, ``alerts silence|unsilence``, ``monitor outbox`` and ``monitor rules``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from monitor.alert_views import (
    alerts_report,
    describe_rule,
    outbox_report,
    rules_report,
    silences_report,
)
from monitor.cli_support import (
    EXIT_RUNTIME,
    EXIT_USAGE,
    config_option,
    fail,
    json_option,
    open_database,
    print_json,
    settings_from,
    wide_console,
)
from monitor.errors import MonitorError
from monitor.settings import parse_duration
from monitor.store import alerts as stored_alerts
from monitor.store.db import transaction

if TYPE_CHECKING:
    from sqlalchemy import Engine

STATES = ("pending", "firing", "resolved")


def _now() -> datetime:
    return datetime.now(UTC)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


Rows = list[dict[str, Any]]


def _read(config_path: Path, read: Callable[[Engine], Rows]) -> Rows:
    """The rows ``read`` takes from the configured database (exit 1 if it cannot)."""
    engine = open_database(settings_from(config_path), False)
    try:
        return read(engine)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)


def _show(
    rows: Rows,
    as_json: bool,
    title: str,
    columns: tuple[str, ...],
    cells: Callable[[dict[str, Any]], list[str]],
    empty: str,
) -> None:
    """JSON, or a table with one row of ``cells`` per row (``empty`` when there is none)."""
    if as_json:
        print_json(rows)
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*cells(row))
    wide_console().print(table if rows else empty)


@click.group("alerts", invoke_without_command=True)
@config_option
@json_option
@click.option("--state", type=click.Choice(STATES), default=None, help="Only alerts in STATE.")
@click.option("--model", "-m", default=None, help="Only alerts of this model.")
@click.pass_context
def alerts_group(
    ctx: click.Context, config_path: Path, as_json: bool, state: str | None, model: str | None
) -> None:
    """List alerts (newest first); subcommands silence and unsilence them."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _read(config_path, lambda engine: alerts_report(engine, _now(), state, model))
    columns = ("id", "state", "severity", "rule", "model", "version", "feature", "value",
               "threshold", "since", "resolved")  # fmt: skip
    _show(rows, as_json, "alerts", columns, _alert_cells, "no alerts")


def _alert_cells(a: dict[str, Any]) -> list[str]:
    state = a["state"] + (" (silenced)" if a["silenced"] else "")
    feature = a["feature"] or "-"
    if a["segment"]:
        feature += f" [{a['segment']}]"
    return [
        str(a["id"]), state, a["severity"] or "-", a["rule"], a["model"], a["version"],
        feature, _number(a["value"]), _number(a["threshold"]), a["started_at"] or "-",
        a["resolved_at"] or "-",
    ]  # fmt: skip


@alerts_group.command("silence")
@config_option
@click.option("--rule", "-r", required=True, help="Rule name (glob).")
@click.option("--model", "-m", required=True, help="Model name (glob).")
@click.option("--feature", "-f", default=None, help="Feature (glob); default: every feature.")
@click.option("--for", "duration", default="1h", show_default=True, help="How long, e.g. 2h.")
@click.option("--comment", required=True, help="Why: shown in `monitor alerts silences`.")
def silence(
    config_path: Path, rule: str, model: str, feature: str | None, duration: str, comment: str
) -> None:
    """Suppress notifications of matching alerts (their state still changes)."""
    settings = settings_from(config_path)
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        fail(f"--for: {exc}", EXIT_USAGE)
    if length.total_seconds() <= 0:
        fail("--for: must be positive", EXIT_USAGE)
    engine = open_database(settings, False)
    now = _now()
    try:
        with transaction(engine, write=True) as conn:
            silence_id = stored_alerts.add_silence(
                conn, rule=rule, model=model, feature=feature, comment=comment,
                starts_at=now, ends_at=now + length,
            )  # fmt: skip
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    scope = f"rule {rule}, model {model}" + (f", feature {feature}" if feature else "")
    until = (now + length).isoformat(timespec="seconds")
    click.echo(f"silence {silence_id} created: {scope}, until {until}")


@alerts_group.command("unsilence")
@config_option
@click.argument("silence_id", type=int)
def unsilence(config_path: Path, silence_id: int) -> None:
    """End silence SILENCE_ID now."""
    settings = settings_from(config_path)
    engine = open_database(settings, False)
    try:
        with transaction(engine, write=True) as conn:
            ended = stored_alerts.end_silence(conn, silence_id, _now())
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    if not ended:
        fail(f"no silence {silence_id} in force", EXIT_RUNTIME)
    click.echo(f"silence {silence_id} ended")


@alerts_group.command("silences")
@config_option
@json_option
def silences(config_path: Path, as_json: bool) -> None:
    """List the silences in force."""
    rows = _read(config_path, lambda engine: silences_report(engine, _now()))
    _show(
        rows, as_json, "silences", ("id", "rule", "model", "feature", "until", "comment"),
        lambda s: [str(s["id"]), s["rule"], s["model"], s["feature"] or "*", s["ends_at"],
                   s["comment"]],
        "no silences in force",
    )  # fmt: skip


@click.command("outbox")
@config_option
@json_option
@click.option("--all", "everything", is_flag=True, help="Delivered and silenced rows too.")
def outbox_command(config_path: Path, as_json: bool, everything: bool) -> None:
    """Notifications and retraining triggers pending or failed (dead)."""
    rows = _read(config_path, lambda engine: outbox_report(engine, everything))
    columns = ("id", "kind", "target", "model", "state", "attempts", "next attempt",
               "last error", "key")  # fmt: skip
    _show(
        rows, as_json, "outbox", columns,
        lambda r: [str(r["id"]), r["kind"], r["target"], r["model"], r["state"],
                   str(r["attempts"]), r["next_attempt_at"] or r["delivered_at"] or "-",
                   r["last_error"] or "-", r["key"]],
        "outbox empty: nothing pending or failed",
    )  # fmt: skip


@click.command("rules")
@config_option
@json_option
def rules_command(config_path: Path, as_json: bool) -> None:
    """The rules in force: the configured ones, then the built-in defaults."""
    rows = rules_report(settings_from(config_path))
    columns = ("rule", "source", "models", "features", "condition", "for", "resolve",
               "notify", "trigger")  # fmt: skip
    _show(
        rows, as_json, "rules", columns,
        lambda r: [r["name"], r["source"], _globs(r["models"]), _globs(r["features"]),
                   describe_rule(r), str(r["for"]), str(r["resolve_after"]),
                   ", ".join(r["notify"]) or "-", r["trigger"] or "-"],
        "no rules",
    )  # fmt: skip


def _globs(patterns: list[Any]) -> str:
    return ", ".join(str(p) for p in patterns)
