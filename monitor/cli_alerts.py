"""``monitor alerts``, ``alerts silence|unsilence``, ``monitor outbox`` and ``monitor rules``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

STATES = ("pending", "firing", "resolved")


def _now() -> datetime:
    return datetime.now(UTC)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


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
    settings = settings_from(config_path)
    engine = open_database(settings, False)
    try:
        rows = alerts_report(engine, _now(), state, model)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    if as_json:
        print_json(rows)
        return
    table = Table(title="alerts", title_justify="left")
    columns = ("id", "state", "severity", "rule", "model", "version", "feature", "value",
               "threshold", "since", "resolved")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for a in rows:
        state_text = a["state"] + (" (silenced)" if a["silenced"] else "")
        feature = a["feature"] or "-"
        if a["segment"]:
            feature += f" [{a['segment']}]"
        table.add_row(
            str(a["id"]), state_text, a["severity"] or "-", a["rule"], a["model"], a["version"],
            feature, _number(a["value"]), _number(a["threshold"]), a["started_at"] or "-",
            a["resolved_at"] or "-",
        )  # fmt: skip
    wide_console().print(table if rows else "no alerts")


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
    settings = settings_from(config_path)
    engine = open_database(settings, False)
    try:
        rows = silences_report(engine, _now())
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    if as_json:
        print_json(rows)
        return
    table = Table(title="silences", title_justify="left")
    for column in ("id", "rule", "model", "feature", "until", "comment"):
        table.add_column(column)
    for s in rows:
        table.add_row(str(s["id"]), s["rule"], s["model"], s["feature"] or "*", s["ends_at"],
                      s["comment"])  # fmt: skip
    wide_console().print(table if rows else "no silences in force")


@click.command("outbox")
@config_option
@json_option
@click.option("--all", "everything", is_flag=True, help="Delivered and silenced rows too.")
def outbox_command(config_path: Path, as_json: bool, everything: bool) -> None:
    """Notifications and retraining triggers pending or failed (dead)."""
    settings = settings_from(config_path)
    engine = open_database(settings, False)
    try:
        rows = outbox_report(engine, everything)
    except MonitorError as exc:
        fail(str(exc), EXIT_RUNTIME)
    if as_json:
        print_json(rows)
        return
    table = Table(title="outbox", title_justify="left")
    for column in ("id", "kind", "target", "model", "state", "attempts", "next attempt",
                   "last error", "key"):  # fmt: skip
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["id"]), r["kind"], r["target"], r["model"], r["state"], str(r["attempts"]),
            r["next_attempt_at"] or r["delivered_at"] or "-", r["last_error"] or "-", r["key"],
        )  # fmt: skip
    wide_console().print(table if rows else "outbox empty: nothing pending or failed")


@click.command("rules")
@config_option
@json_option
def rules_command(config_path: Path, as_json: bool) -> None:
    """The rules in force: the configured ones, then the built-in defaults."""
    settings = settings_from(config_path)
    rows = rules_report(settings)
    if as_json:
        print_json(rows)
        return
    table = Table(title="rules", title_justify="left")
    for column in ("rule", "source", "models", "features", "condition", "for", "resolve",
                   "notify", "trigger"):  # fmt: skip
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["name"], r["source"], _globs(r["models"]), _globs(r["features"]), describe_rule(r),
            str(r["for"]), str(r["resolve_after"]), ", ".join(r["notify"]) or "-",
            r["trigger"] or "-",
        )  # fmt: skip
    wide_console().print(table)


def _globs(patterns: list[Any]) -> str:
    return ", ".join(str(p) for p in patterns)
