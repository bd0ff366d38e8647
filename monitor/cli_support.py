"""What every ``monitor`` command shares: the config and JSON options, exit codes, output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import orjson
from rich.console import Console

from monitor.errors import ConfigError, SchemaOutdatedError, StoreError
from monitor.settings import Settings, load_settings
from monitor.store import db

if TYPE_CHECKING:
    from sqlalchemy import Engine

F = TypeVar("F", bound=Callable[..., Any])
EXIT_RUNTIME = 1
EXIT_USAGE = 2
DEFAULT_CONFIG = "monitor.yaml"


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="MONITOR_CONFIG",
        default=DEFAULT_CONFIG,
        show_default="$MONITOR_CONFIG or ./monitor.yaml",
        help="YAML configuration file.",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def settings_from(path: Path) -> Settings:
    """Load the config or stop with every problem listed and exit code 2."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        invalid_config(path, exc)


def invalid_config(path: Path, exc: ConfigError) -> NoReturn:
    """List every problem of the config at ``path`` and exit 2."""
    click.echo(f"{path}: invalid configuration", err=True)
    for problem in exc.errors:
        click.echo(f"  {problem}", err=True)
    sys.exit(EXIT_USAGE)


def check_channels(path: Path, settings: Settings) -> None:
    """Exit 2 when a channel's apprise URL is not one apprise can use (apprise decides)."""
    from monitor.actions.notify import Notifier  # apprise: only for the commands that send

    try:
        Notifier(settings.channels)
    except ConfigError as exc:
        invalid_config(path, exc)


def wide_console() -> Console:
    """A console for tables: the terminal's width, or a wide page when output is piped."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def print_json(document: Any) -> None:
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def open_database(settings: Settings, upgrade: bool) -> Engine:
    """The database, or exit 2 (schema outdated) / 1 (unreachable) with the reason."""
    try:
        return db.open_checked(settings.database.url.get_secret_value(), migrate=upgrade)
    except SchemaOutdatedError as exc:
        fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        fail(str(exc), EXIT_RUNTIME)
